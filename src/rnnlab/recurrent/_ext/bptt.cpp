// The BPTT engine's time loops in C++: per step one GEMM (ATen, so MKL/oneDNN) and one fused, vectorised
// pointwise pass, instead of ~10-20 separate tensor operations dispatched from Python.
//
// The math is exactly that of rnnlab/cells.py (the slow reference kept beside this fast path, and tested
// against it): same gate layout as torch.nn, same saved tensors.
//
// Layout (all contiguous): x_pre (T, B, G*H), hs (T+1, B, H), cs (T+1, B, H), acts (T, B, G*H),
// aux (T, B, H): LSTM tanh(c_t), GRU the recurrent part of n before the reset gate (h W_hn^T + b_hn).
// Cell kinds: 0 rnn_tanh, 1 rnn_relu, 2 rnn_linear, 3 lstm, 4 gru.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/cpu/vec/vec.h>

#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include <list>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>
#if defined(__x86_64__)
#include <cpuid.h>
#include <xmmintrin.h>
#endif

namespace {

using at::vec::Vectorized;

// σ(x) = 1 / (1 + e^(−x)). For float, ATen's exp_u20 (an inline polynomial, ≤ 20 ulp ≈ 2e-6 relative) is
// several times cheaper than the 1-ulp Sleef call and well inside float32 training noise; for double it is
// the exact exp, so float64 parity with autograd is unaffected.
template <typename T>
inline Vectorized<T> vsigmoid(const Vectorized<T>& x) {
  const Vectorized<T> one(T(1));
  return one / (one + x.neg().exp_u20());
}

// tanh. For double, Sleef's 1-ulp tanh (float64 parity with autograd stays exact). For float, Sleef's tanh
// took as long as the rest of the LSTM step's pointwise work together; this one costs about what vsigmoid
// costs: near zero an odd Taylor polynomial (|x| < 1/8: truncation error < 1e-11 relative, so tiny values keep
// their relative accuracy), beyond it 1 − 2/(e^{2|x|} + 1) with exp_u20 and the sign copied back.
// Measured over [−12, 12]: ≤ 1.0e-6 relative, ≤ 1.4e-7 absolute error (tests/test_native.py).
template <typename T>
inline Vectorized<T> vtanh(const Vectorized<T>& x) {
  return x.tanh();
}

template <>
inline Vectorized<float> vtanh(const Vectorized<float>& x) {
  using V = Vectorized<float>;
  const V one(1.f), two(2.f), zero(0.f);
  const V a = x.abs();
  V far = one - two / ((a + a).exp_u20() + one);
  far = V::blendv(far, far.neg(), x < zero);
  const V x2 = x * x;
  V p(62.f / 2835.f);  // tanh x = x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835 − …
  p = at::vec::fmadd(p, x2, V(-17.f / 315.f));
  p = at::vec::fmadd(p, x2, V(2.f / 15.f));
  p = at::vec::fmadd(p, x2, V(-1.f / 3.f));
  const V near = at::vec::fmadd(p * x2, x, x);
  return V::blendv(far, near, a < V(0.125f));
}

template <typename T>
inline T ssigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// body(p, count) on `threads` OpenMP threads, thread p of count. The caller's flush-to-zero /
// denormals-are-zero bits (rnnlab sets them around the engine) are carried into the workers, which have their
// own MXCSR. A bare OpenMP region: through at::parallel_for the split product below ran ~70× slower (perf: both
// threads spinning in libgomp at B=1, H=512; the cause was not found), where a bare region takes 45 µs a step.
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
// the whole step takes a few microseconds, and every fixed cost shows). 4096 elements: measured against 8192
// and 16384 (the old grain) at 7 shapes per cell, it was never slower and up to 20 % faster per step (B=64,
// H=64).
int64_t pointwise_grain = 4096;

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

void set_pointwise_grain(int64_t elements) {
  TORCH_CHECK(elements >= 1, "set_pointwise_grain: elements must be ≥ 1, not ", elements);
  pointwise_grain = elements;
}

// Squared L2 norm of one row, accumulated in double: squaring a float32 gradient of 1e-20 would underflow.
// Eight independent partial sums: a single running sum is a chain of dependent additions, and made recording
// cost ~3 % of an LSTM step at H=512 on its own.
template <typename T>
inline double row_sq(const T* row, int64_t H) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= H; j += 8) {
    for (int k = 0; k < 8; ++k) part[k] += double(row[j + k]) * double(row[j + k]);
  }
  for (; j < H; ++j) part[0] += double(row[j]) * double(row[j]);
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

