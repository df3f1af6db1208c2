// 4-lane SSE4.1 vector (x86-64 baseline). No FMA here: multiply then add.
#pragma once
#include <smmintrin.h>

#include "broadcast_weights.h"

namespace edgesep::sse41 {
struct Vec : BroadcastWeights<Vec> {
  using T = __m128;
  using V4 = Vec;  // for 4-wide work
  static constexpr int N = 4;
  static T zero() { return _mm_setzero_ps(); }
  static T set1(float x) { return _mm_set1_ps(x); }
  static T load(const float* p) { return _mm_loadu_ps(p); }
  // base[i[0]], ..., base[i[3]] (the sparse mat-vec's x lookups).
  template <class I>
  static T gather4(const float* base, const I* i) {
    return _mm_setr_ps(base[i[0]], base[i[1]], base[i[2]], base[i[3]]);
  }
  static void store(float* p, T v) { _mm_storeu_ps(p, v); }
  static T fma(T a, T b, T c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static T add(T a, T b) { return _mm_add_ps(a, b); }
  static T sub(T a, T b) { return _mm_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm_mul_ps(a, b); }
  static T div(T a, T b) { return _mm_div_ps(a, b); }
  static T floor(T a) { return _mm_floor_ps(a); }
  // 2^n for integer-valued n in [-126, 127] (built in the exponent field).
  static T pow2(T n) { return _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23)); }
  static T max(T a, T b) { return _mm_max_ps(a, b); }
  static T min(T a, T b) { return _mm_min_ps(a, b); }
  static float hsum(T v) {
    __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  // Loads 2N floats from p; returns their even and odd lanes.
  static void deinterleave2(const float* p, T& even, T& odd) {
    const T a = load(p), b = load(p + N);
    even = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    odd = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  }
};
constexpr int kGemmNV = 2;  // 6x8 tile: 12 accumulators of 16 xmm registers
}  // namespace edgesep::sse41
