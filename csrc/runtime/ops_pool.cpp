// MaxPool, AveragePool (count_include_pad either way, ceil_mode), GlobalAveragePool, GlobalMaxPool.
#include <algorithm>
#include <limits>
#include <vector>

#include "ops.h"

namespace edgesep {

namespace {

class PoolOp : public Op {
 public:
  bool is_max = true, include_pad = false;
  int64_t planes = 0, H = 0, W = 0, OH = 0, OW = 0;
  int64_t KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0, PB = 0, PR = 0;

  // First tap index t >= 0 with 0 <= origin + t*step, and one past the last with origin + t*step < size.
  static void taps(int64_t origin, int64_t step, int64_t count, int64_t size, int64_t& t0, int64_t& t1) {
    t0 = origin >= 0 ? 0 : (-origin + step - 1) / step;
    t1 = origin >= size ? 0 : std::min(count, (size - origin + step - 1) / step);
    if (t1 < t0) t1 = t0;
  }

  bool pairs = false;  // 2x2 windows at stride 2, all inside the input (VGG's pool): plane_pairs()

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    ctx.pool->run_range(planes, [&](int64_t t0, int64_t t1, int) {
      if (pairs) {
        for (int64_t t = t0; t < t1; ++t) plane_pairs(in[0] + t * H * W, out + t * OH * OW);
        return;
      }
      std::vector<float> acc(2 * W);
      for (int64_t t = t0; t < t1; ++t) plane(ctx.k, in[0] + t * H * W, out + t * OH * OW, acc.data());
    }, parallel());
  }

  // One pass per output row over the two input rows it reads, which the compiler vectorises (the
  // general path below costs ~5x more per value on 2x2 windows: a call per row and per window).
  void plane_pairs(const float* __restrict x, float* __restrict o) const {
    for (int64_t oy = 0; oy < OH; ++oy, o += OW) {
      const float* __restrict r0 = x + 2 * oy * W;
      const float* __restrict r1 = r0 + W;
      if (is_max) {
        for (int64_t ox = 0; ox < OW; ++ox)
          o[ox] = std::max(std::max(r0[2 * ox], r0[2 * ox + 1]), std::max(r1[2 * ox], r1[2 * ox + 1]));
      } else {
        for (int64_t ox = 0; ox < OW; ++ox) o[ox] = ((r0[2 * ox] + r1[2 * ox]) + (r0[2 * ox + 1] + r1[2 * ox + 1])) * 0.25f;
      }
    }
  }

  // Per output row: reduce the window's input rows into one row, then the window's columns into
  // another (both contiguous: the kernel table's pool_row), and pick every SW-th; windows that cross
  // the border take the slow path. acc: 2 * W floats.
  void plane(const KernelTable* k, const float* x, float* o, float* acc) const {
    const float init = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
    float* cols = acc + W;
    const int64_t span = (KW - 1) * DW, inner = W - span;  // columns whose whole window is inside
    for (int64_t oy = 0; oy < OH; ++oy) {
      const int64_t y0 = oy * SH - PT;
      int64_t ky0, ky1;
      taps(y0, DH, KH, H, ky0, ky1);
      std::fill(acc, acc + W, init);
      for (int64_t ky = ky0; ky < ky1; ++ky) k->pool_row(acc, x + (y0 + ky * DH) * W, W, is_max);
      if (inner > 0) {
        std::copy(acc, acc + inner, cols);
        for (int64_t kx = 1; kx < KW; ++kx) k->pool_row(cols, acc + kx * DW, inner, is_max);
      }
      const int64_t nrows = ky1 - ky0;
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int64_t x0 = ox * SW - PL;
        float r;
        int64_t ncols = KW;
        if (x0 >= 0 && x0 < inner) {
          r = cols[x0];
        } else {
          int64_t kx0, kx1;
          taps(x0, DW, KW, W, kx0, kx1);
          r = init;
          for (int64_t kx = kx0; kx < kx1; ++kx) r = is_max ? std::max(r, acc[x0 + kx * DW]) : r + acc[x0 + kx];
          ncols = kx1 - kx0;
        }
        if (!is_max) {
          // count_include_pad counts the window clipped to the padded extent, as PyTorch does.
          const int64_t n = include_pad ? (std::min(y0 + KH, H + PB) - y0) * (std::min(x0 + KW, W + PR) - x0)
                                        : nrows * ncols;
          r = n > 0 ? r / (float)n : 0.f;
        }
        o[oy * OW + ox] = r;
      }
    }
  }
};

