// Scalar reference of the fully-connected layer: one dot product per row, in double.
#include "../kernels.h"

namespace edgesep::ref {
void fc(int K, const float* x, const float* W, const float* bias, float* y, int n0, int n1, float lo,
        float hi) {
  for (int n = n0; n < n1; ++n) {
    double acc = bias ? bias[n] : 0.0;
    for (int k = 0; k < K; ++k) acc += (double)W[(ptrdiff_t)n * K + k] * x[k];
    const float v = (float)acc;
    y[n] = v < lo ? lo : (v > hi ? hi : v);
  }
}
}  // namespace edgesep::ref
