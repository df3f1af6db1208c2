// The avx512 kernel table. Built with this ISA's compiler flags (CMakeLists.txt); called only once the
// CPU is known to support it (registry.cpp).
#include "../simd/vec_avx512.h"
#include "table.h"

namespace edgesep {

const KernelTable* table_avx512() {
  static const KernelTable t = detail::make_table<avx512::Vec, avx512::kGemmNV, avx512::kIgemmMR, avx512::kIgemmNC>("avx512");
  return &t;
}

}  // namespace edgesep