class GlobalPoolOp : public Op {
 public:
  bool is_max = false;
  int64_t planes = 0, size = 0;
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    ctx.pool->run_range(planes, [&](int64_t p0, int64_t p1, int) {
      for (int64_t p = p0; p < p1; ++p) {
        const float* x = in[0] + p * size;
        if (is_max) {
          float m = x[0];
          for (int64_t i = 1; i < size; ++i) m = std::max(m, x[i]);
          out[p] = m;
        } else {
          double s = 0;
          for (int64_t i = 0; i < size; ++i) s += x[i];
          out[p] = (float)(s / size);
        }
      }
    }, parallel());
  }
};

// MaxPool / AveragePool on NHWC activations: the kernel table's pool_taps reduces each window's input
// pixels inside the input, a channel vector at a time in registers: an output row's interior (windows
// inside the input's width, all of one shape) in one call, the pixels whose windows the left or right
// edge clips one call each.
class PoolNhwcOp : public Op {
 public:
  bool is_max = true, include_pad = false;
  int64_t B = 0, C = 0, H = 0, W = 0, OH = 0, OW = 0;
  int64_t KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0, PB = 0, PR = 0;
  int64_t ox_in0 = 0, ox_in1 = 0;  // output columns [ox_in0, ox_in1): windows inside the input's width (set up)

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    ctx.pool->run_range(B * OH, [&](int64_t r0, int64_t r1, int thread) {
      // The window's pixel pointers, in the thread's scratch (scratch_floats holds KH * KW of them).
      const float** taps = reinterpret_cast<const float**>(ctx.scratch + thread * ctx.scratch_stride);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / OH, oy = r % OH, y0 = oy * SH - PT;
        const float* x = in[0] + b * H * W * C;
        int64_t ky0, ky1;
        PoolOp::taps(y0, DH, KH, H, ky0, ky1);
        // Output pixels [ox, ox + pixels) whose windows are those of ox moved by SW input pixels each.
        auto pool = [&](int64_t ox, int64_t pixels) {
          const int64_t x0 = ox * SW - PL;
          int64_t kx0, kx1;
          PoolOp::taps(x0, DW, KW, W, kx0, kx1);
          int n = 0;
          for (int64_t ky = ky0; ky < ky1; ++ky)
            for (int64_t kx = kx0; kx < kx1; ++kx) taps[n++] = x + ((y0 + ky * DH) * W + x0 + kx * DW) * C;
          float* o = out + (r * OW + ox) * C;
          // count_include_pad counts the window clipped to the padded extent, as PyTorch does.
          const int64_t count = include_pad ? (std::min(y0 + KH, H + PB) - y0) * (std::min(x0 + KW, W + PR) - x0) : n;
          if (n == 0)
            std::fill(o, o + pixels * C, is_max ? -std::numeric_limits<float>::infinity() : 0.f);
          else
            ctx.k->pool_taps(o, taps, n, C, is_max, count > 0 ? 1.f / (float)count : 0.f, pixels, SW * C);
        };
        for (int64_t ox = 0; ox < ox_in0; ++ox) pool(ox, 1);
        if (ox_in1 > ox_in0) pool(ox_in0, ox_in1 - ox_in0);
        for (int64_t ox = std::max(ox_in0, ox_in1); ox < OW; ++ox) pool(ox, 1);
      }
    }, parallel());
  }
};

// GlobalAveragePool / GlobalMaxPool on NHWC activations: [B, H, W, C] -> [B, 1, 1, C], in blocks of
// channels (sums in double, as the NCHW op).
class GlobalPoolNhwcOp : public Op {
 public:
  static constexpr int64_t kBlock = 64;
  bool is_max = false;
  int64_t B = 0, C = 0, size = 0;
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t blocks = (C + kBlock - 1) / kBlock;
    ctx.pool->run_range(B * blocks, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / blocks, c0 = (t % blocks) * kBlock, n = std::min(kBlock, C - c0);
        const float* x = in[0] + b * size * C + c0;
        float* o = out + b * C + c0;
        if (is_max) {
          std::copy(x, x + n, o);
          for (int64_t i = 1; i < size; ++i)
            for (int64_t c = 0; c < n; ++c) o[c] = std::max(o[c], x[i * C + c]);
        } else {
          double acc[kBlock] = {};
          for (int64_t i = 0; i < size; ++i)
            for (int64_t c = 0; c < n; ++c) acc[c] += x[i * C + c];
          for (int64_t c = 0; c < n; ++c) o[c] = (float)(acc[c] / size);
        }
      }
    }, parallel());
  }
};

int64_t pooled(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pa, int64_t pb, bool ceil_mode) {
  const int64_t span = in + pa + pb - ((k - 1) * d + 1);
  if (span < 0) throw PlanError("pooling window larger than the padded input");
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // As PyTorch and ONNX Runtime: a last window that would start in the end padding is dropped.
  if (ceil_mode && (out - 1) * s >= in + pa) --out;
  return out;
}

}  // namespace

