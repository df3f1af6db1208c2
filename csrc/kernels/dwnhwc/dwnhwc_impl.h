// Depthwise conv on an NHWC image, templated on the ISA's vector type (kernels.h: DwNhwcFn).
// Vectorised over channels: a pixel's taps are contiguous channel runs of the input pixels under the
// window, and the weights of a tap are a contiguous run of [KH][KW][C]. Inside a row, where every
// window lies within the input, four output pixels share each weight load (four independent sums hide
// the FMA latency), and at stride 1 with 3-wide windows each input vector is loaded once for the
// three pixels it feeds; border pixels sum over their window's valid taps only (no padded copy).
// Channel tails run 4 wide, then one at a time.
#pragma once
#include "../kernels.h"

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
    // A whole 3-wide window row at stride 1 (MobileNet's): its PX + 2 input vectors are loaded once and
    // each feeds up to three of the pixels (0.75 loads per FMA instead of 1.25: the in-order
    // Cortex-A53 issues one load a cycle).
    if (s.KW == 3 && s.SW == 1 && s.DW == 1 && kx0 == 0 && kx1 == 3) {
      for (int ky = ky0; ky < ky1; ++ky) {
        const float* x = in + ((ptrdiff_t)(iy0 + ky * s.DH) * s.W + ix0) * C + c;
        const float* wr = w + (ptrdiff_t)ky * 3 * C + c;
        T xv[PX + 2];
        const float* xp = x;  // a running pointer: one add per load, not an index's multiply-add
        for (int i = 0; i < PX + 2; ++i, xp += C) xv[i] = U::load(xp);
        for (int kx = 0; kx < 3; ++kx) {
          const T wv = U::load(wr + (ptrdiff_t)kx * C);
          for (int i = 0; i < PX; ++i) acc[i] = U::fma(xv[i + kx], wv, acc[i]);
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
  for (; c < s.C; ++c)
    for (int i = 0; i < PX; ++i) {
      const int ix0 = (ox + i) * s.SW - s.PL, iy0 = oy * s.SH - s.PT;
      float acc = bias ? bias[c] : 0.f;
      for (int ky = ky0; ky < ky1; ++ky)
        for (int kx = kx0; kx < kx1; ++kx)
          acc += w[(ptrdiff_t)(ky * s.KW + kx) * s.C + c] *
                 in[((ptrdiff_t)(iy0 + ky * s.DH) * s.W + ix0 + kx * s.DW) * s.C + c];
      out[((ptrdiff_t)oy * s.OW + ox + i) * s.C + c] = acc < lo ? lo : (acc > hi ? hi : acc);
    }
}

template <class V>
void dwconv_nhwc(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int oy1,
                 float lo, float hi) {
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
