// Scalar reference of the fused separable pair: the intermediate computed whole, in double.
#include <vector>

#include "../kernels.h"

namespace edgesep {

SepLayout sepconv_layout(const SepShape& s, int nr, int rows) {
  SepLayout g;
  g.wz = s.W + s.PL + s.PR;
  const ptrdiff_t q = (ptrdiff_t)rows * g.wz, q_pad = (q + nr - 1) / nr * nr;
  g.plane = (ptrdiff_t)(rows + s.KH - 1) * g.wz;
  g.band = s.C * g.plane + q_pad + nr;  // the last depth row's tile reads up to a tile past the band
  g.zrow = q_pad + s.KW + nr;           // the horizontal pass reads z rows shifted by up to KW - 1
  g.z = s.K * g.zrow;
  g.orow = q_pad;
  g.o = s.N * g.orow;
  return g;
}

size_t sepconv_scratch_floats(const SepShape& s, int nr, int rows) {
  const SepLayout g = sepconv_layout(s, nr, rows);
  return g.band + g.z + g.o;
}

namespace ref {
void sepconv(const SepShape& s, const float* in, const float* v, const float* h, const float* bias, float* out,
             int oy0, int rows, float lo, float hi, float*) {
  const int wz = s.W + s.PL + s.PR, ow = s.OW(), dv = s.C * s.KH, dh = s.K * s.KW;
  std::vector<double> z((size_t)s.K * rows * wz, 0.0);  // vertical output over the padded width
  for (int k = 0; k < s.K; ++k)
    for (int r = 0; r < rows; ++r)
      for (int x = 0; x < s.W; ++x) {
        double acc = 0;
        for (int c = 0; c < s.C; ++c)
          for (int y = 0; y < s.KH; ++y) {
            const int iy = oy0 + r - s.PT + y;
            if (iy < 0 || iy >= s.H) continue;
            const float wv = v[((size_t)(k / kGemmMR) * dv + c * s.KH + y) * kGemmMR + k % kGemmMR];
            acc += (double)wv * in[((size_t)c * s.H + iy) * s.W + x];
          }
        z[((size_t)k * rows + r) * wz + s.PL + x] = acc;
      }
  for (int n = 0; n < s.N; ++n)
    for (int r = 0; r < rows; ++r)
      for (int ox = 0; ox < ow; ++ox) {
        double acc = bias ? bias[n] : 0.0;
        for (int k = 0; k < s.K; ++k)
          for (int x = 0; x < s.KW; ++x) {
            const float wh = h[((size_t)(n / kGemmMR) * dh + k * s.KW + x) * kGemmMR + n % kGemmMR];
            acc += wh * z[((size_t)k * rows + r) * wz + ox + x];
          }
        const float val = (float)acc;
        out[((size_t)n * s.OH() + oy0 + r) * ow + ox] = val < lo ? lo : (val > hi ? hi : val);
      }
}
}  // namespace ref

}  // namespace edgesep
