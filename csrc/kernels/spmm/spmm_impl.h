// Sparse x dense product over a BCSR matrix (SparseMatrix in kernels.h), templated on the ISA's vector
// type. Batch 1 is a mat-vec: 1x1 blocks four nonzeros a step (their x lookups gathered into one
// 4-wide vector, V::V4::gather4), 1x4 and 4x1 blocks one 4-wide FMA per block; both prefetch the
// values and indices ahead. Larger batches are vectorised over the batch (V lanes, then
// V4, then single lanes) with two accumulator sets alternating over the blocks to hide FMA latency.
#pragma once
#include "../kernels.h"
#include "../simd/lane1.h"

namespace edgesep::detail {

// Block row i at batch lanes [b0, b0 + W::N).
template <class W, int BR, int BC, class I>
void spmm_lanes(const SparseMatrix& a, const I* col, const float* x, int batch, int b0, int i, const float* bias,
                float* y, float lo, float hi) {
  using T = typename W::T;
  constexpr int S = BR * BC;
  T acc0[BR], acc1[BR];
  for (int r = 0; r < BR; ++r) acc0[r] = acc1[r] = W::zero();
  const int j1 = a.row_ptr[i + 1];
  int j = a.row_ptr[i];
  const float* v = a.values + (ptrdiff_t)j * S;
  for (; j + 2 <= j1; j += 2, v += 2 * S) {
    __builtin_prefetch(v + 1024);  // as in the mat-vec
    __builtin_prefetch(col + j + 1024);
    for (int c = 0; c < BC; ++c) {
      const T x0 = W::load(x + ((ptrdiff_t)col[j] + c) * batch + b0);
      const T x1 = W::load(x + ((ptrdiff_t)col[j + 1] + c) * batch + b0);
      for (int r = 0; r < BR; ++r) {
        acc0[r] = W::fma(W::set1(v[r * BC + c]), x0, acc0[r]);
        acc1[r] = W::fma(W::set1(v[S + r * BC + c]), x1, acc1[r]);
      }
    }
  }
  if (j < j1)
    for (int c = 0; c < BC; ++c) {
      const T x0 = W::load(x + ((ptrdiff_t)col[j] + c) * batch + b0);
      for (int r = 0; r < BR; ++r) acc0[r] = W::fma(W::set1(v[r * BC + c]), x0, acc0[r]);
    }
  for (int r = 0; r < BR; ++r) {
    const int row = i * BR + r;
    const T s = W::add(W::add(acc0[r], acc1[r]), W::set1(bias ? bias[row] : 0.f));
    W::store(y + (ptrdiff_t)row * batch + b0, W::max(W::min(s, W::set1(hi)), W::set1(lo)));
  }
}

// Block row i of the mat-vec (batch 1).
template <class V, int BR, int BC, class I>
void spmv_row(const SparseMatrix& a, const I* col, const float* x, int i, const float* bias, float* y, float lo,
              float hi) {
  const int j0 = a.row_ptr[i], j1 = a.row_ptr[i + 1];
  if constexpr (BR == 1 && BC == 1) {
    // Four nonzeros a step: one 4-wide load of values, the four x lookups put in one vector, one FMA.
    using Q = typename V::V4;
    const float* v = a.values;
    typename Q::T acc0 = Q::zero(), acc1 = Q::zero(), acc2 = Q::zero(), acc3 = Q::zero();
    auto xs = [&](int j) { return Q::gather4(x, col + j); };
    int j = j0;
    for (; j + 16 <= j1; j += 16) {
      // 4 KB ahead: without it the stream from memory ran at a third of the dense gemv's bandwidth
      // (VGG-16 fc6 at 90%: 5.2 -> 3.1 ms here).
      __builtin_prefetch(v + j + 1024);
      __builtin_prefetch(col + j + 1024);
      acc0 = Q::fma(Q::load(v + j), xs(j), acc0);
      acc1 = Q::fma(Q::load(v + j + 4), xs(j + 4), acc1);
      acc2 = Q::fma(Q::load(v + j + 8), xs(j + 8), acc2);
      acc3 = Q::fma(Q::load(v + j + 12), xs(j + 12), acc3);
    }
    for (; j + 4 <= j1; j += 4) acc0 = Q::fma(Q::load(v + j), xs(j), acc0);
    float s = Q::hsum(Q::add(Q::add(acc0, acc1), Q::add(acc2, acc3))) + (bias ? bias[i] : 0.f);
    for (; j < j1; ++j) s += v[j] * x[col[j]];
    y[i] = s < lo ? lo : (s > hi ? hi : s);
  } else {
    using Q = typename V::V4;
    using T = typename Q::T;
    static_assert(BR * BC == 4, "blocked mat-vec handles 1x4 and 4x1 blocks");
    const float* v = a.values + (ptrdiff_t)j0 * 4;
    T acc0 = Q::zero(), acc1 = Q::zero(), acc2 = Q::zero(), acc3 = Q::zero();  // four: FMA latency
    // 1x4: four adjacent x against the block's row; 4x1: one x against the block's column.
    auto xs = [&](int j) { return BR == 1 ? Q::load(x + col[j]) : Q::set1(x[col[j]]); };
    int j = j0;
    for (; j + 4 <= j1; j += 4, v += 16) {
      __builtin_prefetch(v + 1024);  // as for 1x1 blocks
      __builtin_prefetch(col + j + 1024);
      acc0 = Q::fma(Q::load(v), xs(j), acc0);
      acc1 = Q::fma(Q::load(v + 4), xs(j + 1), acc1);
      acc2 = Q::fma(Q::load(v + 8), xs(j + 2), acc2);
      acc3 = Q::fma(Q::load(v + 12), xs(j + 3), acc3);
    }
    for (; j < j1; ++j, v += 4) acc0 = Q::fma(Q::load(v), xs(j), acc0);
    const T s = Q::add(Q::add(acc0, acc1), Q::add(acc2, acc3));
    if constexpr (BR == 1) {
      const float r = Q::hsum(s) + (bias ? bias[i] : 0.f);
      y[i] = r < lo ? lo : (r > hi ? hi : r);
    } else {
      const T b = bias ? Q::load(bias + 4 * i) : Q::zero();
      Q::store(y + 4 * i, Q::max(Q::min(Q::add(s, b), Q::set1(hi)), Q::set1(lo)));
    }
  }
}

template <class V, int BR, int BC, class I>
void spmm_rows(const SparseMatrix& a, const I* col, const float* x, int batch, const float* bias, float* y, int r0,
               int r1, float lo, float hi) {
  for (int i = r0 / BR; i < r1 / BR; ++i) {
    if (batch == 1) {
      spmv_row<V, BR, BC>(a, col, x, i, bias, y, lo, hi);
      continue;
    }
    int b = 0;
    for (; b + V::N <= batch; b += V::N) spmm_lanes<V, BR, BC>(a, col, x, batch, b, i, bias, y, lo, hi);
    if constexpr (V::N > 4)
      for (; b + 4 <= batch; b += 4) spmm_lanes<typename V::V4, BR, BC>(a, col, x, batch, b, i, bias, y, lo, hi);
    for (; b < batch; ++b) spmm_lanes<Lane1<V>, BR, BC>(a, col, x, batch, b, i, bias, y, lo, hi);
  }
}

template <class V, class I>
void spmm_blocks(const SparseMatrix& a, const I* col, const float* x, int batch, const float* bias, float* y, int r0,
                 int r1, float lo, float hi) {
  if (a.br == 1 && a.bc == 1)
    spmm_rows<V, 1, 1>(a, col, x, batch, bias, y, r0, r1, lo, hi);
  else if (a.br == 1 && a.bc == 4)
    spmm_rows<V, 1, 4>(a, col, x, batch, bias, y, r0, r1, lo, hi);
  else if (a.br == 4 && a.bc == 1)
    spmm_rows<V, 4, 1>(a, col, x, batch, bias, y, r0, r1, lo, hi);
}

template <class V>
void spmm(const SparseMatrix& a, const float* x, int batch, const float* bias, float* y, int r0, int r1, float lo,
          float hi) {
  if (a.col16)
    spmm_blocks<V>(a, a.col16, x, batch, bias, y, r0, r1, lo, hi);
  else
    spmm_blocks<V>(a, a.col32, x, batch, bias, y, r0, r1, lo, hi);
}

}  // namespace edgesep::detail
