// Native kernel tests: every kernel variant this CPU runs against the scalar reference, over edge
// shapes (sizes below, at and above the register tile; strides, dilations, asymmetric padding; odd
// channel counts; depth blocks and row blocks of the GEMM; partial pixel ranges). Built by
// -DEDGESEP_TESTS=ON and run by ctest, on the host and under qemu for ARM.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "../runtime/thread_pool.h"

using namespace edgesep;

namespace {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 6364136223846793005ULL + 1442695040888963407ULL) {}
  uint32_t next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(s >> 33);
  }
  int uniform(int lo, int hi) { return lo + (int)(next() % (uint32_t)(hi - lo + 1)); }
  float normal() { return ((float)(next() % 20001) - 10000.f) / 5000.f; }
};

int failures = 0, checks = 0;

// |got - want| must stay within the worst-case float32 summation bound for `terms` products whose
// magnitudes sum to `scale` (gamma_n = n*u, u = 2^-24), with a little headroom.
void expect_close(const char* what, const std::string& where, const float* got, const float* want,
                  const float* scale, size_t n, int terms) {
  ++checks;
  for (size_t i = 0; i < n; ++i) {
    const double tol = 2.0 * (terms + 2) * std::ldexp(1.0, -24) * scale[i] + 1e-30;
    if (!(std::fabs((double)got[i] - want[i]) <= tol)) {
      std::printf("FAIL %s %s: element %zu got %.9g want %.9g (tol %.3g)\n", what, where.c_str(), i, got[i], want[i],
                  tol);
      ++failures;
      return;
    }
  }
}

// Packs W[N][K] (one group) as layout conv_mr6: panels of kGemmMR rows, depth-major.
std::vector<float> pack_mr6(const std::vector<float>& w, int N, int K) {
  const int panels = (N + kGemmMR - 1) / kGemmMR;
  std::vector<float> p((size_t)panels * kGemmMR * K, 0.f);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) p[((size_t)(n / kGemmMR) * K + k) * kGemmMR + n % kGemmMR] = w[(size_t)n * K + k];
  return p;
}

// Packs a separable pass's W[M][C][T] (T taps along the pass, stride S) in its phase-ordered conv_mr6.
std::vector<float> pack_sep(const std::vector<float>& w, int M, int C, int T, int S) {
  std::vector<float> p((size_t)(M + kGemmMR - 1) / kGemmMR * kGemmMR * C * T, 0.f);
  for (int m = 0; m < M; ++m)
    for (int c = 0; c < C; ++c)
      for (int t = 0; t < T; ++t) p[sep_weight_index(M, C, T, S, m, c, t)] = w[((size_t)m * C + c) * T + t];
  return p;
}

std::string describe(const ConvShape& s) {
  char b[200];
  std::snprintf(b, sizeof b, "C%d H%d W%d N%d k%dx%d s%dx%d d%dx%d p%d,%d -> %dx%d", s.C, s.H, s.W, s.N, s.KH, s.KW, s.SH,
                s.SW, s.DH, s.DW, s.PT, s.PL, s.OH, s.OW);
  return b;
}

bool make_shape(ConvShape& s, int pb, int pr) {
  const int eh = (s.KH - 1) * s.DH + 1, ew = (s.KW - 1) * s.DW + 1;
  if (s.H + s.PT + pb < eh || s.W + s.PL + pr < ew) return false;
  s.OH = (s.H + s.PT + pb - eh) / s.SH + 1;
  s.OW = (s.W + s.PL + pr - ew) / s.SW + 1;
  return true;
}

// |W| x |in| for every output, the scale of the summation error bound.
template <class F>
std::vector<float> magnitude(const ConvShape& s, F weight, const std::vector<float>& in, const float* bias, int N) {
  std::vector<float> m((size_t)N * s.P());
  for (int n = 0; n < N; ++n)
    for (int oy = 0; oy < s.OH; ++oy)
      for (int ox = 0; ox < s.OW; ++ox) {
        double a = bias ? std::fabs(bias[n]) : 0.0;
        for (int c = 0; c < s.C; ++c)
          for (int ky = 0; ky < s.KH; ++ky)
            for (int kx = 0; kx < s.KW; ++kx) {
              const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
              if (iy >= 0 && iy < s.H && ix >= 0 && ix < s.W)
                a += std::fabs(weight(n, c, ky, kx) * in[((size_t)c * s.H + iy) * s.W + ix]);
            }
        m[(size_t)n * s.P() + oy * s.OW + ox] = (float)a;
      }
  return m;
}

void test_conv(const KernelTable& t, const ConvShape& s, Rng& rng, bool with_bias, float lo, float hi) {
  const int K = s.K(), P = s.P();
  std::vector<float> in((size_t)s.C * s.H * s.W), w((size_t)s.N * K), bias(s.N);
  for (auto& v : in) v = rng.normal();
  for (auto& v : w) v = rng.normal();
  for (auto& v : bias) v = rng.normal();
  const auto packed = pack_mr6(w, s.N, K);
  const float* packed_w = packed.data();
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want((size_t)s.N * P), got((size_t)s.N * P, NAN);
  ref::conv_gemm(s, in.data(), packed.data(), b, want.data(), 0, P, 0, s.N, lo, hi, nullptr);
  // Four tiles, as the runtime's tasks split them: pixels [0, cut) and [cut, P) by output channels
  // [0, mcut) and [mcut, N), mcut a multiple of the tile height.
  const int cut = P > 1 ? rng.uniform(1, P - 1) : P;
  const int mcut = rng.uniform(0, (s.N + kGemmMR - 1) / kGemmMR) * kGemmMR;
  const int chunk = cut > P - cut ? cut : P - cut;
  std::vector<float> scratch(conv_scratch_floats(s, t.gemm_nr, chunk) + 64);
  for (int m : {0, 1}) {
    const int m0 = m ? (mcut < s.N ? mcut : s.N) : 0, m1 = m ? s.N : (mcut < s.N ? mcut : s.N);
    if (m0 >= m1) continue;
    t.conv_gemm(s, in.data(), packed.data(), b, got.data(), 0, cut, m0, m1, lo, hi, scratch.data());
    if (cut < P) t.conv_gemm(s, in.data(), packed.data(), b, got.data(), cut, P, m0, m1, lo, hi, scratch.data());
  }
  auto wf = [&](int n, int c, int ky, int kx) { return w[(size_t)n * K + (c * s.KH + ky) * s.KW + kx]; };
  const auto mag = magnitude(s, wf, in, b, s.N);
  expect_close(t.isa, "conv " + describe(s), got.data(), want.data(), mag.data(), want.size(), K + 1);

  // The direct path (stride 1): two bands of rows by two channel ranges.
  if (s.SH == 1 && s.SW == 1) {
    std::vector<float> got3((size_t)s.N * P, NAN);
    const int rcut = s.OH > 1 ? rng.uniform(1, s.OH - 1) : s.OH;
    const int rows = rcut > s.OH - rcut ? rcut : s.OH - rcut;
    std::vector<float> scratch3(conv_direct_floats(s, t.gemm_nr, rows, s.N) + 64);
    const int m = mcut < s.N ? mcut : s.N;
    for (int part = 0; part < 4; ++part) {
      const int y0 = part < 2 ? 0 : rcut, yn = part < 2 ? rcut : s.OH - rcut;
      const int m0 = part % 2 ? m : 0, m1 = part % 2 ? s.N : m;
      if (yn > 0 && m1 > m0) t.conv_direct(s, in.data(), packed_w, b, got3.data(), y0, yn, m0, m1, lo, hi, scratch3.data());
    }
    expect_close(t.isa, "conv (direct) " + describe(s), got3.data(), want.data(), mag.data(), want.size(), K + 1);
  }

  // The shared-pack path: B for pixels [cut, P) packed in two depth ranges, then multiplied in two
  // channel ranges.
  if (cut < P) {
    std::vector<float> packed(conv_packed_floats(s, t.gemm_nr, P - cut)), row(P + 64), got2((size_t)s.N * P, 0.f);
    const int kcut = rng.uniform(0, K);
    t.conv_pack(s, in.data(), cut, P, 0, kcut, packed.data(), row.data());
    t.conv_pack(s, in.data(), cut, P, kcut, K, packed.data(), row.data());
    const int m = mcut < s.N ? mcut : s.N;
    if (m > 0) t.conv_packed_gemm(s, packed.data(), packed_w, b, got2.data(), cut, P, 0, m, lo, hi);
    if (m < s.N) t.conv_packed_gemm(s, packed.data(), packed_w, b, got2.data(), cut, P, m, s.N, lo, hi);
    for (int n = 0; n < s.N; ++n)
      for (int p = 0; p < cut; ++p) got2[(size_t)n * P + p] = want[(size_t)n * P + p];
    expect_close(t.isa, "conv (shared pack) " + describe(s), got2.data(), want.data(), mag.data(), want.size(), K + 1);
  }
}

