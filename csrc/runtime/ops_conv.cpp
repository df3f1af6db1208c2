// Conv (dense, grouped, depthwise) and Fc: the ops that call the dispatched kernel tables.
#include <algorithm>

#include "ops.h"

namespace edgesep {

namespace {

// The NCHW conv (bundles of format 1 and 2, and --layout nchw): one op class per strategy, sharing
// the geometry, the packed weights and the epilogue.
class NchwConvOp : public Op {
 public:
  ConvShape s{};  // one group
  int64_t B = 0, G = 1;
  const float* w = nullptr;
  const float* bias = nullptr;
  int64_t w_group = 0;  // floats of packed weights per group (conv_mr6)
  Activation act;
};

// Depthwise: the dwconv kernel per channel plane.
class DepthwiseOp : public NchwConvOp {
 public:
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t C = G, taps = (int64_t)s.KH * s.KW, in_plane = (int64_t)s.H * s.W, P = s.P();
    ctx.pool->run_range(B * C, [&](int64_t t0, int64_t t1, int thread) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t c = t % C;
        float* o = out + t * P;
        ctx.k->dwconv(s, in[0] + t * in_plane, w + c * taps, bias ? bias[c] : 0.f, o, act.lo(), act.hi(),
                      ctx.scratch + thread * ctx.scratch_stride);
        if (act.needs_pass()) act.apply(ctx.k, o, P, c);
      }
    }, parallel());
  }
};

// Stride 1, kernels above 1x1: conv_direct over bands of output rows (x channel ranges).
class DirectConvOp : public NchwConvOp {
 public:
  int64_t rows = 0, bands = 0;      // output rows per band
  int64_t mchunk = 0, mchunks = 1;  // output channels per task (a multiple of kGemmMR)
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t in_plane = (int64_t)s.H * s.W, P = s.P();
    ctx.pool->run((int)(B * G * bands * mchunks), [&](int t, int thread) {
      const int64_t mc = t % mchunks, band = t / mchunks % bands, bg = t / mchunks / bands, g = bg % G;
      const int oy0 = (int)(band * rows), r = (int)std::min<int64_t>(rows, s.OH - oy0);
      const int m0 = (int)(mc * mchunk), m1 = (int)std::min<int64_t>(s.N, m0 + mchunk);
      float* o = out + bg * s.N * P;
      ctx.k->conv_direct(s, in[0] + bg * s.C * in_plane, w + g * w_group, bias ? bias + g * s.N : nullptr, o, oy0, r,
                         m0, m1, act.lo(), act.hi(), ctx.scratch + thread * ctx.scratch_stride);
      if (act.needs_pass())
        act.apply_rows(ctx.k, o + m0 * P + (int64_t)oy0 * s.OW, m1 - m0, (int64_t)r * s.OW, P, g * s.N + m0);
    }, parallel());
  }
};

// The packed GEMM, each task packing its own chunk of pixels (conv_gemm).
class GemmConvOp : public NchwConvOp {
 public:
  int64_t chunk = 0, nchunks = 0;   // output pixels per task
  int64_t mchunk = 0, mchunks = 1;  // output channels per task
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t in_plane = (int64_t)s.H * s.W, P = s.P();
    ctx.pool->run((int)(B * G * nchunks * mchunks), [&](int t, int thread) {
      const int64_t mc = t % mchunks, pc = t / mchunks % nchunks, bg = t / mchunks / nchunks, g = bg % G;
      const int p0 = (int)(pc * chunk), p1 = (int)std::min<int64_t>(P, p0 + chunk);
      const int m0 = (int)(mc * mchunk), m1 = (int)std::min<int64_t>(s.N, m0 + mchunk);
      float* o = out + bg * s.N * P;
      ctx.k->conv_gemm(s, in[0] + bg * s.C * in_plane, w + g * w_group, bias ? bias + g * s.N : nullptr, o, p0, p1, m0,
                       m1, act.lo(), act.hi(), ctx.scratch + thread * ctx.scratch_stride);
      if (act.needs_pass()) act.apply_rows(ctx.k, o + m0 * P + p0, m1 - m0, p1 - p0, P, g * s.N + m0);
    }, parallel());
  }
};

