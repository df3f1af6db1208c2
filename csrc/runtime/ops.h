// Helpers shared by the op implementations (ops_*.cpp); make_op in ops.cpp is the one op registry.
#pragma once
#include <memory>
#include <string>

#include "activation.h"
#include "plan.h"

namespace edgesep {

// The weight `name`, checked for layout, element count and dtype; opt_weight: null if absent.
const Weight& need_weight(const Weights& w, const std::string& name, const std::string& layout, int64_t count,
                          const std::string& dtype = "float32");
const Weight* opt_weight(const Weights& w, const std::string& name, const std::string& layout, int64_t count,
                         const std::string& dtype = "float32");

void expect_inputs(const std::vector<Shape>& in, size_t lo, size_t hi);
void expect_rank(const Shape& s, size_t rank, const char* what);

// Whether a node's activations are NHWC (attribute layout "nhwc"; "nchw", the default, otherwise).
bool nhwc_layout(const Attrs& a);

// The window attributes of a conv or pool (kernel_shape, strides, dilations, pads), each checked
// against kMaxWindow: 2 values each (pads 4: top, left, bottom, right), kernel, strides and
// dilations at least 1, pads at least 0.
struct Window {
  int64_t k[2], s[2], d[2], pads[4];
};
Window window_attrs(const Attrs& a);

// Splits [0, n) into about `parts` ranges of multiples of `align`.
int64_t chunk_size(int64_t n, int64_t parts, int64_t align);

std::unique_ptr<Op> make_conv(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c);
// Conv on NHWC activations (ops_conv_nhwc.cpp): s is one group's geometry, in[0] is [B, H, W, C]
// ([B, C, H, W] where nchw_input: the conv reads an NCHW value and writes NHWC).
// depthwise_rule: a conv with one channel in and out per group runs depthwise (weights khwc), as a
// Conv node's does (ops.is_depthwise); the separable pair's halves never do.
std::unique_ptr<Op> make_conv_nhwc(const std::vector<Shape>& in, const ConvShape& s, int64_t G, const Attrs& a,
                                   const Weights& w, const BuildCtx& c, bool depthwise_rule, bool nchw_input);
std::unique_ptr<Op> make_sepconv_nhwc(const std::vector<Shape>& in, const SepShape& s, const Attrs& a,
                                      const Weights& w, const BuildCtx& c);
std::unique_ptr<Op> make_sepconv(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c);
std::unique_ptr<Op> make_fc(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c);
std::unique_ptr<Op> make_sparse_fc(const std::vector<Shape>& in, const Attrs& a, const Weights& w, const BuildCtx& c);
std::unique_ptr<Op> make_pool(const std::string& type, const std::vector<Shape>& in, const Attrs& a);
std::unique_ptr<Op> make_global_pool(const std::string& type, const std::vector<Shape>& in, const Attrs& a);
std::unique_ptr<Op> make_activation(const std::vector<Shape>& in, const Attrs& a, const Weights& w);
std::unique_ptr<Op> make_binary(const std::string& type, const std::vector<Shape>& in, const Attrs& a,
                                const Weights& w);
std::unique_ptr<Op> make_concat(const std::vector<Shape>& in, const Attrs& a);
std::unique_ptr<Op> make_reshape(const std::string& type, const std::vector<Shape>& in, const Attrs& a);
std::unique_ptr<Op> make_transpose(const std::vector<Shape>& in, const Attrs& a);
std::unique_ptr<Op> make_pad(const std::vector<Shape>& in, const Attrs& a);
std::unique_ptr<Op> make_softmax(const std::vector<Shape>& in, const Attrs& a);

}  // namespace edgesep
