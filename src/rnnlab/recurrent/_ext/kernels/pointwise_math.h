// What every cell's pointwise kernel uses: σ and tanh on vectors and scalars, the squared norm of a row for
// recording, and a per-thread row buffer. Header only, so each kernel inlines them.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace rnnlab {

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
// costs too much (benchmarks/results/engine-notes.md, "float32 σ and tanh"); this one costs about what vsigmoid
// costs: near zero an odd Taylor polynomial (|x| < 1/8: truncation error < 1e-11 relative, so tiny values keep
// their relative accuracy), beyond it 1 − 2/(e^{2|x|} + 1) with exp_u20 and the sign copied back. Its error
// bounds are tested in tests/test_native.py.
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

// Squared L2 norm of one row, accumulated in double: squaring a float32 gradient of 1e-20 would underflow.
// Eight independent partial sums: a single running sum is a chain of dependent additions, which made recording
// measurably slower (benchmarks/results/engine-notes.md, "Recording's row norms").
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

}  // namespace rnnlab
