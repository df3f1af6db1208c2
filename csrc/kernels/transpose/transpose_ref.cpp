// Scalar reference of the image transpose.
#include "../kernels.h"

namespace edgesep::ref {
void transpose(const float* x, int64_t rows, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
               float* y) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) y[c * rows + r] = x[r * cols + c];
}
}  // namespace edgesep::ref
