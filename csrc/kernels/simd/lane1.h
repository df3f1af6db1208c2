// One float as a vector type, for the tails of kernels vectorised over channels or a batch; a template
// on the owner so that each table's translation unit instantiates its own copy (no inline code shared
// across ISA flags).
#pragma once

namespace edgesep::detail {

template <class Owner>
struct Lane1 {
  using T = float;
  static constexpr int N = 1;
  static T zero() { return 0.f; }
  static T set1(float x) { return x; }
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T fma(T a, T b, T c) { return a * b + c; }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T max(T a, T b) { return a > b ? a : b; }
  static T min(T a, T b) { return a < b ? a : b; }
};

}  // namespace edgesep::detail
