// Run-time dispatch: which kernel tables this build has and which of them this CPU runs.
#include <cstring>

#include "cpu.h"
#include "kernels.h"

namespace edgesep {

const KernelTable* table_sse41();
const KernelTable* table_avx2();
const KernelTable* table_avx512();
const KernelTable* table_neon();

namespace {
const KernelTable* table_ref() {
  static const KernelTable t = [] {
    KernelTable k{};
    k.isa = "ref";
    k.gemm_nr = 1;
    k.conv_gemm = ref::conv_gemm;
    k.conv_pack = ref::conv_pack;
    k.conv_packed_gemm = ref::conv_packed_gemm;
    k.conv_direct = ref::conv_direct;
    k.dwconv = ref::dwconv;
    k.fc = ref::fc;
    k.sepconv = ref::sepconv;
    k.spmm = ref::spmm;
    k.activation = ref::activation;
    k.pool_row = ref::pool_row;
    k.igemm = ref::igemm;
    k.igemm_mr = 1;
    k.dwconv_nhwc = ref::dwconv_nhwc;
    k.wino_input = ref::wino_input;
    k.wino_output = ref::wino_output;
    k.pool_taps = ref::pool_taps;
    k.transpose = ref::transpose;
    return k;
  }();
  return &t;
}

struct Tables {
  const KernelTable* list[8];
  int count = 0;
  Tables() {
    const CpuFeatures& f = cpu_features();
    list[count++] = table_ref();
#if EDGESEP_X86
    if (f.sse41) list[count++] = table_sse41();
    if (f.avx2 && f.fma) list[count++] = table_avx2();
    if (f.avx512f) list[count++] = table_avx512();
#endif
#if EDGESEP_NEON
    if (f.neon) list[count++] = table_neon();
#endif
    (void)f;
  }
};
}  // namespace

const KernelTable* const* kernel_tables(int* count) {
  static const Tables t;
  *count = t.count;
  return t.list;
}

const KernelTable* find_kernel_table(const char* isa) {
  int n = 0;
  const KernelTable* const* list = kernel_tables(&n);
  if (!isa || !*isa) return list[n - 1];
  for (int i = 0; i < n; ++i)
    if (std::strcmp(list[i]->isa, isa) == 0) return list[i];
  return nullptr;
}

}  // namespace edgesep
