// The 4-lane SSE operations shared by the SSE4.1 vector (without FMA: multiply then add) and by the
// 4-wide vector of the AVX2 and AVX-512 tables (with FMA), for their 4-wide work (the sparse kernels'
// 1x4 and 4x1 blocks and lookups). A template on its owner's vector type, so that each table's
// translation unit, built with its own flags, instantiates its own copy (no inline function shared
// across ISA flags).
#pragma once
#include <immintrin.h>

#include <cstddef>

namespace edgesep {

template <class Owner, bool kFma>
struct Sse128 {
  using T = __m128;
  static constexpr int N = 4;
  static T zero() { return _mm_setzero_ps(); }
  static T set1(float x) { return _mm_set1_ps(x); }
  static T load(const float* p) { return _mm_loadu_ps(p); }
  static void store(float* p, T v) { _mm_storeu_ps(p, v); }
  // base[i[0]], ..., base[i[3]] (the sparse mat-vec's x lookups).
  template <class I>
  static T gather4(const float* base, const I* i) {
    return _mm_setr_ps(base[i[0]], base[i[1]], base[i[2]], base[i[3]]);
  }
  static T fma(T a, T b, T c) {
    if constexpr (kFma)
      return _mm_fmadd_ps(a, b, c);
    else
      return _mm_add_ps(_mm_mul_ps(a, b), c);
  }
  static T add(T a, T b) { return _mm_add_ps(a, b); }
  static T sub(T a, T b) { return _mm_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm_mul_ps(a, b); }
  static T max(T a, T b) { return _mm_max_ps(a, b); }
  static T min(T a, T b) { return _mm_min_ps(a, b); }
  // The 4 x 4 block at x (rows ldx apart) transposed into y (rows ldy apart).
  static void transpose4(const float* x, ptrdiff_t ldx, float* y, ptrdiff_t ldy) {
    T a = load(x), b = load(x + ldx), c = load(x + 2 * ldx), d = load(x + 3 * ldx);
    _MM_TRANSPOSE4_PS(a, b, c, d);
    store(y, a), store(y + ldy, b), store(y + 2 * ldy, c), store(y + 3 * ldy, d);
  }
  static float hsum(T v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
  }
};

// The 4-wide vector of a table whose CPU has FMA.
template <class Owner>
using Fma128 = Sse128<Owner, true>;

}  // namespace edgesep
