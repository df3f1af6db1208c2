// Dense convolution as a GEMM, templated on the ISA's vector type.
// out[m, p] = sum_k W[m, k] * B[k, p], with B the im2col matrix of the input, never built whole:
// for a chunk of output pixels and a block of KC depth rows, pack_b() fills NR-wide panels of B
// (one im2col row at a time: a few long contiguous copies, then vector stores into the panels), and
// a kGemmMR x NR register tile (gemm_ukernel) sweeps each panel against the weight panels packed at
// compile time. conv_gemm does both in one task; conv_pack + conv_packed_gemm split them, so that
// threads can pack one shared B together and then divide the output channels (layers with few
// pixels and many channels). Panels are contiguous, so the tile's loads stay within a few pages (strided reads of
// B straight from the input or a row-major block cost more in TLB misses than packing does).
// Bias and the min/max clamp are fused into the tile's first and last depth block.
#pragma once
#include <cstring>

#include "../kernels.h"

namespace edgesep::detail {

// acc[r][:] += A[r] * b for the tile's rows r >= R (unrolled at compile time: the ISA's fma_a<R> may
// need R as a constant, e.g. a NEON lane).
template <class V, int NV, int R>
inline void fma_rows(typename V::T (&acc)[kGemmMR][NV], const typename V::T (&b)[NV], const typename V::ARow& a) {
  if constexpr (R < kGemmMR) {
    for (int v = 0; v < NV; ++v) acc[R][v] = V::template fma_a<R>(a, b[v], acc[R][v]);
    fma_rows<V, NV, R + 1>(acc, b, a);
  }
}

// The register tile: C[MR x NR] (+)= A x B over depth = n0 x n1 x n2 rows, B's depth row (i0, i1, i2)
// at b + i0 * ld0 + i1 * ld1 + i2 * ld2 (packed panels: 1 x 1 x kc rows NR apart; the direct and
// separable kernels read shifted rows of padded planes in place: channel x tap rows x tap columns).
// A: one weight panel, depth x MR, depth-major. mr, nr: the valid part of the tile. first: start from
// bias (or 0) instead of C; last: clamp to [lo, hi].
template <class V, int NV>
__attribute__((noinline)) void gemm_ukernel(int n0, int n1, int n2, const float* a, const float* b, ptrdiff_t ld0,
                                           ptrdiff_t ld1, ptrdiff_t ld2, float* c, ptrdiff_t ldc, int mr, int nr,
                                           const float* bias, bool first, bool last, float lo, float hi) {
  constexpr int NR = NV * V::N;
  constexpr int MR = kGemmMR;
  using T = typename V::T;
  T acc[MR][NV];
  alignas(64) float tile[MR * NR];
  const bool full = mr == MR && nr == NR;
  if (first) {
    for (int r = 0; r < MR; ++r) {
      const T init = (bias && r < mr) ? V::set1(bias[r]) : V::zero();
      for (int v = 0; v < NV; ++v) acc[r][v] = init;
    }
  } else {
    const float* src = c;
    ptrdiff_t ld = ldc;
    if (!full) {
      std::memset(tile, 0, sizeof(tile));
      for (int r = 0; r < mr; ++r) std::memcpy(tile + r * NR, c + r * ldc, sizeof(float) * nr);
      src = tile;
      ld = NR;
    }
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = V::load(src + r * ld + v * V::N);
  }
  for (int i0 = 0; i0 < n0; ++i0)
    for (int i1 = 0; i1 < n1; ++i1) {
      const float* bo = b + i0 * ld0 + i1 * ld1;
      for (int i2 = 0; i2 < n2; ++i2, a += MR) {
        T bv[NV];
        for (int v = 0; v < NV; ++v) bv[v] = V::load(bo + i2 * ld2 + v * V::N);
        fma_rows<V, NV, 0>(acc, bv, V::load_a(a));
      }
    }
  if (last) {
    const T vlo = V::set1(lo), vhi = V::set1(hi);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = V::min(V::max(acc[r][v], vlo), vhi);
  }
  if (full) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * V::N, acc[r][v]);
  } else {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) V::store(tile + r * NR + v * V::N, acc[r][v]);
    for (int r = 0; r < mr; ++r) std::memcpy(c + r * ldc, tile + r * NR, sizeof(float) * nr);
  }
}