// A row buffer of this thread, reused from step to step: the recording backward passes each row's ∂L/∂h_t
// through it (instead of a heap allocation per step and thread).
template <typename T>
T* row_buffer(int64_t n) {
  thread_local std::vector<T> buffer;
  if (int64_t(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

// Recording targets of one step: per-sample norms (double) and, optionally, the vectors themselves.
template <typename T>
struct Seen {
  double* norm_h = nullptr;  // (B,) ‖∂L/∂h_t‖₂, or null when not recording
  double* norm_c = nullptr;  // (B,) ∂L/∂c_t (LSTM)
  T* vec_h = nullptr;      // (B, H) when vectors are kept
};

// ---------------------------------------------------------------------------------------------- scratch

// The engine's large temporaries (pre-activations, states, their gradients: tens of MB per layer) are reused
// across training steps. Freshly allocated, a buffer over glibc's mmap threshold (≤ 32 MB) comes back as new
// pages from the kernel on every step, and faulting them in costs more than writing them (measured: 52 MB
// fresh + fill 18.8 ms, reused 1.9 ms; ~48k page faults per LSTM step at the fastrnns shape).
// A buffer is handed out again only when the pool holds its storage's last reference, so a tensor still in
// use (kept by autograd, by the caller) is never overwritten. Never used for tensors returned to the caller.
class ScratchPool {
 public:
  at::Tensor get(at::IntArrayRef sizes, const at::TensorOptions& options) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    const int64_t bytes = numel * int64_t(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
    if (bytes < kMinBytes || options.device().type() != c10::DeviceType::CPU) return at::empty(sizes, options);
    // Always a normal tensor, even when first asked for inside torch.inference_mode: an inference tensor can
    // never be written again outside it, and the next training step would fail on the reused buffer.
    c10::InferenceMode not_inference(false);
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = buffers_.begin(); it != buffers_.end(); ++it) {
      if (it->numel() == numel && it->dtype() == options.dtype() && it->storage().use_count() == 1) {
        at::Tensor hit = *it;
        buffers_.splice(buffers_.begin(), buffers_, it);  // most recently used first
        return hit.view(sizes);
      }
    }
    at::Tensor fresh = at::empty({numel}, options);
    buffers_.push_front(fresh);
    held_ += bytes;
    // Over the cap: drop the least recently used buffers nobody else holds.
    for (auto it = std::prev(buffers_.end()); held_ > kMaxBytes && it != buffers_.begin();) {
      auto here = it--;
      if (here->storage().use_count() == 1) {
        held_ -= here->numel() * int64_t(here->element_size());
        buffers_.erase(here);
      }
    }
    return fresh.view(sizes);
  }

  int64_t release() {
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t before = held_;
    for (auto it = buffers_.begin(); it != buffers_.end();) {
      if (it->storage().use_count() == 1) {
        held_ -= it->numel() * int64_t(it->element_size());
        it = buffers_.erase(it);
      } else {
        ++it;
      }
    }
    return before - held_;
  }

  int64_t held() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_;
  }

 private:
  static constexpr int64_t kMinBytes = int64_t(1) << 20;  // smaller ones come cheaply from malloc's heap
  static constexpr int64_t kMaxBytes = int64_t(1) << 31;  // at most 2 GiB kept between steps
  std::mutex mutex_;
  std::list<at::Tensor> buffers_;
  int64_t held_ = 0;
};

ScratchPool& scratch() {
  static ScratchPool pool;
  return pool;
}

int64_t release_scratch() { return scratch().release(); }

// Whether this thread flushes denormals (flush-to-zero or denormals-are-zero set in MXCSR, as
// torch.set_flush_denormal(True) sets both): 1 or 0, or -1 where that cannot be read (not x86). Reading the
// register costs nanoseconds; the tensor probe it replaces cost ~10 µs twice per training step.
int64_t denormals_flushed() {
#if defined(__x86_64__)
  return (_mm_getcsr() & 0x8040) != 0 ? 1 : 0;
#else
  return -1;
#endif
}
// Flush-to-zero and denormals-are-zero on (or off) in every thread of the OpenMP pool, the caller included.
// torch.set_flush_denormal sets the calling thread's MXCSR only, but the large GEMMs of a training step (MKL's and
// oneDNN's) run on the pool's threads, which keep their own: there a vanishing gradient's denormals cost full
// price. Measured on an Intel Xeon, the weight-gradient product (139×16640)·(16640×512) took 8.4 ms on normal
// numbers and 1418 ms on denormal ones with only the caller flushing. A pool thread keeps its MXCSR between
// parallel regions, so one region sets it for all the products that follow.
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

// How many threads of the OpenMP pool (the caller included) flush denormals, and of how many; for tests.
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

at::Tensor scratch_like(at::IntArrayRef sizes, const at::Tensor& like) { return scratch().get(sizes, like.options()); }
int64_t scratch_bytes() { return scratch().held(); }

// ---------------------------------------------------------------------------------------------- GEMM

// PyTorch sends float32 matrix products to MKL. On AMD EPYC machines oneDNN's GEMM, which PyTorch's own fused
// CPU RNN (mkldnn_rnn_layer) runs on, was 15–40 % faster at the shapes that dominate a training step: the
// per-step products at H=512 and the weight gradients (benchmarks/bench_engine.py, --gemm). On an Intel Xeon
// it is the other way round: MKL was faster at every shape measured, by 3–23 % (per-step products at H=512
// and H=1024, input projections, weight gradients up to 2^35 multiply-adds). So "auto" takes oneDNN on AMD
// CPUs only; the choice depends on the machine alone, never on a timing, so runs stay reproducible.
// libtorch exports no oneDNN symbol except ATen's `at::native::mkldnn_matmul`, so it is looked up at run time:
// when it is missing (another PyTorch build) or refuses this CPU, every product stays with ATen.
// Below ~2^23 multiply-adds the per-call set-up of oneDNN costs more than it saves (measured: 64×128×512).
using OneDnnMatmul = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float, float);
constexpr int64_t kOneDnnMinWork = int64_t(1) << 23;

int gemm_mode = -1;  // -1 not decided yet, 0 ATen only, 1 oneDNN for large float32 products

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

// The CPU's vendor string from CPUID leaf 0 ("AuthenticAMD", "GenuineIntel", …), "" where unknown (not x86).
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

// "auto" (default): oneDNN on AMD CPUs, where it exists (see above); "onednn": wherever it exists; "aten":
// never (for comparisons and tests).
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

// out = a · b (+ out when accumulate). a (M, K), b (K, N): contiguous or transposed views; out (M, N) contiguous.
void gemm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate) {
  if (gemm_mode < 0) set_gemm("auto");
  const int64_t work = a.size(0) * a.size(1) * b.size(1);
  if (gemm_mode == 1 && a.scalar_type() == at::kFloat && work >= kOneDnnMinWork) {
    onednn_matmul()(a, b, out, accumulate ? 1.f : 0.f, 1.f);
  } else if (accumulate) {
    out.addmm_(a, b);
  } else {
    at::mm_out(const_cast<at::Tensor&>(out), a, b);
  }
}

// For the engine's whole-sequence products in Python: a · b. into_scratch: the result is an engine temporary
// (the input projection) and may live in a reused buffer.
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, bool into_scratch) {
  at::NoGradGuard no_grad;
  const std::vector<int64_t> sizes{a.size(0), b.size(1)};
  at::Tensor out = into_scratch ? scratch().get(sizes, a.options()) : at::empty(sizes, a.options());
  gemm(a, b, out, false);
  return out;
}

// ---------------------------------------------------------------------------------------------- per-step product

