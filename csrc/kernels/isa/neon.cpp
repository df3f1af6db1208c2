// The neon kernel table. Built with this ISA's compiler flags (CMakeLists.txt); called only once the
// CPU is known to support it (registry.cpp).
#include "../simd/vec_neon.h"
#include "table.h"

namespace edgesep {

const KernelTable* table_neon() {
  static const KernelTable t = detail::make_table<neon::Vec, neon::kGemmNV, neon::kIgemmMR, neon::kIgemmNC>("neon");
  return &t;
}

}  // namespace edgesep
