// pybind11 bindings: edgesep._core. Conversion and argument checks only; the logic is in runtime/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "../kernels/cpu.h"
#include "../runtime/plan.h"

namespace py = pybind11;
using namespace edgesep;

namespace {

Attrs to_attrs(const py::dict& d) {
  Attrs a;
  for (auto item : d) {
    const std::string k = py::cast<std::string>(item.first);
    py::handle v = item.second;
    if (py::isinstance<py::str>(v)) {
      a.strs[k] = py::cast<std::string>(v);
    } else if (py::isinstance<py::bool_>(v) || py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v)) {
      a.nums[k] = {py::cast<double>(v)};
    } else if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
      std::vector<double> xs;
      for (auto x : v) {
        if (!(py::isinstance<py::int_>(x) || py::isinstance<py::float_>(x)))
          throw PlanError("attribute '" + k + "' must hold numbers");
        xs.push_back(py::cast<double>(x));
      }
      a.nums[k] = xs;
    } else {
      throw PlanError("attribute '" + k + "' has an unsupported type");
    }
  }
  return a;
}

bool is_f32_contiguous(const py::array& x) {
  return x.dtype().is(py::dtype::of<float>()) && (x.flags() & py::array::c_style);
}

// No NaN or infinity among the n floats at x (an all-ones exponent), as integer ops the compiler
// vectorises: a tenth of numpy's isfinite(x).all(), which also allocates a mask.
bool all_finite(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, sizeof b);
    bad |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// A Plan plus the Python objects (weight arrays over the mmap) it points into.
class PyPlan {
 public:
  PyPlan(int threads, const std::string& isa, int64_t max_bytes) : plan_(threads, isa, max_bytes) {}

  int add_input(const Shape& shape) { return plan_.add_input(shape); }

  int add_node(const std::string& name, const std::string& type, const std::vector<int>& inputs,
               const py::dict& attrs, const py::dict& weights) {
    Weights w;
    for (auto item : weights) {
      const std::string k = py::cast<std::string>(item.first);
      auto t = py::cast<py::tuple>(item.second);
      if (t.size() != 3) throw PlanError("weight '" + k + "' must be (array, layout, shape)");
      py::array arr = py::cast<py::array>(t[0]);
      Weight wt;
      if (arr.dtype().is(py::dtype::of<float>()))
        wt.dtype = "float32";
      else if (arr.dtype().is(py::dtype::of<int32_t>()))
        wt.dtype = "int32";
      else if (arr.dtype().is(py::dtype::of<uint16_t>()))
        wt.dtype = "uint16";
      else
        throw PlanError("weight '" + k + "' must be float32, int32 or uint16");
      if (!(arr.flags() & py::array::c_style)) throw PlanError("weight '" + k + "' must be C-contiguous");
      wt.raw = arr.data();
      if (wt.dtype == "float32") wt.data = static_cast<const float*>(wt.raw);
      wt.count = (int64_t)arr.size();
      wt.layout = py::cast<std::string>(t[1]);
      wt.shape = py::cast<Shape>(t[2]);
      w[k] = wt;
      keep_.push_back(arr);
    }
    return plan_.add_node(name, type, inputs, to_attrs(attrs), w);
  }

  py::list run(const py::list& inputs) { return run_impl(inputs, nullptr); }

  // Runs `reps` times; returns each step's median wall time in seconds.
  std::vector<double> profile(const py::list& inputs, int reps) {
    std::vector<std::vector<double>> all;
    for (int r = 0; r < std::max(1, reps); ++r) {
      std::vector<double> t;
      run_impl(inputs, &t);
      all.push_back(t);
    }
    std::vector<double> med;
    for (size_t i = 0; i < all[0].size(); ++i) {
      std::vector<double> v;
      for (auto& t : all) v.push_back(t[i]);
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      med.push_back(v[v.size() / 2]);
    }
    return med;
  }

