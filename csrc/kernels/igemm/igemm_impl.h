// The NHWC conv as an indirect GEMM, templated on the ISA's vector type (kernels.h: IgemmFn).
// A register tile of MR output pixels x NC output channels (whole panels of kPanelNC, or a part of one)
// holds its sums in MR * NC / V::N vector registers for the whole depth (taps x input channels): per tap, each
// pixel's input is found through the offset table (or the zero row, for padding), and per input channel
// one value per pixel is broadcast against the panels' weight vectors. Nothing is copied: 1x1 convs read
// the input rows in place, k x k convs at any stride or dilation read the pixels the table names.
// aarch64 loads four channels of a pixel at once and multiplies by lane (one load per four FMA rows).
#pragma once
#include <cstring>
#include <type_traits>

#include "../kernels.h"
#include "igemm_a64.h"

// The tile's inner functions are inlined whatever the compiler's heuristics say: a depth loop called
// with the sums by reference kept them in memory (clang: a load and a store per FMA row, 100% -> 50% of
// the Cortex-A72's peak in the llvm-mca model). The tile itself is left to the compiler: forced into
// igemm, GCC's x86 code for deep tiles ran 3-5% slower (Winograd 256 -> 256 at 14x14, 1.08 -> 1.13 ms).
#define EDGESEP_TILE_INLINE inline __attribute__((always_inline))

namespace edgesep::detail {

// V's half-width vector where it has one (AVX-512), else V itself (never used as a half).
template <class V, class = void>
struct HalfOf {
  using type = V;
  static constexpr bool kHas = false;
};
template <class V>
struct HalfOf<V, std::void_t<typename V::Half>> {
  using type = typename V::Half;
  static constexpr bool kHas = true;
};

// A register tile of MR pixels x NV vectors of V (+ one half vector when HALF): as many vectors as the
// channels need, so a tail of 8 channels costs one 8-lane vector, not a whole panel's. Its sums are
// local arrays that live in registers for the whole tile (init, depth, epilogue in one function, their
// address never escaping: a tile struct's member array was copied to the stack and back around the
// depth loop, 100 vector moves per tile, half the time of a 1x1 conv of depth 16).
template <class V, int MR, int NV, bool HALF>
struct IgemmTile {
  using T = typename V::T;
  using H = typename HalfOf<V>::type;
  using HT = typename H::T;
  static_assert(!HALF || (HalfOf<V>::kHas && !V::kLaneFma), "a half vector needs V::Half");
  static constexpr int NA = NV > 0 ? NV : 1;              // the array's extent (NV = 0: a half vector alone)
  static constexpr int NC = NV * V::N + (HALF ? H::N : 0);  // channels covered
  using Acc = T[MR][NA];
  using HAcc = HT[MR];

  // The weights of vector v (v = NV: the half vector) in panels of kPanelNC channels, pstride apart.
  static EDGESEP_TILE_INLINE const float* wp(const float* w, int v, ptrdiff_t pstride) {
    return w + (v * V::N / kPanelNC) * pstride + (v * V::N) % kPanelNC;
  }

  // a[r] += x_r[c] * w[0:NC] for one input channel c (x[r] = that channel's value in pixel r).
  static EDGESEP_TILE_INLINE void step(Acc& a, HAcc& h, const float* const* x, int c, const float* w, ptrdiff_t pstride) {
    T wv[NA];
    for (int v = 0; v < NV; ++v) wv[v] = V::load(wp(w, v, pstride));
    HT wh{};
    if constexpr (HALF) wh = H::load(wp(w, NV, pstride));
    for (int r = 0; r < MR; ++r) {
      const T b = V::set1(x[r][c]);
      for (int v = 0; v < NV; ++v) a[r][v] = V::fma(b, wv[v], a[r][v]);
      if constexpr (HALF) h[r] = H::fma(H::set1(x[r][c]), wh, h[r]);
    }
  }

  // Lane L of a4[r] (channels c..c+3 of pixel r) times the weights of channel c + L (aarch64).
  template <int L>
  static EDGESEP_TILE_INLINE void lane_step(Acc& a, const T* a4, const float* w, ptrdiff_t pstride) {
    T wv[NA];
    for (int v = 0; v < NV; ++v) wv[v] = V::load(wp(w, v, pstride));
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) a[r][v] = V::template fma_lane<L>(a[r][v], wv[v], a4[r]);
  }

