// The sse41 kernel table. Built with this ISA's compiler flags (CMakeLists.txt); called only once the
// CPU is known to support it (registry.cpp).
#include "../simd/vec_sse41.h"
#include "table.h"

namespace edgesep {

const KernelTable* table_sse41() {
  static const KernelTable t = detail::make_table<sse41::Vec, sse41::kGemmNV, sse41::kIgemmMR, sse41::kIgemmNC>("sse41");
  return &t;
}

}  // namespace edgesep
