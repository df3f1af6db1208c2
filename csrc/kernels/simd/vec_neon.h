// 4-lane NEON vector, for aarch64 and armv7-a (vfpv4: vfmaq_f32 exists on both;
// armv7 lacks horizontal adds, so hsum pairs lanes by hand).
#pragma once
#include <arm_neon.h>

namespace edgesep::neon {
struct Vec {
  using T = float32x4_t;
  static constexpr int N = 4;
  static T zero() { return vdupq_n_f32(0.f); }
  static T set1(float x) { return vdupq_n_f32(x); }
  static T load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, T v) { vst1q_f32(p, v); }
  static T fma(T a, T b, T c) { return vfmaq_f32(c, a, b); }
  static T add(T a, T b) { return vaddq_f32(a, b); }
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
  // Loads 2N floats from p; returns their even and odd lanes.
  static void deinterleave2(const float* p, T& even, T& odd) {
    const float32x4x2_t v = vld2q_f32(p);
    even = v.val[0];
    odd = v.val[1];
  }
};
#if defined(__aarch64__)
constexpr int kGemmNV = 3;  // 6x12 tile: 18 accumulators, 3 of B, 6 of A: no spills in 32 q registers
#else
constexpr int kGemmNV = 2;  // 6x8 tile: 12 accumulators of 16 q registers
#endif
}  // namespace edgesep::neon
