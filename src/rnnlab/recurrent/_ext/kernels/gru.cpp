// The GRU's pointwise kernels: one time step's gates and new state, and their backward.
// One file per cell family; a new cell's kernel goes in a new file beside this one (kernels.h says how).

#include "kernels.h"
#include "pointwise_math.h"

#include <cmath>

namespace rnnlab {

template <typename T>
void GruKernel<T>::forward(const T* x_pre, const T* bx, const T* h_pre, const T* bh, const T* h, T* acts, T* aux,
                           T* h_new, int64_t b0, int64_t b1, int64_t H) {
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

template <typename T>
void GruKernel<T>::backward(const T* acts, const T* aux, const T* h_prev, T* dh, const T* d_out, T* d_x_pre,
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

// The two dtypes the loops dispatch to (AT_DISPATCH_FLOATING_TYPES).
template struct GruKernel<float>;
template struct GruKernel<double>;

}  // namespace rnnlab
