// The LSTM's pointwise kernels: one time step's gates, cell state and output, and their backward.
// One file per cell family; a new cell's kernel goes in a new file beside this one (kernels.h says how).

#include "kernels.h"
#include "pointwise_math.h"

#include <cmath>

namespace rnnlab {

template <typename T>
void LstmKernel<T>::forward(T* pre, const T* bias, const T* c_prev, T* c_new, T* tanh_c, T* h_new, int64_t b0,
                            int64_t b1, int64_t H) {
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

template <typename T>
void LstmKernel<T>::backward(const T* acts, const T* tanh_c, const T* c_prev, T* dh, const T* d_out, T* dc,
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

// The two dtypes the loops dispatch to (AT_DISPATCH_FLOATING_TYPES).
template struct LstmKernel<float>;
template struct LstmKernel<double>;

}  // namespace rnnlab
