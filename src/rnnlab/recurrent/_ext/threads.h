// How the engine's work is shared over the intra-op threads: a bare OpenMP region that carries the caller's
// denormal setting into its workers, and the split of a step's batch rows over such a region.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace rnnlab {

// body(p, count) on `threads` OpenMP threads, thread p of count. The caller's flush-to-zero /
// denormals-are-zero bits (rnnlab sets them around the engine, denormals.h) are carried into the workers, which
// have their own MXCSR. A bare OpenMP region, not at::parallel_for: through parallel_for the split per-step
// product was many times slower (benchmarks/results/engine-notes.md, "Threads").
template <typename F>
void on_threads(int threads, const F& body) {
#if defined(__x86_64__)
  const unsigned csr = _mm_getcsr();
#endif
#pragma omp parallel num_threads(threads)
  {
#if defined(__x86_64__)
    const unsigned old = _mm_getcsr();
    _mm_setcsr(csr);
#endif
    body(int64_t(omp_get_thread_num()), int64_t(omp_get_num_threads()));
#if defined(__x86_64__)
    _mm_setcsr(old);
#endif
  }
}

// Split `rows` batch rows over the intra-op threads, in chunks of at least `pointwise_grain` elements. A step
// whose pointwise work fits in one chunk runs right here: no parallel region, no MXCSR round trip (at batch 1
// the whole step takes a few microseconds, and every fixed cost shows). 4096 elements: the best of the grains
// measured (benchmarks/results/engine-notes.md, "Threads").
inline int64_t pointwise_grain = 4096;

template <typename F>
void for_rows(int64_t rows, int64_t row_cost, const F& body) {
  const int64_t grain = std::max<int64_t>(1, pointwise_grain / std::max<int64_t>(1, row_cost));
  const int threads = int(std::min<int64_t>(at::get_num_threads(), rows / grain));
  if (threads <= 1) {
    body(0, rows);
    return;
  }
  on_threads(threads, [&](int64_t p, int64_t count) {
    const int64_t begin = rows * p / count, end = rows * (p + 1) / count;
    if (end > begin) body(begin, end);
  });
}

inline void set_pointwise_grain(int64_t elements) {
  TORCH_CHECK(elements >= 1, "set_pointwise_grain: elements must be ≥ 1, not ", elements);
  pointwise_grain = elements;
}

}  // namespace rnnlab
