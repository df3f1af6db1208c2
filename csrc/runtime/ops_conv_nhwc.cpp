// Convs on NHWC activations (layout "nhwc", conv core v2): the indirect-GEMM op for dense and grouped
// convs of any kernel, stride, dilation and padding (weights conv_nhwc16), the depthwise op (khwc),
// Winograd F(2x2, 3x3) and F(4x4, 3x3) (wino23_nhwc16, wino43_nhwc16) and the separable pair. Shapes
// here are physical: input [B, H, W, C], output [B, OH, OW, N].
#include <algorithm>
#include <cmath>

#include "ops.h"

namespace edgesep {

namespace {

// The fewest output channels a Winograd task takes when a small map's channels are split (see WinogradOp).
constexpr int64_t kWinoMinNChunk = 32;

// Pixels [0, n) of an NCHW image row (channel c's at x + c * plane) as n NHWC pixels at d: pixel by
// pixel, so that the stores stream (plane by plane, a 3-channel image's stores went 12 bytes apart:
// a third of an RGB stem's time).
template <int C>
void interleave(const float* x, int64_t plane, int64_t n, float* d) {
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) d[i * C + c] = x[c * plane + i];
}

void interleave(const float* x, int64_t plane, int64_t n, int64_t channels, float* d) {
  if (channels == 1) return std::copy(x, x + n, d), void();
  if (channels == 3) return interleave<3>(x, plane, n, d);
  if (channels == 4) return interleave<4>(x, plane, n, d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < channels; ++c) d[i * channels + c] = x[c * plane + i];
}

class IgemmConvOp : public Op {
 public:
  ConvShape s{};  // one group
  int64_t B = 0, G = 1;
  int64_t pchunk = 0, pchunks = 1, nchunk = 0, nchunks = 1;  // output pixels / channels per task
  std::vector<int32_t> ind;                                   // offsets of each output pixel's taps
  std::vector<float> zero;                                    // the padding's input row
  const float* w = nullptr;
  const float* bias = nullptr;
  int64_t w_group = 0;  // packed floats per group
  bool sum = false;     // input 1 is added to the output before the activation (a fused residual Add)
  Activation act;
  // The input copied first, zero-padded, into ctx.shared as NHWC (Hp x Wp pixels per image): where it
  // arrives NCHW (a graph's RGB input: the copy is the layout change), and where it has few channels
  // (an RGB stem). There `rows`: a window row's KW pixels are one contiguous run of KW * C values, so
  // the kernel takes KH taps of depth KW * C (the same packed weights) instead of KH * KW taps of C,
  // and a tap's pixel lookup is amortised over KW times more FMA rows.
  bool padded = false, rows = false, nchw_input = false;
  int64_t Hp = 0, Wp = 0;
  IgemmShape is{};

