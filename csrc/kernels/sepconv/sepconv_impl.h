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

template <class V, int NV>
void sepconv_band(const SepShape& s, const float* in, const float* vw, const float* hw, const float* bias, float* out,
                  int oy0, int rows, float lo, float hi, float* scratch) {
  constexpr int NR = NV * V::N;
  const SepLayout g = sepconv_layout(s, NR, rows);
  float* band = scratch;
  float* z = band + g.band;
  float* o = z + g.z;
  // The input rows the band reads, zero-padded: plane c holds rows + KH - 1 rows of WZ.
  copy_band<V>(in, s.C, s.H, s.W, oy0 - s.PT, rows + s.KH - 1, s.PL, g.wz, g.plane, band);
  std::memset(band + (ptrdiff_t)s.C * g.plane, 0, sizeof(float) * (g.band - (ptrdiff_t)s.C * g.plane));
  const int q = rows * g.wz;
  band_gemm<V, NV>(s.K, s.C, 1, s.KH, vw, band, g.plane, 0, g.wz, z, g.zrow, q, nullptr, -__builtin_inff(),
                   __builtin_inff());
  // Past q, z rows are only read by the horizontal pass's dropped columns: zero them, so that no
  // stale value (a denormal, a NaN) slows or taints anything.
  for (int k = 0; k < s.K; ++k) std::memset(z + (ptrdiff_t)k * g.zrow + q, 0, sizeof(float) * (g.zrow - q));
  band_gemm<V, NV>(s.N, s.K, 1, s.KW, hw, z, g.zrow, 0, 1, o, g.orow, q, bias, lo, hi);
  const int ow = s.OW();
  for (int n = 0; n < s.N; ++n)
    for (int r = 0; r < rows; ++r)
      std::memcpy(out + ((ptrdiff_t)n * s.OH() + oy0 + r) * ow, o + (ptrdiff_t)n * g.orow + (ptrdiff_t)r * g.wz,
                  sizeof(float) * ow);
}

}  // namespace edgesep::detail
