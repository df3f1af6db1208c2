// Scalar reference of pooling's row and pixel reductions.
#include "../kernels.h"

namespace edgesep::ref {
void pool_row(float* acc, const float* x, int64_t n, bool is_max) {
  for (int64_t i = 0; i < n; ++i) acc[i] = is_max ? (acc[i] < x[i] ? x[i] : acc[i]) : acc[i] + x[i];
}
void pool_taps(float* out, const float* const* taps, int n, int64_t C, bool is_max, float scale, int64_t pixels,
               int64_t step) {
  for (int64_t j = 0; j < pixels; ++j)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = j * step + c;
      double acc = taps[0][i];
      for (int t = 1; t < n; ++t) acc = is_max ? (acc < taps[t][i] ? taps[t][i] : acc) : acc + taps[t][i];
      out[j * C + c] = is_max ? (float)acc : (float)(acc * scale);
    }
}
}  // namespace edgesep::ref