// The packed GEMM where pixel chunks are too few for the threads (deep layers): the threads pack each
// chunk's B together into ctx.shared, then split the output channels.
class SharedPackConvOp : public NchwConvOp {
 public:
  int64_t chunk = 0, nchunks = 0;   // output pixels per packed block
  int64_t mchunk = 0, mchunks = 1;  // output channels per multiply task
  int64_t kchunk = 0, kchunks = 1;  // depth rows per packing task
  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t in_plane = (int64_t)s.H * s.W, P = s.P();
    const int K = s.K();
    for (int64_t bg = 0; bg < B * G; ++bg)
      for (int64_t pc = 0; pc < nchunks; ++pc) {
        const int64_t g = bg % G;
        const int p0 = (int)(pc * chunk), p1 = (int)std::min<int64_t>(P, p0 + chunk);
        const float* xin = in[0] + bg * s.C * in_plane;
        float* o = out + bg * s.N * P;
        ctx.pool->run((int)kchunks, [&](int t, int thread) {
          const int k0 = (int)(t * kchunk), k1 = (int)std::min<int64_t>(K, k0 + kchunk);
          ctx.k->conv_pack(s, xin, p0, p1, k0, k1, ctx.shared, ctx.scratch + thread * ctx.scratch_stride);
        }, parallel());
        ctx.pool->run((int)mchunks, [&](int t, int) {
          const int m0 = (int)(t * mchunk), m1 = (int)std::min<int64_t>(s.N, m0 + mchunk);
          ctx.k->conv_packed_gemm(s, ctx.shared, w + g * w_group, bias ? bias + g * s.N : nullptr, o, p0, p1, m0, m1,
                                  act.lo(), act.hi());
          if (act.needs_pass()) act.apply_rows(ctx.k, o + m0 * P + p0, m1 - m0, p1 - p0, P, g * s.N + m0);
        }, parallel());
      }
  }
};

class SepConvOp : public Op {
 public:
  SepShape s{};
  int64_t B = 0, rows = 1, bands = 1;
  const float* v = nullptr;
  const float* h = nullptr;
  const float* bias = nullptr;
  Activation act;

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t in_image = (int64_t)s.C * s.H * s.W, plane = (int64_t)s.OH() * s.OW();
    ctx.pool->run((int)(B * bands), [&](int t, int thread) {
      const int64_t b = t / bands, oy0 = (t % bands) * rows, r = std::min<int64_t>(rows, s.OH() - oy0);
      float* o = out + b * s.N * plane;
      ctx.k->sepconv(s, in[0] + b * in_image, v, h, bias, o, (int)oy0, (int)r, act.lo(), act.hi(),
                     ctx.scratch + thread * ctx.scratch_stride);
      if (act.needs_pass()) act.apply_rows(ctx.k, o + oy0 * s.OW(), s.N, r * s.OW(), plane, 0);
    }, parallel());
  }
};

class FcOp : public Op {
 public:
  static constexpr int64_t kBatchBlock = 8;  // inputs per task: each weight load serves up to four
  int64_t B = 0, K = 0, N = 0, chunk = 0, nchunks = 0, bblocks = 0;
  const float* w = nullptr;
  const float* bias = nullptr;
  Activation act;

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    ctx.pool->run((int)(bblocks * nchunks), [&](int t, int) {
      const int64_t b0 = (t / nchunks) * kBatchBlock, nb = std::min(kBatchBlock, B - b0);
      const int n0 = (int)((t % nchunks) * chunk), n1 = (int)std::min<int64_t>(N, n0 + chunk);
      float* y = out + b0 * N;
      ctx.k->fc((int)K, in[0] + b0 * K, (int)nb, w, bias, y, (int)N, n0, n1, act.lo(), act.hi());
      if (act.needs_pass())
        for (int64_t b = 0; b < nb; ++b) act.apply_rows(ctx.k, y + b * N + n0, n1 - n0, 1, 1, n0);
    }, parallel());
  }
};

// Output rows per band for the band kernels (conv_direct, sepconv): as many as keep the band's working
// set - halo_floats plus col_floats per pixel column of each row, rows of wz columns - within ~512 KB
// (L2), at least min_rows; fewer (down to min_rows) where the bands of all `images` would not give each
// thread two tasks; then evened out so that the bands have near equal heights.
int64_t band_rows(int64_t oh, int64_t wz, int64_t halo_floats, int64_t col_floats, int64_t min_rows, int64_t images,
                  int threads) {
  min_rows = std::min(min_rows, oh);
  int64_t rows = std::min(oh, std::max(min_rows, (131072 / wz - halo_floats) / col_floats));
  if (threads > 1) rows = std::min(rows, std::max(min_rows, oh * images / (2 * threads)));
  const int64_t bands = (oh + rows - 1) / rows;
  return (oh + bands - 1) / bands;
}

}  // namespace

