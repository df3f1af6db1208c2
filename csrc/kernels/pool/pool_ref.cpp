// Scalar reference of pooling's row reduction.
#include "../kernels.h"

namespace edgesep::ref {
void pool_row(float* acc, const float* x, int64_t n, bool is_max) {
  for (int64_t i = 0; i < n; ++i) acc[i] = is_max ? (acc[i] < x[i] ? x[i] : acc[i]) : acc[i] + x[i];
}
}  // namespace edgesep::ref
