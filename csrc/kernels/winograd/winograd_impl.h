// Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms on NHWC, templated on the ISA's vector type
// (kernels.h: WinoShape). Both run over channel vectors: a tile's input values of one channel run are
// vector loads (zero vectors outside the input); F(2x2): B^T d B is 32 vector adds, A^T M A 24;
// F(4x4): B^T d B is 12 adds/FMAs per row and column of the 6x6 patch, A^T M A 10 per row and column.
// Channel tails run 4 wide, then one at a time, through the same code (a one-lane "vector").
#pragma once
#include "../kernels.h"
#include "../simd/lane1.h"

namespace edgesep::detail {

template <class U>
inline void wino_input_run(const WinoShape& s, const float* in, int t, int c, float* V, ptrdiff_t ldv) {
  using T = typename U::T;
  const int tw = s.TW(), y0 = 2 * (t / tw) - s.PT, x0 = 2 * (t % tw) - s.PL;
  T d[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int y = y0 + i, x = x0 + j;
      d[i][j] = (unsigned)y < (unsigned)s.H && (unsigned)x < (unsigned)s.W
                    ? U::load(in + ((ptrdiff_t)y * s.W + x) * s.C + c) : U::zero();
    }
  T r[4][4];  // B^T d
  for (int j = 0; j < 4; ++j) {
    r[0][j] = U::sub(d[0][j], d[2][j]);
    r[1][j] = U::add(d[1][j], d[2][j]);
    r[2][j] = U::sub(d[2][j], d[1][j]);
    r[3][j] = U::sub(d[1][j], d[3][j]);
  }
  for (int i = 0; i < 4; ++i) {  // (B^T d) B
    float* v = V + (ptrdiff_t)i * 4 * ldv + c;
    U::store(v, U::sub(r[i][0], r[i][2]));
    U::store(v + ldv, U::add(r[i][1], r[i][2]));
    U::store(v + 2 * ldv, U::sub(r[i][2], r[i][1]));
    U::store(v + 3 * ldv, U::sub(r[i][1], r[i][3]));
  }
}

template <class U>
inline void wino_output_run(const WinoShape& s, const float* M, ptrdiff_t ldm, int t, int n, const float* bias,
                            const float* sum, float* out, float lo, float hi) {
  using T = typename U::T;
  T m[4][4];
  for (int i = 0; i < 16; ++i) m[i / 4][i % 4] = U::load(M + i * ldm + n);
  T r[2][4];  // A^T m
  for (int j = 0; j < 4; ++j) {
    r[0][j] = U::add(U::add(m[0][j], m[1][j]), m[2][j]);
    r[1][j] = U::sub(U::sub(m[1][j], m[2][j]), m[3][j]);
  }
  const T b = bias ? U::load(bias + n) : U::zero(), vlo = U::set1(lo), vhi = U::set1(hi);
  const int tw = s.TW(), y0 = 2 * (t / tw), x0 = 2 * (t % tw);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      if (y0 + i >= s.OH || x0 + j >= s.OW) continue;
      T y = j == 0 ? U::add(U::add(r[i][0], r[i][1]), r[i][2]) : U::sub(U::sub(r[i][1], r[i][2]), r[i][3]);
      const ptrdiff_t o = ((ptrdiff_t)(y0 + i) * s.OW + x0 + j) * s.out_ld() + n;
      y = U::add(y, b);
      if (sum) y = U::add(y, U::load(sum + o));
      U::store(out + o, U::min(U::max(y, vlo), vhi));
    }
}

// F(4x4, 3x3), points 0, +-1, +-2: y = B^T x for one column (or row) x of a 6x6 patch.
template <class U>
inline void wino43_bt(const typename U::T* x, typename U::T* y) {
  using T = typename U::T;
  const T m4 = U::set1(-4.f), m5 = U::set1(-5.f), p4 = U::set1(4.f);
  const T t0 = U::fma(m4, x[2], x[4]), t1 = U::fma(m4, x[1], x[3]);  // x4 - 4 x2, x3 - 4 x1
  const T t2 = U::sub(x[4], x[2]), d31 = U::sub(x[3], x[1]), t3 = U::add(d31, d31);  // x4 - x2, 2 (x3 - x1)
  y[0] = U::fma(p4, x[0], U::fma(m5, x[2], x[4]));
  y[1] = U::add(t1, t0);
  y[2] = U::sub(t0, t1);
  y[3] = U::add(t2, t3);
  y[4] = U::sub(t2, t3);
  y[5] = U::fma(p4, x[1], U::fma(m5, x[3], x[5]));
}

// y = A^T m for one column (or row) m of a 6x6 block: four values.
template <class U>
inline void wino43_at(const typename U::T* m, typename U::T* y) {
  using T = typename U::T;
  const T a = U::add(m[1], m[2]), b = U::sub(m[1], m[2]), c = U::add(m[3], m[4]), d = U::sub(m[3], m[4]);
  y[0] = U::add(U::add(m[0], a), c);
  y[1] = U::fma(U::set1(2.f), d, b);
  y[2] = U::fma(U::set1(4.f), c, a);
  y[3] = U::add(U::fma(U::set1(8.f), d, b), m[5]);
}

