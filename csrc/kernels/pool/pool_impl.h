// Pooling's row reduction (max or sum of two rows) and the NHWC pixel reduction (over a window's
// pixels, a channel vector at a time in registers), templated on the ISA's vector type.
#pragma once
#include "../kernels.h"
#include "../simd/lane1.h"

namespace edgesep::detail {

template <class V>
void pool_row(float* acc, const float* x, int64_t n, bool is_max) {
  constexpr int L = V::N;
  int64_t i = 0;
  if (is_max) {
    for (; i + 2 * L <= n; i += 2 * L) {
      V::store(acc + i, V::max(V::load(acc + i), V::load(x + i)));
      V::store(acc + i + L, V::max(V::load(acc + i + L), V::load(x + i + L)));
    }
    for (; i + L <= n; i += L) V::store(acc + i, V::max(V::load(acc + i), V::load(x + i)));
    for (; i < n; ++i) acc[i] = acc[i] < x[i] ? x[i] : acc[i];
  } else {
    for (; i + 2 * L <= n; i += 2 * L) {
      V::store(acc + i, V::add(V::load(acc + i), V::load(x + i)));
      V::store(acc + i + L, V::add(V::load(acc + i + L), V::load(x + i + L)));
    }
    for (; i + L <= n; i += L) V::store(acc + i, V::add(V::load(acc + i), V::load(x + i)));
    for (; i < n; ++i) acc[i] += x[i];
  }
}

// Channels [c, c + U::N) of one output pixel; i: their offset in each tap.
template <class U>
inline void pool_taps_run(float* out, const float* const* taps, int n, ptrdiff_t i, bool is_max, float scale) {
  typename U::T acc = U::load(taps[0] + i);
  if (is_max)
    for (int t = 1; t < n; ++t) acc = U::max(acc, U::load(taps[t] + i));
  else
    for (int t = 1; t < n; ++t) acc = U::add(acc, U::load(taps[t] + i));
  U::store(out, is_max ? acc : U::mul(acc, U::set1(scale)));
}

template <class V>
void pool_taps(float* out, const float* const* taps, int n, int64_t C, bool is_max, float scale, int64_t pixels,
               int64_t step) {
  using V4 = typename V::V4;
  for (int64_t j = 0; j < pixels; ++j, out += C) {
    const ptrdiff_t at = (ptrdiff_t)(j * step);
    int64_t c = 0;
    for (; c + V::N <= C; c += V::N) pool_taps_run<V>(out + c, taps, n, at + c, is_max, scale);
    for (; c + 4 <= C; c += 4) pool_taps_run<V4>(out + c, taps, n, at + c, is_max, scale);
    for (; c < C; ++c) pool_taps_run<Lane1<V>>(out + c, taps, n, at + c, is_max, scale);
  }
}

}  // namespace edgesep::detail
