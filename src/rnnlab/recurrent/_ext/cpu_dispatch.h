// Which library and which path run the engine's matrix products on this CPU: the CPU's vendor, oneDNN's GEMM or
// ATen's (MKL), the BLAS symbols libtorch links, and the per-step product's path. Every choice follows the
// machine (CPUID, the symbols found, the shapes), never a timing, so runs stay reproducible; each has a switch
// for benchmarks and tests. The products themselves are in products.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace rnnlab {

// The CPU's vendor string from CPUID leaf 0 ("AuthenticAMD", "GenuineIntel", …), "" where unknown (not x86).
std::string cpu_vendor();

// ---------------------------------------------------------------------------------------------- GEMM library

// ATen's exported oneDNN product, looked up at run time: null where missing or refused by this CPU.
using OneDnnMatmul = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float, float);
OneDnnMatmul onednn_matmul();

// "auto" (default): oneDNN on AMD CPUs, where it exists; "onednn": wherever it exists; "aten": never (for
// comparisons and tests).
void set_gemm(const std::string& mode);
std::string gemm_backend();  // "onednn" or "aten"

// Whether oneDNN's GEMM runs a product of this dtype and this many multiply-adds (large float32 ones only).
bool onednn_takes(at::ScalarType dtype, int64_t work);

// ---------------------------------------------------------------------------------------------- BLAS

// MKL's Fortran interface, which libtorch links; absent in other PyTorch builds, which then keep ATen.
using FortranGemm = void (*)(const char*, const char*, const int*, const int*, const int*, const void*, const void*,
                             const int*, const void*, const int*, const void*, void*, const int*);
using MklLocalThreads = int (*)(int);

struct Blas {
  FortranGemm sgemm = nullptr, dgemm = nullptr;
  MklLocalThreads local_threads = nullptr;  // MKL's per-thread thread count; returns the previous setting
};

const Blas& blas();

// Whether a per-step product of this many multiply-adds runs on one MKL thread (threading it costs more than it
// saves).
bool one_mkl_thread(int64_t work);

// While alive, MKL runs this thread's products on one thread, if the step is small enough to lose by threading.
class SmallStepThreads {
 public:
  explicit SmallStepThreads(int64_t work) {
    if (one_mkl_thread(work)) {
      active_ = true;
      previous_ = blas().local_threads(1);
    }
  }
  ~SmallStepThreads() {
    if (active_) blas().local_threads(previous_);
  }
  SmallStepThreads(const SmallStepThreads&) = delete;
  SmallStepThreads& operator=(const SmallStepThreads&) = delete;

 private:
  bool active_ = false;
  int previous_ = 0;
};

// ---------------------------------------------------------------------------------------------- per-step path

// Which implementation runs the per-step product; chosen once per loop from the shapes (tested at the
// thresholds through `step_path`). Figures behind each: benchmarks/results/engine-notes.md.
//   kOneDnn  large float32 products (oneDNN, its own threads)
//   kSplit   small batches: the output columns split once and for all over the intra-op threads, each slice
//            one single-threaded BLAS call. At batch 1 the product is a matrix-vector product that MKL runs on
//            one thread whatever it is told, and W_hh (1 MB at H = 256 for an LSTM) no longer fits one core's
//            L2 cache; split the same way at every step, each core keeps its half of W_hh in its own cache.
//            The backward's split reads a transposed copy of W_hh made once per loop. It won in both
//            directions on an AMD EPYC, but only in the forward on an Intel Xeon (2 MB of L2 per core), so
//            the backward splits on AMD CPUs only (`set_backward_split`).
//   kBlas    everything else: one BLAS call (MKL's threads, or one thread where `one_mkl_thread`)
//   kAten    no BLAS symbols found (another PyTorch build)
//   kBrgemm  float32 on AMD CPUs, every shape, for loops of kBrgemmMinSteps steps or more: oneDNN's batch-reduce
//            GEMM micro-kernel (ATen's at::native::cpublas::brgemm, JIT-compiled once per shape and thread), on a
//            copy of W_hh reordered once per loop into panels of kPanel output columns, each panel's (K, kPanel)
//            block contiguous, the panels split over the threads as in kSplit (the batch rows where there are
//            fewer than two panels per thread). A GEMM call re-packs the whole weight into its own panels at
//            every step, and at these small batches that packing is most of the work. This is what torch.nn's
//            fused oneDNN LSTM does. Not measured on an Intel CPU, so "auto" keeps the other paths there
//            (`set_brgemm("on")` to try). The reordering costs about one product's worth of memory traffic,
//            hence the minimum loop length (a module stepped one step at a time, as in generation, keeps the
//            other paths).
enum class StepPath { kOneDnn = 0, kBlas = 1, kAten = 2, kSplit = 3, kBrgemm = 4 };

StepPath choose_step_path(at::ScalarType dtype, int64_t batch, int64_t work, bool forward, int64_t steps);

// Threads for the micro-kernel's product of `work` multiply-adds a step.
int brgemm_threads(int64_t work);

// Switches for benchmarks and tests. The largest batch that takes the split path (0: never); whether the
// backward may split and whether float32 steps may take the micro-kernel: "auto" (on AMD CPUs), "on", "off".
void set_step_split(int64_t max_batch);
void set_backward_split(const std::string& mode);
void set_brgemm(const std::string& mode);

// For tests and benchmarks: the path and thread count the loop of `steps` steps would use for a (batch, hidden,
// gates) layer's forward (or backward) per-step product.
std::string step_path(at::ScalarType dtype, int64_t batch, int64_t hidden, int64_t gates, bool forward,
                      int64_t steps);

}  // namespace rnnlab
