// The engine's matrix products: the whole-sequence ones (`gemm`, and `matmul` for Python) and the one product of
// every time step (`StepProduct`). Which library or path runs each is decided in cpu_dispatch.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "cpu_dispatch.h"

namespace rnnlab {

// out = a · b (+ out when accumulate). a (M, K), b (K, N): contiguous or transposed views; out (M, N) contiguous.
// oneDNN for large float32 products where `onednn_takes` says so, else ATen.
void gemm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate);

// For the engine's whole-sequence products in Python: a · b. into_scratch: the result is an engine temporary
// (the input projection) and may live in a reused buffer.
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, bool into_scratch);

// One layer's per-step product, set up once per loop: out (B, N) (+)= in (B, K) · op(W), with W (G·H, H)
// row-major and op(W) = Wᵀ (forward: h_{t-1} · W_hhᵀ, K = H, N = G·H) or W (backward: d_pre · W_hh, K = G·H,
// N = H). The path (`StepPath`) is chosen once, in the constructor; inside the loop everything is a raw pointer.
// Defined for float and double (products.cpp).
template <typename T>
class StepProduct {
 public:
  StepProduct(const at::Tensor& w_hh, int64_t batch, bool forward, int64_t steps);
  void operator()(const T* in, T* out, bool accumulate) const;

 private:
  void blas_columns(const T* in, T* out, bool accumulate, int64_t n0, int64_t n1) const;
  at::Tensor to_panels(const at::Tensor& w, bool forward) const;

  at::Tensor w_;  // W_hh; on the split backward its transpose; on kBrgemm the reordered panels
  bool forward_;
  int64_t batch_, k_ = 0, n_ = 0;
  int64_t panels_ = 0;  // kBrgemm: the number of kPanel-column panels
  int threads_ = 1;     // kBrgemm: threads the panels are split over
  StepPath path_ = StepPath::kAten;
};

}  // namespace rnnlab
