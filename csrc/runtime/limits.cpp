#include "limits.h"

#include "plan.h"

namespace edgesep {

int64_t checked_mul(int64_t a, int64_t b, const char* what, int64_t limit) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > limit)
    throw PlanError(std::string(what) + " too large: " + std::to_string(a) + " x " + std::to_string(b) + " exceeds " +
                    std::to_string(limit));
  return r;
}

int64_t checked_product(const std::vector<int64_t>& dims, const char* what, int64_t limit) {
  int64_t r = 1;
  for (int64_t d : dims) {
    if (d < 0 || d > kMaxDim) in_range(d, 0, kMaxDim, (std::string(what) + " dimension").c_str());
    if (__builtin_mul_overflow(r, d, &r) || r > limit)
      throw PlanError(std::string(what) + " " + shape_str(dims) + " has more than " + std::to_string(limit) + " elements");
  }
  return r;
}

int64_t in_range(int64_t v, int64_t lo, int64_t hi, const char* what) {
  if (v < lo || v > hi)
    throw PlanError(std::string(what) + " " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  return v;
}

}  // namespace edgesep
