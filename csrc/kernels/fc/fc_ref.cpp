// Scalar reference of the fully-connected layer: one dot product per row and input, in double.
#include "../kernels.h"

namespace edgesep::ref {
void fc(int K, const float* x, int batch, const float* W, const float* bias, float* y, int ldy, int n0, int n1,
        float lo, float hi) {
  for (int b = 0; b < batch; ++b)
    for (int n = n0; n < n1; ++n) {
      double acc = bias ? bias[n] : 0.0;
      for (int k = 0; k < K; ++k) acc += (double)W[(ptrdiff_t)n * K + k] * x[(ptrdiff_t)b * K + k];
      const float v = (float)acc;
      y[(ptrdiff_t)b * ldy + n] = v < lo ? lo : (v > hi ? hi : v);
    }
}
}  // namespace edgesep::ref
