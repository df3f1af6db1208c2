// 16-lane AVX-512F vector.
#pragma once
#include <immintrin.h>

#include "avx256.h"
#include "broadcast_weights.h"
#include "sse128.h"

namespace edgesep::avx512 {
// The lower 256 bits, for tiles whose last 8 channels would leave half a zmm idle (24 channels: one
// zmm and one ymm instead of two zmm; on cores that split a zmm FMA in two, a quarter less work).
struct Half : Avx256<Half> {};

struct Vec : BroadcastWeights<Vec> {
  // The 3x3 depthwise conv sweeps each row with its weights in registers (dwnhwc_impl.h): the grouped
  // windows' loads were the limit (1.2-1.7x faster at MobileNet's shapes, AVX2 and AVX-512).
  static constexpr bool kDwRowSweep = true;
  using Half = avx512::Half;
  using T = __m512;
  using V4 = Fma128<Vec>;  // for 4-wide work
  static constexpr int N = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T floor(T a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  // 2^n for integer-valued n in [-126, 127] (built in the exponent field).
  static T pow2(T n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static float hsum(T v) { return _mm512_reduce_add_ps(v); }
  // Loads 2N floats from p; returns their even and odd lanes.
  static void deinterleave2(const float* p, T& even, T& odd) {
    const T a = load(p), b = load(p + N);
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    even = _mm512_permutex2var_ps(a, ie, b);
    odd = _mm512_permutex2var_ps(a, io, b);
  }
};
constexpr int kGemmNV = 2;  // 6x32 tile: 12 accumulators of 32 zmm registers
// NHWC conv: 6 pixels x 64 channels, 24 accumulators; per input channel 4 weight loads, 6 broadcasts.
constexpr int kIgemmMR = 6, kIgemmNC = 64;
}  // namespace edgesep::avx512
