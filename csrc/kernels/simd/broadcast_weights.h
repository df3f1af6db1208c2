// The GEMM tile's weights on x86: each of the kGemmMR weights of a depth step is broadcast straight
// from memory (a load-port operation here, free of shuffles). A base of each x86 vector type (CRTP).
#pragma once

namespace edgesep {

template <class Vec>
struct BroadcastWeights {
  // The NHWC conv broadcasts each input value from memory too (no load-4-and-multiply-by-lane).
  static constexpr bool kLaneFma = false;
  struct ARow {
    const float* p;
  };
  static ARow load_a(const float* p) { return {p}; }
  // acc + weight R of the step times b.
  template <int R, class T>
  static T fma_a(const ARow& a, T b, T acc) {
    return Vec::fma(Vec::set1(a.p[R]), b, acc);
  }
};

}  // namespace edgesep
