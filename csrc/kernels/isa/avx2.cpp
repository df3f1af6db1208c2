// The avx2 kernel table: every family's template instantiated with the avx2 vector type.
// Built with this ISA's compiler flags (see CMakeLists.txt); only called once the CPU is known to
// support it.
#include "../simd/vec_avx2.h"
#include "../conv2d/conv2d_impl.h"
#include "../dwconv/dwconv_impl.h"
#include "../fc/fc_impl.h"

namespace edgesep {

const KernelTable* table_avx2() {
  using V = avx2::Vec;
  constexpr int NV = avx2::kGemmNV;
  static const KernelTable t{"avx2",
                             NV * V::N,
                             detail::conv_gemm<V, NV>,
                             detail::conv_pack<V, NV>,
                             detail::conv_packed_gemm<V, NV>,
                             detail::dwconv<V>,
                             detail::fc<V>};
  return &t;
}

}  // namespace edgesep
