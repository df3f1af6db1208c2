// Scalar reference of the NHWC depthwise conv: direct loops in double.
#include "../kernels.h"

namespace edgesep::ref {

void dwconv_nhwc(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int oy1,
                 float lo, float hi) {
  for (int oy = oy0; oy < oy1; ++oy)
    for (int ox = 0; ox < s.OW; ++ox)
      for (int c = 0; c < s.C; ++c) {
        double acc = bias ? bias[c] : 0.0;
        for (int ky = 0; ky < s.KH; ++ky)
          for (int kx = 0; kx < s.KW; ++kx) {
            const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
            if (iy >= 0 && iy < s.H && ix >= 0 && ix < s.W)
              acc += (double)w[(ptrdiff_t)(ky * s.KW + kx) * s.C + c] * in[((ptrdiff_t)iy * s.W + ix) * s.C + c];
          }
        const float v = (float)acc;
        out[((ptrdiff_t)oy * s.OW + ox) * s.C + c] = v < lo ? lo : (v > hi ? hi : v);
      }
}

}  // namespace edgesep::ref