// The one product of every time step: forward h_{t-1} · W_hhᵀ (B, H)·(H, G·H), backward d_pre · W_hh
// (B, G·H)·(G·H, H). At small shapes (batch 1, H = 64: ~1 µs of arithmetic) ATen's dispatch and the tensor
// views around each call cost as much as the product, so the loop hands raw pointers straight to the BLAS
// libtorch is linked with (MKL's Fortran interface, looked up at run time like oneDNN above; absent in other
// PyTorch builds, which then keep ATen). Large float32 products still go to oneDNN (`gemm` above).
// Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ, hence the swapped operands in the calls below.
using FortranGemm = void (*)(const char*, const char*, const int*, const int*, const int*, const void*, const void*,
                             const int*, const void*, const int*, const void*, void*, const int*);
using MklLocalThreads = int (*)(int);

struct Blas {
  FortranGemm sgemm = nullptr, dgemm = nullptr;
  MklLocalThreads local_threads = nullptr;  // MKL's per-thread thread count; returns the previous setting
};

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
// that takes a few microseconds costs more than it saves (measured on 2 cores: B=20, H=40 LSTM 6.0 → 3.0 µs;
// B=64, H=32 RNN·4 gates 9.4 → 5.4 µs; from ~2^19 on, (20, 100, 400) and (256, 32, 128), two threads win).
constexpr int64_t kSingleThreadMaxWork = int64_t(1) << 19;

bool one_mkl_thread(int64_t work) { return work < kSingleThreadMaxWork && blas().local_threads != nullptr; }

// Which implementation runs the per-step product; chosen once per loop from the shapes (tested at the
// thresholds through `step_path`).
//   kOneDnn  large float32 products (oneDNN, its own threads)
//   kSplit   small batches: the output columns split once and for all over the intra-op threads, each slice
//            one single-threaded BLAS call. At batch 1 the product is a matrix-vector product that MKL runs on
//            one thread whatever it is told, and W_hh (1 MB at H = 256 for an LSTM) no longer fits one core's
//            L2 cache; split the same way at every step, each core keeps its half of W_hh in its own cache.
//            The backward's split reads a transposed copy of W_hh made once per loop. Measured on an AMD EPYC
//            it won in both directions; on an Intel Xeon (2 MB of L2 per core) only in the forward: there the
//            backward's split was up to 2× slower than one BLAS call on MKL's threads (B=1, H=512, T=35: 74
//            against 38 µs a step, the 4 MB transposed copy costing ~1 ms per loop; B=16, H=128, T=200: 22
//            against 14 µs). So the backward splits on AMD CPUs only (`split_backward`).
//   kBlas    everything else: one BLAS call (MKL's threads, or one thread below kSingleThreadMaxWork)
//   kAten    no BLAS symbols found (another PyTorch build)
//   kBrgemm  float32 on AMD CPUs, every shape, for loops of kBrgemmMinSteps steps or more: oneDNN's batch-reduce
//            GEMM micro-kernel (ATen's at::native::cpublas::brgemm, JIT-compiled once per shape and thread), on a
//            copy of W_hh reordered once per loop into panels of kPanel output columns, each panel's (K, kPanel)
//            block contiguous, the panels split over the threads as in kSplit (the batch rows where there are
//            fewer than two panels per thread). A GEMM call re-packs the whole
//            weight into its own panels at every step, and at these small batches that packing is most of
//            the work: on an AMD EPYC (Zen 4, 2 cores) it ran the per-step product at ~230 GFLOP/s where MKL
//            and oneDNN's GEMM ran 90–160 (B=16, H=512 LSTM forward: 150 µs against 365 µs for oneDNN's GEMM
//            and 373 µs for MKL's; B=1, H=512: 27 against 69 µs for MKL's; B=256, H=128: 146 against 177 µs for
//            MKL's; the smallest steps tie). This is
//            what torch.nn's fused oneDNN LSTM does, and why it beat the engine at T=35, B=16, H=512 (1.17×).
//            Not measured on an Intel CPU, so "auto" keeps the other paths there (`set_brgemm("on")` to try).
//            The reordering costs about one product's worth of memory traffic, hence the minimum loop length
//            (a module stepped one step at a time, as in generation, keeps the other paths).
enum class StepPath { kOneDnn = 0, kBlas = 1, kAten = 2, kSplit = 3, kBrgemm = 4 };
constexpr int64_t kPanel = 32;  // measured against 64 and 128: equal up to H=512, 4–15 % faster at H=1024
constexpr int64_t kBrgemmMinSteps = 8;

// The batch sizes up to which the split path is taken (0: never), and the least work per step that pays for
// its parallel region. Settable for benchmarks (`set_step_split`).
int64_t split_max_batch = 16;
constexpr int64_t kSplitMinWork = int64_t(1) << 16;
int split_backward = -1;  // -1 not decided yet (then: on AMD CPUs), 0 never, 1 always
int brgemm_mode = -1;     // -1 not decided yet (then: on AMD CPUs), 0 never, 1 where it applies

void set_step_split(int64_t max_batch) {
  TORCH_CHECK(max_batch >= 0, "set_step_split: max_batch must be ≥ 0, not ", max_batch);
  split_max_batch = max_batch;
}

// An "auto" / "on" / "off" switch of a choice measured on AMD CPUs only: whether it is wanted here.
bool wanted_on_amd(const std::string& mode, const char* what) {
  TORCH_CHECK(mode == "auto" || mode == "on" || mode == "off", what, " mode must be 'auto', 'on' or 'off', not '",
              mode, "'");
  return mode == "on" || (mode == "auto" && cpu_vendor() == "AuthenticAMD");
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
  if (gemm_mode < 0) set_gemm("auto");
  if (split_backward < 0) set_backward_split("auto");
  if (brgemm_mode < 0) set_brgemm("auto");
  if (brgemm_mode == 1 && dtype == at::kFloat && steps >= kBrgemmMinSteps && at::globalContext().userEnabledMkldnn()) {
    return StepPath::kBrgemm;
  }
  if (gemm_mode == 1 && dtype == at::kFloat && work >= kOneDnnMinWork) return StepPath::kOneDnn;
  const Blas& b = blas();
  if (!((dtype == at::kFloat && b.sgemm) || (dtype == at::kDouble && b.dgemm))) return StepPath::kAten;
  if (batch <= split_max_batch && work >= kSplitMinWork && b.local_threads != nullptr && at::get_num_threads() > 1 &&
      (forward || split_backward == 1)) {
    return StepPath::kSplit;
  }
  return StepPath::kBlas;
}

