// Scalar reference of the dense conv: direct loops in double, the oracle every variant is tested
// against. Reads the packed weight layout by index arithmetic (panels of kGemmMR output channels).
#include "../kernels.h"

namespace edgesep {

size_t conv_scratch_floats(const ConvShape& s, int nr, int max_pixels) {
  const size_t np_pad = (size_t)(max_pixels + nr - 1) / nr * nr;
  const size_t kc = s.K() < kGemmKC ? s.K() : kGemmKC;
  return (kc + 1) * np_pad;  // packed panels + one im2col row
}

namespace ref {
void conv_gemm(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int p0,
               int p1, float lo, float hi, float*) {
  const int K = s.K(), P = s.P();
  for (int m = 0; m < s.N; ++m) {
    const float* wm = w + (ptrdiff_t)(m / kGemmMR) * K * kGemmMR + m % kGemmMR;
    for (int p = p0; p < p1; ++p) {
      const int oy = p / s.OW, ox = p % s.OW;
      double acc = bias ? bias[m] : 0.0;
      for (int c = 0; c < s.C; ++c)
        for (int ky = 0; ky < s.KH; ++ky)
          for (int kx = 0; kx < s.KW; ++kx) {
            const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
            if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
            const int k = (c * s.KH + ky) * s.KW + kx;
            acc += (double)wm[(ptrdiff_t)k * kGemmMR] * in[((ptrdiff_t)c * s.H + iy) * s.W + ix];
          }
      const float v = (float)acc;
      out[(ptrdiff_t)m * P + p] = v < lo ? lo : (v > hi ? hi : v);
    }
  }
}
}  // namespace ref

}  // namespace edgesep