  py::list run_impl(const py::list& inputs, std::vector<double>* times) {
    const auto& ids = plan_.input_ids();
    if (inputs.size() != ids.size())
      throw PlanError("expected " + std::to_string(ids.size()) + " inputs, got " + std::to_string(inputs.size()));
    std::vector<const float*> in;
    for (size_t i = 0; i < ids.size(); ++i) {
      py::array x = py::cast<py::array>(inputs[i]);
      if (!is_f32_contiguous(x)) throw PlanError("input " + std::to_string(i) + " must be a C-contiguous float32 array");
      const Shape& want = plan_.shape(ids[i]);
      Shape got(x.shape(), x.shape() + x.ndim());
      if (got != want) throw PlanError("input " + std::to_string(i) + " has shape " + shape_str(got) + ", expected " + shape_str(want));
      in.push_back(static_cast<const float*>(x.data()));
      if (!all_finite(in.back(), (int64_t)x.size())) throw PlanError("input " + std::to_string(i) + " contains NaN or infinity");
    }
    py::list result;
    std::vector<float*> out;
    for (int id : plan_.output_ids()) {
      py::array_t<float> y(plan_.shape(id));
      out.push_back(y.mutable_data());
      result.append(y);
    }
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);  // one arena per plan: concurrent runs take turns
      plan_.run(in, out, times);
    }
    return result;
  }

  py::list steps() const {
    py::list r;
    for (const auto& s : plan_.steps()) {
      py::dict d;
      d["name"] = s.name;
      d["op"] = s.type;
      d["inputs"] = s.inputs;
      d["output"] = s.output;
      d["macs"] = s.macs;
      d["params"] = s.params;
      d["in_place"] = s.in_place;
      r.append(d);
    }
    return r;
  }

  Plan plan_;

 private:
  std::vector<py::object> keep_;
  std::mutex mu_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "edgesep's C++ runtime: plans, kernels, dispatch";
  auto plan_error = py::register_exception<PlanError>(m, "PlanError", PyExc_ValueError);
  // Registered after PlanError, so that pybind11 tries it first (its subclass).
  py::register_exception<MemoryLimit>(m, "MemoryLimit", plan_error.ptr());
  m.def("available_isas", [] {
    int n = 0;
    const KernelTable* const* t = kernel_tables(&n);
    std::vector<std::string> r;
    for (int i = 0; i < n; ++i) r.push_back(t[i]->isa);
    return r;
  }, "Kernel variants this CPU can run, reference first, best last.");
  m.def("physical_cores", &physical_cores);
  py::class_<PyPlan>(m, "Plan")
      .def(py::init<int, const std::string&, int64_t>(), py::arg("num_threads"), py::arg("isa"), py::arg("max_bytes"))
      .def("add_input", &PyPlan::add_input)
      .def("add_node", &PyPlan::add_node)
      .def("add_output", [](PyPlan& p, int id) { p.plan_.add_output(id); })
      .def("layout", [](PyPlan& p) { p.plan_.layout(); })
      .def("finalize", [](PyPlan& p) { p.plan_.finalize(); })
      .def("shape", [](const PyPlan& p, int id) { return p.plan_.shape(id); })
      .def("run", &PyPlan::run)
      .def("profile", &PyPlan::profile, py::arg("inputs"), py::arg("reps") = 10)
      .def("steps", &PyPlan::steps)
      .def_property_readonly("num_threads", [](const PyPlan& p) { return p.plan_.num_threads(); })
      .def_property_readonly("isa", [](const PyPlan& p) { return std::string(p.plan_.isa()); })
      .def_property_readonly("arena_bytes", [](const PyPlan& p) { return p.plan_.arena_bytes(); })
      .def_property_readonly("memory_bytes", [](const PyPlan& p) { return p.plan_.memory_bytes(); });
  m.attr("LIMITS") = py::dict(py::arg("max_dim") = kMaxDim, py::arg("max_elements") = kMaxElements,
                              py::arg("max_window") = kMaxWindow, py::arg("max_threads") = kMaxThreads);
}
