// 8-lane AVX2 + FMA vector.
#pragma once
#include <immintrin.h>

#include "avx256.h"
#include "broadcast_weights.h"
#include "sse128.h"

namespace edgesep::avx2 {
struct Vec : BroadcastWeights<Vec>, Avx256<Vec> {
  // The 3x3 depthwise conv sweeps each row with its weights in registers (dwnhwc_impl.h): the grouped
  // windows' loads were the limit (1.2-1.7x faster at MobileNet's shapes, AVX2 and AVX-512).
  static constexpr bool kDwRowSweep = true;
  using V4 = Fma128<Vec>;  // for 4-wide work
  static T floor(T a) { return _mm256_floor_ps(a); }
  // 2^n for integer-valued n in [-126, 127] (built in the exponent field).
  static T pow2(T n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static float hsum(T v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  // Loads 2N floats from p; returns their even and odd lanes.
  static void deinterleave2(const float* p, T& even, T& odd) {
    const T a = load(p), b = load(p + N);
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
  }
};
constexpr int kGemmNV = 2;  // 6x16 tile: 12 accumulators of 16 ymm registers
// NHWC conv: 6 pixels x 16 channels, 12 accumulators + 2 weight vectors + a broadcast.
constexpr int kIgemmMR = 6, kIgemmNC = 16;
}  // namespace edgesep::avx2
