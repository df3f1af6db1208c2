// Scalar reference of the activation pass, with the C library's exp and tanh.
#include <cmath>

#include "../kernels.h"

namespace edgesep::ref {
void activation(ActCode code, float* x, int64_t n, float a, float b) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    switch (code) {
      case ActCode::Clamp: x[i] = v < a ? a : (v > b ? b : v); break;
      case ActCode::Leaky: x[i] = v < 0.f ? a * v : v; break;
      case ActCode::HardSigmoid: x[i] = std::fmin(1.f, std::fmax(0.f, a * v + b)); break;
      case ActCode::HardSwish: x[i] = v * std::fmin(1.f, std::fmax(0.f, v / 6.f + 0.5f)); break;
      case ActCode::Sigmoid: x[i] = 1.f / (1.f + std::exp(-v)); break;
      case ActCode::Tanh: x[i] = std::tanh(v); break;
    }
  }
}
}  // namespace edgesep::ref
