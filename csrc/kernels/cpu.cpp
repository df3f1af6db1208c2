#include "cpu.h"

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
  __builtin_cpu_init();  // libgcc checks OS support (XGETBV) for the AVX state too
  f.sse41 = __builtin_cpu_supports("sse4.1");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
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
