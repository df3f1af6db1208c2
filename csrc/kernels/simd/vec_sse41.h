// 4-lane SSE4.1 vector (x86-64 baseline). No FMA here: multiply then add.
#pragma once
#include <smmintrin.h>

#include "broadcast_weights.h"
#include "sse128.h"

namespace edgesep::sse41 {
struct Vec : BroadcastWeights<Vec>, Sse128<Vec, false> {
  // The 3x3 depthwise conv keeps its grouped windows (dwnhwc_impl.h): without FMA the row sweep's
  // extra registers cost more than its loads save (0.75-1.0x the time).
  static constexpr bool kDwRowSweep = false;
  using V4 = Vec;  // for 4-wide work
  static T div(T a, T b) { return _mm_div_ps(a, b); }
  static T floor(T a) { return _mm_floor_ps(a); }
  // 2^n for integer-valued n in [-126, 127] (built in the exponent field).
  static T pow2(T n) { return _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23)); }
  // Loads 2N floats from p; returns their even and odd lanes.
  static void deinterleave2(const float* p, T& even, T& odd) {
    const T a = load(p), b = load(p + N);
    even = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    odd = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  }
};
constexpr int kGemmNV = 2;  // 6x8 tile: 12 accumulators of 16 xmm registers
// NHWC conv: 2 pixels x 16 channels, 8 accumulators + 4 weight vectors + a broadcast.
constexpr int kIgemmMR = 2, kIgemmNC = 16;
}  // namespace edgesep::sse41
