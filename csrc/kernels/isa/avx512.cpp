// The avx512 kernel table: every family's template instantiated with the avx512 vector type.
// Built with this ISA's compiler flags (see CMakeLists.txt); only called once the CPU is known to
// support it.
#include "../simd/vec_avx512.h"
#include "../conv2d/conv2d_impl.h"
#include "../dwconv/dwconv_impl.h"
#include "../fc/fc_impl.h"

namespace edgesep {

const KernelTable* table_avx512() {
  using V = avx512::Vec;
  constexpr int NV = avx512::kGemmNV;
  static const KernelTable t{"avx512",
                             NV * V::N,
                             detail::conv_gemm<V, NV>,
                             detail::conv_pack<V, NV>,
                             detail::conv_packed_gemm<V, NV>,
                             detail::dwconv<V>,
                             detail::fc<V>};
  return &t;
}

}  // namespace edgesep
