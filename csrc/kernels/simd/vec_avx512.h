// 16-lane AVX-512F vector.
#pragma once
#include <immintrin.h>

namespace edgesep::avx512 {
struct Vec {
  using T = __m512;
  static constexpr int N = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static float hsum(T v) { return _mm512_reduce_add_ps(v); }
};
constexpr int kGemmNV = 2;  // 6x32 tile: 12 accumulators of 32 zmm registers
}  // namespace edgesep::avx512