// Threads for the micro-kernel: below 2^18 multiply-adds a step, one (measured: B=20, H=40 LSTM, 2^17, 4.9 ms
// forward on one thread against 6.3 ms on two; B=1, H=256 LSTM, 2^18, 14 against 7 µs a step).
constexpr int64_t kBrgemmThreadedWork = int64_t(1) << 18;
int brgemm_threads(int64_t work) { return work >= kBrgemmThreadedWork ? int(at::get_num_threads()) : 1; }

// For tests and benchmarks: the path and thread count the loop of `steps` steps would use for a (batch, hidden,
// gates) layer's forward (or backward) per-step product.
std::string step_path(at::ScalarType dtype, int64_t batch, int64_t hidden, int64_t gates, bool forward,
                      int64_t steps) {
  const int64_t work = batch * hidden * gates * hidden;
  const StepPath path = choose_step_path(dtype, batch, work, forward, steps);
  const char* names[] = {"onednn", "blas", "aten", "split", "brgemm"};
  const bool single = (path == StepPath::kBlas && one_mkl_thread(work)) ||
                      (path == StepPath::kBrgemm && brgemm_threads(work) == 1);
  return std::string(names[int(path)]) + (single ? "/1 thread" : "");
}

// One layer's per-step product, set up once per loop: out (B, N) (+)= in (B, K) · op(W), with W (G·H, H)
// row-major and op(W) = Wᵀ (forward: K = H, N = G·H) or W (backward: K = G·H, N = H).
template <typename T>
class StepProduct {
 public:
  StepProduct(const at::Tensor& w_hh, int64_t batch, bool forward, int64_t steps)
      : w_(w_hh.contiguous()), forward_(forward), batch_(batch) {
    const int64_t rows = w_.size(0), cols = w_.size(1);  // G·H, H
    k_ = forward ? cols : rows;
    n_ = forward ? rows : cols;
    path_ = choose_step_path(w_.scalar_type(), batch, batch * k_ * n_, forward, steps);
    if (path_ == StepPath::kBrgemm) {
      panels_ = (n_ + kPanel - 1) / kPanel;
      threads_ = brgemm_threads(batch * k_ * n_);
      w_ = to_panels(w_, forward);
    }
    if (path_ == StepPath::kSplit && !forward) {
      // d_pre · W = d_pre · (Wᵀ)ᵀ: with Wᵀ (H, G·H) copied once per loop, each thread's slice of dh is a block of
      // contiguous rows, as in the forward, instead of a strided half of every row of W (measured at B=1,
      // H=256: 15.6 → 12.7 µs a step).
      w_ = w_.t().contiguous();
      forward_ = true;
    }
  }

  void operator()(const T* in, T* out, bool accumulate) const {
    if (path_ == StepPath::kBrgemm) {
      if constexpr (std::is_same_v<T, float>) {  // chosen for float32 only
        // Panels p0…p1 of rows r0…r1: out[r, n0:n0+width] (+)= in[r] (K) · panel p (K, width of kPanel).
        auto panels = [&](int64_t p0, int64_t p1, int64_t r0, int64_t r1) {
          if (r1 <= r0) return;
          const float* w = w_.const_data_ptr<float>();
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t n0 = p * kPanel, width = std::min(kPanel, n_ - n0);
            at::native::cpublas::brgemm(r1 - r0, width, k_, k_, kPanel, n_, accumulate, in + r0 * k_,
                                        w + p * k_ * kPanel, out + r0 * n_ + n0, false);
          }
        };
        if (threads_ <= 1) {
          panels(0, panels_, 0, batch_);
        } else if (panels_ >= 2 * threads_) {  // each thread its own panels: its part of W stays in its cache
          on_threads(threads_, [&](int64_t p, int64_t count) {
            panels(panels_ * p / count, panels_ * (p + 1) / count, 0, batch_);
          });
        } else {  // too few panels to share out (H = 32 backward: one): each thread its own rows instead
          on_threads(threads_, [&](int64_t p, int64_t count) {
            panels(0, panels_, batch_ * p / count, batch_ * (p + 1) / count);
          });
        }
      }
    } else if (path_ == StepPath::kBlas) {
      blas_columns(in, out, accumulate, 0, n_);
    } else if (path_ == StepPath::kSplit) {
      // One slice per thread, the same slice at every step.
      on_threads(int(at::get_num_threads()), [&](int64_t p, int64_t count) {
        // Slice bounds on 16-element (64-byte) boundaries, so no cache line is written by two cores.
        const int64_t n0 = p == 0 ? 0 : n_ * p / count / 16 * 16;
        const int64_t n1 = p + 1 == count ? n_ : n_ * (p + 1) / count / 16 * 16;
        if (n1 > n0) blas_columns(in, out, accumulate, n0, n1);
      });
    } else {
      const auto options = w_.options();
      at::Tensor a = at::from_blob(const_cast<T*>(in), {batch_, k_}, options);
      at::Tensor c = at::from_blob(out, {batch_, n_}, options);
      gemm(a, forward_ ? w_.t() : w_, c, accumulate);
    }
  }

 private:
  // Columns n0..n1 of the output by one BLAS call. Column-major: outᵀ (N, B) = op'(W) (N, K) · inᵀ (K, B), W
  // read as its column-major transpose (H, G·H); a column slice of the output is a slice of W's rows (forward)
  // or columns (backward), at the same leading dimensions.
  void blas_columns(const T* in, T* out, bool accumulate, int64_t n0, int64_t n1) const {
    const int m = int(batch_), n = int(n1 - n0), k = int(k_), ldw = int(w_.size(1)), ldc = int(n_);
    const T alpha(1), beta(accumulate ? 1 : 0);
    const FortranGemm g = std::is_same_v<T, float> ? blas().sgemm : blas().dgemm;
    const T* w = w_.const_data_ptr<T>() + (forward_ ? n0 * ldw : n0);
    g(forward_ ? "T" : "N", "N", &n, &m, &k, &alpha, w, &ldw, in, &k, &beta, out + n0, &ldc);
  }

  // op(W) (K, N) — W_hhᵀ forward, W_hh backward — as panels (P, K, kPanel): panel p holds columns p·kPanel…,
  // zero-padded past N. One pass, each thread writing its own panels, in a reused buffer: through ATen
  // (zeros, a transposed copy, permute().contiguous()) it took ~5 ms per loop at H=512, as much as 30 steps.
  at::Tensor to_panels(const at::Tensor& w, bool forward) const {
    at::Tensor out = scratch().get({panels_, k_, kPanel}, w.options());
    const T* src = w.const_data_ptr<T>();  // (G·H, H) row-major
    T* dst = out.data_ptr<T>();
    const int64_t k = k_, n = n_, panels = panels_;
    on_threads(threads_, [&](int64_t p, int64_t count) {
      for (int64_t q = panels * p / count; q < panels * (p + 1) / count; ++q) {
        T* panel = dst + q * k * kPanel;
        const int64_t n0 = q * kPanel, width = std::min(kPanel, n - n0);
        if (width < kPanel) std::fill(panel, panel + k * kPanel, T(0));
        if (forward) {  // op(W)[k][n] = W[n][k]: row n of W becomes column n - n0 of the panel
          for (int64_t j = 0; j < width; ++j) {
            const T* row = src + (n0 + j) * k;
            for (int64_t i = 0; i < k; ++i) panel[i * kPanel + j] = row[i];
          }
        } else {  // op(W)[k][n] = W[k][n]: a contiguous run of `width` values per row of W
          for (int64_t i = 0; i < k; ++i) std::copy(src + i * n + n0, src + i * n + n0 + width, panel + i * kPanel);
        }
      }
    });
    return out;
  }

  at::Tensor w_;  // W_hh; on the split backward its transpose; on kBrgemm the reordered panels
  bool forward_;
  int64_t batch_, k_ = 0, n_ = 0;
  int64_t panels_ = 0;  // kBrgemm: the number of kPanel-column panels
  int threads_ = 1;     // kBrgemm: threads the panels are split over
  StepPath path_ = StepPath::kAten;
};

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