void test_dwconv(const KernelTable& t, const ConvShape& s, Rng& rng, float lo, float hi) {
  std::vector<float> in((size_t)s.H * s.W), w(s.KH * s.KW);
  for (auto& v : in) v = rng.normal();
  for (auto& v : w) v = rng.normal();
  const float bias = rng.normal();
  std::vector<float> want(s.P()), got(s.P(), NAN), scratch(dwconv_scratch_floats(s) + 64);
  ref::dwconv(s, in.data(), w.data(), bias, want.data(), lo, hi, nullptr);
  t.dwconv(s, in.data(), w.data(), bias, got.data(), lo, hi, scratch.data());
  ConvShape one = s;
  one.C = one.N = 1;
  auto wf = [&](int, int, int ky, int kx) { return w[ky * s.KW + kx]; };
  const auto mag = magnitude(one, wf, in, &bias, 1);
  expect_close(t.isa, "dwconv " + describe(s), got.data(), want.data(), mag.data(), want.size(), s.KH * s.KW + 1);
}

// Packs one group's W[N][C][KH*KW] as layout conv_nhwc16: panels of kPanelNC channels, [taps][C][16].
std::vector<float> pack_nhwc16(const float* w, int N, int C, int taps) {
  const int panels = (N + kPanelNC - 1) / kPanelNC;
  std::vector<float> p((size_t)panels * taps * C * kPanelNC, 0.f);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int t = 0; t < taps; ++t)
        p[(((size_t)(n / kPanelNC) * taps + t) * C + c) * kPanelNC + n % kPanelNC] = w[((size_t)n * C + c) * taps + t];
  return p;
}

// The NHWC conv of G groups (s: one group's geometry) on one image, with a residual sum: every group
// split into two pixel ranges x two channel ranges as the runtime's tasks split them. `oracle`: also
// check the reference itself (and the offset table) against the NCHW reference conv.
void test_igemm(const KernelTable& t, const ConvShape& s, int G, Rng& rng, bool with_bias, bool with_sum, float lo,
                float hi, bool oracle) {
  const int taps = s.KH * s.KW, P = s.P(), ldi = G * s.C, ldo = G * s.N;
  std::vector<float> in((size_t)s.H * s.W * ldi), w((size_t)G * s.N * s.C * taps), bias(ldo), sum((size_t)P * ldo);
  for (auto* v : {&in, &w, &bias, &sum})
    for (auto& x : *v) x = rng.normal();
  std::vector<int32_t> ind((size_t)P * taps);
  if (!igemm_offsets(s, ldi, ind.data())) return;
  std::vector<float> zero(s.C, 0.f), want((size_t)P * ldo), got((size_t)P * ldo, NAN), mag((size_t)P * ldo);
  const float* b = with_bias ? bias.data() : nullptr;
  const float* sm = with_sum ? sum.data() : nullptr;
  const int cut = P > 1 ? rng.uniform(1, P - 1) : P;
  const int ncut = std::min(s.N, rng.uniform(0, (s.N + kPanelNC - 1) / kPanelNC) * kPanelNC);
  for (int g = 0; g < G; ++g) {
    const float* wg = w.data() + (size_t)g * s.N * s.C * taps;
    const auto packed = pack_nhwc16(wg, s.N, s.C, taps);
    const float* x = in.data() + g * s.C;
    const float* bg = b ? b + g * s.N : nullptr;
    const float* sg = sm ? sm + g * s.N : nullptr;
    const IgemmShape is{s.C, taps, s.N, ldo};
    ref::igemm(is, x, ind.data(), zero.data(), packed.data(), bg, sg, want.data() + g * s.N, 0, P, 0, s.N, lo, hi);
    for (int pr = 0; pr < 2; ++pr)
      for (int nr = 0; nr < 2; ++nr) {
        const int p0 = pr ? cut : 0, p1 = pr ? P : cut, n0 = nr ? ncut : 0, n1 = nr ? s.N : ncut;
        if (p0 < p1 && n0 < n1)
          t.igemm(is, x, ind.data(), zero.data(), packed.data(), bg, sg, got.data() + g * s.N, p0, p1, n0, n1, lo, hi);
      }
    for (int p = 0; p < P; ++p)
      for (int n = 0; n < s.N; ++n) {
        const int oy = p / s.OW, ox = p % s.OW;
        double a = (bg ? std::fabs(bg[n]) : 0.0) + (sg ? std::fabs(sg[(size_t)p * ldo + n]) : 0.0);
        for (int c = 0; c < s.C; ++c)
          for (int ky = 0; ky < s.KH; ++ky)
            for (int kx = 0; kx < s.KW; ++kx) {
              const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
              if (iy >= 0 && iy < s.H && ix >= 0 && ix < s.W)
                a += std::fabs(wg[((size_t)n * s.C + c) * taps + ky * s.KW + kx] * x[((size_t)iy * s.W + ix) * ldi + c]);
            }
        mag[(size_t)p * ldo + g * s.N + n] = (float)a;
      }
    if (oracle && !with_sum) {
      // The NHWC reference (with its offset table and packing) against the NCHW one, group g.
      std::vector<float> nchw((size_t)s.C * s.H * s.W), out((size_t)s.N * P), w6 = pack_mr6(std::vector<float>(wg, wg + (size_t)s.N * s.C * taps), s.N, s.C * taps);
      for (int c = 0; c < s.C; ++c)
        for (int i = 0; i < s.H * s.W; ++i) nchw[(size_t)c * s.H * s.W + i] = x[(size_t)i * ldi + c];
      ref::conv_gemm(s, nchw.data(), w6.data(), bg, out.data(), 0, P, 0, s.N, lo, hi, nullptr);
      std::vector<float> want_t((size_t)s.N * P), mag_t((size_t)s.N * P);
      for (int p = 0; p < P; ++p)
        for (int n = 0; n < s.N; ++n) {
          want_t[(size_t)n * P + p] = want[(size_t)p * ldo + g * s.N + n];
          mag_t[(size_t)n * P + p] = mag[(size_t)p * ldo + g * s.N + n];
        }
      expect_close("ref", "igemm vs NCHW conv " + describe(s), want_t.data(), out.data(), mag_t.data(), out.size(), s.K() + 1);
    }
  }
  char where[48];
  std::snprintf(where, sizeof where, " G%d%s", G, with_sum ? " +sum" : "");
  expect_close(t.isa, "igemm " + describe(s) + where, got.data(), want.data(), mag.data(), want.size(), s.K() + 2);
}

