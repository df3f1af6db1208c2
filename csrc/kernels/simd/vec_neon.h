// 4-lane NEON vector, for aarch64 and armv7-a (vfpv4: vfmaq_f32 exists on both;
// armv7 lacks horizontal adds, so hsum pairs lanes by hand).
#pragma once
#include <arm_neon.h>

#include <cstddef>

namespace edgesep::neon {
struct Vec {
  using T = float32x4_t;
  using V4 = Vec;  // for 4-wide work
  static constexpr int N = 4;
  // The 3x3 depthwise conv keeps its grouped windows (dwnhwc_impl.h): llvm-mca models the row sweep
  // slower on both Cortex-A72 (78% of peak vs 100%) and A53 (26% vs 38%, a chain of address adds).
  static constexpr bool kDwRowSweep = false;
  static T zero() { return vdupq_n_f32(0.f); }
  static T set1(float x) { return vdupq_n_f32(x); }
  static T load(const float* p) { return vld1q_f32(p); }
  // base[i[0]], ..., base[i[3]] (the sparse mat-vec's x lookups): each a load straight into its lane.
  template <class I>
  static T gather4(const float* base, const I* i) {
    T v = vld1q_dup_f32(base + i[0]);
    v = vld1q_lane_f32(base + i[1], v, 1);
    v = vld1q_lane_f32(base + i[2], v, 2);
    return vld1q_lane_f32(base + i[3], v, 3);
  }
  static void store(float* p, T v) { vst1q_f32(p, v); }
  // The 4 x 4 block at x (rows ldx apart) transposed into y (rows ldy apart).
  static void transpose4(const float* x, ptrdiff_t ldx, float* y, ptrdiff_t ldy) {
    // ab = {a0 b0 a2 b2}, {a1 b1 a3 b3}; cd likewise: column j of the block is half of ab and cd.
    const float32x4x2_t ab = vtrnq_f32(load(x), load(x + ldx)), cd = vtrnq_f32(load(x + 2 * ldx), load(x + 3 * ldx));
    store(y, vcombine_f32(vget_low_f32(ab.val[0]), vget_low_f32(cd.val[0])));
    store(y + ldy, vcombine_f32(vget_low_f32(ab.val[1]), vget_low_f32(cd.val[1])));
    store(y + 2 * ldy, vcombine_f32(vget_high_f32(ab.val[0]), vget_high_f32(cd.val[0])));
    store(y + 3 * ldy, vcombine_f32(vget_high_f32(ab.val[1]), vget_high_f32(cd.val[1])));
  }
  static T fma(T a, T b, T c) { return vfmaq_f32(c, a, b); }
  static T add(T a, T b) { return vaddq_f32(a, b); }
  static T sub(T a, T b) { return vsubq_f32(a, b); }
  static T mul(T a, T b) { return vmulq_f32(a, b); }
#if defined(__aarch64__)
  static T div(T a, T b) { return vdivq_f32(a, b); }
  static T floor(T a) { return vrndmq_f32(a); }
#else
  // armv7 has no vector divide: the reciprocal estimate and two Newton steps (about 1 ulp).
  static T div(T a, T b) {
    T r = vrecpeq_f32(b);
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    return vmulq_f32(a, r);
  }
  // Nor a rounding instruction: truncate, then step down where that rounded up (negative values).
  static T floor(T a) {
    const T t = vcvtq_f32_s32(vcvtq_s32_f32(a));
    return vsubq_f32(t, vreinterpretq_f32_u32(vandq_u32(vcgtq_f32(t, a), vreinterpretq_u32_f32(vdupq_n_f32(1.f)))));
  }
#endif
  // 2^n for integer-valued n in [-126, 127] (built in the exponent field).
  static T pow2(T n) { return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23)); }
  static T max(T a, T b) { return vmaxq_f32(a, b); }
  static T min(T a, T b) { return vminq_f32(a, b); }
  static float hsum(T v) {
#if defined(__aarch64__)
    return vaddvq_f32(v);
#else
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
#endif
  }
  // One depth step's 6 weights of the GEMM tile; fma_a<R> multiplies row R into an accumulator.
  // aarch64: two vector loads and by-lane FMLAs (an in-order core such as the Cortex-A53 has one load
  // pipe, and six broadcast loads per step starved it); armv7 has no by-lane fused multiply-add.
#if defined(__aarch64__)
  // The NHWC conv loads four channels of a pixel at once and multiplies the weights by each lane.
  static constexpr bool kLaneFma = true;
  template <int L>
  static T fma_lane(T acc, T w, T a4) { return vfmaq_laneq_f32(acc, w, a4, L); }
  struct ARow {
    float32x4_t lo, hi;  // weights 0..3 and 2..5
  };
  static ARow load_a(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 2)}; }
  template <int R>
  static T fma_a(const ARow& a, T b, T acc) {
    if constexpr (R < 4)
      return vfmaq_laneq_f32(acc, b, a.lo, R);
    else
      return vfmaq_laneq_f32(acc, b, a.hi, R - 2);
  }
#else
  static constexpr bool kLaneFma = false;  // armv7 has no by-lane fused multiply-add
  struct ARow {
    const float* p;
  };
  static ARow load_a(const float* p) { return {p}; }
  template <int R>
  static T fma_a(const ARow& a, T b, T acc) { return vfmaq_f32(acc, vdupq_n_f32(a.p[R]), b); }
#endif
  // Loads 2N floats from p; returns their even and odd lanes.
  static void deinterleave2(const float* p, T& even, T& odd) {
    const float32x4x2_t v = vld2q_f32(p);
    even = v.val[0];
    odd = v.val[1];
  }
};
#if defined(__aarch64__)
constexpr int kGemmNV = 4;  // 6x16 tile: 24 accumulators + 4 of B + 2 of A in 32 q registers
// NHWC conv: 8 pixels x 8 channels, 16 accumulators + 8 input vectors (4 channels each) + 8 weight vectors
// (4 channels x 8): all of a depth step's loads in one group (igemm_a64.h says why).
constexpr int kIgemmMR = 8, kIgemmNC = 8;
#else
constexpr int kGemmNV = 2;  // 6x8 tile: 12 accumulators of 16 q registers
// NHWC conv: 2 pixels x 16 channels, 8 accumulators + 4 weight vectors + a broadcast in 16 q registers.
constexpr int kIgemmMR = 2, kIgemmNC = 16;
#endif
}  // namespace edgesep::neon
