// Element-wise and data-movement ops: Activation, the broadcasting binaries, Concat, Reshape/Flatten,
// Transpose, Pad, Softmax.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops.h"

namespace edgesep {

namespace {

constexpr size_t kMaxRank = 8;

class ActivationOp : public Op {
 public:
  Activation act;
  int64_t outer = 0, channels = 1, inner = 0;
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    ctx.pool->run_range(outer * channels, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        std::memcpy(out + t * inner, in[0] + t * inner, sizeof(float) * inner);
        act.apply(ctx.k, out + t * inner, inner, t % channels);
      }
    }, parallel());
  }
};

enum class BinKind { Add, Sub, Mul, Div, Max, Min };

// One row of a op b, with unit (1) or broadcast (0) operand strides; the op is a template
// parameter so each loop vectorises.
template <class F>
void binary_row(F f, const float* a, int64_t ia, const float* b, int64_t ib, float* o, int64_t n) {
  if (ia == 1 && ib == 1)
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
  else if (ia == 1)
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], *b);
  else if (ib == 1)
    for (int64_t i = 0; i < n; ++i) o[i] = f(*a, b[i]);
  else
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[0], b[0]);
}

void binary(BinKind k, const float* a, int64_t ia, const float* b, int64_t ib, float* o, int64_t n) {
  switch (k) {
    case BinKind::Add: return binary_row([](float x, float y) { return x + y; }, a, ia, b, ib, o, n);
    case BinKind::Sub: return binary_row([](float x, float y) { return x - y; }, a, ia, b, ib, o, n);
    case BinKind::Mul: return binary_row([](float x, float y) { return x * y; }, a, ia, b, ib, o, n);
    case BinKind::Div: return binary_row([](float x, float y) { return x / y; }, a, ia, b, ib, o, n);
    case BinKind::Max: return binary_row([](float x, float y) { return x > y ? x : y; }, a, ia, b, ib, o, n);
    case BinKind::Min: return binary_row([](float x, float y) { return x < y ? x : y; }, a, ia, b, ib, o, n);
  }
}

// out = act(a op b) with numpy broadcasting, dims merged where the stride pattern allows,
// so the common cases (same shape, per-channel, scalar) run one long inner loop.
class BinaryOp : public Op {
 public:
  BinKind kind = BinKind::Add;
  const float* constant = nullptr;
  int constant_index = -1;
  std::vector<int64_t> dims, sa, sb;  // merged output dims and operand strides (0 = broadcast)
  Activation act;  // any but prelu (which needs a channel)

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const float* A = constant_index == 0 ? constant : in[0];
    const float* Bp = constant_index == 1 ? constant : in[constant_index == 0 ? 0 : 1];
    const size_t r = dims.size();
    const int64_t inner = dims[r - 1], rows = numel(out_shape) / inner, ia = sa[r - 1], ib = sb[r - 1];
    // Tasks are (group of rows) or, when rows are few and long, (row, slice of the row).
    const int64_t want = 4 * ctx.pool->size();
    const int64_t per_task = rows >= want ? (rows + want - 1) / want : 1;
    const int64_t slice = rows >= want ? inner : chunk_size(inner, (want + rows - 1) / rows, 16);
    const int64_t slices = (inner + slice - 1) / slice;
    const int64_t tasks = (rows + per_task - 1) / per_task * slices;
    ctx.pool->run((int)tasks, [&](int t, int) {
      const int64_t i0 = (t % slices) * slice, i1 = std::min(inner, i0 + slice);
      const int64_t r0 = (t / slices) * per_task, r1 = std::min(rows, r0 + per_task);
      for (int64_t row = r0; row < r1; ++row) {
        int64_t oa = 0, ob = 0, rem = row;
        for (size_t d = r - 1; d-- > 0;) {
          const int64_t i = rem % dims[d];
          rem /= dims[d];
          oa += i * sa[d];
          ob += i * sb[d];
        }
        const float* pa = A + oa + i0 * ia;
        const float* pb = Bp + ob + i0 * ib;
        float* po = out + row * inner + i0;
        const int64_t n = i1 - i0;
        binary(kind, pa, ia, pb, ib, po, n);
        act.apply(ctx.k, po, n, 0);
      }
    }, parallel());
  }
};

