// SparseFc: a fully-connected layer whose weight is a BCSR matrix (SparseMatrix in kernels.h). The
// structure is checked once when the plan is built, so a malformed bundle fails there, not in a kernel.
#include <algorithm>

#include "ops.h"

namespace edgesep {
namespace {

class SparseFcOp : public Op {
 public:
  int64_t B = 0, K = 0, N = 0;
  SparseMatrix a{};
  const float* bias = nullptr;
  Activation act;
  std::vector<int> bounds;  // row ranges of the parallel tasks, multiples of br, about equal in blocks

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int tasks = (int)bounds.size() - 1;
    auto rows = [&](const float* x, float* y, int batch) {
      ctx.pool->run(tasks, [&](int t, int) {
        ctx.k->spmm(a, x, batch, bias, y, bounds[t], bounds[t + 1], act.lo(), act.hi());
        if (act.needs_pass())
          act.apply_rows(ctx.k, y + (int64_t)bounds[t] * batch, bounds[t + 1] - bounds[t], batch, batch, bounds[t]);
      }, parallel());
    };
    if (B == 1) return rows(in[0], out, 1);
    // Batch-minor operands for the kernel: x^T [K, B] in, y^T [N, B] out, both in the shared buffer.
    float* xt = ctx.shared;
    float* yt = ctx.shared + K * B;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < K; ++k) xt[k * B + b] = in[0][b * K + k];
    rows(xt, yt, (int)B);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n) out[b * N + n] = yt[n * B + b];
  }
};

}  // namespace

std::unique_ptr<Op> make_sparse_fc(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c) {
  expect_inputs(in, 1, 1);
  expect_rank(in[0], 2, "SparseFc input");
  auto op = std::make_unique<SparseFcOp>();
  op->B = in[0][0];
  op->K = in[0][1];
  op->N = a.integer("out_features", 0);
  const auto block = a.ints("block", {1, 1});
  if (op->N < 1 || op->N > INT32_MAX || op->K > INT32_MAX) throw PlanError("out_features must be positive");
  if (block.size() != 2 || !((block[0] == 1 && block[1] == 1) || (block[0] == 1 && block[1] == 4) ||
                             (block[0] == 4 && block[1] == 1)))
    throw PlanError("block must be [1, 1], [1, 4] or [4, 1]");
  const int br = (int)block[0], bc = (int)block[1];
  if (op->N % br) throw PlanError("out_features " + std::to_string(op->N) + " is not a multiple of block rows " +
                                  std::to_string(br));
  if (op->K < bc) throw PlanError("input features fewer than the block width");
  const int64_t block_rows = op->N / br;
  const int32_t* row_ptr =
      static_cast<const int32_t*>(need_weight(w, "row_ptr", "bcsr", block_rows + 1, "int32").raw);
  const int64_t blocks = row_ptr[block_rows];
  if (row_ptr[0] != 0) throw PlanError("row_ptr must start at 0");
  for (int64_t i = 0; i < block_rows; ++i)
    if (row_ptr[i + 1] < row_ptr[i]) throw PlanError("row_ptr decreases at block row " + std::to_string(i));
  const bool wide = op->K > 65536;
  const Weight& cols = need_weight(w, "columns", "bcsr", blocks, wide ? "int32" : "uint16");
  const int64_t last = op->K - bc;  // the largest column a block may start at
  for (int64_t j = 0; j < blocks; ++j) {
    const int64_t col = wide ? static_cast<const int32_t*>(cols.raw)[j] : static_cast<const uint16_t*>(cols.raw)[j];
    if (col < 0 || col > last)
      throw PlanError("block " + std::to_string(j) + " starts at column " + std::to_string(col) + ", outside [0, " +
                      std::to_string(last) + "]");
  }
  op->a = SparseMatrix{(int)op->N, (int)op->K, br, bc, row_ptr,
                       wide ? nullptr : static_cast<const uint16_t*>(cols.raw),
                       wide ? static_cast<const int32_t*>(cols.raw) : nullptr,
                       need_weight(w, "values", "bcsr", blocks * br * bc).data};
  const Weight* b = opt_weight(w, "bias", "plain", op->N);
  op->bias = b ? b->data : nullptr;
  op->act = parse_activation(a, w, op->N);
  // Tasks of about equal block counts (the work), at least one block row each.
  const int64_t parts = c.threads > 1 ? std::min<int64_t>(4 * c.threads, block_rows) : 1;
  op->bounds.push_back(0);
  for (int64_t p = 1, i = 0; p < parts; ++p) {
    while (i < block_rows && (int64_t)row_ptr[i] * parts < blocks * p) ++i;
    if (i > op->bounds.back() / br && i < block_rows) op->bounds.push_back((int)(i * br));
  }
  op->bounds.push_back((int)op->N);
  op->shared_floats = op->B > 1 ? (size_t)((op->K + op->N) * op->B) : 0;
  op->out_shape = {op->B, op->N};
  op->macs = op->B * blocks * br * bc;
  op->params = blocks * br * bc + (b ? op->N : 0);
  // A stored weight costs about four dense MACs (bench/sparse_fc.py, batch 1, one thread: 4.6 nonzeros
  // per ns against 12-19 dense MACs per ns), which is what parallel() weighs against the pool's cost.
  op->work = 4 * op->macs;
  return op;
}

}  // namespace edgesep
