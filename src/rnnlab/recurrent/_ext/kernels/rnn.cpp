// The vanilla RNN's pointwise kernels (tanh, relu, linear): one time step's activation and its backward.
// IndRNN's step is the ReLU RNN's with a diagonal recurrence u ⊙ h_{t−1} in place of the matrix product, so it
// runs here too (u given); the dense cells' product is the loop's (products.h).
// One file per cell family; a new cell's kernel goes in a new file beside this one (kernels.h says how).

#include "kernels.h"
#include "pointwise_math.h"

#include <cmath>

namespace rnnlab {
namespace {

// `Diagonal` (IndRNN: u given) is a template argument, so neither cell's inner loop tests for u.
template <bool Diagonal, typename T>
void forward_rows(int64_t kind, const T* pre, const T* bias, const T* u, const T* h_prev, T* h, int64_t b0,
                  int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V zero(T(0));
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V x = V::loadu(pre + o + j) + V::loadu(bias + j);
      if constexpr (Diagonal) x = x + V::loadu(u + j) * V::loadu(h_prev + o + j);
      (kind == kRnnTanh ? vtanh(x) : (kind == kRnnRelu ? at::vec::maximum(x, zero) : x)).store(h + o + j);
    }
    for (; j < H; ++j) {
      T x = pre[o + j] + bias[j];
      if constexpr (Diagonal) x += u[j] * h_prev[o + j];
      h[o + j] = kind == kRnnTanh ? std::tanh(x) : (kind == kRnnRelu ? (x > T(0) ? x : T(0)) : x);
    }
  }
}

template <bool Diagonal, typename T>
void backward_rows(int64_t kind, const T* h_new, const T* u, T* dh, const T* d_out, T* d_pre, const Seen<T>& seen,
                   int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V one(T(1)), zero(T(0));
  T* row = seen.norm_h && !seen.vec_h ? row_buffer<T>(H) : nullptr;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * H;
    T* rh = seen.vec_h ? seen.vec_h + o : row;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V g = V::loadu(dh + o + j) + V::loadu(d_out + o + j);  // ∂L/∂h_t, all paths
      if (seen.norm_h) g.store(rh + j);
      const V y = V::loadu(h_new + o + j);
      if (kind == kRnnTanh) g = g * (one - y * y);
      else if (kind == kRnnRelu) g = V::blendv(zero, g, y > zero);
      g.store(d_pre + o + j);
      if constexpr (Diagonal) (g * V::loadu(u + j)).store(dh + o + j);  // ∂L/∂h_{t−1} = d_pre ⊙ u
    }
    for (; j < H; ++j) {
      T g = dh[o + j] + d_out[o + j];
      if (seen.norm_h) rh[j] = g;
      const T y = h_new[o + j];
      if (kind == kRnnTanh) g = g * (T(1) - y * y);
      else if (kind == kRnnRelu) g = y > T(0) ? g : T(0);
      d_pre[o + j] = g;
      if constexpr (Diagonal) dh[o + j] = g * u[j];
    }
    if (seen.norm_h) seen.norm_h[b] = std::sqrt(row_sq(rh, H));
  }
}

}  // namespace

template <typename T>
void RnnKernel<T>::forward(int64_t kind, const T* pre, const T* bias, const T* u, const T* h_prev, T* h, int64_t b0,
                           int64_t b1, int64_t H) {
  if (u) forward_rows<true>(kind, pre, bias, u, h_prev, h, b0, b1, H);
  else forward_rows<false>(kind, pre, bias, u, h_prev, h, b0, b1, H);
}

template <typename T>
void RnnKernel<T>::backward(int64_t kind, const T* h_new, const T* u, T* dh, const T* d_out, T* d_pre,
                            const Seen<T>& seen, int64_t b0, int64_t b1, int64_t H) {
  if (u) backward_rows<true>(kind, h_new, u, dh, d_out, d_pre, seen, b0, b1, H);
  else backward_rows<false>(kind, h_new, u, dh, d_out, d_pre, seen, b0, b1, H);
}

// The two dtypes the loops dispatch to (AT_DISPATCH_FLOATING_TYPES).
template struct RnnKernel<float>;
template struct RnnKernel<double>;

}  // namespace rnnlab
