// Depthwise conv of one channel, templated on the ISA's vector type.
// The plane is first copied, zero-padded, into SW "phase" planes (column x goes to plane x % SW at
// x / SW), so that every tap of every stride and dilation reads a contiguous run of the output row's
// width: the inner loop is then a plain vector FMA over output columns, taps in registers.
#pragma once
#include <cstring>

#include "../kernels.h"

namespace edgesep::detail {

template <class V>
void dwconv(const ConvShape& s, const float* in, const float* w, float bias, float* out, float lo, float hi,
            float* scratch) {
  using T = typename V::T;
  constexpr int L = V::N;
  const int hp = (s.OH - 1) * s.SH + (s.KH - 1) * s.DH + 1;
  const int wp = (s.OW - 1) * s.SW + (s.KW - 1) * s.DW + 1;
  const int wq = (wp + s.SW - 1) / s.SW + 16;
  const ptrdiff_t phase_size = (ptrdiff_t)hp * wq;
  std::memset(scratch, 0, sizeof(float) * phase_size * s.SW);
  for (int y = 0; y < hp; ++y) {
    const int iy = y - s.PT;
    if (iy < 0 || iy >= s.H) continue;
    const float* row = in + (ptrdiff_t)iy * s.W;
    for (int x = 0; x < wp; ++x) {
      const int ix = x - s.PL;
      if (ix >= 0 && ix < s.W) scratch[(x % s.SW) * phase_size + (ptrdiff_t)y * wq + x / s.SW] = row[ix];
    }
  }
  const int taps = s.KH * s.KW;
  const T vlo = V::set1(lo), vhi = V::set1(hi), vb = V::set1(bias);
  for (int oy = 0; oy < s.OH; ++oy) {
    float* o = out + (ptrdiff_t)oy * s.OW;
    int ox = 0;
    for (; ox + 2 * L <= s.OW; ox += 2 * L) {
      T a0 = vb, a1 = vb;
      for (int t = 0; t < taps; ++t) {
        const int ky = t / s.KW, kx = t - ky * s.KW, x = kx * s.DW;
        const float* src = scratch + (x % s.SW) * phase_size + (ptrdiff_t)(oy * s.SH + ky * s.DH) * wq + x / s.SW + ox;
        const T wt = V::set1(w[t]);
        a0 = V::fma(wt, V::load(src), a0);
        a1 = V::fma(wt, V::load(src + L), a1);
      }
      V::store(o + ox, V::min(V::max(a0, vlo), vhi));
      V::store(o + ox + L, V::min(V::max(a1, vlo), vhi));
    }
    for (; ox < s.OW; ++ox) {
      float a = bias;
      for (int t = 0; t < taps; ++t) {
        const int ky = t / s.KW, kx = t - ky * s.KW, x = kx * s.DW;
        a += w[t] * scratch[(x % s.SW) * phase_size + (ptrdiff_t)(oy * s.SH + ky * s.DH) * wq + x / s.SW + ox];
      }
      o[ox] = a < lo ? lo : (a > hi ? hi : a);
    }
  }
}

}  // namespace edgesep::detail