// Winograd F(2x2, 3x3) on one NHWC image: the variant's transforms against the reference's (a few adds
// each: tight), and the whole pipeline (transforms + sixteen 1x1 GEMMs, tiles in two blocks) against
// the direct conv. Winograd sums other terms than the direct conv does (the transforms' products of
// up to 4 x 4 values), so its bound is that of the direct sum scaled by the transforms' gain (16).
void test_winograd(const KernelTable& t, int Mt, int C, int H, int W, int N, int PT, int PL, int PB, int PR, Rng& rng,
                   bool with_bias, bool with_sum, float lo, float hi) {
  ConvShape s{C, H, W, N, 3, 3, 1, 1, 1, 1, PT, PL, 0, 0};
  if (!make_shape(s, PB, PR)) return;
  const WinoShape ws{C, H, W, N, PT, PL, s.OH, s.OW, Mt};
  const int T = ws.tiles(), P = s.P(), panels = (N + kPanelNC - 1) / kPanelNC, X = ws.points(), E = Mt + 2;
  std::vector<float> in((size_t)H * W * C), w((size_t)N * C * 9), bias(N), sum((size_t)P * N);
  for (auto* v : {&in, &w, &bias, &sum})
    for (auto& x : *v) x = rng.normal();
  const float* b = with_bias ? bias.data() : nullptr;
  const float* sm = with_sum ? sum.data() : nullptr;
  // U[xi] = G g G^T, each packed as a 1x1 conv's conv_nhwc16 panels.
  const double G2[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  const double G4[6][3] = {{1. / 4, 0, 0},           {-1. / 6, -1. / 6, -1. / 6}, {-1. / 6, 1. / 6, -1. / 6},
                           {1. / 24, 1. / 12, 1. / 6}, {1. / 24, -1. / 12, 1. / 6}, {0, 0, 1}};
  auto G = [&](int i, int a) { return Mt == 2 ? G2[i][a] : G4[i][a]; };
  std::vector<float> u((size_t)X * panels * kPanelNC * C, 0.f);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int i = 0; i < E; ++i)
        for (int j = 0; j < E; ++j) {
          double v = 0;
          for (int a = 0; a < 3; ++a)
            for (int e = 0; e < 3; ++e) v += G(i, a) * w[((size_t)n * C + c) * 9 + a * 3 + e] * G(j, e);
          u[(size_t)(i * E + j) * panels * kPanelNC * C + ((size_t)(n / kPanelNC) * C + c) * kPanelNC + n % kPanelNC] =
              (float)v;
        }
  std::vector<float> V((size_t)X * T * C), Vr((size_t)X * T * C), M((size_t)X * T * N), got((size_t)P * N, NAN),
      got_r((size_t)P * N, NAN), zero(C, 0.f);
  // The output also written as channels [3, 3 + N) of pixels 2N + 5 floats apart (a Concat's part in
  // place; no summed input there): the same values, nothing outside the slice touched.
  WinoShape wide = ws;
  wide.ldo = 2 * N + 5;
  std::vector<float> got_w((size_t)P * wide.ldo, -7.f);
  // Scales of the transforms' rounding: F(2x2)'s B^T d B adds at most 4 values of |d| <= max |in| (the
  // tests' unit scale); F(4x4)'s weighs them by |B^T| |B| summing to at most 10 x 10, and A^T M A by
  // |A^T| |A| summing to at most 19 x 19 (its rows' absolute sums), against 3 x 3 for F(2x2).
  float in_max = 0.f;
  for (float x : in) in_max = std::max(in_max, std::fabs(x));
  std::vector<float> vmag((size_t)X * T * C, Mt == 2 ? 1.f : 100.f * in_max);
  float m_max = 0.f;
  std::vector<int32_t> rows(T);
  for (int i = 0; i < T; ++i) rows[i] = i * C;
  const int cut = rng.uniform(0, T);
  char where[96];
  std::snprintf(where, sizeof where, "F(%dx%d) C%d H%d W%d N%d pads %d,%d,%d,%d", Mt, Mt, C, H, W, N, PT, PL, PB, PR);
  for (int part = 0; part < 2; ++part) {  // tiles [0, cut) and [cut, T) as two blocks
    const int t0 = part ? cut : 0, nt = part ? T - cut : cut;
    if (nt == 0) continue;
    const ptrdiff_t ldv = (ptrdiff_t)nt * C, ldm = (ptrdiff_t)nt * N;
    t.wino_input(ws, in.data(), t0, nt, V.data(), ldv);
    ref::wino_input(ws, in.data(), t0, nt, Vr.data(), ldv);
    expect_close(t.isa, std::string("wino_input ") + where, V.data(), Vr.data(), vmag.data(), X * ldv, 4);
    const IgemmShape gs{C, 1, N, N};
    for (int xi = 0; xi < X; ++xi)
      t.igemm(gs, V.data() + xi * ldv, rows.data(), zero.data(), u.data() + (size_t)xi * panels * kPanelNC * C, nullptr,
              nullptr, M.data() + xi * ldm, 0, nt, 0, N, -INFINITY, INFINITY);
    for (size_t i = 0; i < (size_t)X * ldm; ++i) m_max = std::max(m_max, std::fabs(M[i]));
    t.wino_output(ws, M.data(), ldm, t0, nt, b, sm, got.data(), lo, hi);
    ref::wino_output(ws, M.data(), ldm, t0, nt, b, sm, got_r.data(), lo, hi);
    if (!sm) t.wino_output(wide, M.data(), ldm, t0, nt, b, nullptr, got_w.data() + 3, lo, hi);
  }
  if (!sm)
    for (int p = 0; p < P; ++p)
      for (int n = 0; n < wide.ldo; ++n) {
        const float g = got_w[(size_t)p * wide.ldo + n];
        const bool in_slice = n >= 3 && n < 3 + N;
        if (in_slice ? g != got[(size_t)p * N + n - 3] : g != -7.f) {
          std::fprintf(stderr, "FAIL %s wino_output strided %s: pixel %d lane %d\n", t.isa, where, p, n);
          ++failures;
          return;
        }
      }
  std::vector<float> mag_o((size_t)P * N);
  for (size_t i = 0; i < mag_o.size(); ++i) mag_o[i] = std::fabs(got_r[i]) + (Mt == 2 ? 16.f : 400.f * m_max);
  expect_close(t.isa, std::string("wino_output ") + where, got.data(), got_r.data(), mag_o.data(), got.size(), 16);
  // Against the direct conv (the NHWC reference through its offset table).
  std::vector<int32_t> ind((size_t)P * 9);
  igemm_offsets(s, C, ind.data());
  const auto packed = pack_nhwc16(w.data(), N, C, 9);
  std::vector<float> want((size_t)P * N), mag((size_t)P * N);
  ref::igemm(IgemmShape{C, 9, N, N}, in.data(), ind.data(), zero.data(), packed.data(), b, sm, want.data(), 0, P, 0, N,
             lo, hi);
  for (int p = 0; p < P; ++p)
    for (int n = 0; n < N; ++n) {
      double a = (b ? std::fabs(b[n]) : 0.0) + (sm ? std::fabs(sm[(size_t)p * N + n]) : 0.0);
      for (int k = 0; k < 9; ++k) {
        const int32_t off = ind[(size_t)p * 9 + k];
        if (off >= 0)
          for (int c = 0; c < C; ++c) a += std::fabs(w[((size_t)n * C + c) * 9 + k] * in[off + c]);
      }
      // F(4x4)'s transforms amplify rounding ~25x F(2x2)'s (measured in numpy at C = 256: 3e-5 vs 1.2e-6).
      mag[(size_t)p * N + n] = (Mt == 2 ? 16.f : 400.f) * (float)a;
    }
  expect_close(t.isa, std::string("winograd vs direct ") + where, got.data(), want.data(), mag.data(), got.size(),
               16 * C + 16);
}

