// Denormal control (denormals.h).

#include "denormals.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace rnnlab {

int64_t denormals_flushed() {
#if defined(__x86_64__)
  return (_mm_getcsr() & 0x8040) != 0 ? 1 : 0;
#else
  return -1;
#endif
}

// torch.set_flush_denormal sets the calling thread's MXCSR only, but the large GEMMs of a training step (MKL's
// and oneDNN's) run on the pool's threads, which keep their own: there a vanishing gradient's denormals cost full
// price, over a hundred times the product's normal time on an Intel Xeon (benchmarks/results/engine-notes.md,
// "Denormals"). A pool thread keeps its MXCSR between parallel regions, so one region sets it for all the
// products that follow.
void set_pool_denormals(bool flush) {
#if defined(__x86_64__)
  const int threads = std::max(omp_get_max_threads(), int(at::get_num_threads()));
#pragma omp parallel num_threads(threads)
  {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(flush ? (csr | 0x8040u) : (csr & ~0x8040u));
  }
#endif
}

std::vector<int64_t> pool_denormals_flushed() {
  const int threads = std::max(omp_get_max_threads(), int(at::get_num_threads()));
  int64_t flushing = 0, team = 0;
#pragma omp parallel num_threads(threads) reduction(+ : flushing, team)
  {
    flushing += denormals_flushed() == 1 ? 1 : 0;
    team += 1;
  }
  return {flushing, team};
}

}  // namespace rnnlab
