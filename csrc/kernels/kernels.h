// The kernel catalogue: the signatures every ISA variant implements and the dispatch table
// that holds one variant per family. One table per ISA; the runtime picks one at start-up.
#pragma once
#include <cstddef>
#include <cstdint>

namespace edgesep {

// Register tile height of the dense-conv GEMM: weights are packed at compile time into panels
// of this many output channels (bundle layout "conv_mr6"), so it is fixed across ISAs.
constexpr int kGemmMR = 6;

// Geometry of one 2-D convolution (one group), NCHW.
struct ConvShape {
  int C, H, W;        // input channels (of the group), height, width
  int N;              // output channels (of the group)
  int KH, KW;         // kernel
  int SH, SW;         // stride
  int DH, DW;         // dilation
  int PT, PL;         // padding top / left (bottom / right only shape OH, OW)
  int OH, OW;         // output size
  int K() const { return C * KH * KW; }
  int P() const { return OH * OW; }
};

// Dense conv of one group on one image: output channels [m0, m1) (m0 a multiple of kGemmMR) at
// output pixels [p0, p1). w: all N channels' weights packed in panels of kGemmMR (layout conv_mr6),
// bias: N values or null; output clamped to [lo, hi]; scratch: conv_scratch_floats() floats.
using ConvGemmFn = void (*)(const ConvShape& s, const float* in, const float* w, const float* bias,
                            float* out, int p0, int p1, int m0, int m1, float lo, float hi, float* scratch);

// A stride-1 conv without im2col (see conv_direct in conv2d_impl.h): output rows [oy0, oy0 + rows),
// channels [m0, m1) (m0 a multiple of kGemmMR) of one group on one image. w, bias as for conv_gemm;
// scratch: conv_direct_floats().
using ConvDirectFn = void (*)(const ConvShape& s, const float* in, const float* w, const float* bias, float* out,
                              int oy0, int rows, int m0, int m1, float lo, float hi, float* scratch);
struct DirectLayout {
  int wz, rows_in;     // padded row width W + PL + PR; input rows a band reads
  ptrdiff_t plane;     // one padded input plane of the band
  ptrdiff_t band;      // all C planes + slack for the last tile's shifted over-read
  ptrdiff_t orow;      // one output channel's rows of the band (a multiple of the tile width)
};
DirectLayout conv_direct_layout(const ConvShape& s, int nr, int rows);
size_t conv_direct_floats(const ConvShape& s, int nr, int rows, int channels);

// Rows [k0, k1) of the im2col matrix B for output pixels [p0, p1), packed into `packed`, which holds
// all K rows (conv_packed_floats); row: scratch of p1 - p0 floats rounded up to gemm_nr.
using ConvPackFn = void (*)(const ConvShape& s, const float* in, int p0, int p1, int k0, int k1, float* packed,
                            float* row);
// conv_gemm's multiply from a buffer conv_pack filled: output channels [m0, m1) x pixels [p0, p1).
using ConvPackedGemmFn = void (*)(const ConvShape& s, const float* packed, const float* w, const float* bias,
                                  float* out, int p0, int p1, int m0, int m1, float lo, float hi);

// The fused separable pair: kh x 1 conv C -> K at vertical stride SH, then 1 x kw conv K -> N at
// horizontal stride SW; dilation 1.
struct SepShape {
  int C, H, W;          // input
  int K, N;             // rank (vertical outputs), output channels
  int KH, KW;           // kernel of the pair
  int PT, PL, PB, PR;   // padding (vertical pass: top/bottom; horizontal: left/right)
  int SH = 1, SW = 1;   // stride (vertical pass: SH; horizontal: SW)
  int OH() const { return (H + PT + PB - KH) / SH + 1; }
  int OW() const { return (W + PL + PR - KW) / SW + 1; }
};
// The pair's weights (v: [K, C, KH, 1], h: [N, K, 1, KW]) are conv_mr6 panels with the taps in phase
// order: at stride S, for each phase p < S the conv_mr6 packing of the taps t = p, p + S, ..., one
// phase after another (stride 1: plain conv_mr6). Each phase is then one GEMM over shifted rows.
inline int sep_phase_taps(int taps, int stride, int p) { return (taps - p + stride - 1) / stride; }
// Where weight [m, c, t] of M rows x C channels x T taps at stride S lies in that layout.
inline ptrdiff_t sep_weight_index(int M, int C, int T, int S, int m, int c, int t) {
  const ptrdiff_t rows = (ptrdiff_t)(M + kGemmMR - 1) / kGemmMR * kGemmMR;
  ptrdiff_t base = 0;
  for (int p = 0; p < t % S; ++p) base += rows * C * sep_phase_taps(T, S, p);
  const int tp = sep_phase_taps(T, S, t % S);
  return base + ((ptrdiff_t)(m / kGemmMR) * C * tp + (ptrdiff_t)c * tp + t / S) * kGemmMR + m % kGemmMR;
}
// Scratch layout of one band (see sepconv_impl.h); sizes in floats.
struct SepLayout {
  int wz, wq;          // padded row width W + PL + PR; columns of one column phase, ceil(wz / SW)
  int rp;              // rows of one row-phase plane: rows + (KH - 1) / SH
  ptrdiff_t pp;        // one row-phase plane, rp x wz
  ptrdiff_t chan;      // one input channel's SH planes
  ptrdiff_t band;      // all C channels + slack for the last tile's over-read
  ptrdiff_t zvrow, zv; // one row of the vertical pass's output (rows x wz), all K of them
  ptrdiff_t zph, zrow, z;  // at SW > 1, zv dealt to column phases: one phase (rows x wq), SW of them, K rows
  ptrdiff_t orow, o;   // one output channel's rows of the band (rows x wq), all N of them
};
SepLayout sepconv_layout(const SepShape& s, int nr, int rows);
size_t sepconv_scratch_floats(const SepShape& s, int nr, int rows);
// Output rows [oy0, oy0 + rows) of the pair on one image. v, h: the phase-ordered conv_mr6 above;
// bias: N or null; output clamped to [lo, hi].
using SepConvFn = void (*)(const SepShape& s, const float* in, const float* v, const float* h, const float* bias,
                           float* out, int oy0, int rows, float lo, float hi, float* scratch);

// Depthwise conv of one channel plane: w has KH*KW taps; scratch: dwconv_scratch_floats().
using DwConvFn = void (*)(const ConvShape& s, const float* in, const float* w, float bias, float* out,
                          float lo, float hi, float* scratch);

// Fully-connected rows [n0, n1) for `batch` inputs: y[b*ldy + n] = clamp(dot(W[n,:], x[b*K..]) + bias[n]).
// W row-major (rows x K), bias may be null.
using FcFn = void (*)(int K, const float* x, int batch, const float* W, const float* bias, float* y, int ldy,
                      int n0, int n1, float lo, float hi);

// A block-sparse matrix in BCSR: rows x cols in blocks of br x bc (1x1, 1x4 or 4x1; br divides rows).
// Block row i (rows [i*br, i*br + br)) holds blocks [row_ptr[i], row_ptr[i+1]); block j covers columns
// [col[j], col[j] + bc) and holds br*bc values, row-major, at values + j*br*bc. Column indices are
// 16-bit (col16) where cols <= 65536, else 32-bit (col32); exactly one of the two is set.
struct SparseMatrix {
  int rows, cols, br, bc;
  const int32_t* row_ptr;
  const uint16_t* col16;
  const int32_t* col32;
  const float* values;
};

// Sparse x dense: y[r*batch + b] = clamp(sum_c A[r, c] * x[c*batch + b] + bias[r]) for rows [r0, r1)
// (multiples of br) and every b < batch. x and y are batch-minor (for batch 1: plain vectors); bias
// may be null. Batch 1 runs as a mat-vec; larger batches are vectorised over the batch.
using SpmmFn = void (*)(const SparseMatrix& a, const float* x, int batch, const float* bias, float* y, int r0,
                        int r1, float lo, float hi);

// Activations applied as a pass over an op's output (those that are not a clamp in the kernel's
// epilogue), in place on n values: Clamp to [a, b]; Leaky: x < 0 ? a x : x (PReLU: a = the channel's
// slope); HardSigmoid: clamp(a x + b, 0, 1); HardSwish: x clamp(x / 6 + 1/2, 0, 1); Sigmoid; Tanh.
enum class ActCode : int { Clamp, Leaky, HardSigmoid, HardSwish, Sigmoid, Tanh };
using ActivationFn = void (*)(ActCode code, float* x, int64_t n, float a, float b);

// Pooling's row reductions: acc[i] = max(acc[i], x[i]) (is_max) or acc[i] + x[i], for i < n.
using PoolRowFn = void (*)(float* acc, const float* x, int64_t n, bool is_max);
// Pooling on NHWC, a run of output pixels whose windows have the same shape (a row's interior, or one
// pixel): for j < pixels and c < C, out[j * C + c] = max over t < n of taps[t][j * step + c] (is_max),
// else scale * sum (taps: pixel 0's window pixels inside the input, n >= 1; step: floats between
// consecutive pixels' windows). One call a row, not a pixel: the call and the window's set-up cost as
// much as a 2 x 2 window of 16 channels.
using PoolTapsFn = void (*)(float* out, const float* const* taps, int n, int64_t C, bool is_max, float scale,
                            int64_t pixels, int64_t step);

// One image's transpose, [rows][cols] -> [cols][rows] (NCHW <-> NHWC where the layout changes):
// y[c * rows + r] = x[r * cols + c] for r in [r0, r1), c in [c0, c1) (a task's share).
using TransposeFn = void (*)(const float* x, int64_t rows, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                             int64_t c1, float* y);

// ---- The NHWC conv core (conv core v2) ----
// Activations of a conv chain are NHWC: a pixel's channels are contiguous. A conv is an indirect GEMM:
// an output pixel's inputs are found through a table of input-pixel offsets per tap (no im2col copy),
// and a register tile of MR pixels x 16 (or 32) output channels is vectorised over the channels, one
// input value broadcast per FMA row. Weights are packed at compile time in panels of kPanelNC output
// channels (layout conv_nhwc16, the same for every ISA): per group, panel j = [taps][C][kPanelNC],
// output channel j * kPanelNC + i at lane i, zero past the group's channels.
constexpr int kPanelNC = 16;

struct IgemmShape {
  int C;          // input channels of the group: the depth of one tap
  int taps;       // KH * KW
  int N;          // output channels of the group
  int ldo;        // floats between output pixels (all groups' channels)
};

// Output pixels [p0, p1) x the group's output channels [n0, n1) (n0 a multiple of kPanelNC):
// out[p * ldo + n] = clamp(bias[n] + sum[p * ldo + n] + sum_t sum_c x_pt[c] * W[n][c][t], lo, hi), where
// x_pt = in + ind[p * taps + t], or `zero` (at least C zeros) where ind < 0 (padding). bias and sum may be
// null; in, out, sum point at the group's first channel.
using IgemmFn = void (*)(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero,
                         const float* w, const float* bias, const float* sum, float* out, int p0, int p1, int n0,
                         int n1, float lo, float hi);

// The offset table of a conv (one group's geometry s) on one NHWC image of `ldi` floats per pixel:
// ind[p * taps + t] = (iy * W + ix) * ldi for output pixel p's tap t, or -1 where it reads the padding.
// False (and nothing written) if an offset would not fit in int32.
bool igemm_offsets(const ConvShape& s, int64_t ldi, int32_t* ind);

// Winograd F(MxM, 3x3), M = 2 or 4, for a 3x3 conv at stride 1 on NHWC (one group): the output in MxM
// tiles, tile t of an image at rows M (t / TW), columns M (t % TW). For a block of tiles, input_transform
// writes V[xi][i][c] = (B^T d B)[xi] of tile t0 + i's (M+2)x(M+2) input patch d (zeros outside the
// input), xi < points() = (M+2)^2 at `ldv` floats apart; that many GEMMs (igemm, 1x1) give
// M[xi] = V[xi] x U[xi], U the weights transformed at compile time (layouts wino23_nhwc16, wino43_nhwc16:
// per xi, the conv_nhwc16 panels of a C -> N 1x1 conv); then output_transform writes
// clamp(A^T M A + bias + sum) into the tiles' output pixels inside OH x OW.
struct WinoShape {
  int C, H, W, N;  // input channels, size; output channels
  int PT, PL;      // padding top / left
  int OH, OW;      // output size
  int M = 2;       // output tile side: F(2x2, 3x3) or F(4x4, 3x3)
  int ldo = 0;     // floats between output (and sum) pixels: 0 for N; more where the output is a channel
                   // slice of a wider tensor (a Concat's part written in place)
  int TW() const { return (OW + M - 1) / M; }
  int out_ld() const { return ldo > 0 ? ldo : N; }
  int tiles() const { return (OH + M - 1) / M * TW(); }
  int points() const { return (M + 2) * (M + 2); }
};
using WinoInputFn = void (*)(const WinoShape& s, const float* in, int t0, int nt, float* V, ptrdiff_t ldv);
using WinoOutputFn = void (*)(const WinoShape& s, const float* M, ptrdiff_t ldm, int t0, int nt, const float* bias,
                              const float* sum, float* out, float lo, float hi);

// Depthwise conv on one NHWC image, all s.C channels (s.N == s.C), output rows [oy0, oy1):
// w is [KH][KW][C] (layout khwc), bias C values or null.
using DwNhwcFn = void (*)(const ConvShape& s, const float* in, const float* w, const float* bias, float* out,
                          int oy0, int oy1, float lo, float hi);

struct KernelTable {
  const char* isa;   // "ref", "sse41", "avx2", "avx512", "neon"
  int gemm_nr;       // GEMM register tile width in output pixels
  ConvGemmFn conv_gemm;
  ConvPackFn conv_pack;
  ConvPackedGemmFn conv_packed_gemm;
  ConvDirectFn conv_direct;
  DwConvFn dwconv;
  FcFn fc;
  SepConvFn sepconv;
  SpmmFn spmm;
  ActivationFn activation;
  PoolRowFn pool_row;
  IgemmFn igemm;
  int igemm_mr;      // pixels per register tile of igemm (the op's pixel chunks are multiples of it)
  DwNhwcFn dwconv_nhwc;
  WinoInputFn wino_input;
  WinoOutputFn wino_output;
  PoolTapsFn pool_taps;
  TransposeFn transpose;
};

// The depthwise kernels' scratch layout (see dwconv_impl.h): SH x SW phase planes of hq x wq, each
// with a tail of slack; sizes in floats.
struct DwLayout {
  int hp, wp;        // padded input extent the output reads
  int hq, wq;        // rows and columns of one phase plane
  int phases;        // SH * SW
  ptrdiff_t plane;   // floats per phase plane, slack included
  int taps_floats;   // the tap offset table
  int row;           // one padded input row
  ptrdiff_t flat;    // the output at the planes' row stride
};
DwLayout dwconv_layout(const ConvShape& s);

// Scratch sizes, in floats, for one thread.
size_t conv_scratch_floats(const ConvShape& s, int nr, int max_pixels);
size_t conv_packed_floats(const ConvShape& s, int nr, int pixels);
size_t dwconv_scratch_floats(const ConvShape& s);

// Pixel-block and depth-block sizes of the GEMM (shared by every variant and by the ref).
constexpr int kGemmKC = 256;
constexpr int kGemmMC = 96;  // multiple of kGemmMR

// The scalar references (the test oracle and the "ref" table).
namespace ref {
void conv_gemm(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int p0,
               int p1, int m0, int m1, float lo, float hi, float* scratch);
void conv_pack(const ConvShape& s, const float* in, int p0, int p1, int k0, int k1, float* packed, float* row);
void conv_direct(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int rows,
                 int m0, int m1, float lo, float hi, float* scratch);
void conv_packed_gemm(const ConvShape& s, const float* packed, const float* w, const float* bias, float* out, int p0,
                      int p1, int m0, int m1, float lo, float hi);
void dwconv(const ConvShape& s, const float* in, const float* w, float bias, float* out, float lo, float hi,
            float* scratch);
void fc(int K, const float* x, int batch, const float* W, const float* bias, float* y, int ldy, int n0, int n1,
        float lo, float hi);
void sepconv(const SepShape& s, const float* in, const float* v, const float* h, const float* bias, float* out,
             int oy0, int rows, float lo, float hi, float* scratch);
void spmm(const SparseMatrix& a, const float* x, int batch, const float* bias, float* y, int r0, int r1, float lo,
          float hi);
void activation(ActCode code, float* x, int64_t n, float a, float b);
void pool_row(float* acc, const float* x, int64_t n, bool is_max);
void pool_taps(float* out, const float* const* taps, int n, int64_t C, bool is_max, float scale, int64_t pixels,
               int64_t step);
void transpose(const float* x, int64_t rows, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* y);
void igemm(const IgemmShape& s, const float* in, const int32_t* ind, const float* zero, const float* w,
           const float* bias, const float* sum, float* out, int p0, int p1, int n0, int n1, float lo, float hi);
void dwconv_nhwc(const ConvShape& s, const float* in, const float* w, const float* bias, float* out, int oy0, int oy1,
                 float lo, float hi);
void wino_input(const WinoShape& s, const float* in, int t0, int nt, float* V, ptrdiff_t ldv);
void wino_output(const WinoShape& s, const float* M, ptrdiff_t ldm, int t0, int nt, const float* bias,
                 const float* sum, float* out, float lo, float hi);
}  // namespace ref

// The variants compiled into this build that this CPU can run, reference first, best last.
// Each SIMD table lives in its own translation unit (isa/<name>.cpp) built with that ISA's flags.
const KernelTable* const* kernel_tables(int* count);

// The table named `isa` ("" = best for this CPU); null if it is not compiled in or not supported.
const KernelTable* find_kernel_table(const char* isa);

}  // namespace edgesep
