// Scalar reference of the fused separable pair: the intermediate computed whole, in double.
#include <vector>

#include "../kernels.h"

namespace edgesep {

SepLayout sepconv_layout(const SepShape& s, int nr, int rows) {
  SepLayout g;
  g.wz = s.W + s.PL + s.PR;
  g.wq = (g.wz + s.SW - 1) / s.SW;
  g.rp = rows + (s.KH - 1) / s.SH;
  auto pad = [nr](ptrdiff_t q) { return (q + nr - 1) / nr * nr; };
  const ptrdiff_t qv = pad((ptrdiff_t)rows * g.wz), q = pad((ptrdiff_t)rows * g.wq);
  g.pp = (ptrdiff_t)g.rp * g.wz;
  g.chan = s.SH * g.pp;
  g.band = s.C * g.chan + qv + nr;  // the last plane's tiles read up to a tile past it
  g.zvrow = qv + s.KW + nr;         // the horizontal pass (SW = 1) reads zv rows shifted by up to KW - 1
  g.zv = s.K * g.zvrow;
  g.zph = s.SW > 1 ? q + s.KW + nr : 0;
  g.zrow = s.SW > 1 ? s.SW * g.zph : g.zvrow;
  g.z = s.SW > 1 ? s.K * g.zrow : 0;
  g.orow = q;
  g.o = s.N * g.orow;
  return g;
}

size_t sepconv_scratch_floats(const SepShape& s, int nr, int rows) {
  const SepLayout g = sepconv_layout(s, nr, rows);
  return g.band + g.zv + g.z + g.o;
}

namespace ref {
void sepconv(const SepShape& s, const float* in, const float* v, const float* h, const float* bias, float* out,
             int oy0, int rows, float lo, float hi, float*) {
  const int wz = s.W + s.PL + s.PR, ow = s.OW();
  std::vector<double> z((size_t)s.K * rows * wz, 0.0);  // vertical output over the padded width
  for (int k = 0; k < s.K; ++k)
    for (int r = 0; r < rows; ++r)
      for (int x = 0; x < s.W; ++x) {
        double acc = 0;
        for (int c = 0; c < s.C; ++c)
          for (int y = 0; y < s.KH; ++y) {
            const int iy = (oy0 + r) * s.SH - s.PT + y;
            if (iy < 0 || iy >= s.H) continue;
            const float wv = v[sep_weight_index(s.K, s.C, s.KH, s.SH, k, c, y)];
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
            const float wh = h[sep_weight_index(s.N, s.K, s.KW, s.SW, n, k, x)];
            acc += wh * z[((size_t)k * rows + r) * wz + ox * s.SW + x];
          }
        const float val = (float)acc;
        out[((size_t)n * s.OH() + oy0 + r) * ow + ox] = val < lo ? lo : (val > hi ? hi : val);
      }
}
}  // namespace ref

}  // namespace edgesep