  // Its pixels into a channel slice of a wider tensor (a Concat's part); not with a summed input, which
  // is read at the output's stride.
  bool can_write_rows(int64_t row) const override { return !sum && row == G * s.N; }
  void write_rows(int64_t stride) override { is.ldo = (int)stride; }

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t P = s.P(), ldi = G * s.C, ldo = is.ldo;
    const int64_t in_image = padded ? Hp * Wp * ldi : (int64_t)s.H * s.W * ldi;
    const float* x = in[0];
    if (padded) {
      ctx.pool->run_range(B * Hp, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t b = r / Hp, iy = r % Hp - s.PT, row = Wp * ldi, left = std::min<int64_t>(Wp, s.PL) * ldi;
          float* d = ctx.shared + r * row;
          if (iy < 0 || iy >= s.H) {
            std::fill(d, d + row, 0.f);
            continue;
          }
          // Input pixels the padded row holds: none where the left padding alone is wider than what the
          // windows read (a stride past the input: a fuzzed bundle wrote before the buffer here).
          const int64_t px = std::max<int64_t>(0, std::min<int64_t>(s.W, Wp - s.PL)), n = px * ldi;
          std::fill(d, d + left, 0.f);
          if (nchw_input) {
            interleave(x + (b * ldi * s.H + iy) * s.W, (int64_t)s.H * s.W, px, ldi, d + left);
          } else {
            std::copy(x + (b * s.H + iy) * s.W * ldi, x + (b * s.H + iy) * s.W * ldi + n, d + left);
          }
          std::fill(d + left + n, d + row, 0.f);
        }
      }, B * Hp * Wp * ldi >= 100000);
      x = ctx.shared;
    }
    const float lo = act.lo(), hi = act.hi();
    ctx.pool->run((int)(B * G * pchunks * nchunks), [&](int t, int) {
      const int64_t nc = t % nchunks, pc = t / nchunks % pchunks, bg = t / nchunks / pchunks;
      const int64_t b = bg / G, g = bg % G;
      const int p0 = (int)(pc * pchunk), p1 = (int)std::min<int64_t>(P, p0 + pchunk);
      const int n0 = (int)(nc * nchunk), n1 = (int)std::min<int64_t>(s.N, n0 + nchunk);
      float* o = out + b * P * ldo + g * s.N;
      const float* sm = sum ? in[1] + b * P * ldo + g * s.N : nullptr;
      ctx.k->igemm(is, x + b * in_image + g * s.C, ind.data(), zero.data(), w + g * w_group,
                   bias ? bias + g * s.N : nullptr, sm, o, p0, p1, n0, n1, lo, hi);
      if (act.needs_pass()) act.apply_pixels(ctx.k, o + (int64_t)p0 * ldo + n0, p1 - p0, n1 - n0, ldo, g * s.N + n0);
    }, parallel());
  }
};

class DwNhwcOp : public Op {
 public:
  ConvShape s{};  // C = N = the channels
  int64_t B = 0;
  const float* w = nullptr;
  const float* bias = nullptr;
  Activation act;

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t in_image = (int64_t)s.H * s.W * s.C, out_row = (int64_t)s.OW * s.C;
    ctx.pool->run_range(B * s.OH, [&](int64_t r0, int64_t r1, int) {
      while (r0 < r1) {  // row ranges within one image
        const int64_t b = r0 / s.OH, y0 = r0 % s.OH, y1 = std::min<int64_t>(s.OH, y0 + (r1 - r0));
        float* o = out + b * s.OH * out_row;
        ctx.k->dwconv_nhwc(s, in[0] + b * in_image, w, bias, o, (int)y0, (int)y1, act.lo(), act.hi());
        if (act.needs_pass()) act.apply_pixels(ctx.k, o + y0 * out_row, (y1 - y0) * s.OW, s.C, s.C, 0);
        r0 += y1 - y0;
      }
    }, parallel());
  }
};

// A 3x3 conv at stride 1 by Winograd F(MxM, 3x3), M = 2 or 4 (the weight's layout says which): per block
// of tb output tiles (MxM pixels each), the input transform, (M+2)^2 1x1 GEMMs on the conv core (tb x C
// by C x N: 2.25x fewer multiplies than the direct conv's at M = 2, 4x at M = 4), the output transform
// with bias, residual and clamp (kernels.h: WinoShape), then any other activation's pass over the
// tiles' pixels. Where a small map has fewer blocks than the threads, each block's output channels are
// split into ranges of whole panels, one task each (each task transforms the block's input itself).
class WinogradOp : public Op {
 public:
  WinoShape ws{};
  int64_t B = 0, tb = 0, blocks = 0, nchunk = 0, nchunks = 1;
  std::vector<int32_t> rows;  // tile i's row of V[xi] / M[xi]: i * C (the GEMMs' offset table)
  std::vector<float> zero;    // the row a partial GEMM tile reads past the block's last tile
  const float* u = nullptr;
  const float* bias = nullptr;
  bool sum = false;
  Activation act;

