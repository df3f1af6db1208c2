// The range of every value a bundle may set, and arithmetic that fails instead of wrapping. The
// numbers are the format's limits (docs/bundle-format.md, "Limits"); bundle.py checks the same ones
// (ops.LIMITS, compared with these by a test) before a header reaches the plan builder, which checks
// them again here: the plan builder is the last line in front of the kernels' 32-bit index math.
#pragma once
#include <cstdint>
#include <vector>

namespace edgesep {

// Any dimension, count or integer attribute (axes, Reshape dims, Pad's pads...) in absolute value.
constexpr int64_t kMaxDim = 2147483647;
// Elements of any tensor, and of what a conv or pool reads as one: its padded input and (a conv)
// its depth C/groups x kh x kw. The kernels index within these with 32-bit ints.
constexpr int64_t kMaxElements = 2147483647;
// kernel_shape, strides, dilations (at least 1) and pads (at least 0) of a conv or a pool.
constexpr int64_t kMaxWindow = 65535;
// Threads of one plan.
constexpr int64_t kMaxThreads = 256;

// (The messages are built only on failure: numel() runs these on every step of a run.)
// a * b, or a PlanError naming `what` where the product is negative or exceeds `limit`.
int64_t checked_mul(int64_t a, int64_t b, const char* what, int64_t limit = kMaxElements);
// The product of `dims`, each checked to be in [0, kMaxDim] and the product to be within `limit`.
int64_t checked_product(const std::vector<int64_t>& dims, const char* what, int64_t limit = kMaxElements);
// v itself if within [lo, hi], else a PlanError naming `what` and the value.
int64_t in_range(int64_t v, int64_t lo, int64_t hi, const char* what);

}  // namespace edgesep
