// Winograd F(2x2, 3x3) transforms on NHWC, templated on the ISA's vector type (kernels.h: WinoShape).
// Both run over channel vectors: a tile's 16 input values of one channel run are 16 vector loads
// (zero vectors outside the input), B^T d B is 32 vector adds; A^T M A for 16 channels is 24. Channel
// tails run 4 wide, then one at a time, through the same code (a one-lane "vector").
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
      const ptrdiff_t o = ((ptrdiff_t)(y0 + i) * s.OW + x0 + j) * s.N + n;
      y = U::add(y, b);
      if (sum) y = U::add(y, U::load(sum + o));
      U::store(out + o, U::min(U::max(y, vlo), vhi));
    }
}

template <class V>
void wino_input(const WinoShape& s, const float* in, int t0, int nt, float* V_, ptrdiff_t ldv) {
  using V4 = typename V::V4;
  for (int i = 0; i < nt; ++i) {
    float* v = V_ + (ptrdiff_t)i * s.C;
    int c = 0;
    for (; c + V::N <= s.C; c += V::N) wino_input_run<V>(s, in, t0 + i, c, v, ldv);
    for (; c + 4 <= s.C; c += 4) wino_input_run<V4>(s, in, t0 + i, c, v, ldv);
    for (; c < s.C; ++c) wino_input_run<Lane1<V>>(s, in, t0 + i, c, v, ldv);
  }
}

template <class V>
void wino_output(const WinoShape& s, const float* M, ptrdiff_t ldm, int t0, int nt, const float* bias, const float* sum,
                 float* out, float lo, float hi) {
  using V4 = typename V::V4;
  for (int i = 0; i < nt; ++i) {
    const float* m = M + (ptrdiff_t)i * s.N;
    int n = 0;
    for (; n + V::N <= s.N; n += V::N) wino_output_run<V>(s, m, ldm, t0 + i, n, bias, sum, out, lo, hi);
    for (; n + 4 <= s.N; n += 4) wino_output_run<V4>(s, m, ldm, t0 + i, n, bias, sum, out, lo, hi);
    for (; n < s.N; ++n) wino_output_run<Lane1<V>>(s, m, ldm, t0 + i, n, bias, sum, out, lo, hi);
  }
}

}  // namespace edgesep::detail