  bool can_write_rows(int64_t row) const override { return !sum && row == ws.N; }  // as IgemmConvOp's
  void write_rows(int64_t stride) override { ws.ldo = (int)stride; }

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t ld = ws.out_ld(), in_image = (int64_t)ws.H * ws.W * ws.C, out_image = (int64_t)ws.OH * ws.OW * ld;
    const int64_t panel = (ws.N + kPanelNC - 1) / kPanelNC * kPanelNC * ws.C;  // U[xi]'s floats
    const int T = ws.tiles(), X = ws.points();
    ctx.pool->run((int)(B * blocks * nchunks), [&](int task, int thread) {
      const int64_t b = task / nchunks / blocks, n0 = task % nchunks * nchunk, nn = std::min<int64_t>(nchunk, ws.N - n0);
      const int t0 = (int)(task / nchunks % blocks * tb), nt = (int)std::min<int64_t>(tb, T - t0);
      float* V = ctx.scratch + thread * ctx.scratch_stride;
      float* M = V + X * tb * ws.C;  // the products of channels [n0, n0 + nn), nn floats per tile
      ctx.k->wino_input(ws, in[0] + b * in_image, t0, nt, V, tb * ws.C);
      // Channels [n0, n0 + nn) as a GEMM of nn channels on their panels (n0 is a multiple of kPanelNC).
      const IgemmShape gs{ws.C, 1, (int)nn, (int)nn};
      for (int xi = 0; xi < X; ++xi)
        ctx.k->igemm(gs, V + xi * tb * ws.C, rows.data(), zero.data(), u + xi * panel + n0 * ws.C, nullptr, nullptr,
                     M + xi * tb * nn, 0, nt, 0, (int)nn, -INFINITY, INFINITY);
      WinoShape part = ws;  // the output transform of those channels, into their slice of the output
      part.N = (int)nn;
      part.ldo = (int)ld;
      float* o = out + b * out_image + n0;
      ctx.k->wino_output(part, M, tb * nn, t0, nt, bias ? bias + n0 : nullptr, sum ? in[1] + b * out_image + n0 : nullptr,
                         o, act.lo(), act.hi());
      if (act.needs_pass())  // over each tile's M output rows (a tile's pixels are not contiguous)
        for (int t = t0; t < t0 + nt; ++t)
          for (int y = ws.M * (t / ws.TW()); y < std::min(ws.OH, ws.M * (t / ws.TW()) + ws.M); ++y) {
            const int x = ws.M * (t % ws.TW());
            act.apply_pixels(ctx.k, o + ((int64_t)y * ws.OW + x) * ld, std::min(ws.M, ws.OW - x), nn, ld, n0);
          }
    }, parallel());
  }
};

// The separable pair on NHWC, band by band: for a band of output rows, the vertical conv (kh x 1 to K
// channels) writes the band's intermediate rows into the thread's scratch, where the horizontal conv
// (1 x kw to N) reads them while they are in cache. Both are the conv core's igemm, through offset tables
// (the vertical one over the image, the horizontal one over a band).
class SepNhwcOp : public Op {
 public:
  ConvShape v{}, h{};            // vertical over the image; horizontal over one band of `rows` rows
  int64_t B = 0, rows = 0, bands = 0;
  std::vector<int32_t> vind, hind;
  std::vector<float> zero;
  const float* wv = nullptr;
  const float* wh = nullptr;
  const float* bias = nullptr;
  Activation act;

  void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const override {
    const int64_t in_image = (int64_t)v.H * v.W * v.C, out_image = (int64_t)h.OW * v.OH * h.N;
    const IgemmShape vs{v.C, v.KH, v.N, v.N}, hs{h.C, h.KW, h.N, h.N};
    ctx.pool->run((int)(B * bands), [&](int t, int thread) {
      const int64_t b = t / bands, oy0 = t % bands * rows, r = std::min<int64_t>(rows, v.OH - oy0);
      float* mid = ctx.scratch + thread * ctx.scratch_stride;
      ctx.k->igemm(vs, in[0] + b * in_image, vind.data() + oy0 * v.W * v.KH, zero.data(), wv, nullptr, nullptr, mid,
                   0, (int)(r * v.W), 0, v.N, -INFINITY, INFINITY);
      float* o = out + b * out_image + oy0 * h.OW * h.N;
      ctx.k->igemm(hs, mid, hind.data(), zero.data(), wh, bias, nullptr, o, 0, (int)(r * h.OW), 0, h.N, act.lo(),
                   act.hi());
      if (act.needs_pass()) act.apply_pixels(ctx.k, o, r * h.OW, h.N, h.N, 0);
    }, parallel());
  }
};

}  // namespace

