// Which library and which path run the engine's matrix products on this CPU (cpu_dispatch.h).

#include "cpu_dispatch.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <dlfcn.h>

#include <cstring>
#include <exception>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace rnnlab {

std::string cpu_vendor() {
#if defined(__x86_64__)
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return "";
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return vendor;
#else
  return "";
#endif
}

namespace {

// An "auto" / "on" / "off" switch of a choice measured on AMD CPUs only: whether it is wanted here.
bool wanted_on_amd(const std::string& mode, const char* what) {
  TORCH_CHECK(mode == "auto" || mode == "on" || mode == "off", what, " mode must be 'auto', 'on' or 'off', not '",
              mode, "'");
  return mode == "on" || (mode == "auto" && cpu_vendor() == "AuthenticAMD");
}

}  // namespace

// ---------------------------------------------------------------------------------------------- GEMM library

// PyTorch sends float32 matrix products to MKL. On AMD EPYC machines oneDNN's GEMM, which PyTorch's own fused
// CPU RNN (mkldnn_rnn_layer) runs on, was faster at the shapes that dominate a training step (the per-step
// products at H=512 and the weight gradients); on an Intel Xeon MKL was faster at every shape measured
// (benchmarks/results/engine-notes.md, "GEMM library"). So "auto" takes oneDNN on AMD CPUs only.
// libtorch exports no oneDNN symbol except ATen's `at::native::mkldnn_matmul`, so it is looked up at run time:
// when it is missing (another PyTorch build) or refuses this CPU, every product stays with ATen.
// Below ~2^23 multiply-adds the per-call set-up of oneDNN costs more than it saves.
namespace {

constexpr int64_t kOneDnnMinWork = int64_t(1) << 23;

int gemm_mode = -1;  // -1 not decided yet, 0 ATen only, 1 oneDNN for large float32 products

}  // namespace

OneDnnMatmul onednn_matmul() {
  static const OneDnnMatmul fn = [] {
    auto f = reinterpret_cast<OneDnnMatmul>(dlsym(RTLD_DEFAULT, "_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff"));
    if (f == nullptr) return f;
    try {  // it checks the CPU's instruction set on every call; a refusal here means: never use it
      at::Tensor a = at::ones({2, 3}), b = at::ones({3, 4}), c = at::zeros({2, 4});
      f(a, b, c, 0.f, 1.f);
      if (!c.eq(3.f).all().item<bool>()) return OneDnnMatmul(nullptr);
    } catch (const std::exception&) {
      return OneDnnMatmul(nullptr);
    }
    return f;
  }();
  return fn;
}

void set_gemm(const std::string& mode) {
  TORCH_CHECK(mode == "auto" || mode == "onednn" || mode == "aten",
              "gemm mode must be 'auto', 'onednn' or 'aten', not '", mode, "'");
  const bool wanted = mode == "onednn" || (mode == "auto" && cpu_vendor() == "AuthenticAMD");
  gemm_mode = wanted && onednn_matmul() != nullptr ? 1 : 0;
}

std::string gemm_backend() {
  if (gemm_mode < 0) set_gemm("auto");
  return gemm_mode == 1 ? "onednn" : "aten";
}

bool onednn_takes(at::ScalarType dtype, int64_t work) {
  if (gemm_mode < 0) set_gemm("auto");
  return gemm_mode == 1 && dtype == at::kFloat && work >= kOneDnnMinWork;
}

// ---------------------------------------------------------------------------------------------- BLAS

// At small shapes ATen's dispatch and the tensor views around each call cost as much as the per-step product
// itself, so the loop hands raw pointers straight to the BLAS libtorch is linked with, looked up at run time
// like oneDNN above (benchmarks/results/engine-notes.md, "The per-step product").
const Blas& blas() {
  static const Blas found = [] {
    Blas b;
    b.sgemm = reinterpret_cast<FortranGemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
    b.dgemm = reinterpret_cast<FortranGemm>(dlsym(RTLD_DEFAULT, "dgemm_"));
    b.local_threads = reinterpret_cast<MklLocalThreads>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
    return b;
  }();
  return found;
}

