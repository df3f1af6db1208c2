#include "limits.h"

#include "plan.h"

namespace edgesep {

int64_t checked_mul(int64_t a, int64_t b, const std::string& what, int64_t limit) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > limit)
    throw PlanError(what + " too large: " + std::to_string(a) + " x " + std::to_string(b) + " exceeds " +
                    std::to_string(limit));
  return r;
}

int64_t checked_product(const std::vector<int64_t>& dims, const std::string& what, int64_t limit) {
  int64_t r = 1;
  for (int64_t d : dims) {
    in_range(d, 0, kMaxDim, what + " dimension");
    if (__builtin_mul_overflow(r, d, &r) || r > limit)
      throw PlanError(what + " " + shape_str(dims) + " has more than " + std::to_string(limit) + " elements");
  }
  return r;
}

int64_t in_range(int64_t v, int64_t lo, int64_t hi, const std::string& what) {
  if (v < lo || v > hi)
    throw PlanError(what + " " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  return v;
}

}  // namespace edgesep