std::unique_ptr<Op> make_sepconv_nhwc(const std::vector<Shape>& in, const SepShape& s, const Attrs& a,
                                      const Weights& w, const BuildCtx& c) {
  expect_inputs(in, 1, 1);
  auto op = std::make_unique<SepNhwcOp>();
  const int OH = s.OH(), OW = s.OW();
  op->B = in[0][0];
  // Bands whose intermediate (rows x W x K) stays within ~128 KB, fewer rows where the threads need tasks.
  int64_t rows = std::max<int64_t>(1, std::min<int64_t>(OH, 32768 / ((int64_t)s.W * s.K)));
  const int64_t want = c.threads > 1 ? ThreadPool::kTasksPerThread * c.threads : 1;
  if (op->B * ((OH + rows - 1) / rows) < want) rows = std::max<int64_t>(1, chunk_size(OH, (want + op->B - 1) / op->B, 1));
  op->rows = rows;
  op->bands = (OH + rows - 1) / rows;
  // One group each: vertical C -> K over kh x 1 at stride (SH, 1); horizontal K -> N over 1 x kw at (1, SW).
  op->v = {s.C, s.H, s.W, s.K, s.KH, 1, s.SH, 1, 1, 1, s.PT, 0, OH, s.W};
  op->h = {s.K, (int)rows, s.W, s.N, 1, s.KW, 1, s.SW, 1, 1, 0, s.PL, (int)rows, OW};
  const int64_t nv = checked_mul((int64_t)OH * s.W, s.KH, "vertical offset table", INT64_MAX / 8);
  const int64_t nh = checked_mul(rows * OW, s.KW, "horizontal offset table", INT64_MAX / 8);
  op->table_bytes = (size_t)(nv + nh) * sizeof(int32_t) + std::max(s.C, s.K) * sizeof(float);
  c.check_bytes((int64_t)op->table_bytes, "the separable pair's offset tables");
  op->vind.resize((size_t)nv);
  op->hind.resize((size_t)nh);
  if (!igemm_offsets(op->v, s.C, op->vind.data()) || !igemm_offsets(op->h, s.K, op->hind.data()))
    throw PlanError("input " + shape_str(in[0]) + " too large for 32-bit pixel offsets");
  op->zero.assign(std::max(s.C, s.K), 0.f);
  auto panels = [](int64_t n) { return (n + kPanelNC - 1) / kPanelNC * kPanelNC; };
  op->wv = need_weight(w, "vertical", "conv_nhwc16", panels(s.K) * s.C * s.KH).data;
  op->wh = need_weight(w, "horizontal", "conv_nhwc16", panels(s.N) * s.K * s.KW).data;
  const Weight* b = opt_weight(w, "bias", "plain", s.N);
  op->bias = b ? b->data : nullptr;
  op->act = parse_activation(a, w, s.N);
  op->scratch_floats = (size_t)(rows * s.W * s.K);
  op->out_shape = {op->B, OH, OW, s.N};
  op->macs = op->B * ((int64_t)s.K * s.C * s.KH * OH * s.W + (int64_t)s.N * s.K * s.KW * OH * OW);
  op->params = (int64_t)s.K * s.C * s.KH + (int64_t)s.N * s.K * s.KW + (b ? s.N : 0);
  return op;
}

