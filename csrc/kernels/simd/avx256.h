// The 8-lane AVX + FMA operations shared by the AVX2 vector and by the AVX-512 table's half vector (a
// tile's last 8 channels in a ymm). A template on its owner's type, so that each table's translation
// unit, built with its own flags, instantiates its own copy (no inline function shared across ISA
// flags), as sse128.h does for the 4-lane ones.
#pragma once
#include <immintrin.h>

namespace edgesep {

template <class Owner>
struct Avx256 {
  using T = __m256;
  static constexpr int N = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
};

}  // namespace edgesep