class ConcatOp : public Op {  // rows of concat_parts[i] floats of each input side by side
 public:
  int64_t outer = 0;  // rows
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    int64_t total = 0;
    for (int64_t n : concat_parts) total += n;
    ctx.pool->run_range(outer, [&](int64_t o0, int64_t o1, int) {
      for (int64_t o = o0; o < o1; ++o) {
        float* dst = out + o * total;
        for (size_t i = 0; i < in.size(); ++i) {
          std::memcpy(dst, in[i] + o * concat_parts[i], sizeof(float) * concat_parts[i]);
          dst += concat_parts[i];
        }
      }
    }, parallel());
  }
};

class CopyOp : public Op {
 public:
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    ctx.pool->run_range(numel(out_shape),
                        [&](int64_t a, int64_t b, int) { std::memcpy(out + a, in[0] + a, sizeof(float) * (b - a)); },
                        parallel());
  }
};

class TransposeOp : public Op {
 public:
  std::vector<int64_t> in_strides;  // input stride of each output dim
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const size_t r = out_shape.size();
    const int64_t inner = out_shape[r - 1], rows = numel(out_shape) / inner, s_last = in_strides[r - 1];
    ctx.pool->run_range(rows, [&](int64_t r0, int64_t r1, int) {
      for (int64_t row = r0; row < r1; ++row) {
        int64_t off = 0, rem = row;
        for (size_t d = r - 1; d-- > 0;) {
          off += (rem % out_shape[d]) * in_strides[d];
          rem /= out_shape[d];
        }
        float* o = out + row * inner;
        for (int64_t i = 0; i < inner; ++i) o[i] = in[0][off + i * s_last];
      }
    }, parallel());
  }
};

// A transpose that swaps two blocks of dims (per image [rows][cols] -> [cols][rows]): NCHW <-> NHWC,
// where the layout changes (kernels.h: TransposeFn). Tasks take slices of 32 along the longer side:
// of the output's rows (input columns) where the input has few rows (to NHWC: C rows of H x W), so
// that no two threads write parts of one output row (cache lines bounced between the cores, and two
// threads ran slower than one).
class Transpose2dOp : public Op {
 public:
  int64_t images = 0, rows = 0, cols = 0;
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    constexpr int64_t kSlice = 32;
    const bool by_rows = rows >= cols;
    const int64_t n = by_rows ? rows : cols, slices = (n + kSlice - 1) / kSlice;
    ctx.pool->run_range(images * slices, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / slices, i0 = t % slices * kSlice, i1 = std::min(n, i0 + kSlice);
        const float* x = in[0] + b * rows * cols;
        float* y = out + b * rows * cols;
        if (by_rows)
          ctx.k->transpose(x, rows, cols, i0, i1, 0, cols, y);
        else
          ctx.k->transpose(x, rows, cols, 0, rows, i0, i1, y);
      }
    }, parallel());
  }
};

class PadOp : public Op {
 public:
  Shape in_shape;
  std::vector<int64_t> begin;
  int mode = 0;  // 0 constant, 1 reflect, 2 edge
  float value = 0.f;

