// The one list of kernel families in a table: each isa/<name>.cpp instantiates it with its vector
// type, in its own translation unit (built with that ISA's flags), so a family added here is added
// to every variant at once.
#pragma once
#include "../activation/activation_impl.h"
#include "../conv2d/conv2d_impl.h"
#include "../dwconv/dwconv_impl.h"
#include "../fc/fc_impl.h"
#include "../pool/pool_impl.h"
#include "../sepconv/sepconv_impl.h"
#include "../spmm/spmm_impl.h"
#include "../kernels.h"

namespace edgesep::detail {

template <class V, int NV>
KernelTable make_table(const char* isa) {
  return KernelTable{isa,       NV * V::N, conv_gemm<V, NV>, conv_pack<V, NV>, conv_packed_gemm<V, NV>,
                     conv_direct<V, NV>, dwconv<V>, fc<V>, sepconv_band<V, NV>,
                     spmm<V>,   activation<V>,    pool_row<V>};
}

}  // namespace edgesep::detail