template <class U>
inline void wino43_input_run(const WinoShape& s, const float* in, int t, int c, float* V, ptrdiff_t ldv) {
  using T = typename U::T;
  const int tw = s.TW(), y0 = 4 * (t / tw) - s.PT, x0 = 4 * (t % tw) - s.PL;
  T col[6][6];  // col[j] = B^T d[:, j]
  for (int j = 0; j < 6; ++j) {
    T d[6];
    for (int i = 0; i < 6; ++i) {
      const int y = y0 + i, x = x0 + j;
      d[i] = (unsigned)y < (unsigned)s.H && (unsigned)x < (unsigned)s.W
                 ? U::load(in + ((ptrdiff_t)y * s.W + x) * s.C + c) : U::zero();
    }
    wino43_bt<U>(d, col[j]);
  }
  for (int i = 0; i < 6; ++i) {  // row i of (B^T d) B
    T r[6], v[6];
    for (int j = 0; j < 6; ++j) r[j] = col[j][i];
    wino43_bt<U>(r, v);
    for (int j = 0; j < 6; ++j) U::store(V + (ptrdiff_t)(i * 6 + j) * ldv + c, v[j]);
  }
}

template <class U>
inline void wino43_output_run(const WinoShape& s, const float* M, ptrdiff_t ldm, int t, int n, const float* bias,
                              const float* sum, float* out, float lo, float hi) {
  using T = typename U::T;
  T col[6][4];  // col[j] = A^T m[:, j]
  for (int j = 0; j < 6; ++j) {
    T m[6];
    for (int i = 0; i < 6; ++i) m[i] = U::load(M + (i * 6 + j) * ldm + n);
    wino43_at<U>(m, col[j]);
  }
  const T b = bias ? U::load(bias + n) : U::zero(), vlo = U::set1(lo), vhi = U::set1(hi);
  const int tw = s.TW(), y0 = 4 * (t / tw), x0 = 4 * (t % tw);
  for (int i = 0; i < 4 && y0 + i < s.OH; ++i) {  // row i of (A^T m) A
    T r[6], y[4];
    for (int j = 0; j < 6; ++j) r[j] = col[j][i];
    wino43_at<U>(r, y);
    for (int j = 0; j < 4 && x0 + j < s.OW; ++j) {
      const ptrdiff_t o = ((ptrdiff_t)(y0 + i) * s.OW + x0 + j) * s.out_ld() + n;
      T v = U::add(y[j], b);
      if (sum) v = U::add(v, U::load(sum + o));
      U::store(out + o, U::min(U::max(v, vlo), vhi));
    }
  }
}

// The transforms of one channel run (U: a vector, 4-wide or one-lane type) for tile side M.
template <int M>
struct WinoRuns {
  template <class U>
  static void input(const WinoShape& s, const float* in, int t, int c, float* V, ptrdiff_t ldv) {
    if constexpr (M == 4)
      wino43_input_run<U>(s, in, t, c, V, ldv);
    else
      wino_input_run<U>(s, in, t, c, V, ldv);
  }
  template <class U>
  static void output(const WinoShape& s, const float* Mp, ptrdiff_t ldm, int t, int n, const float* bias,
                     const float* sum, float* out, float lo, float hi) {
    if constexpr (M == 4)
      wino43_output_run<U>(s, Mp, ldm, t, n, bias, sum, out, lo, hi);
    else
      wino_output_run<U>(s, Mp, ldm, t, n, bias, sum, out, lo, hi);
  }
};

template <class V, int M>
void wino_input_tiles(const WinoShape& s, const float* in, int t0, int nt, float* V_, ptrdiff_t ldv) {
  using R = WinoRuns<M>;
  for (int i = 0; i < nt; ++i) {
    float* v = V_ + (ptrdiff_t)i * s.C;
    int c = 0;
    for (; c + V::N <= s.C; c += V::N) R::template input<V>(s, in, t0 + i, c, v, ldv);
    for (; c + 4 <= s.C; c += 4) R::template input<typename V::V4>(s, in, t0 + i, c, v, ldv);
    for (; c < s.C; ++c) R::template input<Lane1<V>>(s, in, t0 + i, c, v, ldv);
  }
}

template <class V, int M>
void wino_output_tiles(const WinoShape& s, const float* Mp, ptrdiff_t ldm, int t0, int nt, const float* bias,
                       const float* sum, float* out, float lo, float hi) {
  using R = WinoRuns<M>;
  for (int i = 0; i < nt; ++i) {
    const float* m = Mp + (ptrdiff_t)i * s.N;
    int n = 0;
    for (; n + V::N <= s.N; n += V::N) R::template output<V>(s, m, ldm, t0 + i, n, bias, sum, out, lo, hi);
    for (; n + 4 <= s.N; n += 4) R::template output<typename V::V4>(s, m, ldm, t0 + i, n, bias, sum, out, lo, hi);
    for (; n < s.N; ++n) R::template output<Lane1<V>>(s, m, ldm, t0 + i, n, bias, sum, out, lo, hi);
  }
}

template <class V>
void wino_input(const WinoShape& s, const float* in, int t0, int nt, float* V_, ptrdiff_t ldv) {
  s.M == 4 ? wino_input_tiles<V, 4>(s, in, t0, nt, V_, ldv) : wino_input_tiles<V, 2>(s, in, t0, nt, V_, ldv);
}

template <class V>
void wino_output(const WinoShape& s, const float* M, ptrdiff_t ldm, int t0, int nt, const float* bias, const float* sum,
                 float* out, float lo, float hi) {
  s.M == 4 ? wino_output_tiles<V, 4>(s, M, ldm, t0, nt, bias, sum, out, lo, hi)
           : wino_output_tiles<V, 2>(s, M, ldm, t0, nt, bias, sum, out, lo, hi);
}

}  // namespace edgesep::detail
