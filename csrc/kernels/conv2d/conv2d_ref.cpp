// Scalar reference of the dense conv: direct loops in double, the oracle every variant is tested
// against. Reads the packed weight layout by index arithmetic (panels of kGemmMR output channels).
#include "../kernels.h"

namespace edgesep {

size_t conv_scratch_floats(const ConvShape& s, int nr, int max_pixels) {
  const size_t np_pad = (size_t)(max_pixels + nr - 1) / nr * nr;
  const size_t kc = s.K() < kGemmKC ? s.K() : kGemmKC;
  return (kc + 1) * np_pad;  // packed panels + one im2col row
}

size_t conv_packed_floats(const ConvShape& s, int nr, int pixels) {
  return (size_t)(pixels + nr - 1) / nr * nr * s.K();
}

DirectLayout conv_direct_layout(const ConvShape& s, int nr, int rows) {
  DirectLayout g;
  const int pr = (s.OW - 1) + (s.KW - 1) * s.DW + 1 - s.W - s.PL;  // right padding the output reads
  g.wz = s.W + s.PL + (pr > 0 ? pr : 0);
  g.rows_in = rows + (s.KH - 1) * s.DH;
  g.plane = (ptrdiff_t)g.rows_in * g.wz;
  g.orow = ((ptrdiff_t)rows * g.wz + nr - 1) / nr * nr;
  g.band = s.C * g.plane + (s.KW - 1) * s.DW + 2 * nr;
  return g;
}

size_t conv_direct_floats(const ConvShape& s, int nr, int rows, int channels) {
  const DirectLayout g = conv_direct_layout(s, nr, rows);
  return g.band + (size_t)channels * g.orow;
}

namespace ref {
void conv_gemm(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int p0,
               int p1, int m0, int m1, float lo, float hi, float*) {
  const int K = s.K(), P = s.P();
  for (int m = m0; m < m1; ++m) {
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
// The reference "packs" B as the plain im2col matrix [K][pixels] (its gemm_nr is 1).
void conv_pack(const ConvShape& s, const float* in, int p0, int p1, int k0, int k1, float* packed, float*) {
  const int np = p1 - p0;
  for (int k = k0; k < k1; ++k) {
    const int c = k / (s.KH * s.KW), ky = k / s.KW % s.KH, kx = k % s.KW;
    for (int i = 0; i < np; ++i) {
      const int p = p0 + i, oy = p / s.OW, ox = p % s.OW;
      const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
      const bool inside = iy >= 0 && iy < s.H && ix >= 0 && ix < s.W;
      packed[(ptrdiff_t)k * np + i] = inside ? in[((ptrdiff_t)c * s.H + iy) * s.W + ix] : 0.f;
    }
  }
}

void conv_packed_gemm(const ConvShape& s, const float* packed, const float* w, const float* bias, float* out, int p0,
                      int p1, int m0, int m1, float lo, float hi) {
  const int K = s.K(), np = p1 - p0;
  for (int m = m0; m < m1; ++m) {
    const float* wm = w + (ptrdiff_t)(m / kGemmMR) * K * kGemmMR + m % kGemmMR;
    for (int i = 0; i < np; ++i) {
      double acc = bias ? bias[m] : 0.0;
      for (int k = 0; k < K; ++k) acc += (double)wm[(ptrdiff_t)k * kGemmMR] * packed[(ptrdiff_t)k * np + i];
      const float v = (float)acc;
      out[(ptrdiff_t)m * s.P() + p0 + i] = v < lo ? lo : (v > hi ? hi : v);
    }
  }
}
// Output rows [oy0, oy0 + rows) are the pixels [oy0 * OW, (oy0 + rows) * OW): the same loops.
void conv_direct(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int rows,
                 int m0, int m1, float lo, float hi, float* scratch) {
  conv_gemm(s, in, w, bias, out, oy0 * s.OW, (oy0 + rows) * s.OW, m0, m1, lo, hi, scratch);
}
}  // namespace ref

}  // namespace edgesep