namespace {

// One group's geometry of a conv on input x (NCHW, or NHWC where nhwc) with G groups and N outputs,
// from the window attributes; checks every value against the format's limits (limits.h), so that the
// kernels' 32-bit index math cannot wrap.
ConvShape conv_geometry(const Shape& x, bool nhwc, const Attrs& a, int64_t G, int64_t N) {
  const int64_t C = nhwc ? x[3] : x[1], H = nhwc ? x[1] : x[2], W = nhwc ? x[2] : x[3];
  const Window win = window_attrs(a);
  if (G < 1 || C % G != 0 || N < 1 || N % G != 0)
    throw PlanError("group " + std::to_string(G) + " does not divide channels " + std::to_string(C) + " -> " +
                    std::to_string(N));
  const int64_t Hp = H + win.pads[0] + win.pads[2], Wp = W + win.pads[1] + win.pads[3];
  checked_product({x[0], C, Hp, Wp}, "padded conv input");
  checked_product({C / G, win.k[0], win.k[1]}, "conv depth (channels x kernel)");
  const int64_t eh = (win.k[0] - 1) * win.d[0] + 1, ew = (win.k[1] - 1) * win.d[1] + 1;
  if (Hp < eh || Wp < ew) throw PlanError("kernel larger than the padded input " + shape_str(x));
  ConvShape s{};
  s.C = (int)(C / G), s.H = (int)H, s.W = (int)W, s.N = (int)(N / G);
  s.KH = (int)win.k[0], s.KW = (int)win.k[1], s.SH = (int)win.s[0], s.SW = (int)win.s[1];
  s.DH = (int)win.d[0], s.DW = (int)win.d[1], s.PT = (int)win.pads[0], s.PL = (int)win.pads[1];
  s.OH = (int)((Hp - eh) / s.SH + 1);
  s.OW = (int)((Wp - ew) / s.SW + 1);
  checked_product({x[0], N, s.OH, s.OW}, "conv output");
  return s;
}

}  // namespace

