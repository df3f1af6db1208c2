// Scalar reference of the Winograd F(2x2, 3x3) transforms: the matrix products written out in double.
#include "../kernels.h"

namespace edgesep::ref {

namespace {
constexpr double kBT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr double kAT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
}  // namespace

void wino_input(const WinoShape& s, const float* in, int t0, int nt, float* V, ptrdiff_t ldv) {
  const int tw = s.TW();
  for (int i = 0; i < nt; ++i) {
    const int t = t0 + i, y0 = 2 * (t / tw) - s.PT, x0 = 2 * (t % tw) - s.PL;
    for (int c = 0; c < s.C; ++c) {
      double d[4][4];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          const int y = y0 + a, x = x0 + b;
          d[a][b] = y >= 0 && y < s.H && x >= 0 && x < s.W ? in[((ptrdiff_t)y * s.W + x) * s.C + c] : 0.0;
        }
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          double v = 0;
          for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 4; ++l) v += kBT[a][k] * d[k][l] * kBT[b][l];
          V[(ptrdiff_t)(a * 4 + b) * ldv + (ptrdiff_t)i * s.C + c] = (float)v;
        }
    }
  }
}

void wino_output(const WinoShape& s, const float* M, ptrdiff_t ldm, int t0, int nt, const float* bias,
                 const float* sum, float* out, float lo, float hi) {
  const int tw = s.TW();
  for (int i = 0; i < nt; ++i) {
    const int t = t0 + i, y0 = 2 * (t / tw), x0 = 2 * (t % tw);
    for (int n = 0; n < s.N; ++n)
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          if (y0 + a >= s.OH || x0 + b >= s.OW) continue;
          const ptrdiff_t o = ((ptrdiff_t)(y0 + a) * s.OW + x0 + b) * s.N + n;
          double y = (bias ? bias[n] : 0.0) + (sum ? sum[o] : 0.0);
          for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 4; ++l) y += kAT[a][k] * M[(ptrdiff_t)(k * 4 + l) * ldm + (ptrdiff_t)i * s.N + n] * kAT[b][l];
          const float v = (float)y;
          out[o] = v < lo ? lo : (v > hi ? hi : v);
        }
  }
}

}  // namespace edgesep::ref