std::unique_ptr<Op> make_pool(const std::string& type, const std::vector<Shape>& in, const Attrs& a) {
  expect_inputs(in, 1, 1);
  expect_rank(in[0], 4, type.c_str());
  if (nhwc_layout(a)) {
    // The NCHW op's geometry checks, on the logical shape, then the NHWC op with the same window.
    const Shape& x = in[0];
    auto geo = make_pool(type, {{x[0], x[3], x[1], x[2]}}, Attrs{a.nums, {}});
    const auto& g = static_cast<const PoolOp&>(*geo);
    auto op = std::make_unique<PoolNhwcOp>();
    op->is_max = g.is_max, op->include_pad = g.include_pad;
    op->B = x[0], op->C = x[3], op->H = g.H, op->W = g.W, op->OH = g.OH, op->OW = g.OW;
    op->KH = g.KH, op->KW = g.KW, op->SH = g.SH, op->SW = g.SW, op->DH = g.DH, op->DW = g.DW;
    op->PT = g.PT, op->PL = g.PL, op->PB = g.PB, op->PR = g.PR;
    // The first column whose window starts inside the input, and one past the last that ends inside it.
    const int64_t last = g.W - 1 - (g.KW - 1) * g.DW + g.PL;
    op->ox_in0 = std::min(g.OW, (g.PL + g.SW - 1) / g.SW);
    op->ox_in1 = last < 0 ? 0 : std::min(g.OW, last / g.SW + 1);
    op->out_shape = {x[0], g.OH, g.OW, x[3]};
    op->scratch_floats = (size_t)(g.KH * g.KW) * (sizeof(const float*) / sizeof(float));
    op->macs = g.macs;
    return op;
  }
  auto op = std::make_unique<PoolOp>();
  op->is_max = type == "MaxPool";
  const Window win = window_attrs(a);
  const int64_t* k = win.k;
  const int64_t* st = win.s;
  const int64_t* di = win.d;
  const int64_t* p = win.pads;
  for (int i = 0; i < 4; ++i)
    if (p[i] >= k[i % 2] * di[i % 2]) throw PlanError("pads must be smaller than the window");
  checked_product({in[0][0], in[0][1], in[0][2] + p[0] + p[2], in[0][3] + p[1] + p[3]}, "padded pool input");
  if (!op->is_max && (di[0] != 1 || di[1] != 1)) throw PlanError("AveragePool does not take dilations");
  const bool ceil_mode = a.num("ceil_mode", 0) != 0;
  op->include_pad = a.num("count_include_pad", 0) != 0;
  op->planes = in[0][0] * in[0][1];
  op->H = in[0][2];
  op->W = in[0][3];
  op->KH = k[0], op->KW = k[1], op->SH = st[0], op->SW = st[1], op->DH = di[0], op->DW = di[1];
  op->PT = p[0], op->PL = p[1], op->PB = p[2], op->PR = p[3];
  op->OH = pooled(op->H, op->KH, op->SH, op->DH, op->PT, op->PB, ceil_mode);
  op->OW = pooled(op->W, op->KW, op->SW, op->DW, op->PL, op->PR, ceil_mode);
  op->out_shape = {in[0][0], in[0][1], op->OH, op->OW};
  op->pairs = op->KH == 2 && op->KW == 2 && op->SH == 2 && op->SW == 2 && op->DH == 1 && op->DW == 1 && op->PT == 0 &&
              op->PL == 0 && 2 * op->OH <= op->H && 2 * op->OW <= op->W;
  op->macs = op->planes * op->OH * op->OW * op->KH * op->KW;
  return op;
}

std::unique_ptr<Op> make_global_pool(const std::string& type, const std::vector<Shape>& in, const Attrs& a) {
  expect_inputs(in, 1, 1);
  if (nhwc_layout(a)) {
    expect_rank(in[0], 4, type.c_str());
    auto op = std::make_unique<GlobalPoolNhwcOp>();
    op->is_max = type == "GlobalMaxPool";
    op->B = in[0][0], op->C = in[0][3], op->size = in[0][1] * in[0][2];
    op->out_shape = {in[0][0], 1, 1, in[0][3]};
    op->macs = numel(in[0]);
    return op;
  }
  if (in[0].size() < 3) throw PlanError(type + " input must have rank >= 3, got " + shape_str(in[0]));
  auto op = std::make_unique<GlobalPoolOp>();
  op->is_max = type == "GlobalMaxPool";
  op->planes = in[0][0] * in[0][1];
  op->size = numel(in[0]) / op->planes;
  op->out_shape = in[0];
  for (size_t i = 2; i < op->out_shape.size(); ++i) op->out_shape[i] = 1;
  op->macs = numel(in[0]);
  return op;
}

}  // namespace edgesep
