// Scalar reference of the sparse x dense product: every block's every value, accumulated in double.
#include "../kernels.h"

namespace edgesep::ref {
void spmm(const SparseMatrix& a, const float* x, int batch, const float* bias, float* y, int r0, int r1, float lo,
          float hi) {
  for (int r = r0; r < r1; ++r) {
    const int i = r / a.br, rr = r % a.br;
    for (int b = 0; b < batch; ++b) {
      double acc = bias ? bias[r] : 0.0;
      for (int j = a.row_ptr[i]; j < a.row_ptr[i + 1]; ++j) {
        const int c0 = a.col16 ? a.col16[j] : a.col32[j];
        for (int c = 0; c < a.bc; ++c)
          acc += (double)a.values[((ptrdiff_t)j * a.br + rr) * a.bc + c] * x[((ptrdiff_t)c0 + c) * batch + b];
      }
      const float v = (float)acc;
      y[(ptrdiff_t)r * batch + b] = v < lo ? lo : (v > hi ? hi : v);
    }
  }
}
}  // namespace edgesep::ref