void test_dwnhwc(const KernelTable& t, const ConvShape& s, Rng& rng, bool with_bias, float lo, float hi) {
  const int taps = s.KH * s.KW, C = s.C;
  std::vector<float> in((size_t)s.H * s.W * C), w((size_t)taps * C), bias(C), mag((size_t)s.P() * C);
  for (auto* v : {&in, &w, &bias})
    for (auto& x : *v) x = rng.normal();
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want((size_t)s.P() * C), got((size_t)s.P() * C, NAN);
  ref::dwconv_nhwc(s, in.data(), w.data(), b, want.data(), 0, s.OH, lo, hi);
  const int cut = rng.uniform(0, s.OH);
  t.dwconv_nhwc(s, in.data(), w.data(), b, got.data(), 0, cut, lo, hi);
  t.dwconv_nhwc(s, in.data(), w.data(), b, got.data(), cut, s.OH, lo, hi);
  for (int p = 0; p < s.P(); ++p)
    for (int c = 0; c < C; ++c) {
      const int oy = p / s.OW, ox = p % s.OW;
      double a = b ? std::fabs(b[c]) : 0.0;
      for (int ky = 0; ky < s.KH; ++ky)
        for (int kx = 0; kx < s.KW; ++kx) {
          const int iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
          if (iy >= 0 && iy < s.H && ix >= 0 && ix < s.W)
            a += std::fabs(w[(size_t)(ky * s.KW + kx) * C + c] * in[((size_t)iy * s.W + ix) * C + c]);
        }
      mag[(size_t)p * C + c] = (float)a;
    }
  expect_close(t.isa, "dwconv_nhwc " + describe(s), got.data(), want.data(), mag.data(), want.size(), taps + 1);
}

void test_fc(const KernelTable& t, int K, int N, int batch, Rng& rng, bool with_bias) {
  const int ldy = N + 3;  // rows of y further apart than N: the stride is honoured
  std::vector<float> x((size_t)K * batch), w((size_t)N * K), bias(N), mag((size_t)ldy * batch, 0.f);
  for (auto& v : x) v = rng.normal();
  for (auto& v : w) v = rng.normal();
  for (auto& v : bias) v = rng.normal();
  const float* b = with_bias ? bias.data() : nullptr;
  for (int i = 0; i < batch; ++i)
    for (int n = 0; n < N; ++n) {
      double a = b ? std::fabs(b[n]) : 0.0;
      for (int k = 0; k < K; ++k) a += std::fabs(w[(size_t)n * K + k] * x[(size_t)i * K + k]);
      mag[(size_t)i * ldy + n] = (float)a;
    }
  std::vector<float> want((size_t)ldy * batch, 0.f), got((size_t)ldy * batch, 0.f);
  for (int i = 0; i < batch; ++i)
    for (int n = 0; n < N; ++n) got[(size_t)i * ldy + n] = NAN;
  ref::fc(K, x.data(), batch, w.data(), b, want.data(), ldy, 0, N, -INFINITY, INFINITY);
  const int cut = rng.uniform(0, N);
  t.fc(K, x.data(), batch, w.data(), b, got.data(), ldy, 0, cut, -INFINITY, INFINITY);
  t.fc(K, x.data(), batch, w.data(), b, got.data(), ldy, cut, N, -INFINITY, INFINITY);
  char where[64];
  std::snprintf(where, sizeof where, "fc K%d N%d batch %d", K, N, batch);
  expect_close(t.isa, where, got.data(), want.data(), mag.data(), got.size(), K + 1);
}

// A random BCSR matrix: each block row gets a block count drawn up to `density` of its slots (some
// rows empty, some full), columns distinct and sorted, 16-bit indices where cols allows.
struct Bcsr {
  std::vector<int32_t> row_ptr, col32;
  std::vector<uint16_t> col16;
  std::vector<float> values;
  SparseMatrix m;
};
Bcsr random_bcsr(int rows, int cols, int br, int bc, double density, Rng& rng) {
  Bcsr a;
  const int slots = cols / bc;
  a.row_ptr.push_back(0);
  std::vector<int> pick;
  for (int i = 0; i < rows / br; ++i) {
    const int mode = rng.uniform(0, 9);  // 0: empty row, 1: every slot, 2: one block, else ~density
    pick.clear();
    for (int sl = 0; sl < slots; ++sl)
      if (mode == 1 || (mode > 2 && rng.uniform(0, 9999) < density * 10000)) pick.push_back(sl);
    if (mode == 2 && slots > 0) pick.push_back(rng.uniform(0, slots - 1));
    for (int sl : pick) {
      const int c = sl * bc + (bc > 1 ? rng.uniform(0, cols % bc) : 0);  // blocks need not be aligned
      if (cols <= 65536)
        a.col16.push_back((uint16_t)c);
      else
        a.col32.push_back(c);
      for (int k = 0; k < br * bc; ++k) a.values.push_back(rng.uniform(0, 4) ? rng.normal() : 0.f);
    }
    a.row_ptr.push_back((int32_t)(a.col16.size() + a.col32.size()));
  }
  return a;
}

