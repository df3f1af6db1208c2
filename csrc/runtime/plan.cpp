#include "plan.h"

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

namespace edgesep {

int64_t numel(const Shape& s) { return checked_product(s, "tensor"); }

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

double Attrs::num(const std::string& k, double dflt) const {
  auto it = nums.find(k);
  if (it == nums.end()) return dflt;
  if (it->second.size() != 1) throw PlanError("attribute '" + k + "' must be a single number");
  return it->second[0];
}

float Attrs::real(const std::string& k, double dflt) const {
  const double v = num(k, dflt);
  if (v > FLT_MAX) return INFINITY;
  if (v < -FLT_MAX) return -INFINITY;
  return (float)v;
}

std::vector<int64_t> Attrs::ints(const std::string& k, std::vector<int64_t> dflt) const {
  auto it = nums.find(k);
  if (it == nums.end()) return dflt;
  std::vector<int64_t> r;
  for (double v : it->second) {
    // Range first: casting a double outside int64 (or NaN) is undefined.
    if (!(v >= -(double)kMaxDim && v <= (double)kMaxDim) || v != (double)(int64_t)v)
      throw PlanError("attribute '" + k + "' must hold integers within +-" + std::to_string(kMaxDim) + ", got " +
                      std::to_string(v));
    r.push_back((int64_t)v);
  }
  return r;
}

int64_t Attrs::integer(const std::string& k, int64_t dflt) const {
  const auto v = ints(k, {dflt});
  if (v.size() != 1) throw PlanError("attribute '" + k + "' must be a single integer");
  return v[0];
}

std::string Attrs::str(const std::string& k, const std::string& dflt) const {
  auto it = strs.find(k);
  return it == strs.end() ? dflt : it->second;
}

static int choose_threads(int threads) {
  return (int)in_range(threads, 1, kMaxThreads, "num_threads");
}

void BuildCtx::check_bytes(int64_t bytes, const char* what) const {
  if (bytes > max_bytes)
    throw MemoryLimit(std::string(what) + " would take " + std::to_string(bytes) + " bytes, over the limit of " +
                      std::to_string(max_bytes));
}

static const KernelTable* choose_table(const std::string& isa) {
  const KernelTable* t = find_kernel_table(isa.c_str());
  if (!t) {
    int n = 0;
    const KernelTable* const* all = kernel_tables(&n);
    std::string names;
    for (int i = 0; i < n; ++i) names += std::string(i ? ", " : "") + all[i]->isa;
    throw PlanError("kernel variant '" + isa + "' is not available on this CPU (available: " + names + ")");
  }
  return t;
}

Plan::Plan(int threads, const std::string& isa, int64_t max_bytes)
    : table_(choose_table(isa)), pool_(ThreadPool::shared(choose_threads(threads))), max_bytes_(max_bytes) {
  if (max_bytes < 0) throw PlanError("max_bytes must be >= 0");
}

Plan::Buffer Plan::alloc(size_t floats) {
  const size_t bytes = (std::max<size_t>(floats, 16) * sizeof(float) + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw MemoryLimit("cannot allocate " + std::to_string(bytes) + " bytes");
  return Buffer(p);
}

int Plan::add_input(const Shape& shape) {
  if (laid_out_) throw PlanError("plan is laid out");
  for (int64_t d : shape)
    if (d <= 0) throw PlanError("input shape " + shape_str(shape) + " has a non-positive dimension");
  numel(shape);
  Tensor t;
  t.shape = shape;
  t.input_index = (int)inputs_.size();
  tensors_.push_back(t);
  inputs_.push_back((int)tensors_.size() - 1);
  return (int)tensors_.size() - 1;
}

int Plan::add_node(const std::string& name, const std::string& type, const std::vector<int>& inputs,
                   const Attrs& attrs, const Weights& weights) {
  if (laid_out_) throw PlanError("plan is laid out");
  std::vector<Shape> shapes;
  for (int id : inputs) {
    if (id < 0 || id >= (int)tensors_.size()) throw PlanError("node '" + name + "' reads an undefined tensor");
    shapes.push_back(tensors_[id].shape);
  }
  std::unique_ptr<Op> op;
  try {
    op = make_op(type, shapes, attrs, weights, BuildCtx{table_, pool_->size(), max_bytes_});
    for (int64_t d : op->out_shape)
      if (d <= 0) throw PlanError("would produce an empty tensor " + shape_str(op->out_shape));
    const int64_t n = numel(op->out_shape);
    if (op->work == 0) op->work = std::max(op->macs, n);
  } catch (const MemoryLimit& e) {
    throw MemoryLimit("node '" + name + "' (" + type + "): " + e.what());
  } catch (const PlanError& e) {
    throw PlanError("node '" + name + "' (" + type + "): " + e.what());
  }
  const int step = (int)steps_.size();
  for (int id : inputs) {
    tensors_[id].last_use = step;
    const int from = tensors_[id].producer;
    if (pool_->size() > 1 && from >= 0 && steps_[from].op->parallel()) op->split_input = true;
  }
  Tensor t;
  t.shape = op->out_shape;
  t.producer = step;
  tensors_.push_back(t);
  steps_.push_back(Step{name, type, std::move(op), inputs, (int)tensors_.size() - 1});
  return (int)tensors_.size() - 1;
}

void Plan::add_output(int tensor) {
  if (laid_out_) throw PlanError("plan is laid out");
  if (tensor < 0 || tensor >= (int)tensors_.size()) throw PlanError("output refers to an undefined tensor");
  outputs_.push_back(tensor);
}

// Concats whose every input is a step's output read by the Concat alone, from a step that can write
// its rows at a stride (SqueezeNet's fire modules: a 1x1 and a 3x3 conv concatenated by channel): each
// producer writes its part of the Concat's output in place, and the Concat step is skipped.
void Plan::fuse_concats() {
  std::vector<int> uses(tensors_.size(), 0);
  for (const Step& st : steps_)
    for (int id : st.inputs) ++uses[id];
  for (int id : outputs_) ++uses[id];
  for (Step& st : steps_) {
    const std::vector<int64_t>& parts = st.op->concat_parts;
    if (parts.empty() || parts.size() != st.inputs.size()) continue;
    bool ok = true;
    for (size_t k = 0; k < parts.size() && ok; ++k) {
      const Tensor& t = tensors_[st.inputs[k]];
      ok = t.producer >= 0 && uses[st.inputs[k]] == 1 && steps_[t.producer].op->can_write_rows(parts[k]);
    }
    if (!ok) continue;
    int64_t total = 0;
    for (int64_t n : parts) total += n;
    size_t off = 0;
    for (size_t k = 0; k < parts.size(); ++k) {
      Tensor& t = tensors_[st.inputs[k]];
      t.part_of = st.output;
      t.part_offset = off;
      steps_[t.producer].op->write_rows(total);
      off += (size_t)parts[k];
    }
    st.op->skip = true;
  }
}

// Places every step output in one arena: largest first, each at the lowest 64-byte aligned offset
// that does not overlap a tensor whose lifetime [first write, last use] intersects its own. A Concat
// written in place lives from its first part's producer; its parts take their place in it.
void Plan::layout() {
  if (laid_out_) return;
  const int end = (int)steps_.size();
  for (int id : outputs_) tensors_[id].last_use = end;
  fuse_concats();
  std::vector<int> first(tensors_.size());
  for (int i = 0; i < (int)tensors_.size(); ++i) first[i] = tensors_[i].producer;
  for (const Tensor& t : tensors_)
    if (t.part_of >= 0) first[t.part_of] = std::min(first[t.part_of], t.producer);
  std::vector<int> order;
  for (int i = 0; i < (int)tensors_.size(); ++i)
    if (tensors_[i].producer >= 0 && tensors_[i].part_of < 0) order.push_back(i);
  auto floats = [&](int i) { return (size_t)(numel(tensors_[i].shape) + 15) / 16 * 16; };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return floats(a) > floats(b); });
  std::vector<int> placed;
  arena_floats_ = 0;
  for (int i : order) {
    Tensor& t = tensors_[i];
    const int last = std::max(t.last_use, t.producer);
    std::vector<std::pair<size_t, size_t>> busy;
    for (int j : placed) {
      const Tensor& u = tensors_[j];
      if (first[j] <= last && first[i] <= std::max(u.last_use, u.producer)) busy.emplace_back(u.offset, u.offset + floats(j));
    }
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (auto& b : busy) {
      if (off + floats(i) <= b.first) break;
      off = std::max(off, b.second);
    }
    t.offset = off;
    arena_floats_ = std::max(arena_floats_, off + floats(i));
    placed.push_back(i);
  }
  for (Tensor& t : tensors_)
    if (t.part_of >= 0) t.offset = tensors_[t.part_of].offset + t.part_offset;
  // Each term is below 2^31 floats x the thread count (limits.h), their sum far from wrapping.
  scratch_stride_ = 16;
  shared_floats_ = 0;
  size_t tables = 0;
  for (auto& s : steps_) {
    scratch_stride_ = std::max(scratch_stride_, (s.op->scratch_floats + 15) / 16 * 16);
    shared_floats_ = std::max(shared_floats_, s.op->shared_floats);
    tables += s.op->table_bytes;
  }
  memory_bytes_ = (int64_t)((arena_floats_ + scratch_stride_ * pool_->size() + shared_floats_) * sizeof(float) + tables);
  laid_out_ = true;
}