// ---------------------------------------------------------------------------------------------- pointwise

// LSTM forward: pre (B, 4H) without bias, bias (4H) → activated gates in place, c_new, tanh(c_new), h_new.
template <typename T>
void lstm_pointwise(T* pre, const T* bias, const T* c_prev, T* c_new, T* tanh_c, T* h_new, int64_t b0, int64_t b1,
                    int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  for (int64_t b = b0; b < b1; ++b) {
    T* g = pre + b * 4 * H;
    const T* cp = c_prev + b * H;
    T* cn = c_new + b * H;
    T* tc = tanh_c + b * H;
    T* hn = h_new + b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V i = vsigmoid(V::loadu(g + j) + V::loadu(bias + j));
      V f = vsigmoid(V::loadu(g + H + j) + V::loadu(bias + H + j));
      V gg = vtanh(V::loadu(g + 2 * H + j) + V::loadu(bias + 2 * H + j));
      V o = vsigmoid(V::loadu(g + 3 * H + j) + V::loadu(bias + 3 * H + j));
      V c = f * V::loadu(cp + j) + i * gg;
      V t = vtanh(c);
      i.store(g + j);
      f.store(g + H + j);
      gg.store(g + 2 * H + j);
      o.store(g + 3 * H + j);
      c.store(cn + j);
      t.store(tc + j);
      (o * t).store(hn + j);
    }
    for (; j < H; ++j) {
      T i = ssigmoid(g[j] + bias[j]), f = ssigmoid(g[H + j] + bias[H + j]);
      T gg = std::tanh(g[2 * H + j] + bias[2 * H + j]), o = ssigmoid(g[3 * H + j] + bias[3 * H + j]);
      T c = f * cp[j] + i * gg;
      T t = std::tanh(c);
      g[j] = i; g[H + j] = f; g[2 * H + j] = gg; g[3 * H + j] = o;
      cn[j] = c; tc[j] = t; hn[j] = o * t;
    }
  }
}

// LSTM backward at one step. dh: ∂L/∂h_t from step t+1 (B, H), d_out added here; dc: ∂L/∂c_t from t+1,
// replaced by ∂L/∂c_{t-1}. Writes d_pre (B, 4H) and, when recording, the totals seen at this step.
template <typename T>
void lstm_backward_pointwise(const T* acts, const T* tanh_c, const T* c_prev, T* dh, const T* d_out, T* dc,
                             T* d_pre, const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V one(T(1));
  T* seen_row_h = seen.norm_h ? row_buffer<T>(2 * H) : nullptr;
  T* seen_row_c = seen.norm_h ? seen_row_h + H : nullptr;
  for (int64_t b = b0; b < b1; ++b) {
    const T* a = acts + b * 4 * H;
    const T* tc = tanh_c + b * H;
    const T* cp = c_prev + b * H;
    T* dhb = dh + b * H;
    const T* dob = d_out + b * H;
    T* dcb = dc + b * H;
    T* dp = d_pre + b * 4 * H;
    // When recording, the totals ∂L/∂h_t and ∂L/∂c_t of this row pass through these (small) row buffers.
    T* rh = seen.vec_h ? seen.vec_h + b * H : seen_row_h;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V i = V::loadu(a + j), f = V::loadu(a + H + j), g = V::loadu(a + 2 * H + j), o = V::loadu(a + 3 * H + j);
      V t = V::loadu(tc + j);
      V h = V::loadu(dhb + j) + V::loadu(dob + j);
      V c = V::loadu(dcb + j) + h * o * (one - t * t);
      (c * g * i * (one - i)).store(dp + j);
      (c * V::loadu(cp + j) * f * (one - f)).store(dp + H + j);
      (c * i * (one - g * g)).store(dp + 2 * H + j);
      (h * t * o * (one - o)).store(dp + 3 * H + j);
      if (seen.norm_h) {
        h.store(rh + j);
        c.store(seen_row_c + j);
      }
      (c * f).store(dcb + j);
    }
    for (; j < H; ++j) {
      T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], t = tc[j];
      T h = dhb[j] + dob[j];
      T c = dcb[j] + h * o * (T(1) - t * t);
      dp[j] = c * g * i * (T(1) - i);
      dp[H + j] = c * cp[j] * f * (T(1) - f);
      dp[2 * H + j] = c * i * (T(1) - g * g);
      dp[3 * H + j] = h * t * o * (T(1) - o);
      if (seen.norm_h) {
        rh[j] = h;
        seen_row_c[j] = c;
      }
      dcb[j] = c * f;
    }
    if (seen.norm_h) {
      seen.norm_h[b] = std::sqrt(row_sq(rh, H));
      seen.norm_c[b] = std::sqrt(row_sq(seen_row_c, H));
    }
  }
}

