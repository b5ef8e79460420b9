// The vanilla RNN's pointwise kernels (tanh, relu, linear): one time step's activation and its backward.
// One file per cell family; a new cell's kernel goes in a new file beside this one (kernels.h says how).

#include "kernels.h"
#include "pointwise_math.h"

#include <cmath>

namespace rnnlab {

template <typename T>
void RnnKernel<T>::forward(int64_t kind, const T* pre, const T* bias, T* h, int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V zero(T(0));
  for (int64_t b = b0; b < b1; ++b) {
    const T* p = pre + b * H;
    T* o = h + b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      const V x = V::loadu(p + j) + V::loadu(bias + j);
      (kind == kRnnTanh ? vtanh(x) : (kind == kRnnRelu ? at::vec::maximum(x, zero) : x)).store(o + j);
    }
    for (; j < H; ++j) {
      const T x = p[j] + bias[j];
      o[j] = kind == kRnnTanh ? std::tanh(x) : (kind == kRnnRelu ? (x > T(0) ? x : T(0)) : x);
    }
  }
}

template <typename T>
void RnnKernel<T>::backward(int64_t kind, const T* h_new, const T* dh, const T* d_out, T* d_pre,
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
      if (kind == kRnnTanh) h = h * (one - y * y);
      else if (kind == kRnnRelu) h = V::blendv(zero, h, y > zero);
      h.store(d_pre + o + j);
    }
    for (; j < H; ++j) {
      T h = dh[o + j] + d_out[o + j];
      if (seen.norm_h) rh[j] = h;
      T y = h_new[o + j];
      if (kind == kRnnTanh) h = h * (T(1) - y * y);
      else if (kind == kRnnRelu) h = y > T(0) ? h : T(0);
      d_pre[o + j] = h;
    }
    if (seen.norm_h) seen.norm_h[b] = std::sqrt(row_sq(rh, H));
  }
}

// The two dtypes the loops dispatch to (AT_DISPATCH_FLOATING_TYPES).
template struct RnnKernel<float>;
template struct RnnKernel<double>;

}  // namespace rnnlab
