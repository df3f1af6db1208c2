// The image transpose ([rows][cols] -> [cols][rows]), templated on the ISA's vector type (kernels.h:
// TransposeFn): in tiles of 32 x 32, so that both sides stream whole cache lines, each tile in 4 x 4
// blocks transposed in registers (V::V4::transpose4), the tile's ragged edges element by element.
// Element by element throughout, a 112 x 112 x 96 map took 0.86 ms.
#pragma once
#include <algorithm>

#include "../kernels.h"

namespace edgesep::detail {

template <class V>
void transpose(const float* x, int64_t rows, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
               float* y) {
  using V4 = typename V::V4;
  constexpr int64_t kTile = 32;
  for (int64_t rt = r0; rt < r1; rt += kTile) {
    const int64_t re = std::min(r1, rt + kTile);
    for (int64_t ct = c0; ct < c1; ct += kTile) {
      const int64_t ce = std::min(c1, ct + kTile);
      // Column blocks outside: each writes four output rows of the tile whole (4 x 32 floats), while
      // the tile's input (32 rows x 32 columns, 4 KB) stays in L1 across them.
      int64_t c = ct;
      for (; c + 4 <= ce; c += 4) {
        int64_t r = rt;
        for (; r + 4 <= re; r += 4) V4::transpose4(x + r * cols + c, cols, y + c * rows + r, rows);
        for (; r < re; ++r)
          for (int64_t k = 0; k < 4; ++k) y[(c + k) * rows + r] = x[r * cols + c + k];
      }
      for (; c < ce; ++c)
        for (int64_t r = rt; r < re; ++r) y[c * rows + r] = x[r * cols + c];
    }
  }
}

}  // namespace edgesep::detail
