// IndRNN's pointwise kernels (Li et al. 2018): one time step h = ReLU(pre + bias + u ⊙ h_prev) and its backward.
// The recurrence is element-wise (u is a vector), so the step has no matrix product: all of it is here.

#include "kernels.h"
#include "pointwise_math.h"

#include <cmath>

namespace rnnlab {

template <typename T>
void IndRnnKernel<T>::forward(const T* pre, const T* bias, const T* u, const T* h_prev, T* h, int64_t b0, int64_t b1,
                              int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V zero(T(0));
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      const V x = V::loadu(pre + o + j) + V::loadu(bias + j) + V::loadu(u + j) * V::loadu(h_prev + o + j);
      at::vec::maximum(x, zero).store(h + o + j);
    }
    for (; j < H; ++j) {
      const T x = pre[o + j] + bias[j] + u[j] * h_prev[o + j];
      h[o + j] = x > T(0) ? x : T(0);
    }
  }
}

template <typename T>
void IndRnnKernel<T>::backward(const T* h_new, const T* u, T* dh, const T* d_out, T* d_pre, const Seen<T>& seen,
                               int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V zero(T(0));
  T* row = seen.norm_h && !seen.vec_h ? row_buffer<T>(H) : nullptr;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * H;
    T* rh = seen.vec_h ? seen.vec_h + o : row;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      const V g = V::loadu(dh + o + j) + V::loadu(d_out + o + j);  // ∂L/∂h_t, all paths
      if (seen.norm_h) g.store(rh + j);
      const V d = V::blendv(zero, g, V::loadu(h_new + o + j) > zero);  // ReLU′
      d.store(d_pre + o + j);
      (d * V::loadu(u + j)).store(dh + o + j);  // ∂L/∂h_{t−1} through the recurrence: d ⊙ u
    }
    for (; j < H; ++j) {
      const T g = dh[o + j] + d_out[o + j];
      if (seen.norm_h) rh[j] = g;
      const T d = h_new[o + j] > T(0) ? g : T(0);
      d_pre[o + j] = d;
      dh[o + j] = d * u[j];
    }
    if (seen.norm_h) seen.norm_h[b] = std::sqrt(row_sq(rh, H));
  }
}

// The two dtypes the loops dispatch to (AT_DISPATCH_FLOATING_TYPES).
template struct IndRnnKernel<float>;
template struct IndRnnKernel<double>;

}  // namespace rnnlab
