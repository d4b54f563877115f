// NCHW tensors of few pixels seen as by-pixel rows: the plans of few pixels copy a block of
// channels into rows of `width` values, work on the copy in L1, and copy the results back.
// Pixel p = i * spatial + j of channel first + ch is at x[(i * c + first + ch) * spatial + j]
// in the tensor and at rows[p * width + ch] in the copy.
#ifndef SIMDBN_KERNELS_PIXEL_ROWS_H_
#define SIMDBN_KERNELS_PIXEL_ROWS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hwy/base.h"  // HWY_RESTRICT
#include "kernels/partition.h"

namespace simdbn {

// A copy of channels [first, first + width) of an NCHW tensor.
struct NchwCopy {
  int64_t c, spatial, pixels;
  size_t first, width;
};

// Channels per copy of at most `floats` values: a multiple of 16, at most kFewPixelsBlock.
inline size_t PixelRowsWidth(int64_t pixels, size_t floats) {
  const size_t width = floats / static_cast<size_t>(pixels) / 16 * 16;
  return std::min(static_cast<size_t>(kFewPixelsBlock), width);
}

inline void ToPixelRows(const float* HWY_RESTRICT x, const NchwCopy& b,
                        float* HWY_RESTRICT rows) {
  const auto s = static_cast<size_t>(b.spatial), c = static_cast<size_t>(b.c);
  const size_t images = static_cast<size_t>(b.pixels) / s;
  for (size_t i = 0; i < images; ++i) {
    for (size_t ch = 0; ch < b.width; ++ch) {
      const float* HWY_RESTRICT run = x + (i * c + b.first + ch) * s;
      float* HWY_RESTRICT column = rows + i * s * b.width + ch;
      for (size_t j = 0; j < s; ++j) column[j * b.width] = run[j];
    }
  }
}

inline void FromPixelRows(const float* HWY_RESTRICT rows, const NchwCopy& b,
                          float* HWY_RESTRICT y) {
  const auto s = static_cast<size_t>(b.spatial), c = static_cast<size_t>(b.c);
  const size_t images = static_cast<size_t>(b.pixels) / s;
  for (size_t i = 0; i < images; ++i) {
    for (size_t ch = 0; ch < b.width; ++ch) {
      float* HWY_RESTRICT run = y + (i * c + b.first + ch) * s;
      const float* HWY_RESTRICT column = rows + i * s * b.width + ch;
      for (size_t j = 0; j < s; ++j) run[j] = column[j * b.width];
    }
  }
}

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_PIXEL_ROWS_H_
