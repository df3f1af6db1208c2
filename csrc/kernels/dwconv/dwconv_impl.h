// Depthwise conv of one channel, templated on the ISA's vector type.
// The plane is first copied, zero-padded, into SH x SW "phase" planes (padded row y, column x go to
// plane (y % SH, x % SW) at (y / SH, x / SW)). In those planes every tap of every stride and dilation
// reads the output grid at a fixed offset, and with the output laid out at the planes' row stride the
// whole channel is one contiguous run: out_flat[o] = sum_t w[t] * plane_t[o + offset_t]. The kernel
// sweeps that run with full vectors (the few columns between rows are computed and dropped), then
// copies the rows out. No per-row tails, so small planes (7x7, 14x14) run at vector speed too.
#pragma once
#include <cstring>

#include "../kernels.h"

namespace edgesep::detail {

template <class V>
void dwconv(const ConvShape& s, const float* in, const float* w, float bias, float* out, float lo, float hi,
            float* scratch) {
  using T = typename V::T;
  constexpr int L = V::N;
  const DwLayout g = dwconv_layout(s);
  const int taps = s.KH * s.KW;
  // Scratch: tap offsets (as ints), phase planes, one padded input row, the flat output.
  int* tap = reinterpret_cast<int*>(scratch);
  float* planes = scratch + g.taps_floats;
  float* row = planes + g.phases * g.plane;
  float* flat = row + g.row;
  for (int t = 0, ky = 0, kx = 0; t < taps; ++t) {
    const int y = ky * s.DH, x = kx * s.DW;
    tap[t] = (int)(((y % s.SH) * s.SW + x % s.SW) * g.plane) + (y / s.SH) * g.wq + x / s.SW;
    if (++kx == s.KW) kx = 0, ++ky;
  }
  for (int y = 0; y < g.hq * s.SH; ++y) {
    const int iy = y - s.PT, r = y / s.SH;
    float* dst0 = planes + (ptrdiff_t)(y % s.SH) * s.SW * g.plane + (ptrdiff_t)r * g.wq;
    if (iy < 0 || iy >= s.H || y >= g.hp) {
      for (int q = 0; q < s.SW; ++q) std::memset(dst0 + q * g.plane, 0, sizeof(float) * g.wq);
      continue;
    }
    // zeros | input row | zeros, over the padded width, then split into the SW column phases.
    const int width = g.wq * s.SW, pl = s.PL < width ? s.PL : width;
    const int ncopy = s.W < width - pl ? s.W : width - pl;
    float* dst = s.SW == 1 ? dst0 : row;
    std::memset(dst, 0, sizeof(float) * pl);
    std::memcpy(dst + pl, in + (ptrdiff_t)iy * s.W, sizeof(float) * ncopy);
    std::memset(dst + pl + ncopy, 0, sizeof(float) * (width - pl - ncopy));
    if (s.SW == 2) {
      int i = 0;
      for (; i + L <= g.wq; i += L) {
        T even, odd;
        V::deinterleave2(row + 2 * i, even, odd);
        V::store(dst0 + i, even);
        V::store(dst0 + g.plane + i, odd);
      }
      for (; i < g.wq; ++i) dst0[i] = row[2 * i], dst0[g.plane + i] = row[2 * i + 1];
    } else if (s.SW > 2) {
      for (int q = 0; q < s.SW; ++q)
        for (int i = 0; i < g.wq; ++i) dst0[q * g.plane + i] = row[i * s.SW + q];
    }
  }
  // The planes' tails: reads of the last vectors run past the last row into them.
  for (int p = 0; p < g.phases; ++p)
    std::memset(planes + (ptrdiff_t)p * g.plane + (ptrdiff_t)g.hq * g.wq, 0,
                sizeof(float) * (g.plane - (ptrdiff_t)g.hq * g.wq));
  const T vlo = V::set1(lo), vhi = V::set1(hi), vb = V::set1(bias);
  const int n = s.OH * g.wq;
  int o = 0;
  for (; o + 2 * L <= n; o += 2 * L) {
    T a0 = vb, a1 = vb;
    for (int t = 0; t < taps; ++t) {
      const float* src = planes + tap[t] + o;
      const T wt = V::set1(w[t]);
      a0 = V::fma(wt, V::load(src), a0);
      a1 = V::fma(wt, V::load(src + L), a1);
    }
    V::store(flat + o, V::min(V::max(a0, vlo), vhi));
    V::store(flat + o + L, V::min(V::max(a1, vlo), vhi));
  }
  for (; o < n; o += L) {
    T a0 = vb;
    for (int t = 0; t < taps; ++t) a0 = V::fma(V::set1(w[t]), V::load(planes + tap[t] + o), a0);
    V::store(flat + o, V::min(V::max(a0, vlo), vhi));
  }
  for (int oy = 0; oy < s.OH; ++oy)
    std::memcpy(out + (ptrdiff_t)oy * s.OW, flat + (ptrdiff_t)oy * g.wq, sizeof(float) * s.OW);
}

}  // namespace edgesep::detail
