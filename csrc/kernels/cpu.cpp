#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdint>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#if defined(__arm__)
#include <sys/auxv.h>
#endif
#endif

namespace edgesep {

namespace {
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  // CPUID and XGETBV directly, not __builtin_cpu_supports: zig's compiler runtime (a candidate for
  // wheels with an older glibc floor) leaves that builtin's data zero, and every CPU looked like "ref".
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    f.sse41 = c & bit_SSE4_1;
    uint64_t xcr0 = 0;
    if (c & bit_OSXSAVE) {
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      xcr0 = ((uint64_t)hi << 32) | lo;
    }
    const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;  // the OS saves YMM / ZMM state
    f.fma = ymm && (c & bit_FMA) && (c & bit_AVX);
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      f.avx2 = ymm && (b & bit_AVX2);
      f.avx512f = zmm && (b & bit_AVX512F);
    }
  }
#elif defined(__aarch64__)
  f.neon = true;
#elif defined(__arm__) && defined(__linux__)
  f.neon = (getauxval(AT_HWCAP) & (1UL << 12)) != 0;  // HWCAP_NEON
#endif
  return f;
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

int physical_cores() {
  int logical = (int)std::thread::hardware_concurrency();
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) logical = CPU_COUNT(&set);
  // Count distinct (package, core) pairs; SMT siblings share one.
  std::set<std::pair<std::string, std::string>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream pkg(base + "physical_package_id"), core(base + "core_id");
    std::string p, c;
    if (!(pkg >> p) || !(core >> c)) return logical > 0 ? logical : 1;
    cores.emplace(p, c);
  }
  if (!cores.empty()) return (int)cores.size();
#endif
  return logical > 0 ? logical : 1;
}

}  // namespace edgesep
