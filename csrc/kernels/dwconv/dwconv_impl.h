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
  const int taps = s.KH * s.KW;
  // Scratch: the tap offsets (as ints), then the phase planes.
  int* tap = reinterpret_cast<int*>(scratch);
  float* planes = scratch + taps;
  for (int t = 0, ky = 0, kx = 0; t < taps; ++t) {
    const int x = kx * s.DW;
    tap[t] = (int)((x % s.SW) * phase_size) + ky * s.DH * wq + x / s.SW;
    if (++kx == s.KW) kx = 0, ++ky;
  }
  std::memset(planes, 0, sizeof(float) * phase_size * s.SW);
  for (int y = 0; y < hp; ++y) {
    const int iy = y - s.PT;
    if (iy < 0 || iy >= s.H) continue;
    const float* row = in + (ptrdiff_t)iy * s.W;
    for (int q = 0; q < s.SW; ++q) {
      float* dst = planes + q * phase_size + (ptrdiff_t)y * wq;
      for (int i = 0, ix = q - s.PL; i * s.SW + q < wp; ++i, ix += s.SW)
        if (ix >= 0 && ix < s.W) dst[i] = row[ix];
    }
  }
  const T vlo = V::set1(lo), vhi = V::set1(hi), vb = V::set1(bias);
  for (int oy = 0; oy < s.OH; ++oy) {
    float* o = out + (ptrdiff_t)oy * s.OW;
    const float* base = planes + (ptrdiff_t)oy * s.SH * wq;
    int ox = 0;
    for (; ox + 2 * L <= s.OW; ox += 2 * L) {
      T a0 = vb, a1 = vb;
      for (int t = 0; t < taps; ++t) {
        const float* src = base + tap[t] + ox;
        const T wt = V::set1(w[t]);
        a0 = V::fma(wt, V::load(src), a0);
        a1 = V::fma(wt, V::load(src + L), a1);
      }
      V::store(o + ox, V::min(V::max(a0, vlo), vhi));
      V::store(o + ox + L, V::min(V::max(a1, vlo), vhi));
    }
    // The rest, a vector at a time: reads may run into the row's slack (wq has a vector of it),
    // stores stop at the row's end.
    for (; ox < s.OW; ox += L) {
      T a0 = vb;
      for (int t = 0; t < taps; ++t) a0 = V::fma(V::set1(w[t]), V::load(base + tap[t] + ox), a0);
      a0 = V::min(V::max(a0, vlo), vhi);
      if (ox + L <= s.OW) {
        V::store(o + ox, a0);
      } else {
        alignas(64) float tmp[L];
        V::store(tmp, a0);
        std::memcpy(o + ox, tmp, sizeof(float) * (s.OW - ox));
      }
    }
  }
}

}  // namespace edgesep::detail
