// The fused separable pair (ADaPT): a kh x 1 conv to K channels at vertical stride SH, then a 1 x kw
// conv to N at horizontal stride SW, for a band of output rows, without writing the K-channel
// intermediate to memory.
//
// Per band: the input rows it reads are copied, zero-padded on every side, into SH row-phase planes
// per channel: plane (c, py) holds the padded input's rows oy0 * SH + py + SH * i, wz = W + PL + PR
// wide (stride 1: one plane, the band's padded rows as they are). Over flat indices q = r * wz + x,
// vertical tap ky is then plane (c, ky % SH) shifted down ky / SH rows: a contiguous run, read in
// place, so the vertical pass is one GEMM per row phase, summed (its weights are stored phase by
// phase). Its output zv (K rows, zeros exactly where the input was padding) stays in a small
// cache-resident buffer. At SW = 1 the horizontal pass is a GEMM over the same flat q whose depth row
// (k, x) is zv row k shifted by x; at SW > 1 zv is first dealt to column phases (z: phase px of a row
// holds its columns px + SW * j, wq = ceil(wz / SW) of them; K rows, so far fewer values than the
// input has), and the horizontal pass is one GEMM per column phase over q = r * wq + j, whose depth
// row (k, j) - tap px + SW * j - is z row k's phase px shifted by j. The columns per row past the
// output width are computed and dropped when the band is copied out. Neither pass packs, and neither
// computes a value the stride discards.
#pragma once
#include <cstring>

#include "../conv2d/conv2d_impl.h"
#include "../kernels.h"

namespace edgesep::detail {

// zv's rows (rows x wz each) dealt to SW column phases of wq (see above). A row's columns past wz
// (where wz is not a multiple of SW) take the next row's first values: only dropped outputs read them.
inline void deal_columns(const SepShape& s, const SepLayout& g, const float* zv, int rows, float* z) {
  const int wq = g.wq, wz = g.wz, sw = s.SW;
  for (int k = 0; k < s.K; ++k)
    for (int r = 0; r < rows; ++r) {
      const float* __restrict src = zv + k * g.zvrow + (ptrdiff_t)r * wz;
      float* __restrict d = z + k * g.zrow + (ptrdiff_t)r * wq;
      if (sw == 2) {  // one pass the compiler vectorises (an even/odd shuffle)
        float* __restrict d1 = d + g.zph;
        for (int j = 0; j < wq; ++j) {
          d[j] = src[2 * j];
          d1[j] = src[2 * j + 1];
        }
      } else {
        for (int px = 0; px < sw; ++px)
          for (int j = 0; j < wq; ++j) d[px * g.zph + j] = src[sw * j + px];
      }
    }
}

template <class V, int NV>
void sepconv_band(const SepShape& s, const float* in, const float* vw, const float* hw, const float* bias, float* out,
                  int oy0, int rows, float lo, float hi, float* scratch) {
  constexpr int NR = NV * V::N;
  constexpr float inf = __builtin_inff();
  const SepLayout g = sepconv_layout(s, NR, rows);
  float* band = scratch;
  float* zv = band + g.band;
  float* o = zv + g.zv + g.z;
  // Row phase py: padded rows oy0 * SH + py + SH * i (see above); each channel's SH planes chan apart.
  for (int py = 0; py < s.SH; ++py)
    copy_band<V>(in, s.C, s.H, s.W, oy0 * s.SH + py - s.PT, g.rp, s.PL, g.wz, g.chan, band + py * g.pp, s.SH);
  std::memset(band + (ptrdiff_t)s.C * g.chan, 0, sizeof(float) * (g.band - (ptrdiff_t)s.C * g.chan));
  const ptrdiff_t kpanels = (s.K + kGemmMR - 1) / kGemmMR * kGemmMR, npanels = (s.N + kGemmMR - 1) / kGemmMR * kGemmMR;
  const int last_py = (s.KH < s.SH ? s.KH : s.SH) - 1, last_px = (s.KW < s.SW ? s.KW : s.SW) - 1;
  const int qv = rows * g.wz, q = rows * g.wq;
  const float* w = vw;
  for (int py = 0; py <= last_py; ++py) {
    const int taps = sep_phase_taps(s.KH, s.SH, py);
    band_gemm<V, NV>(s.K, s.C, 1, taps, w, band + py * g.pp, g.chan, 0, g.wz, zv, g.zvrow, qv, nullptr, -inf, inf,
                     py > 0, py == last_py);
    w += kpanels * s.C * taps;
  }
  // Past the band's values, rows are only read by dropped columns: zero them, so that no stale value
  // (a denormal, a NaN) slows or taints anything.
  for (int k = 0; k < s.K; ++k) std::memset(zv + (ptrdiff_t)k * g.zvrow + qv, 0, sizeof(float) * (g.zvrow - qv));
  float* z = zv;
  if (s.SW > 1) {
    z = zv + g.zv;
    deal_columns(s, g, zv, rows, z);
    for (int k = 0; k < s.K; ++k)
      for (int px = 0; px < s.SW; ++px)
        std::memset(z + (ptrdiff_t)k * g.zrow + px * g.zph + q, 0, sizeof(float) * (g.zph - q));
  }
  w = hw;
  for (int px = 0; px <= last_px; ++px) {  // (at SW = 1, px is 0 and g.zph 0)
    const int taps = sep_phase_taps(s.KW, s.SW, px);
    band_gemm<V, NV>(s.N, s.K, 1, taps, w, z + px * g.zph, g.zrow, 0, 1, o, g.orow, q, bias, lo, hi, px > 0,
                     px == last_px);
    w += npanels * s.K * taps;
  }
  const int ow = s.OW();
  for (int n = 0; n < s.N; ++n)
    for (int r = 0; r < rows; ++r)
      std::memcpy(out + ((ptrdiff_t)n * s.OH() + oy0 + r) * ow, o + (ptrdiff_t)n * g.orow + (ptrdiff_t)r * g.wq,
                  sizeof(float) * ow);
}

}  // namespace edgesep::detail