void Plan::finalize() {
  if (final_) return;
  layout();
  if (memory_bytes_ > max_bytes_)
    throw MemoryLimit("needs " + std::to_string(memory_bytes_) + " bytes of working memory, over the limit of " +
                      std::to_string(max_bytes_));
  arena_ = alloc(arena_floats_);
  scratch_ = alloc(scratch_stride_ * pool_->size());
  shared_ = alloc(shared_floats_);
  final_ = true;
}

void Plan::run(const std::vector<const float*>& inputs, const std::vector<float*>& outputs,
               std::vector<double>* step_seconds) {
  if (!final_) throw PlanError("plan is not final");
  if (inputs.size() != inputs_.size() || outputs.size() != outputs_.size())
    throw PlanError("wrong number of inputs or outputs");
  auto ptr = [&](int id) -> const float* {
    const Tensor& t = tensors_[id];
    return t.producer < 0 ? inputs[t.input_index] : arena_.get() + t.offset;
  };
  ThreadPool::Claim claim(*pool_);
  const RunCtx ctx{table_, &claim.pool(), scratch_.get(), scratch_stride_, shared_.get()};
  std::vector<const float*> in;
  if (step_seconds) step_seconds->assign(steps_.size(), 0.0);
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    if (s.op->skip) continue;
    in.clear();
    for (int id : s.inputs) in.push_back(ptr(id));
    const auto t0 = std::chrono::steady_clock::now();
    s.op->run(ctx, in, arena_.get() + tensors_[s.output].offset);
    if (step_seconds) (*step_seconds)[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  for (size_t i = 0; i < outputs_.size(); ++i)
    std::memcpy(outputs[i], ptr(outputs_[i]), sizeof(float) * numel(tensors_[outputs_[i]].shape));
}

std::vector<Plan::StepInfo> Plan::steps() const {
  std::vector<StepInfo> r;
  for (const Step& s : steps_) r.push_back({s.name, s.type, s.inputs, s.output, s.op->macs, s.op->params, s.op->skip});
  return r;
}

}  // namespace edgesep
