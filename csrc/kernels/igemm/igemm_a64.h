// The NHWC conv tile's whole depth on aarch64, 8 pixels x 8 channels, in assembly scheduled for
// in-order cores such as the Cortex-A53 (Raspberry Pi 3 and Zero 2, many Snapdragon 4xx/6xx boards).
//
// Why this shape and order (llvm-mca's Cortex-A53 model, docs/arm.md): an FMLA's sum is ready 10 cycles
// after it issues, and the core writes results back in program order, so a load issued after FMLAs
// waits for theirs (4 cycles per group of loads, however many it holds); loads do not pair with FMLAs.
// The cost of a depth step is then FMLAs + loads + 4 per group of loads. A tile of 4 pixels x 16
// channels needs 20 loads per 64 FMLAs and, with 16 sums in registers, room for only half of them at
// once (two groups: 69% of peak at best; compiled from intrinsics, with the loads spread among the
// FMLAs, 50% under GCC and 56% under clang). 8 pixels x 8 channels needs 16 loads per 64 FMLAs (8
// pixels' 4 input channels, 4 x 8 weights), all in registers at once beside the 16 sums: one group
// per step, then 64 FMLAs ordered lane by lane, so that a sum's next FMLA comes 16 later.
// Each sum adds its terms in the intrinsic tile's order (tap by tap, input channel by channel); ctest
// compares the kernel with the scalar reference over edge shapes, under qemu on ARM.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace edgesep::detail {

// Whether the tile of vector type V, MR pixels and NV vectors runs its depth by igemm_a64_8x8.
#if defined(__aarch64__)
template <class V, int MR, int NV, bool HALF>
inline constexpr bool kA64Tile = std::is_same_v<typename V::T, float32x4_t> && MR == 8 && NV == 2 && !HALF;
#else
template <class V, int MR, int NV, bool HALF>
inline constexpr bool kA64Tile = false;
#endif

#if defined(__aarch64__)
// Registers: sums v0..v15 (pixel p's channels 0..3 in v(2p), 4..7 in v(2p+1)); pixel p's 4 input
// channels in v(16+p); the weights of input channel c+l in v(24+2l), v(25+2l).
// Pixel p's input pointer for the tap: in + 4 * its offset, or the zero row where the offset is < 0.
#define EDGESEP_PIXEL(p, off)                        \
  "ldr %[x" #p "], [%[rows], #" #off "]\n"           \
  "ldrsw %[x" #p "], [%[x" #p "], %[t]]\n"           \
  "cmp %[x" #p "], #0\n"                             \
  "add %[x" #p "], %[in], %[x" #p "], lsl #2\n"      \
  "csel %[x" #p "], %[zero], %[x" #p "], lt\n"
// Lane l's 16 FMLAs: every pixel's sums += lane l of its inputs x the weights of input channel c+l.
#define EDGESEP_F(acc, w, x, l) "fmla v" #acc ".4s, v" #w ".4s, v" #x ".s[" #l "]\n"
#define EDGESEP_LANE(l, wa, wb)                                                                        \
  EDGESEP_F(0, wa, 16, l) EDGESEP_F(1, wb, 16, l) EDGESEP_F(2, wa, 17, l) EDGESEP_F(3, wb, 17, l)         \
  EDGESEP_F(4, wa, 18, l) EDGESEP_F(5, wb, 18, l) EDGESEP_F(6, wa, 19, l) EDGESEP_F(7, wb, 19, l)         \
  EDGESEP_F(8, wa, 20, l) EDGESEP_F(9, wb, 20, l) EDGESEP_F(10, wa, 21, l) EDGESEP_F(11, wb, 21, l)       \
  EDGESEP_F(12, wa, 22, l) EDGESEP_F(13, wb, 22, l) EDGESEP_F(14, wa, 23, l) EDGESEP_F(15, wb, 23, l)