std::unique_ptr<Op> make_conv(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c) {
  if (in.empty()) throw PlanError("Conv needs an input");
  expect_rank(in[0], 4, "Conv input");
  const bool nhwc = nhwc_layout(a);
  // input_layout "nchw" on an NHWC conv: it reads its input NCHW (a graph's RGB input) and writes NHWC.
  const std::string in_layout = a.str("input_layout", nhwc ? "nhwc" : "nchw");
  if (in_layout != "nchw" && in_layout != "nhwc") throw PlanError("unknown input_layout '" + in_layout + "'");
  if (!nhwc && in_layout != "nchw") throw PlanError("input_layout nhwc needs layout nhwc");
  const bool nhwc_in = in_layout == "nhwc";
  const Shape& x = in[0];
  const int64_t C = nhwc_in ? x[3] : x[1];
  const int64_t G = a.integer("group", 1), N = a.integer("out_channels", 0);
  const ConvShape s = conv_geometry(x, nhwc_in, a, G, N);
  auto it = w.find("weight");
  const Shape want{N, s.C, s.KH, s.KW};
  if (it != w.end() && it->second.shape != want)
    throw PlanError("weight shape " + shape_str(it->second.shape) + " does not match the attributes: expected " +
                    shape_str(want));
  if (nhwc) return make_conv_nhwc(in, s, G, a, w, c, true, !nhwc_in);
  expect_inputs(in, 1, 1);
  const int64_t K = s.K(), P = s.P(), nr = c.k->gemm_nr, BG = x[0] * G;
  std::unique_ptr<NchwConvOp> op;
  if (G == C && N == C) {
    op = std::make_unique<DepthwiseOp>();
    op->w = need_weight(w, "weight", "plain", N * s.KH * s.KW).data;
    op->scratch_floats = dwconv_scratch_floats(s);
  } else if (s.SH == 1 && s.SW == 1 && s.KH * s.KW > 1) {
    // Bands of output rows whose padded input planes and outputs stay within ~512 KB (L2), of at
    // least two register tiles of pixels; where that gives too few tasks for the threads, thinner
    // bands (down to that floor), then channel ranges too.
    auto d = std::make_unique<DirectConvOp>();
    const int64_t wz = conv_direct_layout(s, (int)nr, 1).wz;
    d->rows = band_rows(s.OH, wz, (int64_t)s.C * (s.KH - 1) * s.DH, s.C + s.N, (2 * nr + wz - 1) / wz, BG, c.threads);
    d->bands = (s.OH + d->rows - 1) / d->rows;
    const int64_t tasks = BG * d->bands;
    const int64_t mparts = c.threads > 1 && tasks < 2 * c.threads ? (2 * c.threads + tasks - 1) / tasks : 1;
    d->mchunk = chunk_size(s.N, mparts, kGemmMR);
    d->mchunks = (s.N + d->mchunk - 1) / d->mchunk;
    d->scratch_floats = conv_direct_floats(s, (int)nr, (int)d->rows, (int)d->mchunk);
    op = std::move(d);
  } else {
    // Tasks split the pixels into chunks small enough for the packed block to stay in L2. Where that
    // gives too few tasks to balance the threads (deep layers: few pixels, many channels), the threads
    // instead pack each chunk's B together, then split the output channels: each streams only its
    // share of the weights, and none packs what another already has.
    const int64_t tasks = c.threads > 1 ? 4 * c.threads : 1, cap = std::max<int64_t>(nr, 256 / nr * nr);
    if (c.threads > 1 && BG * ((P + cap - 1) / cap) < 2 * c.threads) {
      auto sp = std::make_unique<SharedPackConvOp>();
      sp->chunk = std::min(cap, chunk_size(P, 1, nr));
      sp->nchunks = (P + sp->chunk - 1) / sp->chunk;
      sp->mchunk = chunk_size(s.N, 2 * c.threads, kGemmMR);
      sp->mchunks = (s.N + sp->mchunk - 1) / sp->mchunk;
      sp->kchunk = chunk_size(K, 2 * c.threads, 1);
      sp->kchunks = (K + sp->kchunk - 1) / sp->kchunk;
      sp->scratch_floats = (sp->chunk + nr - 1) / nr * nr;
      sp->shared_floats = conv_packed_floats(s, (int)nr, (int)sp->chunk);
      op = std::move(sp);
    } else {
      auto gm = std::make_unique<GemmConvOp>();
      gm->chunk = std::min(cap, chunk_size(P, (tasks + BG - 1) / BG, nr));
      gm->nchunks = (P + gm->chunk - 1) / gm->chunk;
      gm->mchunk = s.N;
      gm->scratch_floats = conv_scratch_floats(s, (int)nr, (int)gm->chunk);
      op = std::move(gm);
    }
  }
  if (!op->w) {
    op->w_group = (s.N + kGemmMR - 1) / kGemmMR * kGemmMR * K;
    op->w = need_weight(w, "weight", "conv_mr6", G * op->w_group).data;
  }
  op->s = s;
  op->B = x[0];
  op->G = G;
  op->out_shape = {x[0], N, s.OH, s.OW};
  const Weight* b = opt_weight(w, "bias", "plain", N);
  op->bias = b ? b->data : nullptr;
  op->act = parse_activation(a, w, N);
  op->macs = op->B * N * P * K;
  op->params = N * K + (b ? N : 0);
  return op;
}

