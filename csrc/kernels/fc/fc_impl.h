// Fully-connected rows as dot products, templated on the ISA's vector type: four rows at a time
// share each load of x, two accumulators per row hide the FMA latency.
#pragma once
#include "../kernels.h"

namespace edgesep::detail {

template <class V>
void fc(int K, const float* x, const float* W, const float* bias, float* y, int n0, int n1, float lo,
        float hi) {
  using T = typename V::T;
  constexpr int L = V::N;
  auto finish = [&](float v) { return v < lo ? lo : (v > hi ? hi : v); };
  int n = n0;
  for (; n + 4 <= n1; n += 4) {
    const float* w0 = W + (ptrdiff_t)n * K;
    const float* w1 = w0 + K;
    const float* w2 = w1 + K;
    const float* w3 = w2 + K;
    T a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    T b0 = V::zero(), b1 = V::zero(), b2 = V::zero(), b3 = V::zero();
    int k = 0;
    for (; k + 2 * L <= K; k += 2 * L) {
      const T x0 = V::load(x + k), x1 = V::load(x + k + L);
      a0 = V::fma(V::load(w0 + k), x0, a0);
      a1 = V::fma(V::load(w1 + k), x0, a1);
      a2 = V::fma(V::load(w2 + k), x0, a2);
      a3 = V::fma(V::load(w3 + k), x0, a3);
      b0 = V::fma(V::load(w0 + k + L), x1, b0);
      b1 = V::fma(V::load(w1 + k + L), x1, b1);
      b2 = V::fma(V::load(w2 + k + L), x1, b2);
      b3 = V::fma(V::load(w3 + k + L), x1, b3);
    }
    float s0 = V::hsum(V::add(a0, b0)), s1 = V::hsum(V::add(a1, b1));
    float s2 = V::hsum(V::add(a2, b2)), s3 = V::hsum(V::add(a3, b3));
    for (; k < K; ++k) {
      s0 += w0[k] * x[k];
      s1 += w1[k] * x[k];
      s2 += w2[k] * x[k];
      s3 += w3[k] * x[k];
    }
    if (bias) {
      s0 += bias[n];
      s1 += bias[n + 1];
      s2 += bias[n + 2];
      s3 += bias[n + 3];
    }
    y[n] = finish(s0);
    y[n + 1] = finish(s1);
    y[n + 2] = finish(s2);
    y[n + 3] = finish(s3);
  }
  for (; n < n1; ++n) {
    const float* wn = W + (ptrdiff_t)n * K;
    T a = V::zero();
    int k = 0;
    for (; k + L <= K; k += L) a = V::fma(V::load(wn + k), V::load(x + k), a);
    float s = V::hsum(a);
    for (; k < K; ++k) s += wn[k] * x[k];
    y[n] = finish(s + (bias ? bias[n] : 0.f));
  }
}

}  // namespace edgesep::detail