  // Input coordinate for output coordinate o along dim d, or -1 for the constant.
  int64_t source(size_t d, int64_t o) const {
    const int64_t n = in_shape[d];
    int64_t i = o - begin[d];
    if (i >= 0 && i < n) return i;
    if (mode == 0) return -1;
    if (mode == 2) return i < 0 ? 0 : n - 1;
    if (n == 1) return 0;
    const int64_t period = 2 * (n - 1);
    i = ((i % period) + period) % period;
    return i < n ? i : period - i;
  }

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const size_t r = out_shape.size();
    const int64_t inner = out_shape[r - 1], rows = numel(out_shape) / inner;
    std::vector<int64_t> stride(r, 1);
    for (size_t d = r - 1; d-- > 0;) stride[d] = stride[d + 1] * in_shape[d + 1];
    ctx.pool->run_range(rows, [&](int64_t r0, int64_t r1, int) {
      for (int64_t row = r0; row < r1; ++row) {
        float* o = out + row * inner;
        int64_t off = 0, rem = row;
        bool blank = false;
        for (size_t d = r - 1; d-- > 0;) {
          const int64_t i = source(d, rem % out_shape[d]);
          rem /= out_shape[d];
          if (i < 0) blank = true;
          off += i * stride[d];
        }
        for (int64_t x = 0; x < inner; ++x) {
          const int64_t i = blank ? -1 : source(r - 1, x);
          o[x] = i < 0 ? value : in[0][off + i];
        }
      }
    }, parallel());
  }
};

class SoftmaxOp : public Op {
 public:
  int64_t outer = 0, len = 0, inner = 0;
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    ctx.pool->run_range(outer * inner, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t o = t / inner, i = t % inner;
        const float* x = in[0] + o * len * inner + i;
        float* y = out + o * len * inner + i;
        float m = x[0];
        for (int64_t j = 1; j < len; ++j) m = std::max(m, x[j * inner]);
        double sum = 0;
        for (int64_t j = 0; j < len; ++j) sum += (y[j * inner] = std::exp(x[j * inner] - m));
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < len; ++j) y[j * inner] *= inv;
      }
    }, parallel());
  }
};

int64_t norm_axis(int64_t axis, size_t rank) {
  if (axis < -(int64_t)rank || axis >= (int64_t)rank) throw PlanError("axis " + std::to_string(axis) + " out of range");
  return axis < 0 ? axis + (int64_t)rank : axis;
}

}  // namespace

std::unique_ptr<Op> make_activation(const std::vector<Shape>& in, const Attrs& a, const Weights& w) {
  expect_inputs(in, 1, 1);
  auto op = std::make_unique<ActivationOp>();
  const Shape& s = in[0];
  op->outer = s[0];
  op->channels = s.size() > 1 ? s[1] : 1;
  op->inner = numel(s) / (op->outer * op->channels);
  op->act = parse_activation(a, w, op->channels);
  op->out_shape = s;
  op->macs = numel(s);
  return op;
}