// Below this many multiply-adds per step, one thread is faster than two: MKL's own threading of a product
// that takes a few microseconds costs more than it saves (benchmarks/results/engine-notes.md, "The per-step
// product").
constexpr int64_t kSingleThreadMaxWork = int64_t(1) << 19;

bool one_mkl_thread(int64_t work) { return work < kSingleThreadMaxWork && blas().local_threads != nullptr; }

// ---------------------------------------------------------------------------------------------- per-step path

namespace {

constexpr int64_t kBrgemmMinSteps = 8;

// The batch sizes up to which the split path is taken (0: never), and the least work per step that pays for
// its parallel region. Settable for benchmarks (`set_step_split`).
int64_t split_max_batch = 16;
constexpr int64_t kSplitMinWork = int64_t(1) << 16;
int split_backward = -1;  // -1 not decided yet (then: on AMD CPUs), 0 never, 1 always
int brgemm_mode = -1;     // -1 not decided yet (then: on AMD CPUs), 0 never, 1 where it applies

// Threads for the micro-kernel: below 2^18 multiply-adds a step, one (benchmarks/results/engine-notes.md,
// "oneDNN's micro-kernel").
constexpr int64_t kBrgemmThreadedWork = int64_t(1) << 18;

}  // namespace

void set_step_split(int64_t max_batch) {
  TORCH_CHECK(max_batch >= 0, "set_step_split: max_batch must be ≥ 0, not ", max_batch);
  split_max_batch = max_batch;
}

// Whether the backward's per-step product may take the split path (see kSplit): "auto" (on AMD CPUs), "on",
// "off". Settable for benchmarks and tests.
void set_backward_split(const std::string& mode) { split_backward = wanted_on_amd(mode, "backward split") ? 1 : 0; }

// Whether float32 per-step products may take oneDNN's micro-kernel (see kBrgemm): "auto" (on AMD CPUs), "on",
// "off". It needs AVX2 (below it ATen's brgemm falls back to a plain GEMM per panel) and oneDNN enabled
// (torch.backends.mkldnn.enabled, which ATen's brgemm checks too). A PyTorch built without oneDNN's micro-kernel
// API takes the same fallback, which gives the same numbers more slowly; the PyTorch 2.13 CPU wheel has it.
void set_brgemm(const std::string& mode) {
  const bool wanted = wanted_on_amd(mode, "brgemm");
#if defined(__x86_64__)
  const bool able = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  const bool able = false;
#endif
  brgemm_mode = wanted && able ? 1 : 0;
}

StepPath choose_step_path(at::ScalarType dtype, int64_t batch, int64_t work, bool forward, int64_t steps) {
  if (split_backward < 0) set_backward_split("auto");
  if (brgemm_mode < 0) set_brgemm("auto");
  if (brgemm_mode == 1 && dtype == at::kFloat && steps >= kBrgemmMinSteps && at::globalContext().userEnabledMkldnn()) {
    return StepPath::kBrgemm;
  }
  if (onednn_takes(dtype, work)) return StepPath::kOneDnn;
  const Blas& b = blas();
  if (!((dtype == at::kFloat && b.sgemm) || (dtype == at::kDouble && b.dgemm))) return StepPath::kAten;
  if (batch <= split_max_batch && work >= kSplitMinWork && b.local_threads != nullptr && at::get_num_threads() > 1 &&
      (forward || split_backward == 1)) {
    return StepPath::kSplit;
  }
  return StepPath::kBlas;
}

int brgemm_threads(int64_t work) { return work >= kBrgemmThreadedWork ? int(at::get_num_threads()) : 1; }

std::string step_path(at::ScalarType dtype, int64_t batch, int64_t hidden, int64_t gates, bool forward,
                      int64_t steps) {
  const int64_t work = batch * hidden * gates * hidden;
  const StepPath path = choose_step_path(dtype, batch, work, forward, steps);
  const char* names[] = {"onednn", "blas", "aten", "split", "brgemm"};
  const bool single = (path == StepPath::kBlas && one_mkl_thread(work)) ||
                      (path == StepPath::kBrgemm && brgemm_threads(work) == 1);
  return std::string(names[int(path)]) + (single ? "/1 thread" : "");
}

}  // namespace rnnlab