  // The whole depth for pixels p .. p + mr - 1 (rows past mr read the zero row and are not stored).
  static EDGESEP_TILE_INLINE void depth(Acc& a, HAcc& h, const IgemmShape& s, const float* in, const int32_t* ind,
                           const float* zero, const float* w, ptrdiff_t pstride, int mr) {
    const int C = s.C;
    if constexpr (kA64Tile<V, MR, NV, HALF>) {
      if (C % 4 == 0) {  // the full tile on aarch64, its whole depth in assembly (igemm_a64.h)
        const int32_t* rows[MR];  // rows past mr are not stored: they repeat pixel 0
        for (int r = 0; r < MR; ++r) rows[r] = ind + (ptrdiff_t)(r < mr ? r : 0) * s.taps;
        igemm_a64_8x8(reinterpret_cast<float*>(a), in, rows, zero, w, s.taps, C / 4);
        return;
      }
    }
    const float* x[MR];  // the tile's pixels at tap t
    auto tap = [&](int t) {
      for (int r = 0; r < MR; ++r) {
        const int32_t off = r < mr ? ind[(ptrdiff_t)r * s.taps + t] : -1;
        x[r] = off < 0 ? zero : in + off;
      }
    };
    if constexpr (V::kLaneFma) {  // aarch64, tiles the assembly does not take: four channels a step
      for (int t = 0; t < s.taps; ++t) {
        tap(t);
        const float* wt = w + (ptrdiff_t)t * C * kPanelNC;
        int c = 0;
        for (; c + 4 <= C; c += 4) {
          T a4[MR];
          for (int r = 0; r < MR; ++r) a4[r] = V::load(x[r] + c);
          const float* wc = wt + (ptrdiff_t)c * kPanelNC;
          lane_step<0>(a, a4, wc, pstride);
          lane_step<1>(a, a4, wc + kPanelNC, pstride);
          lane_step<2>(a, a4, wc + 2 * kPanelNC, pstride);
          lane_step<3>(a, a4, wc + 3 * kPanelNC, pstride);
        }
        for (; c < C; ++c) step(a, h, x, c, wt + (ptrdiff_t)c * kPanelNC, pstride);
      }
    } else {
      // One loop over the whole depth, the pixels' pointers moved to the next tap where a tap's C
      // channels end: with a loop per tap GCC kept the sums in memory between taps (a store and a
      // load of each of the MR x NV vectors per tap).
      tap(0);
      const int depth = s.taps * C;
      for (int k = 0, c = 0, t = 0; k < depth; ++k) {
        step(a, h, x, c, w + (ptrdiff_t)k * kPanelNC, pstride);
        if (++c == C && ++t < s.taps) {
          c = 0;
          tap(t);
        }
      }
    }
  }
};

// One tile: init from bias (+ sum), the depth, clamp, store the valid mr x nc part (nc <= NC).
template <class V, int MR, int NV, bool HALF>
inline void igemm_tile(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
                       ptrdiff_t pstride, const float* bias, const float* sum, float* out, int mr, int nc, float lo,
                       float hi) {
  using Tile = IgemmTile<V, MR, NV, HALF>;
  using T = typename V::T;
  using H = typename Tile::H;
  using HT = typename Tile::HT;
  constexpr int NC = Tile::NC;
  alignas(64) float buf[NC];
  const bool full = nc == NC;
  // NC floats from src: src itself, or (a tail) its nc floats zero-padded in buf.
  auto whole = [&](const float* src) -> const float* {
    if (full) return src;
    std::memcpy(buf, src, sizeof(float) * nc);
    std::memset(buf + nc, 0, sizeof(float) * (NC - nc));
    return buf;
  };
  T a[MR][Tile::NA];
  HT h[MR];
  const float* bp = bias ? whole(bias) : nullptr;
  for (int v = 0; v < NV; ++v) {
    const T b = bp ? V::load(bp + v * V::N) : V::zero();
    for (int r = 0; r < MR; ++r) a[r][v] = b;
  }
  if constexpr (HALF) {
    const HT b = bp ? H::load(bp + NV * V::N) : H::zero();
    for (int r = 0; r < MR; ++r) h[r] = b;
  }
  if (sum)
    for (int r = 0; r < mr; ++r) {
      const float* sr = whole(sum + (ptrdiff_t)r * s.ldo);
      for (int v = 0; v < NV; ++v) a[r][v] = V::add(a[r][v], V::load(sr + v * V::N));
      if constexpr (HALF) h[r] = H::add(h[r], H::load(sr + NV * V::N));
    }
  Tile::depth(a, h, s, in, ind, zero, w, pstride, mr);
  const T vlo = V::set1(lo), vhi = V::set1(hi);
  for (int r = 0; r < mr; ++r) {
    float* o = out + (ptrdiff_t)r * s.ldo;
    float* dst = full ? o : buf;
    for (int v = 0; v < NV; ++v) V::store(dst + v * V::N, V::min(V::max(a[r][v], vlo), vhi));
    if constexpr (HALF) H::store(dst + NV * V::N, H::min(H::max(h[r], H::set1(lo)), H::set1(hi)));
    if (!full) std::memcpy(o, buf, sizeof(float) * nc);
  }
}

