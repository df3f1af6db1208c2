// Dense convolution as a packed GEMM, templated on the ISA's vector type.
// out[m, p] = sum_k W[m, k] * B[k, p], with B the im2col matrix of the input, never built whole:
// a KC x (pixel chunk) block of it is gathered straight into NR-wide panels (pack_b), and a
// kGemmMR x NR register tile (gemm_ukernel) sweeps it against the pre-packed weight panels.
// Bias and the min/max clamp are fused into the tile's first and last depth block.
#pragma once
#include <cstring>

#include "../kernels.h"

namespace edgesep::detail {

template <class V, int NV>
inline void gemm_ukernel(int kc, const float* a, const float* b, float* c, ptrdiff_t ldc, int mr, int nr,
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
  for (int k = 0; k < kc; ++k) {
    T bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + k * NR + v * V::N);
    for (int r = 0; r < MR; ++r) {
      const T ar = V::set1(a[k * MR + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(ar, bv[v], acc[r][v]);
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

// Gathers rows [k0, k0+kc) of the im2col matrix for pixels [p0, p0+np) into panels of NR pixels:
// panel j holds kc rows of NR values. iy0/ix0: per pixel, top-left input coordinate of its window.
template <class V, int NV>
inline void pack_b(const ConvShape& s, const float* in, int k0, int kc, int p0, int np, const int* iy0,
                   const int* ix0, float* dst) {
  constexpr int NR = NV * V::N;
  const int taps = s.KH * s.KW;
  const bool pointwise = taps == 1 && s.SH == 1 && s.SW == 1 && s.PT == 0 && s.PL == 0;
  for (int j = 0; j * NR < np; ++j) {
    const int nr = np - j * NR < NR ? np - j * NR : NR;
    float* d = dst + (ptrdiff_t)j * kc * NR;
    const int* py = iy0 + j * NR;
    const int* px = ix0 + j * NR;
    // One output row, unit stride: the panel reads one contiguous run per depth row.
    const bool one_row = s.SW == 1 && py[0] == py[nr - 1];
    for (int k = k0; k < k0 + kc; ++k, d += NR) {
      const int c = k / taps, t = k - c * taps, ky = t / s.KW, kx = t - ky * s.KW;
      const float* plane = in + (ptrdiff_t)c * s.H * s.W;
      if (pointwise) {
        std::memcpy(d, plane + p0 + j * NR, sizeof(float) * nr);
      } else if (one_row) {
        const int iy = py[0] + ky * s.DH, ix = px[0] + kx * s.DW;
        if ((unsigned)iy >= (unsigned)s.H) {
          std::memset(d, 0, sizeof(float) * nr);
        } else if (ix >= 0 && ix + nr <= s.W) {
          std::memcpy(d, plane + (ptrdiff_t)iy * s.W + ix, sizeof(float) * nr);
        } else {
          const float* row = plane + (ptrdiff_t)iy * s.W;
          for (int i = 0; i < nr; ++i) d[i] = (unsigned)(ix + i) < (unsigned)s.W ? row[ix + i] : 0.f;
        }
      } else {
        const int dy = ky * s.DH, dx = kx * s.DW;
        for (int i = 0; i < nr; ++i) {
          const int iy = py[i] + dy, ix = px[i] + dx;
          d[i] = ((unsigned)iy < (unsigned)s.H && (unsigned)ix < (unsigned)s.W) ? plane[iy * s.W + ix] : 0.f;
        }
      }
      for (int i = nr; i < NR; ++i) d[i] = 0.f;
    }
  }
}

template <class V, int NV>
void conv_gemm(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int p0,
               int p1, float lo, float hi, float* scratch) {
  constexpr int NR = NV * V::N;
  const int K = s.K(), M = s.N, P = s.P(), np = p1 - p0;
  const int np_pad = (np + NR - 1) / NR * NR;
  int* iy0 = reinterpret_cast<int*>(scratch);
  int* ix0 = iy0 + np_pad;
  float* bpack = scratch + 2 * np_pad;
  for (int i = 0; i < np; ++i) {
    const int p = p0 + i, oy = p / s.OW, ox = p - oy * s.OW;
    iy0[i] = oy * s.SH - s.PT;
    ix0[i] = ox * s.SW - s.PL;
  }
  for (int k0 = 0; k0 < K; k0 += kGemmKC) {
    const int kc = K - k0 < kGemmKC ? K - k0 : kGemmKC;
    pack_b<V, NV>(s, in, k0, kc, p0, np, iy0, ix0, bpack);
    const bool first = k0 == 0, last = k0 + kc >= K;
    for (int m0 = 0; m0 < M; m0 += kGemmMC) {
      const int m1 = M - m0 < kGemmMC ? M : m0 + kGemmMC;
      for (int j = 0; j * NR < np; ++j) {
        const int nr = np - j * NR < NR ? np - j * NR : NR;
        const float* b = bpack + (ptrdiff_t)j * kc * NR;
        for (int m = m0; m < m1; m += kGemmMR) {
          const int mr = m1 - m < kGemmMR ? m1 - m : kGemmMR;
          const float* a = w + (ptrdiff_t)(m / kGemmMR) * K * kGemmMR + (ptrdiff_t)k0 * kGemmMR;
          gemm_ukernel<V, NV>(kc, a, b, out + (ptrdiff_t)m * P + p0 + j * NR, P, mr, nr,
                              bias ? bias + m : nullptr, first, last, lo, hi);
        }
      }
    }
  }
}

}  // namespace edgesep::detail
