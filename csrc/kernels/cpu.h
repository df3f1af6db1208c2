// CPU feature detection, done once.
#pragma once

namespace edgesep {

struct CpuFeatures {
  bool sse41 = false, avx2 = false, fma = false, avx512f = false;  // x86-64
  bool neon = false;                                                // aarch64 always; armv7 per HWCAP
};

const CpuFeatures& cpu_features();

// Physical cores (not SMT siblings) available to this process; at least 1.
int physical_cores();

}  // namespace edgesep
