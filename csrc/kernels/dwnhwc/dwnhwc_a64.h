// The NHWC depthwise conv's window rows on aarch64, for 8 output pixels of a 3-wide window at stride
// 1 (MobileNet's), in assembly scheduled for in-order cores such as the Cortex-A53. Per window row,
// all 13 loads (the 10 input vectors the 8 windows span, the 3 weights) in one group, then the 24
// FMLAs column by column: in llvm-mca's A53 model a load issued after FMLAs waits for their results (4
// cycles per group of loads), so clang's code, which spreads the loads among the FMLAs, modelled at 29%
// of the core's peak (GCC's, with two groups, at 44%). igemm_a64.h has the model's rules.
#pragma once
#include <cstddef>
#include <type_traits>
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace edgesep::detail {

// Whether dw_pixels<U, PX> runs its 3-wide stride-1 window rows by dw3_rows_a64_8.
#if defined(__aarch64__)
template <class U, int PX>
inline constexpr bool kA64DwRows = std::is_same_v<typename U::T, float32x4_t> && PX == 8;
#else
template <class U, int PX>
inline constexpr bool kA64DwRows = false;
#endif

#if defined(__aarch64__)
#define EDGESEP_DWF(i, x, w) "fmla %[a" #i "].4s, v" #x ".4s, v" #w ".4s\n"
// For `rows` >= 1 window rows: acc[i] += sum over kx < 3 of x[(i + kx) * C] * w[kx * C], then x moves
// on by rs floats and w by 3 * C (the weights' next row). C is the channel count (the pixels' stride).
inline void dw3_rows_a64_8(float32x4_t (&acc)[8], const float* x, const float* w, ptrdiff_t rs, ptrdiff_t C,
                           ptrdiff_t rows) {
  asm volatile(
      // Byte offsets of the 9 input vectors after the first, and the weights' row step.
      "lsl x9, %[C], #2\n"
      "add x10, x9, x9\n"
      "add x11, x10, x9\n"
      "add x12, x11, x9\n"
      "add x13, x12, x9\n"
      "add x14, x13, x9\n"
      "add x15, x14, x9\n"
      "add x16, x15, x9\n"
      "add x17, x16, x9\n"
      "lsl %[rs], %[rs], #2\n"
      "1:\n"
      "ldr q16, [%[x]]\n"
      "ldr q17, [%[x], x9]\n"
      "ldr q18, [%[x], x10]\n"
      "ldr q19, [%[x], x11]\n"
      "ldr q20, [%[x], x12]\n"
      "ldr q21, [%[x], x13]\n"
      "ldr q22, [%[x], x14]\n"
      "ldr q23, [%[x], x15]\n"
      "ldr q24, [%[x], x16]\n"
      "ldr q25, [%[x], x17]\n"
      "ldr q26, [%[w]]\n"
      "ldr q27, [%[w], x9]\n"
      "ldr q28, [%[w], x10]\n"
      "add %[x], %[x], %[rs]\n"
      "add %[w], %[w], x11\n"
      "subs %[n], %[n], #1\n"
      EDGESEP_DWF(0, 16, 26) EDGESEP_DWF(1, 17, 26) EDGESEP_DWF(2, 18, 26) EDGESEP_DWF(3, 19, 26)
      EDGESEP_DWF(4, 20, 26) EDGESEP_DWF(5, 21, 26) EDGESEP_DWF(6, 22, 26) EDGESEP_DWF(7, 23, 26)
      EDGESEP_DWF(0, 17, 27) EDGESEP_DWF(1, 18, 27) EDGESEP_DWF(2, 19, 27) EDGESEP_DWF(3, 20, 27)
      EDGESEP_DWF(4, 21, 27) EDGESEP_DWF(5, 22, 27) EDGESEP_DWF(6, 23, 27) EDGESEP_DWF(7, 24, 27)
      EDGESEP_DWF(0, 18, 28) EDGESEP_DWF(1, 19, 28) EDGESEP_DWF(2, 20, 28) EDGESEP_DWF(3, 21, 28)
      EDGESEP_DWF(4, 22, 28) EDGESEP_DWF(5, 23, 28) EDGESEP_DWF(6, 24, 28) EDGESEP_DWF(7, 25, 28)
      "b.ne 1b\n"
      : [a0] "+w"(acc[0]), [a1] "+w"(acc[1]), [a2] "+w"(acc[2]), [a3] "+w"(acc[3]), [a4] "+w"(acc[4]),
        [a5] "+w"(acc[5]), [a6] "+w"(acc[6]), [a7] "+w"(acc[7]), [x] "+r"(x), [w] "+r"(w), [rs] "+r"(rs),
        [n] "+r"(rows)
      : [C] "r"(C)
      : "cc", "memory", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "v16", "v17", "v18", "v19",
        "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28");
}
#undef EDGESEP_DWF
#endif

}  // namespace edgesep::detail
