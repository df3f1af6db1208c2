// The NHWC conv as an indirect GEMM, templated on the ISA's vector type (kernels.h: IgemmFn).
// A register tile of MR output pixels x NP panels of kPanelNC output channels holds its sums in
// MR * NP * kPanelNC / V::N vector registers for the whole depth (taps x input channels): per tap, each
// pixel's input is found through the offset table (or the zero row, for padding), and per input channel
// one value per pixel is broadcast against the panels' weight vectors. Nothing is copied: 1x1 convs read
// the input rows in place, k x k convs at any stride or dilation read the pixels the table names.
// aarch64 loads four channels of a pixel at once and multiplies by lane (one load per four FMA rows).
#pragma once
#include <cstring>

#include "../kernels.h"

namespace edgesep::detail {

// A register tile of MR pixels x NP panels: its sums, a local array of vectors that lives in
// registers for the whole tile (init, depth, epilogue in one function, its address never escaping:
// a tile struct's member array was copied to the stack and back around the depth loop, 100 vector
// moves per tile, half the time of a 1x1 conv of depth 16).
template <class V, int MR, int NP>
struct IgemmTile {
  using T = typename V::T;
  static constexpr int NV = NP * kPanelNC / V::N;  // accumulators per pixel
  using Acc = T[MR][NV];

  // a[r] += x_r[c] * w[0:NP*16] for one input channel c (x[r] = that channel's value in pixel r).
  static inline void step(Acc& a, const float* const* x, int c, const float* w, ptrdiff_t pstride) {
    T wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = V::load(w + (v * V::N / kPanelNC) * pstride + (v * V::N) % kPanelNC);
    for (int r = 0; r < MR; ++r) {
      const T b = V::set1(x[r][c]);
      for (int v = 0; v < NV; ++v) a[r][v] = V::fma(b, wv[v], a[r][v]);
    }
  }

  // Lane L of a4[r] (channels c..c+3 of pixel r) times the weights of channel c + L (aarch64).
  template <int L>
  static inline void lane_step(Acc& a, const T* a4, const float* w, ptrdiff_t pstride) {
    T wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = V::load(w + (v * V::N / kPanelNC) * pstride + (v * V::N) % kPanelNC);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) a[r][v] = V::template fma_lane<L>(a[r][v], wv[v], a4[r]);
  }

  // The whole depth for pixels p .. p + mr - 1 (rows past mr read the zero row and are not stored).
  static inline void depth(Acc& a, const IgemmShape& s, const float* in, const int32_t* ind, const float* zero,
                           const float* w, ptrdiff_t pstride, int mr) {
    const int C = s.C;
    for (int t = 0; t < s.taps; ++t) {
      const float* x[MR];
      for (int r = 0; r < MR; ++r) {
        const int32_t off = r < mr ? ind[(ptrdiff_t)r * s.taps + t] : -1;
        x[r] = off < 0 ? zero : in + off;
      }
      const float* wt = w + (ptrdiff_t)t * C * kPanelNC;
      int c = 0;
      if constexpr (V::kLaneFma) {
        for (; c + 4 <= C; c += 4) {
          T a4[MR];
          for (int r = 0; r < MR; ++r) a4[r] = V::load(x[r] + c);
          const float* wc = wt + (ptrdiff_t)c * kPanelNC;
          lane_step<0>(a, a4, wc, pstride);
          lane_step<1>(a, a4, wc + kPanelNC, pstride);
          lane_step<2>(a, a4, wc + 2 * kPanelNC, pstride);
          lane_step<3>(a, a4, wc + 3 * kPanelNC, pstride);
        }
      }
      for (; c < C; ++c) step(a, x, c, wt + (ptrdiff_t)c * kPanelNC, pstride);
    }
  }
};

