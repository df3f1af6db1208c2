// Scalar reference of the depthwise conv (one channel plane): direct loops in double.
#include "../kernels.h"

namespace edgesep {

size_t dwconv_scratch_floats(const ConvShape& s) {
  const size_t hp = (size_t)(s.OH - 1) * s.SH + (size_t)(s.KH - 1) * s.DH + 1;
  const size_t wp = (size_t)(s.OW - 1) * s.SW + (size_t)(s.KW - 1) * s.DW + 1;
  const size_t wq = (wp + s.SW - 1) / s.SW + 16;  // + one vector of slack per row
  return s.KH * s.KW + s.SW * hp * wq;  // tap offsets + phase planes
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