void test_spmm(const KernelTable& t, int rows, int cols, int br, int bc, double density, int batch, Rng& rng,
               bool with_bias, float lo, float hi) {
  Bcsr a = random_bcsr(rows, cols, br, bc, density, rng);
  a.col16.push_back(0);  // data() must not be null even with no blocks; the kernels never read it
  a.col32.push_back(0);
  a.values.push_back(0.f);
  a.m = SparseMatrix{rows, cols, br, bc, a.row_ptr.data(), cols <= 65536 ? a.col16.data() : nullptr,
                     cols <= 65536 ? nullptr : a.col32.data(), a.values.data()};
  std::vector<float> x((size_t)cols * batch), bias(rows), mag((size_t)rows * batch);
  for (auto& v : x) v = rng.normal();
  for (auto& v : bias) v = rng.normal();
  const float* b = with_bias ? bias.data() : nullptr;
  int terms = 1;
  for (int r = 0; r < rows; ++r) {
    const int i = r / br, rr = r % br;
    terms = std::max(terms, (a.row_ptr[i + 1] - a.row_ptr[i]) * bc + 1);
    for (int bb = 0; bb < batch; ++bb) {
      double s = b ? std::fabs(b[r]) : 0.0;
      for (int j = a.row_ptr[i]; j < a.row_ptr[i + 1]; ++j) {
        const int c = cols <= 65536 ? a.col16[j] : a.col32[j];
        for (int k = 0; k < bc; ++k)
          s += std::fabs(a.values[((size_t)j * br + rr) * bc + k] * x[((size_t)c + k) * batch + bb]);
      }
      mag[(size_t)r * batch + bb] = (float)s;
    }
  }
  std::vector<float> want((size_t)rows * batch), got((size_t)rows * batch, NAN);
  ref::spmm(a.m, x.data(), batch, b, want.data(), 0, rows, lo, hi);
  const int cut = rng.uniform(0, rows / br) * br;
  t.spmm(a.m, x.data(), batch, b, got.data(), 0, cut, lo, hi);
  t.spmm(a.m, x.data(), batch, b, got.data(), cut, rows, lo, hi);
  char where[96];
  std::snprintf(where, sizeof where, "spmm %dx%d block %dx%d density %.2f batch %d", rows, cols, br, bc, density, batch);
  expect_close(t.isa, where, got.data(), want.data(), mag.data(), want.size(), terms);
}

// Activations: every code over lengths around the vector width, on values from the saturated ends
// through zero. Tolerance 2e-6 (1 + |want|): FMA contraction in the hard sigmoid/swish, the vector exp
// (within 2 ulp of the C library's), and tanh's 1 - e^-2x, which cancels near 0 (absolute error of a
// few ulp of 1 there).
void test_activation(const KernelTable& t, Rng& rng) {
  const ActCode codes[] = {ActCode::Clamp, ActCode::Leaky, ActCode::HardSigmoid,
                           ActCode::HardSwish, ActCode::Sigmoid, ActCode::Tanh};
  const char* names[] = {"clamp", "leaky", "hard_sigmoid", "hard_swish", "sigmoid", "tanh"};
  const float special[] = {0.f, -0.f, 1e-8f, -1e-8f, 3.f, -3.f, 9.5f, -9.5f, 87.f, -87.f, 100.f, -100.f, 1e30f, -1e30f};
  for (int c = 0; c < 6; ++c)
    for (int n : {1, 3, 4, 7, 8, 15, 16, 17, 33, 100}) {
      std::vector<float> x(n);
      for (int i = 0; i < n; ++i) x[i] = i < 14 && n > 14 ? special[i] : rng.normal() * 6.f;
      const float a = c == 0 ? -1.5f : (c == 1 ? 0.1f : 0.2f), b = c == 0 ? 2.f : 0.5f;
      std::vector<float> want(x), got(x);
      ref::activation(codes[c], want.data(), n, a, b);
      t.activation(codes[c], got.data(), n, a, b);
      ++checks;
      for (int i = 0; i < n; ++i)
        if (!(std::fabs((double)got[i] - want[i]) <= 2e-6 * (1.0 + std::fabs(want[i])))) {
          std::printf("FAIL %s activation %s n%d: x %.9g got %.9g want %.9g\n", t.isa, names[c], n, x[i], got[i],
                      want[i]);
          ++failures;
          break;
        }
    }
}

// Pooling's window reduction: exact for max, one add per tap for the average (the reference sums in
// double), over channel counts around each vector width, windows of 1-9 taps, and runs of pixels whose
// windows overlap (step < n * C), touch or leave gaps, written contiguously.
void test_pool_taps(const KernelTable& t, Rng& rng) {
  for (int C : {1, 3, 4, 5, 8, 15, 16, 17, 33, 64, 100})
    for (int n : {1, 2, 4, 9})
      for (int pixels : {1, 2, 7})
        for (int step : {C, 2 * C, n * C + 3})
          for (bool is_max : {true, false}) {
            std::vector<float> x((size_t)n * C + (size_t)(pixels - 1) * step);
            std::vector<float> want((size_t)pixels * C), got((size_t)pixels * C, NAN), mag((size_t)pixels * C);
            for (auto& v : x) v = rng.normal();
            std::vector<const float*> taps;
            for (int i = 0; i < n; ++i) taps.push_back(x.data() + (size_t)(n - 1 - i) * C);  // any order
            ref::pool_taps(want.data(), taps.data(), n, C, is_max, 1.f / n, pixels, step);
            t.pool_taps(got.data(), taps.data(), n, C, is_max, 1.f / n, pixels, step);
            for (int j = 0; j < pixels; ++j)
              for (int c = 0; c < C; ++c) {
                double a = 0;
                for (int i = 0; i < n; ++i) a += std::fabs(taps[i][(size_t)j * step + c]);
                mag[(size_t)j * C + c] = (float)a;
              }
            char where[96];
            std::snprintf(where, sizeof where, "pool_taps C%d n%d pixels%d step%d %s", C, n, pixels, step,
                          is_max ? "max" : "avg");
            expect_close(t.isa, where, got.data(), want.data(), mag.data(), want.size(), n + 1);
          }
}