// For each tap t and each of the C = 4 * steps input channels c: sums[p][0:8] += pixel p's input
// channel c * w[(t * C + c) * 16 .. + 8], where pixel p's input for tap t is in + rows[p][t] (the zero
// row where rows[p][t] < 0), and w's rows are 16 floats apart (one weight panel; w points at its
// first or second half). The sums are read from and written back to `sums` (16 vectors, pixel-major).
// taps >= 1, steps >= 1.
inline void igemm_a64_8x8(float* sums, const float* in, const int32_t* const* rows, const float* zero,
                          const float* w, int taps, int steps) {
  const float *x0, *x1, *x2, *x3, *x4, *x5, *x6, *x7;
  ptrdiff_t i, n, t;  // the step's byte offset in each pixel, steps left, the tap's byte offset in rows[p]
  ptrdiff_t tl = taps;
  asm volatile(
      "ldp q0, q1, [%[s]]\n"
      "ldp q2, q3, [%[s], #32]\n"
      "ldp q4, q5, [%[s], #64]\n"
      "ldp q6, q7, [%[s], #96]\n"
      "ldp q8, q9, [%[s], #128]\n"
      "ldp q10, q11, [%[s], #160]\n"
      "ldp q12, q13, [%[s], #192]\n"
      "ldp q14, q15, [%[s], #224]\n"
      "mov %[t], #0\n"
      "3:\n"  // each tap
      EDGESEP_PIXEL(0, 0) EDGESEP_PIXEL(1, 8) EDGESEP_PIXEL(2, 16) EDGESEP_PIXEL(3, 24)
      EDGESEP_PIXEL(4, 32) EDGESEP_PIXEL(5, 40) EDGESEP_PIXEL(6, 48) EDGESEP_PIXEL(7, 56)
      "add %[t], %[t], #4\n"
      "mov %[i], #0\n"
      "mov %[n], %[steps]\n"
      "1:\n"  // each step of 4 input channels: all its loads, then its FMLAs
      "ldp q24, q25, [%[w]]\n"
      "ldr q16, [%[x0], %[i]]\n"
      "ldr q17, [%[x1], %[i]]\n"
      "ldr q18, [%[x2], %[i]]\n"
      "ldr q19, [%[x3], %[i]]\n"
      "ldr q20, [%[x4], %[i]]\n"
      "ldr q21, [%[x5], %[i]]\n"
      "ldr q22, [%[x6], %[i]]\n"
      "ldr q23, [%[x7], %[i]]\n"
      "ldp q26, q27, [%[w], #64]\n"
      "ldp q28, q29, [%[w], #128]\n"
      "ldp q30, q31, [%[w], #192]\n"
      "add %[w], %[w], #256\n"
      "add %[i], %[i], #16\n"
      "subs %[n], %[n], #1\n"
      EDGESEP_LANE(0, 24, 25) EDGESEP_LANE(1, 26, 27) EDGESEP_LANE(2, 28, 29) EDGESEP_LANE(3, 30, 31)
      "b.ne 1b\n"
      "subs %[tl], %[tl], #1\n"
      "b.ne 3b\n"
      "stp q0, q1, [%[s]]\n"
      "stp q2, q3, [%[s], #32]\n"
      "stp q4, q5, [%[s], #64]\n"
      "stp q6, q7, [%[s], #96]\n"
      "stp q8, q9, [%[s], #128]\n"
      "stp q10, q11, [%[s], #160]\n"
      "stp q12, q13, [%[s], #192]\n"
      "stp q14, q15, [%[s], #224]\n"
      : [w] "+r"(w), [tl] "+r"(tl), [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [x4] "=&r"(x4),
        [x5] "=&r"(x5), [x6] "=&r"(x6), [x7] "=&r"(x7), [i] "=&r"(i), [n] "=&r"(n), [t] "=&r"(t)
      : [s] "r"(sums), [in] "r"(in), [zero] "r"(zero), [rows] "r"(rows), [steps] "r"((ptrdiff_t)steps)
      : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13",
        "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28",
        "v29", "v30", "v31");
}

#undef EDGESEP_LANE
#undef EDGESEP_F
#undef EDGESEP_PIXEL
#endif

}  // namespace edgesep::detail
