// Scalar reference of the NHWC indirect-GEMM conv: direct loops in double over the offset table.
#include <cstdint>

#include "../kernels.h"

namespace edgesep {

bool igemm_offsets(const ConvShape& s, int64_t ldi, int32_t* ind) {
  if ((int64_t)s.H * s.W * ldi > INT32_MAX) return false;
  for (int oy = 0; oy < s.OH; ++oy)
    for (int ox = 0; ox < s.OW; ++ox)
      for (int ky = 0; ky < s.KH; ++ky)
        for (int kx = 0; kx < s.KW; ++kx) {
          const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
          *ind++ = iy >= 0 && iy < s.H && ix >= 0 && ix < s.W ? (int32_t)(((int64_t)iy * s.W + ix) * ldi) : -1;
        }
  return true;
}

namespace ref {

void igemm(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
           const float* bias, const float* sum, float* out, int p0, int p1, int n0, int n1, float lo, float hi) {
  for (int p = p0; p < p1; ++p)
    for (int n = n0; n < n1; ++n) {
      const float* panel = w + (ptrdiff_t)(n / kPanelNC) * s.taps * s.C * kPanelNC + n % kPanelNC;
      double acc = (bias ? bias[n] : 0.0) + (sum ? sum[(ptrdiff_t)p * s.ldo + n] : 0.0);
      for (int t = 0; t < s.taps; ++t) {
        const int32_t off = ind[(ptrdiff_t)p * s.taps + t];
        const float* x = off < 0 ? zero : in + off;
        for (int c = 0; c < s.C; ++c) acc += (double)x[c] * panel[((ptrdiff_t)t * s.C + c) * kPanelNC];
      }
      const float v = (float)acc;
      out[(ptrdiff_t)p * s.ldo + n] = v < lo ? lo : (v > hi ? hi : v);
    }
}

}  // namespace ref

}  // namespace edgesep
