// Pooling's row reduction (max or sum of two rows), templated on the ISA's vector type.
#pragma once
#include "../kernels.h"

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

}  // namespace edgesep::detail
