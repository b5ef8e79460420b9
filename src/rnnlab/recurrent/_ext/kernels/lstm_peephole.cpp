// The pointwise kernels of the LSTM with an output-gate peephole (recurrent/cells/lstm.py
// `OutputPeepholeLSTMCell`, the uRNN paper's LSTM): o reads the new cell state through a full matrix V_o, so
// each step is split around a second product, c_t · V_oᵀ (forward) and d_o · V_o (backward), which loops.cpp
// runs between the two passes here. Gate layout and saved tensors are the LSTM's (lstm.cpp).

#include "kernels.h"
#include "pointwise_math.h"

#include <algorithm>
#include <cmath>

namespace rnnlab {

template <typename T>
void PeepholeLstmKernel<T>::forward_cell(T* pre, const T* bias, const T* c_prev, T* c_new, int64_t b0, int64_t b1,
                                         int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  for (int64_t b = b0; b < b1; ++b) {
    T* g = pre + b * 4 * H;
    const T* cp = c_prev + b * H;
    T* cn = c_new + b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V i = vsigmoid(V::loadu(g + j) + V::loadu(bias + j));
      V f = vsigmoid(V::loadu(g + H + j) + V::loadu(bias + H + j));
      V gg = vtanh(V::loadu(g + 2 * H + j) + V::loadu(bias + 2 * H + j));
      i.store(g + j);
      f.store(g + H + j);
      gg.store(g + 2 * H + j);
      (f * V::loadu(cp + j) + i * gg).store(cn + j);
    }
    for (; j < H; ++j) {
      T i = ssigmoid(g[j] + bias[j]), f = ssigmoid(g[H + j] + bias[H + j]);
      T gg = std::tanh(g[2 * H + j] + bias[2 * H + j]);
      g[j] = i; g[H + j] = f; g[2 * H + j] = gg;
      cn[j] = f * cp[j] + i * gg;
    }
  }
}

template <typename T>
void PeepholeLstmKernel<T>::forward_out(T* pre, const T* bias, const T* peep, const T* c_new, T* tanh_c, T* h_new,
                                        int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  for (int64_t b = b0; b < b1; ++b) {
    T* o_pre = pre + b * 4 * H + 3 * H;
    const T* pp = peep + b * H;
    const T* cn = c_new + b * H;
    T* tc = tanh_c + b * H;
    T* hn = h_new + b * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V o = vsigmoid(V::loadu(o_pre + j) + V::loadu(bias + 3 * H + j) + V::loadu(pp + j));
      V t = vtanh(V::loadu(cn + j));
      o.store(o_pre + j);
      t.store(tc + j);
      (o * t).store(hn + j);
    }
    for (; j < H; ++j) {
      T o = ssigmoid(o_pre[j] + bias[3 * H + j] + pp[j]), t = std::tanh(cn[j]);
      o_pre[j] = o; tc[j] = t; hn[j] = o * t;
    }
  }
}

template <typename T>
void PeepholeLstmKernel<T>::backward_out(const T* acts, const T* tanh_c, T* dh, const T* d_out, T* d_o, T* d_pre,
                                         int64_t b0, int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V one(T(1));
  for (int64_t b = b0; b < b1; ++b) {
    const T* o_act = acts + b * 4 * H + 3 * H;
    const T* tc = tanh_c + b * H;
    T* dhb = dh + b * H;
    const T* dob = d_out + b * H;
    T* dob_o = d_o + b * H;
    T* dp = d_pre + b * 4 * H + 3 * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V o = V::loadu(o_act + j), t = V::loadu(tc + j);
      V h = V::loadu(dhb + j) + V::loadu(dob + j);
      V d = h * t * o * (one - o);
      h.store(dhb + j);  // ∂L/∂h_t, all paths, for the second pass
      d.store(dob_o + j);
      d.store(dp + j);
    }
    for (; j < H; ++j) {
      T o = o_act[j], t = tc[j], h = dhb[j] + dob[j];
      T d = h * t * o * (T(1) - o);
      dhb[j] = h; dob_o[j] = d; dp[j] = d;
    }
  }
}

template <typename T>
void PeepholeLstmKernel<T>::backward_cell(const T* acts, const T* tanh_c, const T* c_prev, const T* dh,
                                          const T* dc_peep, T* dc, T* d_pre, const Seen<T>& seen, int64_t b0,
                                          int64_t b1, int64_t H) {
  using V = Vectorized<T>;
  const int64_t n = V::size();
  const V one(T(1));
  T* seen_row_c = seen.norm_h ? row_buffer<T>(H) : nullptr;
  for (int64_t b = b0; b < b1; ++b) {
    const T* a = acts + b * 4 * H;
    const T* tc = tanh_c + b * H;
    const T* cp = c_prev + b * H;
    const T* dhb = dh + b * H;
    const T* dpp = dc_peep + b * H;
    T* dcb = dc + b * H;
    T* dp = d_pre + b * 4 * H;
    int64_t j = 0;
    for (; j + n <= H; j += n) {
      V i = V::loadu(a + j), f = V::loadu(a + H + j), g = V::loadu(a + 2 * H + j), o = V::loadu(a + 3 * H + j);
      V t = V::loadu(tc + j);
      V c = V::loadu(dcb + j) + V::loadu(dhb + j) * o * (one - t * t) + V::loadu(dpp + j);
      (c * g * i * (one - i)).store(dp + j);
      (c * V::loadu(cp + j) * f * (one - f)).store(dp + H + j);
      (c * i * (one - g * g)).store(dp + 2 * H + j);
      if (seen.norm_h) c.store(seen_row_c + j);
      (c * f).store(dcb + j);
    }
    for (; j < H; ++j) {
      T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], t = tc[j];
      T c = dcb[j] + dhb[j] * o * (T(1) - t * t) + dpp[j];
      dp[j] = c * g * i * (T(1) - i);
      dp[H + j] = c * cp[j] * f * (T(1) - f);
      dp[2 * H + j] = c * i * (T(1) - g * g);
      if (seen.norm_h) seen_row_c[j] = c;
      dcb[j] = c * f;
    }
    if (seen.norm_h) {
      if (seen.vec_h) std::copy(dhb, dhb + H, seen.vec_h + b * H);
      seen.norm_h[b] = std::sqrt(row_sq(dhb, H));
      seen.norm_c[b] = std::sqrt(row_sq(seen_row_c, H));
    }
  }
}

// The two dtypes the loops dispatch to (AT_DISPATCH_FLOATING_TYPES).
template struct PeepholeLstmKernel<float>;
template struct PeepholeLstmKernel<double>;

}  // namespace rnnlab
