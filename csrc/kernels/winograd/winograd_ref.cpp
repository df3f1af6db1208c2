// Scalar reference of the Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms: the matrix products written
// out in double.
#include "../kernels.h"

namespace edgesep::ref {

namespace {
// B^T and A^T of F(2x2, 3x3) (interpolation points 0, 1, -1) and of F(4x4, 3x3) (0, 1, -1, 2, -2), each
// with the point at infinity.
constexpr double kBT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr double kAT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
constexpr double kBT4[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                               {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr double kAT4[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

double bt(int m, int a, int k) { return m == 2 ? kBT2[a][k] : kBT4[a][k]; }
double at(int m, int a, int k) { return m == 2 ? kAT2[a][k] : kAT4[a][k]; }
}  // namespace

void wino_input(const WinoShape& s, const float* in, int t0, int nt, float* V, ptrdiff_t ldv) {
  const int tw = s.TW(), m = s.M, e = m + 2;
  for (int i = 0; i < nt; ++i) {
    const int t = t0 + i, y0 = m * (t / tw) - s.PT, x0 = m * (t % tw) - s.PL;
    for (int c = 0; c < s.C; ++c) {
      double d[6][6];
      for (int a = 0; a < e; ++a)
        for (int b = 0; b < e; ++b) {
          const int y = y0 + a, x = x0 + b;
          d[a][b] = y >= 0 && y < s.H && x >= 0 && x < s.W ? in[((ptrdiff_t)y * s.W + x) * s.C + c] : 0.0;
        }
      for (int a = 0; a < e; ++a)
        for (int b = 0; b < e; ++b) {
          double v = 0;
          for (int k = 0; k < e; ++k)
            for (int l = 0; l < e; ++l) v += bt(m, a, k) * d[k][l] * bt(m, b, l);
          V[(ptrdiff_t)(a * e + b) * ldv + (ptrdiff_t)i * s.C + c] = (float)v;
        }
    }
  }
}

void wino_output(const WinoShape& s, const float* M, ptrdiff_t ldm, int t0, int nt, const float* bias,
                 const float* sum, float* out, float lo, float hi) {
  const int tw = s.TW(), m = s.M, e = m + 2;
  for (int i = 0; i < nt; ++i) {
    const int t = t0 + i, y0 = m * (t / tw), x0 = m * (t % tw);
    for (int n = 0; n < s.N; ++n)
      for (int a = 0; a < m; ++a)
        for (int b = 0; b < m; ++b) {
          if (y0 + a >= s.OH || x0 + b >= s.OW) continue;
          const ptrdiff_t o = ((ptrdiff_t)(y0 + a) * s.OW + x0 + b) * s.out_ld() + n;
          double y = (bias ? bias[n] : 0.0) + (sum ? sum[o] : 0.0);
          for (int k = 0; k < e; ++k)
            for (int l = 0; l < e; ++l) y += at(m, a, k) * M[(ptrdiff_t)(k * e + l) * ldm + (ptrdiff_t)i * s.N + n] * at(m, b, l);
          const float v = (float)y;
          out[o] = v < lo ? lo : (v > hi ? hi : v);
        }
  }
}

}  // namespace edgesep::ref