// out[0:M rows] over flat pixels [0, q) = W x B (+ bias, clamped), depth = n0 x n1 x n2 rows addressed
// as gemm_ukernel does; in blocks of about 128 depth rows (whole n0 units) so that a B tile, read in
// place (it spans more cache lines than a packed one), is reused from L1 across the M panels.
// accumulate: add to out instead of starting from the bias; finish: clamp (a product summed over
// several calls starts with the first and clamps in the last).
template <class V, int NV>
inline void band_gemm(int M, int n0, int n1, int n2, const float* w, const float* b, ptrdiff_t ld0, ptrdiff_t ld1,
                      ptrdiff_t ld2, float* c, ptrdiff_t ldc, int q, const float* bias, float lo, float hi,
                      bool accumulate = false, bool finish = true) {
  constexpr int NR = NV * V::N;
  const int unit = n1 * n2, depth = n0 * unit, ob = 128 / unit > 0 ? 128 / unit : 1;
  for (int o0 = 0; o0 < n0; o0 += ob) {
    const int on = n0 - o0 < ob ? n0 - o0 : ob;
    for (int j = 0; j < q; j += NR) {
      const int nr = q - j < NR ? q - j : NR;
      for (int m = 0; m < M; m += kGemmMR) {
        const int mr = M - m < kGemmMR ? M - m : kGemmMR;
        const float* a = w + (ptrdiff_t)(m / kGemmMR) * depth * kGemmMR + (ptrdiff_t)o0 * unit * kGemmMR;
        gemm_ukernel<V, NV>(on, n1, n2, a, b + o0 * ld0 + j, ld0, ld1, ld2, c + (ptrdiff_t)m * ldc + j, ldc, mr, nr,
                            bias ? bias + m : nullptr, !accumulate && o0 == 0, finish && o0 + on >= n0, lo, hi);
      }
    }
  }
}

// Copies input rows y0, y0 + step, ... (`rows` of them) of C planes (H x W) into planes of `rows` x wz
// at dst (plane floats apart), each row as pl zeros | the input row | zeros; rows outside the input are
// zeros. (Templated on V only so that each ISA's translation unit keeps its own copy.)
template <class V>
inline void copy_band(const float* in, int C, int H, int W, int y0, int rows, int pl, int wz, ptrdiff_t plane,
                      float* dst, int step = 1) {
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < rows; ++r) {
      float* d = dst + (ptrdiff_t)c * plane + (ptrdiff_t)r * wz;
      const int iy = y0 + r * step;
      if (iy < 0 || iy >= H) {
        std::memset(d, 0, sizeof(float) * wz);
        continue;
      }
      std::memset(d, 0, sizeof(float) * pl);
      std::memcpy(d + pl, in + ((ptrdiff_t)c * H + iy) * W, sizeof(float) * W);
      std::memset(d + pl + W, 0, sizeof(float) * (wz - pl - W));
    }
}

