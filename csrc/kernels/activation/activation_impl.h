// The activation pass, templated on the ISA's vector type: clamps, leaky/parametric ReLU and the hard
// sigmoid/swish from min, max and FMA; sigmoid and tanh from a vector exp (Cody-Waite range reduction to
// [-ln2/2, ln2/2] and a degree-6 polynomial, as in Cephes' expf: within 2 ulp of the C library's exp).
// The last partial vector goes through a small buffer, so every value takes the same vector path.
#pragma once
#include "../kernels.h"

namespace edgesep::detail {

template <class V, class F>
void map_in_place(float* x, int64_t n, F f) {
  constexpr int L = V::N;
  int64_t i = 0;
  for (; i + L <= n; i += L) V::store(x + i, f(V::load(x + i)));
  if (i < n) {
    float buf[L] = {};
    for (int64_t j = i; j < n; ++j) buf[j - i] = x[j];
    V::store(buf, f(V::load(buf)));
    for (int64_t j = i; j < n; ++j) x[j] = buf[j - i];
  }
}

// e^x for x in [-87.3, 88] (callers clamp).
template <class V>
typename V::T vexp(typename V::T x) {
  using T = typename V::T;
  const T n = V::floor(V::fma(x, V::set1(1.44269504088896341f), V::set1(0.5f)));  // round(x / ln2)
  T r = V::fma(n, V::set1(-0.693359375f), x);  // x - n ln2, ln2 in two parts (the first exact)
  r = V::fma(n, V::set1(2.12194440e-4f), r);
  T p = V::set1(1.9875691500e-4f);
  p = V::fma(p, r, V::set1(1.3981999507e-3f));
  p = V::fma(p, r, V::set1(8.3334519073e-3f));
  p = V::fma(p, r, V::set1(4.1665795894e-2f));
  p = V::fma(p, r, V::set1(1.6666665459e-1f));
  p = V::fma(p, r, V::set1(5.0000001201e-1f));
  p = V::fma(p, V::mul(r, r), V::add(r, V::set1(1.f)));  // 1 + r + r^2 p(r)
  return V::mul(p, V::pow2(n));
}

template <class V>
void activation(ActCode code, float* x, int64_t n, float a, float b) {
  using T = typename V::T;
  const T zero = V::zero(), one = V::set1(1.f);
  switch (code) {
    case ActCode::Clamp:
      map_in_place<V>(x, n, [&](T v) { return V::min(V::max(v, V::set1(a)), V::set1(b)); });
      break;
    case ActCode::Leaky:  // max(v, 0) + a min(v, 0): exactly v < 0 ? a v : v
      map_in_place<V>(x, n, [&](T v) { return V::fma(V::set1(a), V::min(v, zero), V::max(v, zero)); });
      break;
    case ActCode::HardSigmoid:
      map_in_place<V>(x, n, [&](T v) { return V::min(one, V::max(zero, V::fma(V::set1(a), v, V::set1(b)))); });
      break;
    case ActCode::HardSwish:
      map_in_place<V>(x, n, [&](T v) {
        return V::mul(v, V::min(one, V::max(zero, V::fma(v, V::set1(1.f / 6.f), V::set1(0.5f)))));
      });
      break;
    case ActCode::Sigmoid:  // 1 / (1 + e^-v)
      map_in_place<V>(x, n, [&](T v) {
        const T e = vexp<V>(V::min(V::max(V::sub(zero, v), V::set1(-87.3f)), V::set1(88.f)));
        return V::div(one, V::add(one, e));
      });
      break;
    case ActCode::Tanh:  // (1 - e^-2v) / (1 + e^-2v); |v| > 9 is +-1 in float32
      map_in_place<V>(x, n, [&](T v) {
        const T e = vexp<V>(V::mul(V::set1(-2.f), V::min(V::max(v, V::set1(-9.f)), V::set1(9.f))));
        return V::div(V::sub(one, e), V::add(one, e));
      });
      break;
  }
}

}  // namespace edgesep::detail
