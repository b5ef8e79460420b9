// The engine's matrix products (products.h).

#include "products.h"

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "buffers.h"
#include "threads.h"

namespace rnnlab {

void gemm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate) {
  const int64_t work = a.size(0) * a.size(1) * b.size(1);
  if (onednn_takes(a.scalar_type(), work)) {
    onednn_matmul()(a, b, out, accumulate ? 1.f : 0.f, 1.f);
  } else if (accumulate) {
    out.addmm_(a, b);
  } else {
    at::mm_out(const_cast<at::Tensor&>(out), a, b);
  }
}

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, bool into_scratch) {
  at::NoGradGuard no_grad;
  const std::vector<int64_t> sizes{a.size(0), b.size(1)};
  at::Tensor out = into_scratch ? scratch().get(sizes, a.options()) : at::empty(sizes, a.options());
  gemm(a, b, out, false);
  return out;
}

// ---------------------------------------------------------------------------------------------- per-step product

namespace {

// The micro-kernel's panel width: the best of the widths measured (benchmarks/results/engine-notes.md, "oneDNN's
// micro-kernel").
constexpr int64_t kPanel = 32;

}  // namespace

template <typename T>
StepProduct<T>::StepProduct(const at::Tensor& w_hh, int64_t batch, bool forward, int64_t steps)
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
    // contiguous rows, as in the forward, instead of a strided half of every row of W (faster:
    // benchmarks/results/engine-notes.md, "The split path").
    w_ = w_.t().contiguous();
    forward_ = true;
  }
}

template <typename T>
void StepProduct<T>::operator()(const T* in, T* out, bool accumulate) const {
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

// Columns n0..n1 of the output by one BLAS call. Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ, hence the
// swapped operands: outᵀ (N, B) = op'(W) (N, K) · inᵀ (K, B), W read as its column-major transpose (H, G·H); a
// column slice of the output is a slice of W's rows (forward) or columns (backward), at the same leading
// dimensions.
template <typename T>
void StepProduct<T>::blas_columns(const T* in, T* out, bool accumulate, int64_t n0, int64_t n1) const {
  const int m = int(batch_), n = int(n1 - n0), k = int(k_), ldw = int(w_.size(1)), ldc = int(n_);
  const T alpha(1), beta(accumulate ? 1 : 0);
  const FortranGemm g = std::is_same_v<T, float> ? blas().sgemm : blas().dgemm;
  const T* w = w_.const_data_ptr<T>() + (forward_ ? n0 * ldw : n0);
  g(forward_ ? "T" : "N", "N", &n, &m, &k, &alpha, w, &ldw, in, &k, &beta, out + n0, &ldc);
}

// op(W) (K, N) — W_hhᵀ forward, W_hh backward — as panels (P, K, kPanel): panel p holds columns p·kPanel…,
// zero-padded past N. One pass, each thread writing its own panels, in a reused buffer: through ATen (zeros, a
// transposed copy, permute().contiguous()) it cost as much as tens of steps (benchmarks/results/engine-notes.md,
// "oneDNN's micro-kernel").
template <typename T>
at::Tensor StepProduct<T>::to_panels(const at::Tensor& w, bool forward) const {
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

// The two dtypes the loops dispatch to (AT_DISPATCH_FLOATING_TYPES).
template class StepProduct<float>;
template class StepProduct<double>;

}  // namespace rnnlab