// A tile of exactly the vectors nc channels need: NV full vectors of V, or fewer (NVMAX counts down
// to the match), plus a half vector where V has one and the last 8 or fewer channels fit in it.
template <class V, int MR, int NVMAX, bool HALF>
inline void igemm_fit(int nv, const IgemmShape& s, const float* in, const int32_t* ind, const float* zero,
                      const float* w, ptrdiff_t pstride, const float* bias, const float* sum, float* out, int mr,
                      int nc, float lo, float hi) {
  if constexpr (NVMAX > (HALF ? 0 : 1))
    if (nv < NVMAX)
      return igemm_fit<V, MR, NVMAX - 1, HALF>(nv, s, in, ind, zero, w, pstride, bias, sum, out, mr, nc, lo, hi);
  igemm_tile<V, MR, NVMAX, HALF>(s, in, ind, zero, w, pstride, bias, sum, out, mr, nc, lo, hi);
}

// Output channels [n, n + nc) of pixels [p, p + mr), nc <= NC (n a multiple of NC).
template <class V, int MR, int NC>
inline void igemm_block(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
                        const float* bias, const float* sum, float* out, int p, int mr, int n, int nc, float lo,
                        float hi) {
  static_assert(NC % V::N == 0 && (NC % kPanelNC == 0 || kPanelNC % NC == 0), "tiles of whole vectors and panels");
  constexpr int NVMAX = NC / V::N;
  const ptrdiff_t pstride = (ptrdiff_t)s.taps * s.C * kPanelNC;  // floats per weight panel
  const float* wp = w + (ptrdiff_t)(n / kPanelNC) * pstride + n % kPanelNC;
  const float* bp = bias ? bias + n : nullptr;
  const int32_t* ip = ind + (ptrdiff_t)p * s.taps;
  const float* sp = sum ? sum + (ptrdiff_t)p * s.ldo + n : nullptr;
  float* op = out + (ptrdiff_t)p * s.ldo + n;
  const int nv = (nc + V::N - 1) / V::N;
  if constexpr (HalfOf<V>::kHas) {
    if (nc % V::N != 0 && nc % V::N <= HalfOf<V>::type::N)
      return igemm_fit<V, MR, NVMAX - 1, true>(nv - 1, s, in, ip, zero, wp, pstride, bp, sp, op, mr, nc, lo, hi);
  }
  igemm_fit<V, MR, NVMAX, false>(nv, s, in, ip, zero, wp, pstride, bp, sp, op, mr, nc, lo, hi);
}

template <class V, int MR, int NC>
void igemm(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
           const float* bias, const float* sum, float* out, int p0, int p1, int n0, int n1, float lo, float hi) {
  // Channel groups of up to NC (fewer for the tail).
  auto group = [&](int n) { return n1 - n < NC ? n1 - n : NC; };
  if ((ptrdiff_t)s.taps * s.C * (n1 - n0) <= 8192) {
    // Weights that fit in L1 (short depth: a 1x1 conv of few channels): a pixel tile's every channel
    // before the next tile, so each output row is written whole, once.
    for (int p = p0; p < p1; p += MR)
      for (int n = n0; n < n1; n += group(n))
        igemm_block<V, MR, NC>(s, in, ind, zero, w, bias, sum, out, p, p1 - p < MR ? p1 - p : MR, n, group(n), lo, hi);
    return;
  }
  // Else a channel group's weights stay in cache while the pixels stream past them.
  for (int n = n0; n < n1; n += group(n))
    for (int p = p0; p < p1; p += MR)
      igemm_block<V, MR, NC>(s, in, ind, zero, w, bias, sum, out, p, p1 - p < MR ? p1 - p : MR, n, group(n), lo, hi);
}

}  // namespace edgesep::detail
