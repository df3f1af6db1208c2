// Depthwise conv on an NHWC image, templated on the ISA's vector type (kernels.h: DwNhwcFn).
// Vectorised over channels: a pixel's taps are contiguous channel runs of the input pixels under the
// window, and the weights of a tap are a contiguous run of [KH][KW][C].
// With AVX2 or AVX-512 (V::kDwRowSweep), 3x3 windows at dilation 1 and horizontal stride 1 or 2
// (MobileNet's, EfficientNet's): a row sweep per channel vector (dw3_row). Other windows, and every
// window on SSE4.1 and NEON: four (aarch64: eight) output pixels share each weight load, and border
// pixels sum over their window's valid taps only (no padded copy).
#pragma once
#include <type_traits>

#include "../kernels.h"
#include "../simd/lane1.h"
#include "dwnhwc_a64.h"

namespace edgesep::detail {

// Taps [t0, t1) of a window starting at `origin` (step `d`, `count` taps) that fall inside [0, size).
inline void dw_taps(int origin, int d, int count, int size, int& t0, int& t1) {
  t0 = origin >= 0 ? 0 : (-origin + d - 1) / d;
  t1 = origin >= size ? 0 : (size - origin + d - 1) / d;
  if (t1 > count) t1 = count;
  if (t1 < t0) t1 = t0;
}

// Output pixel(s) ox .. ox + PX - 1 of row oy, channels [c, c + U::N): U is the vector (or 4-wide) type.
template <class U, int PX>
inline void dw_pixels(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy,
                      int ox, int c, int ky0, int ky1, int kx0, int kx1, typename U::T vlo, typename U::T vhi) {
  using T = typename U::T;
  const int C = s.C;
  T acc[PX];
  const T b = bias ? U::load(bias + c) : U::zero();
  for (int i = 0; i < PX; ++i) acc[i] = b;
  const int iy0 = oy * s.SH - s.PT, ix0 = ox * s.SW - s.PL;
  if constexpr (PX > 1) {
    // A whole 3-wide window row at stride 1 (MobileNet's, where the row sweep is not used): its PX + 2
    // input vectors are loaded once and each feeds up to three of the pixels (0.75 loads per FMA
    // instead of 1.25: the in-order Cortex-A53 issues one load a cycle).
    if (s.KW == 3 && s.SW == 1 && s.DW == 1 && kx0 == 0 && kx1 == 3) {
      // Running row pointers, and the row's column offsets computed once: a load's address is a base
      // register plus an offset register, with no arithmetic in the loop (a chain of adds, one per
      // load, had held the in-order Cortex-A53 back).
      const ptrdiff_t rs = (ptrdiff_t)s.DH * s.W * C;
      const float* x = in + ((ptrdiff_t)(iy0 + ky0 * s.DH) * s.W + ix0) * C + c;
      const float* wr = w + (ptrdiff_t)ky0 * 3 * C + c;
      if constexpr (kA64DwRows<U, PX>) {  // aarch64: the rows in assembly (dwnhwc_a64.h)
        if (ky1 > ky0) dw3_rows_a64_8(acc, x, wr, rs, C, ky1 - ky0);
      } else {
        ptrdiff_t off[PX + 2];
        for (int i = 0; i < PX + 2; ++i) {
          off[i] = i * (ptrdiff_t)C;
#if defined(__aarch64__)
          asm("" : "+r"(off[i]));  // opaque: clang would turn the offsets back into a chain of adds
#endif
        }
        for (int ky = ky0; ky < ky1; ++ky, x += rs, wr += 3 * C) {
          T xv[PX + 2];
          for (int i = 0; i < PX + 2; ++i) xv[i] = U::load(x + off[i]);
          for (int kx = 0; kx < 3; ++kx) {
            const T wv = U::load(wr + off[kx]);
            for (int i = 0; i < PX; ++i) acc[i] = U::fma(xv[i + kx], wv, acc[i]);
          }
        }
      }
      float* o = out + ((ptrdiff_t)oy * s.OW + ox) * C + c;
      for (int i = 0; i < PX; ++i) U::store(o + (ptrdiff_t)i * C, U::min(U::max(acc[i], vlo), vhi));
      return;
    }
  }
  for (int ky = ky0; ky < ky1; ++ky) {
    const float* row = in + (ptrdiff_t)(iy0 + ky * s.DH) * s.W * C + c;
    const float* wr = w + (ptrdiff_t)ky * s.KW * C + c;
    for (int kx = kx0; kx < kx1; ++kx) {
      const T wv = U::load(wr + (ptrdiff_t)kx * C);
      const float* x = row + (ptrdiff_t)(ix0 + kx * s.DW) * C;
      for (int i = 0; i < PX; ++i) acc[i] = U::fma(U::load(x + (ptrdiff_t)i * s.SW * C), wv, acc[i]);
    }
  }
  float* o = out + ((ptrdiff_t)oy * s.OW + ox) * C + c;
  for (int i = 0; i < PX; ++i) U::store(o + (ptrdiff_t)i * C, U::min(U::max(acc[i], vlo), vhi));
}

// Every channel of output pixels ox .. ox + PX - 1 of row oy.
template <class V, int PX>
inline void dw_channels(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy,
                        int ox, int ky0, int ky1, int kx0, int kx1, float lo, float hi) {
  using V4 = typename V::V4;
  int c = 0;
  for (; c + V::N <= s.C; c += V::N)
    dw_pixels<V, PX>(s, in, w, bias, out, oy, ox, c, ky0, ky1, kx0, kx1, V::set1(lo), V::set1(hi));
  for (; c + 4 <= s.C; c += 4)
    dw_pixels<V4, PX>(s, in, w, bias, out, oy, ox, c, ky0, ky1, kx0, kx1, V4::set1(lo), V4::set1(hi));
  for (; c < s.C; ++c) dw_pixels<Lane1<V>, PX>(s, in, w, bias, out, oy, ox, c, ky0, ky1, kx0, kx1, lo, hi);
}

// One output row of a 3x3 depthwise conv (dilation 1, horizontal stride S = 1 or 2) for channels
// [c, c + U::N), swept left to right: the nine weights stay in registers for the whole row, and each
// input vector is loaded once and carried to the next pixels whose windows share its column (stride 1:
// three loads per nine FMAs; loading each window whole took 27 loads per 36 FMAs, and the loads, not
// the FMAs, set the pace: 25 -> 45 GMAC/s on a 56x56x144 map, AVX-512, one thread). Window rows outside
// the input read row 0 against zero weights; columns outside it (the edge pixels, taken one at a time)
// are skipped.
template <class U, int S, int PX>
inline void dw3_row(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy, int c,
                    int in0, int in1, typename U::T vlo, typename U::T vhi) {
  using T = typename U::T;
  constexpr int CARRY = 3 - S;  // columns a pixel's window shares with the next pixel's
  const ptrdiff_t C = s.C;
  int ky0, ky1;
  dw_taps(oy * s.SH - s.PT, 1, 3, s.H, ky0, ky1);
  T wv[3][3];
  const float* row[3];
  for (int ky = 0; ky < 3; ++ky) {
    const bool inside = ky >= ky0 && ky < ky1;
    row[ky] = in + (inside ? (ptrdiff_t)(oy * s.SH - s.PT + ky) * s.W * C : 0) + c;
    for (int kx = 0; kx < 3; ++kx) wv[ky][kx] = inside ? U::load(w + (ky * 3 + kx) * C + c) : U::zero();
  }
  const T b = bias ? U::load(bias + c) : U::zero();
  float* o = out + (ptrdiff_t)oy * s.OW * C + c;
  auto edge = [&](int ox) {  // a pixel whose window crosses the left or right edge
    T acc = b;
    for (int kx = 0; kx < 3; ++kx) {
      const int ix = ox * S - s.PL + kx;
      if (ix < 0 || ix >= s.W) continue;
      for (int ky = 0; ky < 3; ++ky) acc = U::fma(U::load(row[ky] + ix * C), wv[ky][kx], acc);
    }
    U::store(o + ox * C, U::min(U::max(acc, vlo), vhi));
  };
  int ox = 0;
  for (; ox < in0; ++ox) edge(ox);
  if (in0 < in1) {
    const float* x[3];  // running pointers to the next column to load
    T carry[3][CARRY];
    for (int ky = 0; ky < 3; ++ky) {
      x[ky] = row[ky] + (ptrdiff_t)(in0 * S - s.PL) * C;
      for (int j = 0; j < CARRY; ++j, x[ky] += C) carry[ky][j] = U::load(x[ky]);
    }
    // PX pixels at a time (NP = PX), then one at a time (NP = 1): NP * S new columns per window row.
    auto pixels = [&](auto np) {
      constexpr int NP = decltype(np)::value, NX = CARRY + NP * S;
      T acc[NP];
      for (int i = 0; i < NP; ++i) acc[i] = b;
      for (int ky = 0; ky < 3; ++ky) {
        T col[NX];
        for (int j = 0; j < CARRY; ++j) col[j] = carry[ky][j];
        for (int j = CARRY; j < NX; ++j, x[ky] += C) col[j] = U::load(x[ky]);
        for (int kx = 0; kx < 3; ++kx)
          for (int i = 0; i < NP; ++i) acc[i] = U::fma(col[i * S + kx], wv[ky][kx], acc[i]);
        for (int j = 0; j < CARRY; ++j) carry[ky][j] = col[NX - CARRY + j];
      }
      for (int i = 0; i < NP; ++i) U::store(o + (ox + i) * C, U::min(U::max(acc[i], vlo), vhi));
      ox += NP;
    };
    while (ox + PX <= in1) pixels(std::integral_constant<int, PX>());
    while (ox < in1) pixels(std::integral_constant<int, 1>());
  }
  for (; ox < s.OW; ++ox) edge(ox);
}

// Rows [oy0, oy1) of a 3x3 depthwise conv at horizontal stride S (see dw3_row): full vectors, then
// 4-wide, then single channels.
template <class V, int S>
void dw3_rows(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int oy1,
              float lo, float hi) {
  using V4 = typename V::V4;
  using L1 = Lane1<V>;
  // Two pixels per step: as fast as four on AVX-512 (interior pixels of 56x56x144: 56 vs 54 GMAC/s) and
  // fewer registers (9 weights + 3 x (CARRY + 2 S) columns + 2 sums: 23 at stride 1, 26 at stride 2).
  constexpr int PX = 2;
  // Output columns whose window lies inside the input: [in0, in1).
  int in0 = (s.PL + S - 1) / S, in1 = s.W - 3 + s.PL >= 0 ? (s.W - 3 + s.PL) / S + 1 : 0;
  if (in1 > s.OW) in1 = s.OW;
  if (in0 > in1) in0 = in1;
  for (int oy = oy0; oy < oy1; ++oy) {
    int c = 0;
    for (; c + V::N <= s.C; c += V::N)
      dw3_row<V, S, PX>(s, in, w, bias, out, oy, c, in0, in1, V::set1(lo), V::set1(hi));
    for (; c + 4 <= s.C; c += 4) dw3_row<V4, S, PX>(s, in, w, bias, out, oy, c, in0, in1, V4::set1(lo), V4::set1(hi));
    for (; c < s.C; ++c) dw3_row<L1, S, PX>(s, in, w, bias, out, oy, c, in0, in1, lo, hi);
  }
}

template <class V>
void dwconv_nhwc(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int oy1,
                 float lo, float hi) {
  if constexpr (V::kDwRowSweep)
    if (s.KH == 3 && s.KW == 3 && s.DH == 1 && s.DW == 1 && (s.SW == 1 || s.SW == 2))
      return s.SW == 1 ? dw3_rows<V, 1>(s, in, w, bias, out, oy0, oy1, lo, hi)
                       : dw3_rows<V, 2>(s, in, w, bias, out, oy0, oy1, lo, hi);
  // Four pixels on x86: 8 (AVX-512) measured slower on mobilenet_v2's depthwise layers (1.43 vs 1.00 ms
  // in all; fewer interior groups on 7x7 and 14x14 maps). Eight on aarch64, where four sums were too
  // few to cover the FMLA latency (llvm-mca: Cortex-A53 22% -> 38% of peak, A72 70% -> 100%).
  constexpr int PX = V::kLaneFma ? 8 : 4;
  // Output columns whose whole window lies inside the input: [in0, in1).
  const int span = (s.KW - 1) * s.DW;
  int in0 = (s.PL + s.SW - 1) / s.SW, in1 = s.W - 1 - span + s.PL >= 0 ? (s.W - 1 - span + s.PL) / s.SW + 1 : 0;
  if (in1 > s.OW) in1 = s.OW;
  if (in0 > in1) in0 = in1;
  for (int oy = oy0; oy < oy1; ++oy) {
    int ky0, ky1;
    dw_taps(oy * s.SH - s.PT, s.DH, s.KH, s.H, ky0, ky1);
    auto border = [&](int ox) {
      int kx0, kx1;
      dw_taps(ox * s.SW - s.PL, s.DW, s.KW, s.W, kx0, kx1);
      dw_channels<V, 1>(s, in, w, bias, out, oy, ox, ky0, ky1, kx0, kx1, lo, hi);
    };
    int ox = 0;
    for (; ox < in0; ++ox) border(ox);
    for (; ox + PX <= in1; ox += PX) dw_channels<V, PX>(s, in, w, bias, out, oy, ox, ky0, ky1, 0, s.KW, lo, hi);
    for (; ox < s.OW; ++ox) border(ox);
  }
}

}  // namespace edgesep::detail
