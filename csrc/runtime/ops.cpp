// The op registry: the runtime's op types, by the names the bundle uses (see docs/bundle-format.md).
#include "ops.h"

namespace edgesep {

const Weight* opt_weight(const Weights& w, const std::string& name, const std::string& layout, int64_t count,
                         const std::string& dtype) {
  auto it = w.find(name);
  if (it == w.end()) return nullptr;
  if (it->second.dtype != dtype)
    throw PlanError("weight '" + name + "' has dtype " + it->second.dtype + ", expected " + dtype);
  if (it->second.layout != layout)
    throw PlanError("weight '" + name + "' has layout '" + it->second.layout + "', expected '" + layout + "'");
  if (it->second.count != count)
    throw PlanError("weight '" + name + "' holds " + std::to_string(it->second.count) + " values, expected " +
                    std::to_string(count));
  return &it->second;
}

const Weight& need_weight(const Weights& w, const std::string& name, const std::string& layout, int64_t count,
                          const std::string& dtype) {
  const Weight* p = opt_weight(w, name, layout, count, dtype);
  if (!p) throw PlanError("missing weight '" + name + "'");
  return *p;
}

void expect_inputs(const std::vector<Shape>& in, size_t lo, size_t hi) {
  if (in.size() < lo || in.size() > hi)
    throw PlanError("takes " + std::to_string(lo) + (hi != lo ? ".." + std::to_string(hi) : "") + " inputs, got " +
                    std::to_string(in.size()));
}

void expect_rank(const Shape& s, size_t rank, const char* what) {
  if (s.size() != rank)
    throw PlanError(std::string(what) + " must have rank " + std::to_string(rank) + ", got " + shape_str(s));
}

bool nhwc_layout(const Attrs& a) {
  const std::string layout = a.str("layout", "nchw");
  if (layout != "nchw" && layout != "nhwc") throw PlanError("unknown layout '" + layout + "'");
  return layout == "nhwc";
}

Window window_attrs(const Attrs& a) {
  const auto k = a.ints("kernel_shape", {});
  const auto st = a.ints("strides", {1, 1});
  const auto di = a.ints("dilations", {1, 1});
  const auto pads = a.ints("pads", {0, 0, 0, 0});
  if (k.size() != 2 || st.size() != 2 || di.size() != 2 || pads.size() != 4)
    throw PlanError("kernel_shape, strides, dilations need 2 values and pads 4");
  Window w;
  for (int i = 0; i < 2; ++i) {
    w.k[i] = in_range(k[i], 1, kMaxWindow, "kernel_shape");
    w.s[i] = in_range(st[i], 1, kMaxWindow, "strides");
    w.d[i] = in_range(di[i], 1, kMaxWindow, "dilations");
  }
  for (int i = 0; i < 4; ++i) w.pads[i] = in_range(pads[i], 0, kMaxWindow, "pads");
  return w;
}

int64_t chunk_size(int64_t n, int64_t parts, int64_t align) {
  if (parts < 1) parts = 1;
  int64_t c = (n + parts - 1) / parts;
  c = (c + align - 1) / align * align;
  return c < align ? align : c;
}

std::unique_ptr<Op> make_op(const std::string& type, const std::vector<Shape>& in, const Attrs& a, const Weights& w,
                            const BuildCtx& ctx) {
  if (type == "Conv") return make_conv(in, a, w, ctx);
  if (type == "SeparableConv") return make_sepconv(in, a, w, ctx);
  if (type == "Fc") return make_fc(in, a, w, ctx);
  if (type == "SparseFc") return make_sparse_fc(in, a, w, ctx);
  if (type == "MaxPool" || type == "AveragePool") return make_pool(type, in, a);
  if (type == "GlobalAveragePool" || type == "GlobalMaxPool") return make_global_pool(type, in, a);
  if (type == "Activation") return make_activation(in, a, w);
  if (type == "Add" || type == "Sub" || type == "Mul" || type == "Div" || type == "Max" || type == "Min")
    return make_binary(type, in, a, w);
  if (type == "Concat") return make_concat(in, a);
  if (type == "Reshape" || type == "Flatten") return make_reshape(type, in, a);
  if (type == "Transpose") return make_transpose(in, a);
  if (type == "Pad") return make_pad(in, a);
  if (type == "Softmax") return make_softmax(in, a);
  throw PlanError("unknown op type '" + type + "'");
}

}  // namespace edgesep
