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

// The copy of channels from `first` (before `end`) of at most `floats` values: a multiple of
// 16 channels, at most kFewPixelsBlock, or the rest.
inline NchwCopy CopyAt(int64_t c, int64_t spatial, int64_t pixels, size_t first, size_t end,
                       size_t floats) {
  const size_t width = floats / static_cast<size_t>(pixels) / 16 * 16;
  return {c, spatial, pixels, first,
          std::min({static_cast<size_t>(kFewPixelsBlock), width, end - first})};
}

// Calls f(run, column) for each channel of the copy in each image: the offsets of its run of
// `spatial` values in the tensor and of the first of them in the copy (the next `width` on).
template <class F>
inline void ForEachRun(const NchwCopy& b, const F& f) {
  const auto s = static_cast<size_t>(b.spatial), c = static_cast<size_t>(b.c);
  const size_t images = static_cast<size_t>(b.pixels) / s;
  for (size_t i = 0; i < images; ++i) {
    for (size_t ch = 0; ch < b.width; ++ch) f((i * c + b.first + ch) * s, i * s * b.width + ch);
  }
}

inline void ToPixelRows(const float* HWY_RESTRICT x, const NchwCopy& b,
                        float* HWY_RESTRICT rows) {
  const auto s = static_cast<size_t>(b.spatial);
  ForEachRun(b, [&](size_t run, size_t column) {
    for (size_t j = 0; j < s; ++j) rows[column + j * b.width] = x[run + j];
  });
}

inline void FromPixelRows(const float* HWY_RESTRICT rows, const NchwCopy& b,
                          float* HWY_RESTRICT y) {
  const auto s = static_cast<size_t>(b.spatial);
  ForEachRun(b, [&](size_t run, size_t column) {
    for (size_t j = 0; j < s; ++j) y[run + j] = rows[column + j * b.width];
  });
}

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_PIXEL_ROWS_H_