// Writes row k of the im2col matrix for pixels [p0, p0+np) into dst. Pixels of one output row read
// one input row at a fixed stride: a bounds split (zeros | copy | zeros) per output row, no
// per-element check.
template <class V>
inline void im2col_row(const ConvShape& s, const float* in, int k, int p0, int np, float* dst) {
  const int taps = s.KH * s.KW, c = k / taps, t = k - c * taps, ky = t / s.KW, kx = t - ky * s.KW;
  const float* plane = in + (ptrdiff_t)c * s.H * s.W;
  for (int i = 0; i < np;) {
    const int p = p0 + i, oy = p / s.OW, ox = p - oy * s.OW;
    const int len = s.OW - ox < np - i ? s.OW - ox : np - i;
    float* o = dst + i;
    i += len;
    const int iy = oy * s.SH - s.PT + ky * s.DH, x0 = ox * s.SW - s.PL + kx * s.DW;
    if ((unsigned)iy >= (unsigned)s.H) {
      std::memset(o, 0, sizeof(float) * len);
      continue;
    }
    const float* row = plane + (ptrdiff_t)iy * s.W + x0;
    // Outputs q in [lo, hi) read inside the row: 0 <= x0 + q*SW < W.
    int lo = x0 >= 0 ? 0 : (-x0 + s.SW - 1) / s.SW;
    int hi = x0 >= s.W ? 0 : (s.W - x0 + s.SW - 1) / s.SW;
    lo = lo < len ? lo : len;
    hi = hi < len ? (hi > lo ? hi : lo) : len;
    for (int q = 0; q < lo; ++q) o[q] = 0.f;
    if (s.SW == 1) {
      std::memcpy(o + lo, row + lo, sizeof(float) * (hi - lo));
    } else {
      for (int q = lo; q < hi; ++q) o[q] = row[q * s.SW];
    }
    for (int q = hi; q < len; ++q) o[q] = 0.f;
  }
}

// Packs rows [k0, k0+kc) of B for pixels [p0, p0+np) into panels of NR pixels: row k of panel j at
// dst + j * panel_stride + (k - k0) * NR, zero-padded past np. `row`: np (rounded up to NR) floats of
// scratch. A 1x1, stride-1, unpadded conv's B rows are input rows as they are.
template <class V, int NV>
inline void pack_b(const ConvShape& s, const float* in, int k0, int kc, int p0, int np, float* row, float* dst,
                   ptrdiff_t panel_stride) {
  constexpr int NR = NV * V::N;
  const bool direct = s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && s.PT == 0 && s.PL == 0;
  const int full = np / NR, rest = np - full * NR;
  for (int k = 0; k < kc; ++k) {
    const float* src = in + (ptrdiff_t)(k0 + k) * s.P() + p0;
    if (!direct) {
      im2col_row<V>(s, in, k0 + k, p0, np, row);
      src = row;
    }
    float* d = dst + (ptrdiff_t)k * NR;
    for (int j = 0; j < full; ++j, d += panel_stride)
      for (int v = 0; v < NV; ++v) V::store(d + v * V::N, V::load(src + j * NR + v * V::N));
    if (rest) {
      for (int q = 0; q < rest; ++q) d[q] = src[full * NR + q];
      for (int q = rest; q < NR; ++q) d[q] = 0.f;
    }
  }
}

// Output channels [m_begin, m_end) x pixels [p0, p0+np) += W[:, k0:k0+kc] x B[k0:k0+kc, :], B packed as
// pack_b leaves it (panel j at b + j * panel_stride). first/last: this is the first/last depth block.
template <class V, int NV>
inline void gemm_block(const ConvShape& s, const float* w, const float* bias, const float* b, ptrdiff_t panel_stride,
                       float* out, int p0, int np, int m_begin, int m_end, int k0, int kc, bool first, bool last,
                       float lo, float hi) {
  constexpr int NR = NV * V::N;
  const int K = s.K(), P = s.P();
  for (int m0 = m_begin; m0 < m_end; m0 += kGemmMC) {
    const int m1 = m_end - m0 < kGemmMC ? m_end : m0 + kGemmMC;
    for (int j = 0; j * NR < np; ++j) {
      const int nr = np - j * NR < NR ? np - j * NR : NR;
      for (int m = m0; m < m1; m += kGemmMR) {
        const int mr = m1 - m < kGemmMR ? m1 - m : kGemmMR;
        const float* a = w + (ptrdiff_t)(m / kGemmMR) * K * kGemmMR + (ptrdiff_t)k0 * kGemmMR;
        gemm_ukernel<V, NV>(1, 1, kc, a, b + j * panel_stride, 0, 0, NR, out + (ptrdiff_t)m * P + p0 + j * NR, P, mr,
                            nr, bias ? bias + m : nullptr, first, last, lo, hi);
      }
    }
  }
}