std::unique_ptr<Op> make_sepconv(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c) {
  expect_inputs(in, 1, 1);
  expect_rank(in[0], 4, "SeparableConv input");
  const bool nhwc = nhwc_layout(a);
  auto op = std::make_unique<SepConvOp>();
  const Shape x = nhwc ? Shape{in[0][0], in[0][3], in[0][1], in[0][2]} : in[0];
  if (a.has("dilations")) throw PlanError("SeparableConv takes no dilations");
  const Window win = window_attrs(a);
  const int64_t K = in_range(a.integer("rank", 0), 1, kMaxDim, "rank");
  const int64_t N = in_range(a.integer("out_channels", 0), 1, kMaxDim, "out_channels");
  const int64_t Hp = x[2] + win.pads[0] + win.pads[2], Wp = x[3] + win.pads[1] + win.pads[3];
  if (Hp < win.k[0] || Wp < win.k[1]) throw PlanError("kernel larger than the padded input " + shape_str(x));
  const int64_t OH = (Hp - win.k[0]) / win.s[0] + 1, OW = (Wp - win.k[1]) / win.s[1] + 1;
  checked_product({x[0], x[1], Hp, Wp}, "padded conv input");
  checked_product({x[0], K, Hp, Wp}, "separable intermediate");
  checked_product({x[0], N, OH, OW}, "conv output");
  checked_product({K, x[1], win.k[0]}, "vertical weight");
  checked_product({N, K, win.k[1]}, "horizontal weight");
  SepShape& s = op->s;
  s.C = (int)x[1], s.H = (int)x[2], s.W = (int)x[3], s.K = (int)K, s.N = (int)N;
  s.KH = (int)win.k[0], s.KW = (int)win.k[1], s.SH = (int)win.s[0], s.SW = (int)win.s[1];
  s.PT = (int)win.pads[0], s.PL = (int)win.pads[1], s.PB = (int)win.pads[2], s.PR = (int)win.pads[3];
  if (w.count("vertical") && w.count("horizontal") &&
      (w.at("vertical").shape != Shape{s.K, s.C, s.KH, 1} || w.at("horizontal").shape != Shape{s.N, s.K, 1, s.KW}))
    throw PlanError("vertical / horizontal weight shapes do not match rank, channels and kernel_shape");
  if (nhwc) return make_sepconv_nhwc(in, s, a, w, c);
  auto panels = [](int64_t rows) { return (rows + kGemmMR - 1) / kGemmMR * kGemmMR; };
  op->v = need_weight(w, "vertical", "conv_mr6", panels(s.K) * s.C * s.KH).data;
  op->h = need_weight(w, "horizontal", "conv_mr6", panels(s.N) * s.K * s.KW).data;
  if (w.at("vertical").shape != Shape{s.K, s.C, s.KH, 1} || w.at("horizontal").shape != Shape{s.N, s.K, 1, s.KW})
    throw PlanError("vertical / horizontal weight shapes do not match rank, channels and kernel_shape");
  const Weight* b = opt_weight(w, "bias", "plain", s.N);
  op->bias = b ? b->data : nullptr;
  op->act = parse_activation(a, w, s.N);
  op->B = x[0];
  // Bands of at least 4 rows: a band re-reads KH - 1 input rows of the next, which one-row bands pay
  // 3x for. Per output row, a band holds SH input rows, one intermediate row and 1 / SW output row.
  const int64_t wz = s.W + s.PL + s.PR;
  op->rows = band_rows(OH, wz, (int64_t)s.C * (s.KH - 1), (int64_t)s.C * s.SH + s.K + (s.N + s.SW - 1) / s.SW, 4,
                       op->B, c.threads);
  op->bands = (OH + op->rows - 1) / op->rows;
  op->scratch_floats = sepconv_scratch_floats(s, c.k->gemm_nr, (int)op->rows);
  op->out_shape = {x[0], s.N, OH, s.OW()};
  op->macs = op->B * ((int64_t)s.K * s.C * s.KH * OH * s.W + (int64_t)s.N * s.K * s.KW * OH * s.OW());
  op->params = (int64_t)s.K * s.C * s.KH + (int64_t)s.N * s.K * s.KW + (b ? s.N : 0);
  return op;
}

std::unique_ptr<Op> make_fc(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c) {
  expect_inputs(in, 1, 1);
  expect_rank(in[0], 2, "Fc input");
  auto op = std::make_unique<FcOp>();
  op->B = in[0][0];
  op->K = in[0][1];
  op->N = a.integer("out_features", 0);
  if (op->N < 1) throw PlanError("out_features must be positive");
  op->w = need_weight(w, "weight", "plain", op->N * op->K).data;
  if (w.at("weight").shape != Shape{op->N, op->K})
    throw PlanError("weight shape " + shape_str(w.at("weight").shape) + " does not match [out_features, " +
                    std::to_string(op->K) + "]");
  const Weight* b = opt_weight(w, "bias", "plain", op->N);
  op->bias = b ? b->data : nullptr;
  op->act = parse_activation(a, w, op->N);
  op->bblocks = (op->B + FcOp::kBatchBlock - 1) / FcOp::kBatchBlock;
  const int64_t parts = c.threads > 1 ? (4 * c.threads + op->bblocks - 1) / op->bblocks : 1;
  op->chunk = chunk_size(op->N, parts, 4);
  op->nchunks = (op->N + op->chunk - 1) / op->chunk;
  op->out_shape = {op->B, op->N};
  op->macs = op->B * op->N * op->K;
  op->params = op->N * op->K + (b ? op->N : 0);
  return op;
}

}  // namespace edgesep
