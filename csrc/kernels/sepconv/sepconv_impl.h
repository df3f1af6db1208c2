// The fused separable pair (ADaPT): a kh x 1 conv to K channels, then a 1 x kw conv to N, stride 1,
// for a band of output rows, without writing the K-channel intermediate to memory.
//
// Per band: the input rows it reads are copied, zero-padded on every side, into `band` (C planes of
// rows x WZ, WZ = W + PL + PR). Over flat pixel indices q = r * WZ + x the vertical pass is then a GEMM
// whose depth row (c, y) is band plane c shifted down y rows: a contiguous run, read in place. Its
// output z (K rows of the band's q, zeros exactly where the input was padding) stays in a small
// cache-resident buffer, and the horizontal pass is again a GEMM over the same flat q whose depth row
// (k, x) is z row k shifted by x. The kw - 1 columns per row that straddle two rows are computed and
// dropped when the band is copied out. Neither pass packs: both read their operand where it lies.
#pragma once
#include <cstring>

#include "../conv2d/conv2d_impl.h"
#include "../kernels.h"

namespace edgesep::detail {

// out[m0:m1 rows] over flat pixels [0, q) += W x B, depth = outer x inner, in blocks of about
// kGemmKC depth rows (whole `outer` units) so that a B tile is reused from L1 across the M panels.
template <class V, int NV>
inline void sep_gemm(int M, int outer, int inner, const float* w, const float* b, ptrdiff_t ld_outer,
                     ptrdiff_t ld_inner, float* c, ptrdiff_t ldc, int q, const float* bias, float lo, float hi) {
  constexpr int NR = NV * V::N;
  // Depth blocks of ~128 rows: read in place, a B tile spans more cache lines than a packed one.
  const int depth = outer * inner, ob = 128 / inner > 0 ? 128 / inner : 1;
  for (int o0 = 0; o0 < outer; o0 += ob) {
    const int on = outer - o0 < ob ? outer - o0 : ob;
    for (int j = 0; j < q; j += NR) {
      const int nr = q - j < NR ? q - j : NR;
      for (int m = 0; m < M; m += kGemmMR) {
        const int mr = M - m < kGemmMR ? M - m : kGemmMR;
        const float* a = w + (ptrdiff_t)(m / kGemmMR) * depth * kGemmMR + (ptrdiff_t)o0 * inner * kGemmMR;
        gemm_ukernel<V, NV>(on, inner, a, b + o0 * ld_outer + j, ld_outer, ld_inner, c + (ptrdiff_t)m * ldc + j, ldc,
                           mr, nr, bias ? bias + m : nullptr, o0 == 0, o0 + on >= outer, lo, hi);
      }
    }
  }
}

template <class V, int NV>
void sepconv_band(const SepShape& s, const float* in, const float* vw, const float* hw, const float* bias, float* out,
                  int oy0, int rows, float lo, float hi, float* scratch) {
  constexpr int NR = NV * V::N;
  const SepLayout g = sepconv_layout(s, NR, rows);
  float* band = scratch;
  float* z = band + g.band;
  float* o = z + g.z;
  // The input rows the band reads, zero-padded: plane c holds rows + KH - 1 rows of WZ.
  const int in_rows = rows + s.KH - 1;
  for (int c = 0; c < s.C; ++c)
    for (int r = 0; r < in_rows; ++r) {
      float* d = band + (ptrdiff_t)c * g.plane + (ptrdiff_t)r * g.wz;
      const int iy = oy0 - s.PT + r;
      if (iy < 0 || iy >= s.H) {
        std::memset(d, 0, sizeof(float) * g.wz);
        continue;
      }
      std::memset(d, 0, sizeof(float) * s.PL);
      std::memcpy(d + s.PL, in + ((ptrdiff_t)c * s.H + iy) * s.W, sizeof(float) * s.W);
      std::memset(d + s.PL + s.W, 0, sizeof(float) * s.PR);
    }
  std::memset(band + (ptrdiff_t)s.C * g.plane, 0, sizeof(float) * (g.band - (ptrdiff_t)s.C * g.plane));
  const int q = rows * g.wz;
  sep_gemm<V, NV>(s.K, s.C, s.KH, vw, band, g.plane, g.wz, z, g.zrow, q, nullptr, -__builtin_inff(), __builtin_inff());
  // Past q, z rows are only read by the horizontal pass's dropped columns: zero them, so that no
  // stale value (a denormal, a NaN) slows or taints anything.
  for (int k = 0; k < s.K; ++k) std::memset(z + (ptrdiff_t)k * g.zrow + q, 0, sizeof(float) * (g.zrow - q));
  sep_gemm<V, NV>(s.N, s.K, s.KW, hw, z, g.zrow, 1, o, g.orow, q, bias, lo, hi);
  const int ow = s.OW();
  for (int n = 0; n < s.N; ++n)
    for (int r = 0; r < rows; ++r)
      std::memcpy(out + ((ptrdiff_t)n * s.OH() + oy0 + r) * ow, o + (ptrdiff_t)n * g.orow + (ptrdiff_t)r * g.wz,
                  sizeof(float) * ow);
}

}  // namespace edgesep::detail