// GRU forward: x_pre = x W_ih^T (B, 3H) and its bias bx (3H), h_pre = h W_hh^T (B, 3H) and its bias bh (3H)
// → acts (r, z, n), aux = the recurrent part of n before the reset gate (h W_hn^T + b_hn), h_new.
template <typename T>
void gru_pointwise(const T* x_pre, const T* bx, const T* h_pre, const T* bh, const T* h, T* acts, T* aux, T* h_new,
                   int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  for (int64_t b = b0; b < b1; ++b) {
    const T* xp = x_pre + b * 3 * H;
    const T* hp = h_pre + b * 3 * H;
    const T* hb = h + b * H;
    T* a = acts + b * 3 * H;
    T* ax = aux + b * H;
    T* hn = h_new + b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V r = vsigmoid((V::loadu(xp + j) + V::loadu(bx + j)) + (V::loadu(hp + j) + V::loadu(bh + j)));
      V z = vsigmoid((V::loadu(xp + H + j) + V::loadu(bx + H + j)) + (V::loadu(hp + H + j) + V::loadu(bh + H + j)));
      V hpn = V::loadu(hp + 2 * H + j) + V::loadu(bh + 2 * H + j);
      V nn = vtanh((V::loadu(xp + 2 * H + j) + V::loadu(bx + 2 * H + j)) + r * hpn);
      r.store(a + j);
      z.store(a + H + j);
      nn.store(a + 2 * H + j);
      hpn.store(ax + j);
      (nn + z * (V::loadu(hb + j) - nn)).store(hn + j);
    }
    for (; j < H; ++j) {
      T r = ssigmoid((xp[j] + bx[j]) + (hp[j] + bh[j]));
      T z = ssigmoid((xp[H + j] + bx[H + j]) + (hp[H + j] + bh[H + j]));
      T hpn = hp[2 * H + j] + bh[2 * H + j];
      T nn = std::tanh((xp[2 * H + j] + bx[2 * H + j]) + r * hpn);
      a[j] = r; a[H + j] = z; a[2 * H + j] = nn; ax[j] = hpn;
      hn[j] = nn + z * (hb[j] - nn);
    }
  }
}

// GRU backward at one step: dh (B, H) is the recurrent part of ∂L/∂h_t; d_out added here. Writes d_x_pre,
// d_h_pre (B, 3H) and replaces dh, element by element, with ∂L/∂h_t · z: the part of ∂L/∂h_{t-1} that
// bypasses W_hh (the caller then adds d_h_pre W_hh in place).
template <typename T>
void gru_backward_pointwise(const T* acts, const T* aux, const T* h_prev, T* dh, const T* d_out, T* d_x_pre,
                            T* d_h_pre, const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V one(T(1));
  T* row = seen.norm_h && !seen.vec_h ? row_buffer<T>(H) : nullptr;
  for (int64_t b = b0; b < b1; ++b) {
    const T* a = acts + b * 3 * H;
    const T* ax = aux + b * H;
    const T* hp = h_prev + b * H;
    T* dhb = dh + b * H;
    const T* dob = d_out + b * H;
    T* dx = d_x_pre + b * 3 * H;
    T* dhh = d_h_pre + b * 3 * H;
    T* dd = dhb;
    T* rh = seen.vec_h ? seen.vec_h + b * H : row;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V r = V::loadu(a + j), z = V::loadu(a + H + j), nn = V::loadu(a + 2 * H + j);
      V h = V::loadu(dhb + j) + V::loadu(dob + j);
      V dn = h * (one - z) * (one - nn * nn);
      V dr = dn * V::loadu(ax + j) * r * (one - r);
      V dz = h * (V::loadu(hp + j) - nn) * z * (one - z);
      dr.store(dx + j); dz.store(dx + H + j); dn.store(dx + 2 * H + j);
      dr.store(dhh + j); dz.store(dhh + H + j); (dn * r).store(dhh + 2 * H + j);
      (h * z).store(dd + j);
      if (seen.norm_h) h.store(rh + j);
    }
    for (; j < H; ++j) {
      T r = a[j], z = a[H + j], nn = a[2 * H + j];
      T h = dhb[j] + dob[j];
      T dn = h * (T(1) - z) * (T(1) - nn * nn);
      T dr = dn * ax[j] * r * (T(1) - r);
      T dz = h * (hp[j] - nn) * z * (T(1) - z);
      dx[j] = dr; dx[H + j] = dz; dx[2 * H + j] = dn;
      dhh[j] = dr; dhh[H + j] = dz; dhh[2 * H + j] = dn * r;
      dd[j] = h * z;
      if (seen.norm_h) rh[j] = h;
    }
    if (seen.norm_h) seen.norm_h[b] = std::sqrt(row_sq(rh, H));
  }
}

// Vanilla RNN: h = activation(pre + bias) for rows b0..b1 of (B, H), and its backward.
template <typename T>
void vanilla_pointwise(int64_t kind, const T* pre, const T* bias, T* h, int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V zero(T(0));
  for (int64_t b = b0; b < b1; ++b) {
    const T* p = pre + b * H;
    T* o = h + b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      const V x = V::loadu(p + j) + V::loadu(bias + j);
      (kind == 0 ? vtanh(x) : (kind == 1 ? at::vec::maximum(x, zero) : x)).store(o + j);
    }
    for (; j < H; ++j) {
      const T x = p[j] + bias[j];
      o[j] = kind == 0 ? std::tanh(x) : (kind == 1 ? (x > T(0) ? x : T(0)) : x);
    }
  }
}