std::unique_ptr<Op> make_binary(const std::string& type, const std::vector<Shape>& in, const Attrs& a,
                                const Weights& w) {
  auto op = std::make_unique<BinaryOp>();
  op->kind = type == "Add" ? BinKind::Add : type == "Sub" ? BinKind::Sub : type == "Mul" ? BinKind::Mul
           : type == "Div" ? BinKind::Div : type == "Max" ? BinKind::Max : BinKind::Min;
  std::vector<Shape> shapes = in;
  auto it = w.find("constant");
  if (it != w.end()) {
    expect_inputs(in, 1, 1);
    op->constant_index = (int)a.integer("constant_index", 1);
    if (op->constant_index != 0 && op->constant_index != 1) throw PlanError("constant_index must be 0 or 1");
    if (it->second.layout != "plain" || it->second.count != numel(it->second.shape))
      throw PlanError("weight 'constant' must be plain and match its shape");
    op->constant = it->second.data;
    shapes.insert(shapes.begin() + op->constant_index, it->second.shape);
  } else {
    expect_inputs(in, 2, 2);
  }
  const size_t r = std::max(shapes[0].size(), shapes[1].size());
  if (r == 0 || r > kMaxRank) throw PlanError("operands must have rank 1.." + std::to_string(kMaxRank));
  Shape sa(r, 1), sb(r, 1), so(r, 1);
  std::copy(shapes[0].begin(), shapes[0].end(), sa.begin() + (r - shapes[0].size()));
  std::copy(shapes[1].begin(), shapes[1].end(), sb.begin() + (r - shapes[1].size()));
  for (size_t d = 0; d < r; ++d) {
    if (sa[d] != sb[d] && sa[d] != 1 && sb[d] != 1)
      throw PlanError("shapes " + shape_str(shapes[0]) + " and " + shape_str(shapes[1]) + " do not broadcast");
    so[d] = std::max(sa[d], sb[d]);
  }
  op->out_shape = so;
  // Strides over the output dims (0 where broadcast), then merge neighbours with compatible strides.
  auto strides = [&](const Shape& s) {
    std::vector<int64_t> st(r, 0);
    int64_t acc = 1;
    for (size_t d = r; d-- > 0;) {
      st[d] = s[d] == 1 ? 0 : acc;
      acc *= s[d];
    }
    return st;
  };
  const auto ta = strides(sa), tb = strides(sb);
  for (size_t d = 0; d < r; ++d) {
    if (so[d] == 1) continue;
    if (!op->dims.empty()) {
      const size_t l = op->dims.size() - 1;
      const bool fa = op->sa[l] == ta[d] * so[d], fb = op->sb[l] == tb[d] * so[d];
      if (fa && fb) {
        op->dims[l] *= so[d];
        op->sa[l] = ta[d];
        op->sb[l] = tb[d];
        continue;
      }
    }
    op->dims.push_back(so[d]);
    op->sa.push_back(ta[d]);
    op->sb.push_back(tb[d]);
  }
  // The last dim's strides are 0 or 1 (every operand dim after it is 1), as run() expects.
  if (op->dims.empty()) op->dims = {1}, op->sa = {0}, op->sb = {0};
  op->act = parse_activation(a, w, 1);
  if (op->act.kind == ActKind::PRelu) throw PlanError("prelu cannot be fused into " + type);
  op->macs = numel(so);
  return op;
}

std::unique_ptr<Op> make_concat(const std::vector<Shape>& in, const Attrs& a) {
  if (in.empty()) throw PlanError("Concat needs inputs");
  const size_t r = in[0].size();
  const int64_t axis = norm_axis(a.integer("axis", 1), r);
  auto op = std::make_unique<ConcatOp>();
  Shape out = in[0];
  out[axis] = 0;
  for (const Shape& s : in) {
    if (s.size() != r) throw PlanError("Concat inputs differ in rank");
    for (size_t d = 0; d < r; ++d)
      if ((int64_t)d != axis && s[d] != in[0][d])
        throw PlanError("Concat inputs " + shape_str(in[0]) + " and " + shape_str(s) + " differ off the axis");
    out[axis] += s[axis];
    op->concat_parts.push_back(numel(s) / std::max<int64_t>(1, numel(Shape(s.begin(), s.begin() + axis))));
  }
  op->outer = numel(Shape(in[0].begin(), in[0].begin() + axis));
  op->out_shape = out;
  return op;
}

std::unique_ptr<Op> make_reshape(const std::string& type, const std::vector<Shape>& in, const Attrs& a) {
  expect_inputs(in, 1, 1);
  auto op = std::make_unique<CopyOp>();
  const Shape& s = in[0];
  const int64_t n = numel(s);
  if (type == "Flatten") {
    const int64_t axis = a.integer("axis", 1) == (int64_t)s.size() ? (int64_t)s.size() : norm_axis(a.integer("axis", 1), s.size());
    const int64_t lead = numel(Shape(s.begin(), s.begin() + axis));
    op->out_shape = {lead, n / lead};
    return op;
  }
  // ONNX Reshape: 0 copies the input dim, -1 (at most one) takes what remains.
  Shape out = a.ints("shape", {});
  if (out.empty()) throw PlanError("Reshape needs a 'shape'");
  int64_t known = 1, infer = -1;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 0) {
      if (d >= s.size()) throw PlanError("Reshape shape copies a dim the input does not have");
      out[d] = s[d];
    }
    if (out[d] == -1) {
      if (infer >= 0) throw PlanError("Reshape shape has more than one -1");
      infer = (int64_t)d;
    } else if (out[d] < 1) {
      throw PlanError("Reshape shape has an invalid dim");
    } else {
      known *= out[d];
    }
  }
  if (infer >= 0) out[infer] = known > 0 && n % known == 0 ? n / known : -1;
  if (numel(out) != n || (infer >= 0 && out[infer] < 1))
    throw PlanError("cannot reshape " + shape_str(s) + " to " + shape_str(a.ints("shape", {})));
  op->out_shape = out;
  return op;
}