// The image transpose: exact (a copy), over sizes around the 4 x 4 block and the 32 x 32 tile, in
// blocks that start anywhere; the output is pre-filled with NaN so that a missed element shows.
void test_transpose(const KernelTable& t, Rng& rng) {
  for (int rows : {1, 3, 4, 5, 31, 32, 33, 67})
    for (int cols : {1, 2, 4, 7, 16, 32, 37, 96}) {
      std::vector<float> x((size_t)rows * cols), want(x.size()), got(x.size(), NAN);
      for (auto& v : x) v = rng.normal();
      ref::transpose(x.data(), rows, cols, 0, rows, 0, cols, want.data());
      // Four blocks, cut at a random row and column (the second of each unaligned).
      const int rc = rows > 2 ? rng.uniform(1, rows - 1) : rows, cc = cols > 2 ? rng.uniform(1, cols - 1) : cols;
      t.transpose(x.data(), rows, cols, 0, rc, 0, cc, got.data());
      t.transpose(x.data(), rows, cols, 0, rc, cc, cols, got.data());
      t.transpose(x.data(), rows, cols, rc, rows, 0, cc, got.data());
      t.transpose(x.data(), rows, cols, rc, rows, cc, cols, got.data());
      if (std::memcmp(got.data(), want.data(), sizeof(float) * got.size()) != 0) {
        std::printf("FAIL %s transpose %d x %d (cut at row %d, column %d)\n", t.isa, rows, cols, rc, cc);
        ++failures;
      }
    }
}

void test_pool_row(const KernelTable& t, Rng& rng) {
  for (bool is_max : {true, false})
    for (int n : {1, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 64, 100}) {
      std::vector<float> acc(n), x(n);
      for (auto& v : acc) v = rng.normal();
      for (auto& v : x) v = rng.normal();
      std::vector<float> want(acc), got(acc);
      ref::pool_row(want.data(), x.data(), n, is_max);
      t.pool_row(got.data(), x.data(), n, is_max);
      ++checks;
      if (std::memcmp(want.data(), got.data(), n * sizeof(float))) {
        std::printf("FAIL %s pool_row %s n%d\n", t.isa, is_max ? "max" : "sum", n);
        ++failures;
      }
    }
}

void test_sepconv(const KernelTable& t, const SepShape& s, Rng& rng, bool with_bias, float lo, float hi) {
  std::vector<float> in((size_t)s.C * s.H * s.W), v((size_t)s.K * s.C * s.KH), h((size_t)s.N * s.K * s.KW), bias(s.N);
  for (auto& x : in) x = rng.normal();
  for (auto& x : v) x = rng.normal();
  for (auto& x : h) x = rng.normal();
  for (auto& x : bias) x = rng.normal();
  const auto pv = pack_sep(v, s.K, s.C, s.KH, s.SH), ph = pack_sep(h, s.N, s.K, s.KW, s.SW);
  const float* b = with_bias ? bias.data() : nullptr;
  const size_t n_out = (size_t)s.N * s.OH() * s.OW();
  std::vector<float> want(n_out), got(n_out, NAN), mag(n_out);
  ref::sepconv(s, in.data(), pv.data(), ph.data(), b, want.data(), 0, s.OH(), lo, hi, nullptr);
  // The error scale: the same pair on magnitudes.
  auto abs_of = [](std::vector<float> x) {
    for (auto& e : x) e = std::fabs(e);
    return x;
  };
  const auto ai = abs_of(in), av = abs_of(pv), ah = abs_of(ph), ab = abs_of(bias);
  ref::sepconv(s, ai.data(), av.data(), ah.data(), b ? ab.data() : nullptr, mag.data(), 0, s.OH(), -INFINITY, INFINITY,
               nullptr);
  // Bands as the runtime's tasks cut them: [0, cut) and [cut, OH).
  const int cut = s.OH() > 1 ? rng.uniform(1, s.OH() - 1) : s.OH();
  const int rows = cut > s.OH() - cut ? cut : s.OH() - cut;
  std::vector<float> scratch(sepconv_scratch_floats(s, t.gemm_nr, rows) + 64);
  t.sepconv(s, in.data(), pv.data(), ph.data(), b, got.data(), 0, cut, lo, hi, scratch.data());
  if (cut < s.OH()) t.sepconv(s, in.data(), pv.data(), ph.data(), b, got.data(), cut, s.OH() - cut, lo, hi, scratch.data());
  char where[160];
  std::snprintf(where, sizeof where, "sepconv C%d H%d W%d K%d N%d k%dx%d s%dx%d p%d,%d,%d,%d", s.C, s.H, s.W, s.K, s.N,
                s.KH, s.KW, s.SH, s.SW, s.PT, s.PL, s.PB, s.PR);
  expect_close(t.isa, where, got.data(), want.data(), mag.data(), n_out, s.C * s.KH + s.K * s.KW + 2);
}

// The pool runs every task exactly once per job, jobs back to back (the workers spin between them and
// join a job late or not at all: the caller takes what they have not, and waits only for those inside).
// Under qemu-user the host's memory order applies: ARM's weaker one rests on the orderings in
// thread_pool.cpp, not on this test. Then jobs whose tasks (all but the caller's first) outlast the
// caller's spin where a worker runs them, so that the caller goes to sleep and the last worker must wake it:
// with the caller's flag set by a plain store-release, qemu-user on x86 let the load after it pass it,
// and a standalone loop of such jobs hung in 1 run of 4 to 6 (Cortex-A78AE build; here, within the
// whole test, less often: a stress, not a proof). A hang fails by ctest's timeout.
void test_thread_pool() {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    volatile double sink = 0;
    for (int job = 0; job < 20000; ++job) {
      std::vector<std::atomic<int>> count(threads);
      pool.run(threads, [&](int t, int) {
        count[t].fetch_add(1);
        double x = 0;
        for (int i = 0; t != 0 && i < job % 7 * 3000; ++i) x += i * 1e-9;
        sink = x;
      });
      ++checks;
      for (int t = 0; t < threads; ++t)
        if (count[t].load() != 1) {
          std::printf("FAIL thread pool, slow workers (%d threads): job %d task %d ran %d times\n", threads, job, t,
                      count[t].load());
          ++failures;
          break;
        }
    }
  }
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int job = 0; job < 3000; ++job) {
      const int n = 1 + job % 97;
      std::vector<std::atomic<int>> count(n);
      pool.run(n, [&](int t, int thread) {
        if (thread < 0 || thread >= threads) count[t].fetch_add(100);
        count[t].fetch_add(1);
      });
      ++checks;
      for (int t = 0; t < n; ++t)
        if (count[t].load() != 1) {
          std::printf("FAIL thread pool (%d threads): job %d task %d ran %d times\n", threads, job, t, count[t].load());
          ++failures;
          break;
        }
    }
  }
}

}  // namespace

