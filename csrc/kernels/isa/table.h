// The one list of kernel families in a table: each isa/<name>.cpp instantiates it with its vector
// type, in its own translation unit (built with that ISA's flags), so a family added here is added
// to every variant at once.
#pragma once
#include "../activation/activation_impl.h"
#include "../conv2d/conv2d_impl.h"
#include "../dwconv/dwconv_impl.h"
#include "../dwnhwc/dwnhwc_impl.h"
#include "../fc/fc_impl.h"
#include "../igemm/igemm_impl.h"
#include "../pool/pool_impl.h"
#include "../sepconv/sepconv_impl.h"
#include "../spmm/spmm_impl.h"
#include "../transpose/transpose_impl.h"
#include "../winograd/winograd_impl.h"
#include "../kernels.h"

namespace edgesep::detail {

template <class V, int NV, int MR, int NC>
KernelTable make_table(const char* isa) {
  KernelTable t{};
  t.isa = isa;
  t.gemm_nr = NV * V::N;
  t.conv_gemm = conv_gemm<V, NV>;
  t.conv_pack = conv_pack<V, NV>;
  t.conv_packed_gemm = conv_packed_gemm<V, NV>;
  t.conv_direct = conv_direct<V, NV>;
  t.dwconv = dwconv<V>;
  t.fc = fc<V>;
  t.sepconv = sepconv_band<V, NV>;
  t.spmm = spmm<V>;
  t.activation = activation<V>;
  t.pool_row = pool_row<V>;
  t.igemm = igemm<V, MR, NC>;
  t.igemm_mr = MR;
  t.dwconv_nhwc = dwconv_nhwc<V>;
  t.wino_input = wino_input<V>;
  t.wino_output = wino_output<V>;
  t.pool_taps = pool_taps<V>;
  t.transpose = transpose<V>;
  return t;
}

}  // namespace edgesep::detail