std::unique_ptr<Op> make_transpose(const std::vector<Shape>& in, const Attrs& a) {
  expect_inputs(in, 1, 1);
  const Shape& s = in[0];
  const size_t r = s.size();
  std::vector<int64_t> perm = a.ints("perm", {});
  if (perm.empty())
    for (size_t d = 0; d < r; ++d) perm.push_back((int64_t)(r - 1 - d));
  if (perm.size() != r) throw PlanError("perm length does not match the input rank");
  std::vector<int64_t> st(r, 1);
  for (size_t d = r - 1; d-- > 0;) st[d] = st[d + 1] * s[d + 1];
  if (r == 4 && (perm == std::vector<int64_t>{0, 2, 3, 1} || perm == std::vector<int64_t>{0, 3, 1, 2})) {
    auto op = std::make_unique<Transpose2dOp>();
    const bool to_nhwc = perm[1] == 2;
    op->images = s[0];
    op->rows = to_nhwc ? s[1] : s[1] * s[2];
    op->cols = to_nhwc ? s[2] * s[3] : s[3];
    op->out_shape = {s[0], s[perm[1]], s[perm[2]], s[perm[3]]};
    return op;
  }
  std::vector<bool> seen(r, false);
  auto op = std::make_unique<TransposeOp>();
  for (int64_t p : perm) {
    if (p < 0 || p >= (int64_t)r || seen[p]) throw PlanError("perm is not a permutation");
    seen[p] = true;
    op->out_shape.push_back(s[p]);
    op->in_strides.push_back(st[p]);
  }
  return op;
}

std::unique_ptr<Op> make_pad(const std::vector<Shape>& in, const Attrs& a) {
  expect_inputs(in, 1, 1);
  auto op = std::make_unique<PadOp>();
  op->in_shape = in[0];
  const size_t r = in[0].size();
  const auto pads = a.ints("pads", {});
  if (pads.size() != 2 * r) throw PlanError("pads needs 2 values per dim");
  const std::string mode = a.str("mode", "constant");
  op->mode = mode == "constant" ? 0 : mode == "reflect" ? 1 : mode == "edge" ? 2 : -1;
  if (op->mode < 0) throw PlanError("unknown pad mode '" + mode + "'");
  op->value = a.real("value", 0.0);
  for (size_t d = 0; d < r; ++d) {
    if (pads[d] < 0 || pads[d + r] < 0) throw PlanError("negative pads are not supported");
    if (op->mode == 1 && (pads[d] >= in[0][d] || pads[d + r] >= in[0][d]) && (pads[d] || pads[d + r]))
      throw PlanError("reflect pads must be smaller than the dim");
    op->begin.push_back(pads[d]);
    op->out_shape.push_back(in[0][d] + pads[d] + pads[d + r]);
  }
  return op;
}

std::unique_ptr<Op> make_softmax(const std::vector<Shape>& in, const Attrs& a) {
  expect_inputs(in, 1, 1);
  const Shape& s = in[0];
  const int64_t axis = norm_axis(a.integer("axis", -1), s.size());
  auto op = std::make_unique<SoftmaxOp>();
  op->outer = numel(Shape(s.begin(), s.begin() + axis));
  // coerce_2d: the opset < 13 meaning, one softmax over all dims from `axis` on.
  const bool coerce = a.num("coerce_2d", 0) != 0;
  op->len = coerce ? numel(s) / op->outer : s[axis];
  op->inner = numel(s) / (op->outer * op->len);
  op->out_shape = s;
  op->macs = numel(s);
  return op;
}

}  // namespace edgesep