template <typename T>
void vanilla_backward_pointwise(int64_t kind, const T* h_new, const T* dh, const T* d_out, T* d_pre,
                                const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V one(T(1)), zero(T(0));
  T* row = seen.norm_h && !seen.vec_h ? row_buffer<T>(H) : nullptr;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * H;
    T* rh = seen.vec_h ? seen.vec_h + o : row;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V h = V::loadu(dh + o + j) + V::loadu(d_out + o + j);
      if (seen.norm_h) h.store(rh + j);
      V y = V::loadu(h_new + o + j);
      if (kind == 0) h = h * (one - y * y);
      else if (kind == 1) h = V::blendv(zero, h, y > zero);
      h.store(d_pre + o + j);
    }
    for (; j < H; ++j) {
      T h = dh[o + j] + d_out[o + j];
      if (seen.norm_h) rh[j] = h;
      T y = h_new[o + j];
      if (kind == 0) h = h * (T(1) - y * y);
      else if (kind == 1) h = y > T(0) ? h : T(0);
      d_pre[o + j] = h;
    }
    if (seen.norm_h) seen.norm_h[b] = std::sqrt(row_sq(rh, H));
  }
}

// ---------------------------------------------------------------------------------------------- loops

// x_pre = x W_ih^T without bias: b_x (added to every step's pre-activation) and b_hh (GRU: added to h W_hh^T)
// are added in the pointwise pass, which saves a pass over the whole (T, B, G·H) projection.
// Inside the time loop everything is a raw pointer at a fixed stride: a tensor view per step and operand
// (`hs[t]`, ~0.4 µs each) cost more than the whole step at batch 1.
std::vector<at::Tensor> forward(int64_t kind, const at::Tensor& x_pre_in, const at::Tensor& h0, const at::Tensor& c0,
                                const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_hh,
                                const c10::optional<at::Tensor>& b_x) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(x_pre_in.device().is_cpu(), "the compiled time loop runs on CPU tensors only");
  TORCH_CHECK(x_pre_in.is_contiguous(), "x_pre must be contiguous");
  const at::Tensor x_pre = x_pre_in;
  const int64_t T = x_pre.size(0), B = x_pre.size(1), H = h0.size(-1);
  const bool lstm = kind == 3, gru = kind == 4;
  const int64_t G = lstm ? 4 : (gru ? 3 : 1);
  at::Tensor hs = scratch().get({T + 1, B, H}, x_pre.options());
  hs[0].copy_(h0);
  at::Tensor cs, acts, aux, h_pre;
  if (lstm) {
    cs = scratch().get({T + 1, B, H}, x_pre.options());
    cs[0].copy_(c0);
  }
  if (lstm) {
    // The input projection is consumed in place: x_pre[t] += h W_hh^T, then activated; it becomes `acts`.
    // (x_pre is the engine's own temporary, never the caller's tensor.)
    acts = x_pre;
    aux = scratch().get({T, B, H}, x_pre.options());
  } else if (gru) {
    acts = scratch().get({T, B, G * H}, x_pre.options());
    aux = scratch().get({T, B, H}, x_pre.options());
  }
  if (gru) h_pre = at::empty({B, G * H}, x_pre.options());
  // Missing biases are zeros (x + 0 = x exactly), so the pointwise kernels need no second version.
  const at::Tensor zeros = at::zeros({G * H}, x_pre.options());
  const at::Tensor bias_x = b_x.has_value() ? b_x->contiguous() : zeros;
  const at::Tensor bias_h = b_hh.has_value() ? b_hh->contiguous() : zeros;
  const int64_t sH = B * H, sG = B * G * H;  // strides of one step in (·, B, H) and (·, B, G·H) tensors
  SmallStepThreads threads(B * H * G * H);
  AT_DISPATCH_FLOATING_TYPES(x_pre.scalar_type(), "rnnlab_forward", [&] {
    const StepProduct<scalar_t> product(w_hh, B, /*forward=*/true, T);
    scalar_t* h = hs.data_ptr<scalar_t>();
    scalar_t* xp = x_pre.data_ptr<scalar_t>();
    const scalar_t *bx = bias_x.data_ptr<scalar_t>(), *bh = bias_h.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      scalar_t* h_new = h + (t + 1) * sH;
      const scalar_t* h_old = h + t * sH;
      if (lstm) {
        scalar_t* pre = xp + t * sG;
        product(h_old, pre, true);
        scalar_t* c = cs.data_ptr<scalar_t>();
        scalar_t* ax = aux.data_ptr<scalar_t>() + t * sH;
        for_rows(B, 4 * H, [&](int64_t b0, int64_t b1) {
          lstm_pointwise<scalar_t>(pre, bx, c + t * sH, c + (t + 1) * sH, ax, h_new, b0, b1, H);
        });
      } else if (gru) {
        scalar_t* hp = h_pre.data_ptr<scalar_t>();
        product(h_old, hp, false);
        scalar_t* a = acts.data_ptr<scalar_t>() + t * sG;
        scalar_t* ax = aux.data_ptr<scalar_t>() + t * sH;
        const scalar_t* x_t = xp + t * sG;
        for_rows(B, 3 * H, [&](int64_t b0, int64_t b1) {
          gru_pointwise<scalar_t>(x_t, bx, hp, bh, h_old, a, ax, h_new, b0, b1, H);
        });
      } else {
        scalar_t* pre = xp + t * sG;
        product(h_old, pre, true);  // in place: x_pre is the engine's own temporary
        for_rows(B, H, [&](int64_t b0, int64_t b1) { vanilla_pointwise<scalar_t>(kind, pre, bx, h_new, b0, b1, H); });
      }
    }
  });
  return {hs, lstm ? cs : at::Tensor(), acts.defined() ? acts : at::Tensor(), aux.defined() ? aux : at::Tensor()};
}