int main() {
  int count = 0;
  const KernelTable* const* tables = kernel_tables(&count);
  std::printf("kernel variants on this CPU:");
  for (int i = 0; i < count; ++i) std::printf(" %s", tables[i]->isa);
  std::printf("\n");
  for (int ti = 0; ti < count; ++ti) {
    const KernelTable& t = *tables[ti];
    Rng rng(1234);
    // Named edge cases: 1x1 pointwise (the direct path), widths around the tile, K over the depth
    // block (kGemmKC), N over the row block (kGemmMC), odd channels, every clamp.
    const int named[][12] = {
        // C  H   W   N   KH KW SH SW DH DW PT PL
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},     {3, 5, 31, 7, 1, 1, 1, 1, 1, 1, 0, 0},
        {8, 4, 8, 6, 1, 1, 1, 1, 1, 1, 0, 0},     {5, 3, 33, 13, 1, 1, 1, 1, 1, 1, 0, 0},
        {4, 9, 16, 5, 3, 3, 1, 1, 1, 1, 1, 1},    {40, 6, 7, 11, 3, 3, 1, 1, 1, 1, 1, 1},
        {3, 8, 8, 100, 3, 3, 1, 1, 1, 1, 1, 1},   {2, 11, 17, 7, 7, 7, 2, 2, 1, 1, 3, 3},
        {3, 10, 13, 4, 3, 3, 2, 2, 2, 2, 2, 1},   {6, 12, 9, 8, 1, 3, 1, 2, 1, 1, 0, 1},
        {6, 12, 9, 8, 3, 1, 2, 1, 1, 1, 1, 0},    {7, 5, 5, 9, 5, 5, 1, 1, 1, 1, 2, 2},
        {300, 2, 3, 7, 1, 1, 1, 1, 1, 1, 0, 0},   {4, 17, 64, 6, 2, 2, 2, 2, 1, 1, 0, 0},
    };
    for (const auto& c : named) {
      ConvShape s{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], 0, 0};
      if (!make_shape(s, c[10], c[11])) continue;
      test_conv(t, s, rng, true, -INFINITY, INFINITY);
      test_conv(t, s, rng, false, 0.f, INFINITY);
      test_conv(t, s, rng, true, -1.f, 1.f);
    }
    for (int i = 0; i < 300; ++i) {
      ConvShape s{};
      s.C = rng.uniform(1, 9), s.N = rng.uniform(1, 20), s.H = rng.uniform(1, 20), s.W = rng.uniform(1, 40);
      s.KH = rng.uniform(1, 7), s.KW = rng.uniform(1, 7), s.SH = rng.uniform(1, 3), s.SW = rng.uniform(1, 3);
      s.DH = rng.uniform(1, 2), s.DW = rng.uniform(1, 2), s.PT = rng.uniform(0, 3), s.PL = rng.uniform(0, 3);
      if (!make_shape(s, rng.uniform(0, 3), rng.uniform(0, 3))) continue;
      test_conv(t, s, rng, i % 2 == 0, i % 3 ? -INFINITY : 0.f, INFINITY);
      test_dwconv(t, s, rng, i % 3 ? -INFINITY : 0.f, i % 5 ? INFINITY : 6.f);
    }
    // NHWC conv core: channel counts 1..33 around the 16-channel panel and the 4-channel lane step,
    // widths around every ISA's pixel tile, strides 1-3, dilation, groups, long 1-D kernels.
    const int nhwc[][13] = {
        // C  H   W   N   KH KW SH SW DH DW PT PL G
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},      {3, 5, 31, 7, 1, 1, 1, 1, 1, 1, 0, 0, 1},
        {16, 4, 9, 16, 1, 1, 1, 1, 1, 1, 0, 0, 1},    {17, 3, 13, 33, 1, 1, 1, 1, 1, 1, 0, 0, 1},
        {4, 9, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1},    {40, 6, 7, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1},
        {3, 12, 12, 64, 7, 7, 2, 2, 1, 1, 3, 3, 1},   {3, 10, 13, 15, 3, 3, 2, 2, 2, 2, 2, 1, 1},
        {8, 12, 9, 8, 1, 3, 1, 2, 1, 1, 0, 1, 2},     {6, 12, 9, 17, 3, 1, 3, 1, 1, 1, 1, 0, 3},
        {1, 300, 1, 20, 64, 1, 4, 1, 1, 1, 31, 0, 1}, {5, 64, 1, 9, 16, 1, 1, 1, 1, 1, 8, 0, 1},
        {2, 1, 100, 5, 1, 33, 1, 2, 1, 1, 0, 16, 1},  {33, 7, 7, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1},
        {64, 5, 5, 80, 3, 3, 2, 2, 1, 1, 1, 1, 1},    {7, 9, 11, 10, 2, 2, 2, 2, 1, 1, 0, 0, 4},
    };
    for (const auto& c : nhwc) {
      ConvShape s{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], 0, 0};
      if (!make_shape(s, c[10], c[11])) continue;
      test_igemm(t, s, c[12], rng, true, false, -INFINITY, INFINITY, &t == tables[0]);
      test_igemm(t, s, c[12], rng, false, true, 0.f, INFINITY, false);
      test_igemm(t, s, c[12], rng, true, true, -1.f, 1.f, false);
    }
    for (int i = 0; i < 120; ++i) {
      ConvShape s{};
      s.C = rng.uniform(1, 33), s.N = rng.uniform(1, 40), s.H = rng.uniform(1, 16), s.W = rng.uniform(1, 24);
      s.KH = rng.uniform(1, 5), s.KW = rng.uniform(1, 5), s.SH = rng.uniform(1, 3), s.SW = rng.uniform(1, 3);
      s.DH = rng.uniform(1, 2), s.DW = rng.uniform(1, 2), s.PT = rng.uniform(0, 2), s.PL = rng.uniform(0, 2);
      if (!make_shape(s, rng.uniform(0, 2), rng.uniform(0, 2))) continue;
      test_igemm(t, s, rng.uniform(1, 2), rng, i % 2 == 0, i % 3 == 0, i % 4 ? -INFINITY : 0.f, INFINITY,
                 &t == tables[0] && i % 4 == 0);
      ConvShape d = s;
      d.N = d.C;
      test_dwnhwc(t, d, rng, i % 2 == 1, i % 3 ? -INFINITY : 0.f, i % 5 ? INFINITY : 6.f);
    }
    // Depthwise: channel counts around every vector width (the 4-wide and scalar tails), rows with
    // and without interior pixels, strides and dilations, 5x5.
    for (int C : {1, 3, 4, 7, 8, 15, 16, 17, 24, 33, 64, 72})
      for (const auto& k : {std::array<int, 6>{3, 1, 1, 1, 14, 14}, {3, 2, 1, 1, 15, 15}, {5, 2, 1, 2, 9, 12},
                            {3, 1, 2, 2, 7, 7}, {5, 1, 1, 2, 4, 3}, {3, 3, 1, 1, 20, 5}}) {
        ConvShape s{C, k[4], k[5], C, k[0], k[0], k[1], k[1], k[2], k[2], k[3], k[3], 0, 0};
        if (!make_shape(s, k[3], k[3])) continue;
        test_dwnhwc(t, s, rng, C % 2 == 0, C % 3 ? -INFINITY : 0.f, C % 5 ? INFINITY : 6.f);
      }
    // The 3x3 row sweep: widths around its two-pixel step and edge pixels, paddings 0-2 on either side
    // (windows that cross both edges at once, rows with no input row under them), a vertical stride that
    // differs from the horizontal one.
    for (int C : {1, 5, 16, 20, 35})
      for (int W : {1, 2, 3, 4, 5, 6, 9})
        for (const auto& k : {std::array<int, 5>{1, 1, 0, 0, 0}, {1, 1, 1, 1, 1}, {1, 2, 2, 2, 1}, {2, 1, 1, 0, 2},
                              {2, 2, 0, 1, 1}, {3, 2, 2, 1, 0}, {1, 1, 2, 2, 2}}) {
          ConvShape s{C, 4, W, C, 3, 3, k[0], k[1], 1, 1, k[2], k[3], 0, 0};
          if (!make_shape(s, k[4], k[4])) continue;
          test_dwnhwc(t, s, rng, (C + W) % 2 == 0, W % 3 ? -INFINITY : 0.f, W % 4 ? INFINITY : 6.f);
        }
    // Winograd F(2x2, 3x3) and F(4x4, 3x3): output sizes around the tile (partial tiles), channel tails,
    // every padding.
    for (int m : {2, 4}) {
      for (const auto& c : {std::array<int, 8>{1, 1, 1, 1, 1, 1, 1, 1}, {3, 5, 7, 16, 1, 1, 1, 1}, {16, 8, 8, 32, 1, 1, 1, 1},
                            {17, 9, 6, 33, 0, 0, 0, 0}, {5, 7, 11, 20, 1, 0, 0, 1}, {64, 14, 14, 64, 1, 1, 1, 1},
                            {20, 4, 3, 7, 2, 2, 0, 2}, {8, 3, 3, 12, 0, 0, 0, 0}, {33, 13, 10, 18, 1, 1, 1, 1}})
        for (int k = 0; k < 2; ++k)
          test_winograd(t, m, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], rng, k == 0, k == 1, k ? 0.f : -INFINITY,
                        INFINITY);
      for (int i = 0; i < 30; ++i)
        test_winograd(t, m, rng.uniform(1, 24), rng.uniform(1, 12), rng.uniform(1, 12), rng.uniform(1, 40),
                      rng.uniform(0, 2), rng.uniform(0, 2), rng.uniform(0, 2), rng.uniform(0, 2), rng, i % 2 == 0,
                      i % 3 == 0, i % 4 ? -INFINITY : -1.f, i % 4 ? INFINITY : 1.f);
    }
    // Separable pair: widths around the tile, depth over the KC block, bands of one row, strides 2
    // and 3 with odd and even kernels and widths (phases of unequal tap counts, a phase with none).
    const int sep[][13] = {
        // C  H   W   K   N  KH KW PT PL PB PR SH SW
        {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},       {3, 8, 8, 2, 5, 3, 3, 1, 1, 1, 1, 1, 1},
        {16, 14, 14, 4, 16, 3, 3, 1, 1, 1, 1, 1, 1},   {5, 7, 40, 7, 13, 3, 3, 1, 1, 1, 1, 1, 1},
        {100, 5, 9, 6, 7, 3, 3, 1, 1, 1, 1, 1, 1},     {4, 9, 33, 9, 6, 5, 5, 2, 2, 2, 2, 1, 1},
        {3, 11, 6, 5, 9, 7, 2, 3, 0, 2, 1, 1, 1},      {2, 6, 17, 3, 4, 2, 3, 0, 1, 1, 0, 1, 1},
        {16, 14, 14, 4, 16, 3, 3, 1, 1, 1, 1, 2, 2},   {5, 15, 41, 7, 13, 3, 3, 1, 1, 1, 1, 2, 2},
        {8, 16, 66, 8, 12, 3, 3, 0, 0, 1, 1, 2, 2},    {100, 9, 9, 6, 7, 3, 3, 1, 1, 1, 1, 2, 2},
        {4, 17, 35, 9, 6, 5, 5, 2, 2, 2, 2, 2, 2},     {3, 21, 19, 5, 9, 7, 7, 3, 3, 3, 3, 2, 2},
        {2, 12, 17, 3, 4, 2, 4, 0, 1, 0, 2, 2, 2},     {6, 13, 30, 5, 7, 3, 3, 1, 1, 1, 1, 2, 1},
        {6, 13, 30, 5, 7, 3, 5, 1, 2, 1, 2, 1, 2},     {3, 10, 10, 4, 5, 1, 3, 0, 1, 0, 1, 3, 3},
        {3, 20, 23, 4, 5, 5, 2, 2, 0, 2, 0, 3, 3},
    };
    for (const auto& c : sep) {
      SepShape s{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12]};
      test_sepconv(t, s, rng, true, -INFINITY, INFINITY);
      test_sepconv(t, s, rng, false, 0.f, 6.f);
    }
    for (int i = 0; i < 90; ++i) {
      SepShape s{rng.uniform(1, 12), rng.uniform(1, 12), rng.uniform(1, 40), rng.uniform(1, 14), rng.uniform(1, 14),
                 rng.uniform(1, 5), rng.uniform(1, 5), rng.uniform(0, 2), rng.uniform(0, 2), rng.uniform(0, 2),
                 rng.uniform(0, 2), rng.uniform(1, 3), rng.uniform(1, 3)};
      if (s.H + s.PT + s.PB < s.KH || s.W + s.PL + s.PR < s.KW) continue;
      test_sepconv(t, s, rng, i % 2 == 0, i % 3 ? -INFINITY : 0.f, INFINITY);
    }
    for (int K : {1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 1000})
      for (int N : {1, 3, 4, 5, 8, 13})
        for (int batch : {1, 2, 3, 4, 5, 7, 9})
          test_fc(t, K, N, batch, rng, (K + N + batch) % 2 == 0);
    test_activation(t, rng);
    test_pool_row(t, rng);
    test_pool_taps(t, rng);
    test_transpose(t, rng);
    // Sparse x dense: every block shape, batches around each vector width, odd sizes, very wide rows
    // (32-bit column indices past 65536), densities from one block per row to every slot.
    const int blocks[][2] = {{1, 1}, {1, 4}, {4, 1}};
    for (const auto& bl : blocks)
      for (int batch : {1, 2, 3, 4, 5, 8, 9, 16, 17, 35})
        for (const auto& rc : {std::pair{4, 4}, {8, 7}, {12, 33}, {36, 100}, {4, 1031}})
          for (double density : {0.05, 0.3, 0.9}) {
            const int rows = rc.first, cols = rc.second;
            if (cols < bl[1]) continue;
            test_spmm(t, rows, cols, bl[0], bl[1], density, batch, rng, batch % 2 == 1,
                      density < 0.5 ? -INFINITY : 0.f, batch % 3 ? INFINITY : 1.f);
          }
    for (const auto& bl : blocks) {
      test_spmm(t, 8, 70001, bl[0], bl[1], 0.01, 1, rng, true, -INFINITY, INFINITY);
      test_spmm(t, 8, 70001, bl[0], bl[1], 0.01, 6, rng, false, -INFINITY, INFINITY);
      test_spmm(t, 4, 65536, bl[0], bl[1], 0.01, 1, rng, true, -INFINITY, INFINITY);
    }
  }
  test_thread_pool();
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
