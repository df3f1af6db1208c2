// Scalar reference of the depthwise conv (one channel plane): direct loops in double.
#include "../kernels.h"

namespace edgesep {

DwLayout dwconv_layout(const ConvShape& s) {
  constexpr int kMaxLanes = 16;  // the widest vector of any variant
  DwLayout g;
  g.hp = (s.OH - 1) * s.SH + (s.KH - 1) * s.DH + 1;
  g.wp = (s.OW - 1) * s.SW + (s.KW - 1) * s.DW + 1;
  g.hq = (g.hp + s.SH - 1) / s.SH;
  g.wq = (g.wp + s.SW - 1) / s.SW;
  g.phases = s.SH * s.SW;
  // The last vectors read up to a row and two vectors past the last row of a plane.
  g.plane = (ptrdiff_t)g.hq * g.wq + g.wq + 2 * kMaxLanes;
  g.taps_floats = (s.KH * s.KW + 15) / 16 * 16;
  g.row = g.wq * s.SW + kMaxLanes;
  g.flat = (ptrdiff_t)s.OH * g.wq + 2 * kMaxLanes;
  return g;
}

size_t dwconv_scratch_floats(const ConvShape& s) {
  const DwLayout g = dwconv_layout(s);
  return g.taps_floats + g.phases * g.plane + g.row + g.flat;
}

namespace ref {
void dwconv(const ConvShape& s, const float* in, const float* w, float bias, float* out, float lo, float hi,
            float*) {
  for (int oy = 0; oy < s.OH; ++oy)
    for (int ox = 0; ox < s.OW; ++ox) {
      double acc = bias;
      for (int ky = 0; ky < s.KH; ++ky)
        for (int kx = 0; kx < s.KW; ++kx) {
          const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
          if (iy >= 0 && iy < s.H && ix >= 0 && ix < s.W) acc += (double)w[ky * s.KW + kx] * in[iy * s.W + ix];
        }
      const float v = (float)acc;
      out[oy * s.OW + ox] = v < lo ? lo : (v > hi ? hi : v);
    }
}
}  // namespace ref

}  // namespace edgesep
