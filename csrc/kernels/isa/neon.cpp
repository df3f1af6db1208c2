// The neon kernel table: every family's template instantiated with the neon vector type.
// Built with this ISA's compiler flags (see CMakeLists.txt); only called once the CPU is known to
// support it.
#include "../simd/vec_neon.h"
#include "../conv2d/conv2d_impl.h"
#include "../dwconv/dwconv_impl.h"
#include "../fc/fc_impl.h"

namespace edgesep {

const KernelTable* table_neon() {
  using V = neon::Vec;
  constexpr int NV = neon::kGemmNV;
  static const KernelTable t{"neon",
                             NV * V::N,
                             detail::conv_gemm<V, NV>,
                             detail::conv_pack<V, NV>,
                             detail::conv_packed_gemm<V, NV>,
                             detail::dwconv<V>,
                             detail::fc<V>};
  return &t;
}

}  // namespace edgesep