// One tile: init from bias (+ sum), the depth, clamp, store the valid mr x nc part.
template <class V, int MR, int NP>
inline void igemm_tile(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
                       ptrdiff_t pstride, const float* bias, const float* sum, float* out, int mr, int nc, float lo,
                       float hi) {
  using Tile = IgemmTile<V, MR, NP>;
  using T = typename V::T;
  constexpr int NV = Tile::NV, NC = NP * kPanelNC;
  alignas(64) float buf[NC];
  const bool full = nc == NC;
  // NC floats from src: src itself, or (a tail) its nc floats zero-padded in buf.
  auto whole = [&](const float* src) -> const float* {
    if (full) return src;
    std::memcpy(buf, src, sizeof(float) * nc);
    std::memset(buf + nc, 0, sizeof(float) * (NC - nc));
    return buf;
  };
  T a[MR][NV];
  const float* bp = bias ? whole(bias) : nullptr;
  for (int v = 0; v < NV; ++v) {
    const T b = bp ? V::load(bp + v * V::N) : V::zero();
    for (int r = 0; r < MR; ++r) a[r][v] = b;
  }
  if (sum)
    for (int r = 0; r < mr; ++r) {
      const float* sr = whole(sum + (ptrdiff_t)r * s.ldo);
      for (int v = 0; v < NV; ++v) a[r][v] = V::add(a[r][v], V::load(sr + v * V::N));
    }
  Tile::depth(a, s, in, ind, zero, w, pstride, mr);
  const T vlo = V::set1(lo), vhi = V::set1(hi);
  for (int r = 0; r < mr; ++r) {
    float* o = out + (ptrdiff_t)r * s.ldo;
    float* dst = full ? o : buf;
    for (int v = 0; v < NV; ++v) V::store(dst + v * V::N, V::min(V::max(a[r][v], vlo), vhi));
    if (!full) std::memcpy(o, buf, sizeof(float) * nc);
  }
}

// Output channels [n, n + nc) of pixels [p, p + mr): a tile of as many panels as nc needs.
template <class V, int MR, int NP>
inline void igemm_block(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
                        const float* bias, const float* sum, float* out, int p, int mr, int n, int nc, float lo,
                        float hi) {
  const ptrdiff_t pstride = (ptrdiff_t)s.taps * s.C * kPanelNC;  // floats per weight panel
  const int panels = (nc + kPanelNC - 1) / kPanelNC;
  const float* wp = w + (ptrdiff_t)(n / kPanelNC) * pstride;
  const float* bp = bias ? bias + n : nullptr;
  const int32_t* ip = ind + (ptrdiff_t)p * s.taps;
  const float* sp = sum ? sum + (ptrdiff_t)p * s.ldo + n : nullptr;
  float* op = out + (ptrdiff_t)p * s.ldo + n;
  if (NP >= 4 && panels == 4)
    igemm_tile<V, MR, (NP >= 4 ? 4 : 1)>(s, in, ip, zero, wp, pstride, bp, sp, op, mr, nc, lo, hi);
  else if (NP >= 3 && panels == 3)
    igemm_tile<V, MR, (NP >= 3 ? 3 : 1)>(s, in, ip, zero, wp, pstride, bp, sp, op, mr, nc, lo, hi);
  else if (NP >= 2 && panels == 2)
    igemm_tile<V, MR, (NP >= 2 ? 2 : 1)>(s, in, ip, zero, wp, pstride, bp, sp, op, mr, nc, lo, hi);
  else
    igemm_tile<V, MR, 1>(s, in, ip, zero, wp, pstride, bp, sp, op, mr, nc, lo, hi);
}

template <class V, int MR, int NP>
void igemm(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
           const float* bias, const float* sum, float* out, int p0, int p1, int n0, int n1, float lo, float hi) {
  // Channel groups of up to NP panels (fewer for the tail).
  auto group = [&](int n) { return n1 - n < NP * kPanelNC ? n1 - n : NP * kPanelNC; };
  if ((ptrdiff_t)s.taps * s.C * (n1 - n0) <= 8192) {
    // Weights that fit in L1 (short depth: a 1x1 conv of few channels): a pixel tile's every channel
    // before the next tile, so each output row is written whole, once.
    for (int p = p0; p < p1; p += MR)
      for (int n = n0; n < n1; n += group(n))
        igemm_block<V, MR, NP>(s, in, ind, zero, w, bias, sum, out, p, p1 - p < MR ? p1 - p : MR, n, group(n), lo, hi);
    return;
  }
  // Else a channel group's weights stay in cache while the pixels stream past them.
  for (int n = n0; n < n1; n += group(n))
    for (int p = p0; p < p1; p += MR)
      igemm_block<V, MR, NP>(s, in, ind, zero, w, bias, sum, out, p, p1 - p < MR ? p1 - p : MR, n, group(n), lo, hi);
}

}  // namespace edgesep::detail
