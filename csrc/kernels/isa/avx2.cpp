// The avx2 kernel table. Built with this ISA's compiler flags (CMakeLists.txt); called only once the
// CPU is known to support it (registry.cpp).
#include "../simd/vec_avx2.h"
#include "table.h"

namespace edgesep {

const KernelTable* table_avx2() {
  static const KernelTable t = detail::make_table<avx2::Vec, avx2::kGemmNV, avx2::kIgemmMR, avx2::kIgemmNC>("avx2");
  return &t;
}

}  // namespace edgesep
