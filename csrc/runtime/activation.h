// Activations fused into the producing op: min/max clamps go into the kernels' epilogue,
// the rest run as a pass over the freshly written (cache-hot) output block.
#pragma once
#include <cstdint>
#include <string>

#include "plan.h"

namespace edgesep {

enum class ActKind { None, Relu, Clip, LeakyRelu, PRelu, Sigmoid, HardSigmoid, HardSwish, Tanh };

struct Activation {
  ActKind kind = ActKind::None;
  float alpha = 0.f, beta = 0.f;  // clip: min, max; leaky: slope; hard_sigmoid: alpha, beta
  const float* slope = nullptr;   // prelu: one slope per channel, or one for all
  int64_t slope_count = 0;

  float lo() const;
  float hi() const;
  // True when the op must call apply() after its kernel (the clamp alone does not implement it).
  bool needs_pass() const { return kind != ActKind::None && kind != ActKind::Relu && kind != ActKind::Clip; }
  // Applies the activation to n values that all belong to `channel`, with the kernel table's pass.
  void apply(const KernelTable* k, float* x, int64_t n, int64_t channel) const;
  // The same over `rows` runs of `len` values, `stride` apart, run r of channel channel0 + r: one call
  // of the kernel where the runs are contiguous and the activation is the same for every channel.
  void apply_rows(const KernelTable* k, float* x, int64_t rows, int64_t len, int64_t stride, int64_t channel0) const;
  // The same over `pixels` runs of `len` channels, `stride` apart, each run channels channel0 .. (NHWC).
  void apply_pixels(const KernelTable* k, float* x, int64_t pixels, int64_t len, int64_t stride,
                    int64_t channel0) const;
};

// Reads attributes "activation" (+ "clip_min"/"clip_max", "alpha"/"beta") and weight "slope".
// `channels`: the size of axis 1 of the output, which a PRelu slope must match (or be 1).
Activation parse_activation(const Attrs& a, const Weights& w, int64_t channels);

}  // namespace edgesep