std::vector<at::Tensor> backward(int64_t kind, const at::Tensor& hs, const c10::optional<at::Tensor>& cs,
                                 const c10::optional<at::Tensor>& acts, const c10::optional<at::Tensor>& aux,
                                 const at::Tensor& w_hh, const at::Tensor& d_out_in, const at::Tensor& dh_last,
                                 const c10::optional<at::Tensor>& dc_last, int64_t record) {
  // record: 0 nothing, 1 per-sample norms (T, B) in double, 2 also the vectors ∂L/∂h_t (T, B, H).
  at::NoGradGuard no_grad;
  TORCH_CHECK(d_out_in.device().is_cpu(), "the compiled time loop runs on CPU tensors only");
  const at::Tensor d_out = d_out_in.contiguous();
  const int64_t T = d_out.size(0), B = d_out.size(1), H = d_out.size(2);
  const bool lstm = kind == 3, gru = kind == 4;
  const int64_t G = lstm ? 4 : (gru ? 3 : 1);
  const auto opts = d_out.options();
  at::Tensor d_x_pre = scratch().get({T, B, G * H}, opts);
  at::Tensor d_h_pre = gru ? scratch().get({T, B, G * H}, opts) : d_x_pre;
  const auto dopts = opts.dtype(at::kDouble);
  at::Tensor norm_h = record ? at::empty({T, B}, dopts) : at::Tensor();
  at::Tensor norm_c = record && lstm ? at::empty({T, B}, dopts) : at::Tensor();
  at::Tensor vec_h = record == 2 ? at::empty({T, B, H}, opts) : at::Tensor();
  at::Tensor dh = dh_last.contiguous().clone();  // recurrent part of ∂L/∂h_t
  at::Tensor dc = lstm ? dc_last->contiguous().clone() : at::Tensor();
  const int64_t sH = B * H, sG = B * G * H;
  SmallStepThreads threads(B * H * G * H);
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_backward", [&] {
    const StepProduct<scalar_t> product(w_hh, B, /*forward=*/false, T);
    scalar_t *dhp = dh.data_ptr<scalar_t>(), *dcp = lstm ? dc.data_ptr<scalar_t>() : nullptr;
    const scalar_t *h = hs.data_ptr<scalar_t>(), *dop = d_out.data_ptr<scalar_t>();
    const scalar_t* a = acts.has_value() && acts->defined() ? acts->data_ptr<scalar_t>() : nullptr;
    const scalar_t* ax = aux.has_value() && aux->defined() ? aux->data_ptr<scalar_t>() : nullptr;
    const scalar_t* c = lstm ? cs->data_ptr<scalar_t>() : nullptr;
    scalar_t *dx = d_x_pre.data_ptr<scalar_t>(), *dhh = d_h_pre.data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      Seen<scalar_t> seen;
      if (record) {
        seen.norm_h = norm_h.data_ptr<double>() + t * B;
        if (lstm) seen.norm_c = norm_c.data_ptr<double>() + t * B;
        if (record == 2) seen.vec_h = vec_h.data_ptr<scalar_t>() + t * sH;
      }
      const scalar_t* d_out_t = dop + t * sH;
      if (lstm) {
        scalar_t* dpre = dx + t * sG;
        for_rows(B, 4 * H, [&](int64_t b0, int64_t b1) {
          lstm_backward_pointwise<scalar_t>(a + t * sG, ax + t * sH, c + t * sH, dhp, d_out_t, dcp, dpre, seen, b0,
                                            b1, H);
        });
        product(dpre, dhp, false);
      } else if (gru) {
        scalar_t *dx_t = dx + t * sG, *dhh_t = dhh + t * sG;
        for_rows(B, 3 * H, [&](int64_t b0, int64_t b1) {
          gru_backward_pointwise<scalar_t>(a + t * sG, ax + t * sH, h + t * sH, dhp, d_out_t, dx_t, dhh_t, seen, b0,
                                           b1, H);
        });
        product(dhh_t, dhp, true);
      } else {
        scalar_t* dpre = dx + t * sG;
        for_rows(B, H, [&](int64_t b0, int64_t b1) {
          vanilla_backward_pointwise<scalar_t>(kind, h + (t + 1) * sH, dhp, d_out_t, dpre, seen, b0, b1, H);
        });
        product(dpre, dhp, false);
      }
    }
  });
  return {d_x_pre, d_h_pre, dh, lstm ? dc : at::Tensor(), norm_h, norm_c, vec_h};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "time loop forward of one layer");
  m.def("backward", &backward, "full BPTT backward of one layer");
  m.def("matmul", &matmul, "a · b, by oneDNN for large float32 products; into_scratch: a reused buffer");
  m.def("denormals_flushed", &denormals_flushed, "1 if this thread flushes denormals, 0 if not, -1: unknown");
  m.def("set_pool_denormals", &set_pool_denormals, "flush denormals (or not) in every OpenMP pool thread");
  m.def("pool_denormals_flushed", &pool_denormals_flushed, "[pool threads flushing denormals, pool threads]");
  m.def("release_scratch", &release_scratch, "free the reusable buffers nobody holds; returns the bytes freed");
  m.def("scratch_bytes", &scratch_bytes, "bytes held by the reusable buffers");
  m.def("scratch", &scratch_like, "an uninitialised reusable buffer of this size with like's dtype and device");
  m.def("set_gemm", &set_gemm, "'auto' (oneDNN on AMD CPUs, where it pays), 'onednn' or 'aten'");
  m.def("cpu_vendor", &cpu_vendor, "the CPU's vendor string (CPUID), '' where unknown");
  m.def("gemm_backend", &gemm_backend, "'onednn' or 'aten'");
  m.def("step_path", &step_path, "the per-step product's path for (dtype, batch, hidden, gates[, forward, steps])",
        py::arg("dtype"), py::arg("batch"), py::arg("hidden"), py::arg("gates"), py::arg("forward") = true,
        py::arg("steps") = 100);
  m.def("set_brgemm", &set_brgemm, "whether float32 steps may take oneDNN's micro-kernel: 'auto' (AMD CPUs), 'on', 'off'");
  m.def("set_backward_split", &set_backward_split, "whether the backward may split: 'auto' (AMD CPUs), 'on', 'off'");
  m.def("set_pointwise_grain", &set_pointwise_grain, "the least pointwise elements per thread (for benchmarks)");
  m.def("set_step_split", &set_step_split, "the largest batch that takes the split path (0: never)");
}