std::unique_ptr<Op> make_conv_nhwc(const std::vector<Shape>& in, const ConvShape& s, int64_t G, const Attrs& a,
                                   const Weights& w, const BuildCtx& c, bool depthwise_rule, bool nchw_input) {
  const int64_t B = in[0][0], N = G * s.N, taps = (int64_t)s.KH * s.KW;
  const Shape out{B, s.OH, s.OW, N};
  std::unique_ptr<Op> result;
  if (nchw_input && (a.num("winograd", 0) != 0 || (depthwise_rule && s.C == 1 && s.N == 1)))
    throw PlanError("input_layout nchw takes a dense or grouped conv, not Winograd or depthwise");
  if (a.num("winograd", 0) != 0) {
    if (G != 1 || s.KH != 3 || s.KW != 3 || s.SH != 1 || s.SW != 1 || s.DH != 1 || s.DW != 1)
      throw PlanError("winograd takes a 3x3 conv at stride 1, dilation 1, one group");
    expect_inputs(in, 1, 2);
    auto op = std::make_unique<WinogradOp>();
    const auto wt = w.find("weight");
    const int M = wt != w.end() && wt->second.layout == "wino43_nhwc16" ? 4 : 2;
    op->ws = {s.C, s.H, s.W, s.N, s.PT, s.PL, s.OH, s.OW, M};
    op->B = B;
    op->sum = in.size() == 2;
    if (op->sum && in[1] != out)
      throw PlanError("the summed input " + shape_str(in[1]) + " does not match the output " + shape_str(out));
    op->u = need_weight(w, "weight", M == 4 ? "wino43_nhwc16" : "wino23_nhwc16",
                        op->ws.points() * ((N + kPanelNC - 1) / kPanelNC * kPanelNC) * s.C).data;
    op->bias = opt_weight(w, "bias", "plain", N) ? w.at("bias").data : nullptr;
    op->act = parse_activation(a, w, N);
    // Blocks of about 36 tiles at M = 2, 18 at M = 4 (the block's transformed inputs and products, points
    // x tiles x (C + N) floats, about alike), rounded up to a multiple of the ISA's tile height (x86: 6,
    // aarch64: 8), fewer where the threads need tasks. Each block reads all the transformed weights, so
    // where they outgrow L2 (512 KB) the blocks stay whole and the threads split the channels instead
    // (each reads its channels' weights only): 512 -> 512 on 7x7 by F(2x2) at 2 threads ran at 0.83x the
    // direct conv's speed as two blocks of 8 tiles, 1.51x as one block of 16 in two channel ranges (AVX2).
    // A small map (7x7 at M = 4: four tiles, one block) splits its channels too where its blocks leave
    // threads idle, in ranges of at least kWinoMinNChunk channels: each range transforms the block's
    // input again, which a narrower range would not repay.
    const int64_t T = op->ws.tiles(), mr = c.k->igemm_mr;
    const bool big = (int64_t)op->ws.points() * s.C * N * (int64_t)sizeof(float) > (512 << 10);
    const int64_t want = c.threads > 1 ? ThreadPool::kTasksPerThread * c.threads : 1;
    int64_t tb = std::min<int64_t>(((M == 4 ? 18 : 36) + mr - 1) / mr * mr, T);
    if (!big && B * ((T + tb - 1) / tb) < want) tb = std::max<int64_t>(mr, chunk_size(T, (want + B - 1) / B, mr));
    op->tb = std::min(tb, T);
    op->blocks = (T + op->tb - 1) / op->tb;
    const int64_t tasks = B * op->blocks;
    op->nchunk = c.threads > 1 && tasks < c.threads
                     ? std::max<int64_t>(kWinoMinNChunk, chunk_size(N, (c.threads + tasks - 1) / tasks, kPanelNC))
                     : N;
    op->nchunk = std::min<int64_t>(op->nchunk, N);
    op->nchunks = (N + op->nchunk - 1) / op->nchunk;
    op->table_bytes = (size_t)s.C * sizeof(float);
    c.check_bytes((int64_t)op->table_bytes, "Winograd tables");
    for (int64_t i = 0; i < op->tb; ++i) op->rows.push_back((int32_t)(i * s.C));
    op->zero.assign(s.C, 0.f);
    op->scratch_floats = (size_t)(op->ws.points() * op->tb * (s.C + s.N));
    result = std::move(op);
  } else if (depthwise_rule && s.C == 1 && s.N == 1) {
    expect_inputs(in, 1, 1);
    auto op = std::make_unique<DwNhwcOp>();
    op->s = s;
    op->s.C = op->s.N = (int)N;
    op->B = B;
    op->w = need_weight(w, "weight", "khwc", N * taps).data;
    op->bias = opt_weight(w, "bias", "plain", N) ? w.at("bias").data : nullptr;
    op->act = parse_activation(a, w, N);
    result = std::move(op);
  } else {
    expect_inputs(in, 1, 2);
    auto op = std::make_unique<IgemmConvOp>();
    op->s = s;
    op->B = B;
    op->G = G;
    op->sum = in.size() == 2;
    if (op->sum && in[1] != out)
      throw PlanError("the summed input " + shape_str(in[1]) + " does not match the output " + shape_str(out));
    op->w_group = (s.N + kPanelNC - 1) / kPanelNC * kPanelNC * taps * s.C;
    op->w = need_weight(w, "weight", "conv_nhwc16", G * op->w_group).data;
    op->bias = opt_weight(w, "bias", "plain", N) ? w.at("bias").data : nullptr;
    op->act = parse_activation(a, w, N);
    op->is = {s.C, (int)taps, s.N, (int)N};
    ConvShape table = s;  // the geometry the offset table describes
    op->nchw_input = nchw_input;
    op->rows = G == 1 && s.C < 16 && s.KW > 1 && s.DW == 1;
    op->padded = op->rows || nchw_input;
    if (op->padded) {
      op->Hp = (int64_t)(s.OH - 1) * s.SH + (int64_t)(s.KH - 1) * s.DH + 1;
      op->Wp = (int64_t)(s.OW - 1) * s.SW + (int64_t)(s.KW - 1) * s.DW + 1;
      table.H = (int)op->Hp, table.W = (int)op->Wp, table.PT = table.PL = 0;
      op->shared_floats = (size_t)(B * op->Hp * op->Wp * G * s.C);
    }
    if (op->rows) {
      table.KW = 1;
      op->is = {s.C * s.KW, s.KH, s.N, (int)N};
    }
    const int64_t n = checked_mul(s.P(), op->is.taps, "conv offset table", INT64_MAX / 8);
    op->table_bytes = (size_t)n * sizeof(int32_t) + (size_t)op->is.C * sizeof(float);
    c.check_bytes((int64_t)op->table_bytes, "the conv's offset table");
    op->ind.resize((size_t)n);
    if (!igemm_offsets(table, G * s.C, op->ind.data()))
      throw PlanError("input " + shape_str(in[0]) + " too large for 32-bit pixel offsets");
    op->zero.assign(op->is.C, 0.f);
    // Pixel chunks whose input (about chunk x C floats) stays in L2 across the channel panels; with
    // several threads, enough tasks for each to get eight: smaller pixel chunks (down to two tiles),
    // then channel ranges too.
    const int64_t P = s.P(), mr = c.k->igemm_mr, BG = B * G, want = c.threads > 1 ? ThreadPool::kTasksPerThread * c.threads : 1;
    int64_t pchunk = std::max<int64_t>(4 * mr, 32768 / std::max<int64_t>(1, G * s.C) / mr * mr);
    if (c.threads > 1 && BG * ((P + pchunk - 1) / pchunk) < want)
      pchunk = std::max<int64_t>(2 * mr, chunk_size(P, (want + BG - 1) / BG, mr));
    op->pchunk = std::min(pchunk, chunk_size(P, 1, mr));
    op->pchunks = (P + op->pchunk - 1) / op->pchunk;
    const int64_t tasks = BG * op->pchunks;
    op->nchunk = tasks < want ? chunk_size(s.N, (want + tasks - 1) / tasks, 2 * kPanelNC) : s.N;
    op->nchunks = (s.N + op->nchunk - 1) / op->nchunk;
    result = std::move(op);
  }
  result->out_shape = out;
  result->macs = B * N * s.P() * s.C * taps;
  result->params = N * s.C * taps + (w.count("bias") ? N : 0);
  return result;
}

}  // namespace edgesep
