// The executable plan: tensors with inferred shapes, steps (ops) in order, one arena for every
// intermediate, a thread pool and the kernel table chosen for this CPU.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "limits.h"
#include "thread_pool.h"

namespace edgesep {

using Shape = std::vector<int64_t>;

// A plan-building error the caller can act on (bad attribute, shape mismatch, unknown op...).
struct PlanError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A plan that would need more memory than its limit (Plan's max_bytes).
struct MemoryLimit : PlanError {
  using PlanError::PlanError;
};

// Elements of a tensor of shape s; a PlanError beyond kMaxElements (limits.h).
int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);

// Node attributes as the bundle gives them: numbers (scalars are 1-element lists) and strings.
struct Attrs {
  std::map<std::string, std::vector<double>> nums;
  std::map<std::string, std::string> strs;
  bool has(const std::string& k) const { return nums.count(k) || strs.count(k); }
  double num(const std::string& k, double dflt) const;
  // num() as a float: values beyond float's range become +-infinity (a plain cast is undefined).
  float real(const std::string& k, double dflt) const;
  // Integer values, each checked to be within +-kMaxDim (limits.h); integer(): a single one.
  std::vector<int64_t> ints(const std::string& k, std::vector<int64_t> dflt) const;
  int64_t integer(const std::string& k, int64_t dflt) const;
  std::string str(const std::string& k, const std::string& dflt) const;
};

// A read-only weight array (a view of the memory-mapped bundle, kept alive by the caller).
struct Weight {
  const float* data = nullptr;  // the values, for dtype float32 (else null)
  const void* raw = nullptr;    // the values, any dtype
  int64_t count = 0;            // elements available (the packed size for packed layouts)
  Shape shape;                  // logical shape
  std::string layout;
  std::string dtype = "float32";  // float32, int32 or uint16 (sparse indices)
};
using Weights = std::map<std::string, Weight>;

struct RunCtx {
  const KernelTable* k;
  ThreadPool* pool;
  float* scratch;          // per-thread scratch, `scratch_stride` floats each
  size_t scratch_stride;
  float* shared;           // scratch shared by the threads of one op (Op::shared_floats)
};

struct BuildCtx {
  const KernelTable* k;
  int threads;
  int64_t max_bytes;  // the plan's memory limit
  // Throws MemoryLimit where an op's own tables (`bytes`, sized from its shapes) exceed the limit:
  // checked before they are allocated.
  void check_bytes(int64_t bytes, const char* what) const;
};

class Op {
 public:
  virtual ~Op() = default;
  virtual void run(const RunCtx& ctx, const std::vector<const float*>& in, float* out) const = 0;
  Shape out_shape;
  size_t scratch_floats = 0;  // per thread
  size_t shared_floats = 0;   // one buffer for all threads
  size_t table_bytes = 0;     // the op's own tables (offsets), allocated at build
  int64_t macs = 0;
  int64_t params = 0;
  int64_t work = 0;  // MACs, or elements touched for data movement: what sets `parallel()`
  bool split_input = false;  // an input was written by a parallel step (set by the plan)
  // A Concat's parts: each input's floats per row of the output, side by side in rows of their sum
  // (empty for other ops). Where every input is written for the Concat alone by an op that can write
  // its rows at a stride, the plan has those ops write their parts in place and skips the Concat.
  std::vector<int64_t> concat_parts;
  bool skip = false;  // set by the plan: the step has nothing left to do
  // Whether the op can write its output as rows of `row` floats at another stride (an NHWC conv: its
  // pixels into a channel slice of a wider tensor); write_rows(stride) then makes it do so.
  virtual bool can_write_rows(int64_t /*row*/) const { return false; }
  virtual void write_rows(int64_t /*stride*/) {}
  // Whether the work pays for handing it to the pool: from 100K MACs (2 threads: the demo CNN 0.110 ms
  // at a 1M threshold, 0.076 at 250K, 0.067 at 100K; the workers spin between steps, so a hand-off
  // costs ~1-2 us, not a futex wake-up's 10-20), and from 16K elements where the input was written by
  // several threads (a single thread would fetch the others' share from their cores' caches: the
  // demo's first max-pool, 12.5K outputs, took 3 us alone, 7 us after a parallel conv, 2 us parallel).
  bool parallel() const { return work >= 100000 || (split_input && work >= 16384); }
};

// Makes the op `type`; infers out_shape from the input shapes; throws PlanError on bad input.
std::unique_ptr<Op> make_op(const std::string& type, const std::vector<Shape>& inputs, const Attrs& a,
                            const Weights& w, const BuildCtx& ctx);

class Plan {
 public:
  // threads: 1 or more (the workers are the process's pool of that size, ThreadPool::shared);
  // max_bytes: the memory limit of the plan's arena, scratch and tables.
  Plan(int threads, const std::string& isa, int64_t max_bytes);

  int add_input(const Shape& shape);
  int add_node(const std::string& name, const std::string& type, const std::vector<int>& inputs,
               const Attrs& attrs, const Weights& weights);
  void add_output(int tensor);
  // Places the tensors in the arena; memory_bytes() is then known, nothing allocated yet.
  void layout();
  // Allocates (after layout()); throws MemoryLimit where memory_bytes() exceeds the limit.
  void finalize();

  // inputs: one pointer per graph input (shapes as declared); outputs: one buffer per graph output.
  // step_seconds: if not null, receives each step's wall time (for profiling; adds a clock read per step).
  void run(const std::vector<const float*>& inputs, const std::vector<float*>& outputs,
           std::vector<double>* step_seconds = nullptr);

  const Shape& shape(int tensor) const { return tensors_.at(tensor).shape; }
  int num_threads() const { return pool_->size(); }
  const char* isa() const { return table_->isa; }
  size_t arena_bytes() const { return arena_floats_ * sizeof(float); }
  // Working memory: the arena, every thread's scratch, the shared scratch and the ops' tables.
  int64_t memory_bytes() const { return memory_bytes_; }

  struct StepInfo {
    std::string name, type;
    std::vector<int> inputs;
    int output;
    int64_t macs, params;
    bool in_place;  // nothing to do: its inputs were written into its output (a Concat; after layout)
  };
  std::vector<StepInfo> steps() const;
  const std::vector<int>& input_ids() const { return inputs_; }
  const std::vector<int>& output_ids() const { return outputs_; }

 private:
  struct Tensor {
    Shape shape;
    int producer = -1;  // step index; -1 for a graph input
    int last_use = -1;
    int input_index = -1;
    size_t offset = 0;  // in the arena, in floats
    int part_of = -1;   // the Concat output this tensor is written into, in place (fuse_concats)
    size_t part_offset = 0;  // its floats into that tensor's rows
  };
  struct Step {
    std::string name, type;
    std::unique_ptr<Op> op;
    std::vector<int> inputs;
    int output;
  };
  const KernelTable* table_;
  std::shared_ptr<ThreadPool> pool_;
  int64_t max_bytes_;
  std::vector<Tensor> tensors_;
  std::vector<Step> steps_;
  std::vector<int> inputs_, outputs_;
  void fuse_concats();
  struct FreeAligned {
    void operator()(float* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<float[], FreeAligned>;
  static Buffer alloc(size_t floats);
  Buffer arena_, scratch_, shared_;
  size_t arena_floats_ = 0, scratch_stride_ = 0, shared_floats_ = 0;
  int64_t memory_bytes_ = 0;
  bool laid_out_ = false, final_ = false;
};

}  // namespace edgesep