// The whole conv tile in one task: per depth block, pack (L2-sized) then multiply.
template <class V, int NV>
void conv_gemm(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int p0,
               int p1, int m_begin, int m_end, float lo, float hi, float* scratch) {
  constexpr int NR = NV * V::N;
  const int K = s.K(), np = p1 - p0;
  float* row = scratch;
  float* panels = scratch + (np + NR - 1) / NR * NR;
  for (int k0 = 0; k0 < K; k0 += kGemmKC) {
    const int kc = K - k0 < kGemmKC ? K - k0 : kGemmKC;
    pack_b<V, NV>(s, in, k0, kc, p0, np, row, panels, (ptrdiff_t)kc * NR);
    gemm_block<V, NV>(s, w, bias, panels, (ptrdiff_t)kc * NR, out, p0, np, m_begin, m_end, k0, kc, k0 == 0,
                      k0 + kc >= K, lo, hi);
  }
}

// Rows [k0, k1) of B for pixels [p0, p1), into a buffer that holds all K rows of each panel
// (conv_packed_size floats): threads pack disjoint row ranges of one shared buffer.
template <class V, int NV>
void conv_pack(const ConvShape& s, const float* in, int p0, int p1, int k0, int k1, float* packed, float* row) {
  constexpr int NR = NV * V::N;
  pack_b<V, NV>(s, in, k0, k1 - k0, p0, p1 - p0, row, packed + (ptrdiff_t)k0 * NR, (ptrdiff_t)s.K() * NR);
}

// conv_gemm's multiply, from a buffer conv_pack filled with all K rows.
template <class V, int NV>
void conv_packed_gemm(const ConvShape& s, const float* packed, const float* w, const float* bias, float* out,
                      int p0, int p1, int m_begin, int m_end, float lo, float hi) {
  constexpr int NR = NV * V::N;
  const int K = s.K();
  for (int k0 = 0; k0 < K; k0 += kGemmKC) {
    const int kc = K - k0 < kGemmKC ? K - k0 : kGemmKC;
    gemm_block<V, NV>(s, w, bias, packed + (ptrdiff_t)k0 * NR, (ptrdiff_t)K * NR, out, p0, p1 - p0, m_begin, m_end,
                      k0, kc, k0 == 0, k0 + kc >= K, lo, hi);
  }
}

// A stride-1 conv (any kernel, dilation, padding) without im2col: output rows [oy0, oy0 + rows),
// channels [m0, m1). The band's input rows are copied, zero-padded, into planes of WZ = W + PL + PR
// columns; over flat pixels q = r * WZ + x, depth row (c, ky, kx) is then plane c shifted by
// ky * DH * WZ + kx * DW: read in place, so the packing cost is one copy of the input band instead of
// KH * KW copies. The columns straddling two rows are computed and dropped in the copy-out.
template <class V, int NV>
void conv_direct(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int rows,
                 int m0, int m1, float lo, float hi, float* scratch) {
  constexpr int NR = NV * V::N;
  const DirectLayout g = conv_direct_layout(s, NR, rows);
  float* band = scratch;
  float* o = band + g.band;
  copy_band<V>(in, s.C, s.H, s.W, oy0 - s.PT, g.rows_in, s.PL, g.wz, g.plane, band);
  std::memset(band + (ptrdiff_t)s.C * g.plane, 0, sizeof(float) * (g.band - (ptrdiff_t)s.C * g.plane));
  band_gemm<V, NV>(m1 - m0, s.C, s.KH, s.KW, w + (ptrdiff_t)(m0 / kGemmMR) * s.K() * kGemmMR, band, g.plane,
                   (ptrdiff_t)s.DH * g.wz, s.DW, o, g.orow, rows * g.wz, bias ? bias + m0 : nullptr, lo, hi);
  for (int m = m0; m < m1; ++m)
    for (int r = 0; r < rows; ++r)
      std::memcpy(out + (ptrdiff_t)m * s.P() + (ptrdiff_t)(oy0 + r) * s.OW,
                  o + (ptrdiff_t)(m - m0) * g.orow + (ptrdiff_t)r * g.wz, sizeof(float) * s.OW);
}

}  // namespace edgesep::detail
