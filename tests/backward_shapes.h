// Shapes that take every plan and loop of the backward pass (kernels/api_backward.cc), for the
// tests that must reach them all.
#ifndef SIMDBN_TESTS_BACKWARD_SHAPES_H_
#define SIMDBN_TESTS_BACKWARD_SHAPES_H_

#include <cstdint>
#include <vector>

#include "kernels/cache.h"
#include "simdbn/simdbn.h"

namespace simdbn_test {

// "Two passes" needs more than 4 MiB of x and dy per channel (the most the channel plan takes).
inline std::vector<simdbn_tensor_desc> PlanShapes() {
  return {
      {2, 3, 300000, SIMDBN_NCHW, SIMDBN_F32},  // two passes, rows split into pieces
      {105, 4, 5000, SIMDBN_NCHW, SIMDBN_F32},  // two passes, 3 whole rows per item
      {80000, 3, 7, SIMDBN_NCHW, SIMDBN_F32},   // two passes, one slot per channel
      {8, 512, 49, SIMDBN_NCHW, SIMDBN_F32},    // one channel per item, in cache
      {2, 3, 70000, SIMDBN_NCHW, SIMDBN_F32},   // the same with long runs
      {2, 1, 600000, SIMDBN_NHWC, SIMDBN_F32},  // c == 1: rows, two passes
      {4, 64, 3136, SIMDBN_NHWC, SIMDBN_F32},   // pixels, flat period 256
      {3, 17, 2000, SIMDBN_NHWC, SIMDBN_F32},   // pixels, flat period 272
      {3, 3, 20000, SIMDBN_NHWC, SIMDBN_F32},   // pixels, c below the vector length
      {40, 2049, 10, SIMDBN_NHWC, SIMDBN_F32},  // pixels, blocks of channels
      {300, 2500, 1, SIMDBN_NCHW, SIMDBN_F32},  // spatial == 1: pixels, blocks; 3 row
                                                // blocks, so 2 pieces of channels
      {1, 20000, 2, SIMDBN_NHWC, SIMDBN_F32},   // few pixels: channels in one pass
      {20, 20000, 1, SIMDBN_NHWC, SIMDBN_F32},  // pixels split into pieces for dx, 4 pieces
                                                // of channels for the reduction
      {5, 9, 3, SIMDBN_NHWC, SIMDBN_F32},       // few pixels, c not a multiple of lanes
      {1, 2048, 49, SIMDBN_NHWC, SIMDBN_F32},   // flat period c, one row block: 4 pieces
      {1, 1000, 49, SIMDBN_NHWC, SIMDBN_F32},   // flat period 2c, one row block: 3 pieces
      {1, 20000, 4, SIMDBN_NCHW, SIMDBN_F32},   // few pixels through by-pixel copies
      {3, 301, 5, SIMDBN_NCHW, SIMDBN_F32},     // the same, 15 pixels, a short last copy
                                                // (frozen: the fused pass)
  };
}

// Traffic beyond the last-level cache, so that dx bypasses it with non-temporal stores: two
// passes by row and by pixel, and the channel plan, with runs too short to stream and with runs
// that stream (of odd length, so that every run of dx starts at another alignment and has a
// head to peel).
inline std::vector<simdbn_tensor_desc> LargerThanCacheShapes() {
  const int64_t floats = static_cast<int64_t>(simdbn::LastLevelCacheBytes() / 4);
  const int64_t spatial = floats / 6 + 5;
  const int64_t images = floats / 1000 / 196 + 1;
  return {{1, 3, spatial, SIMDBN_NCHW, SIMDBN_F32},
          {1, 3, spatial, SIMDBN_NHWC, SIMDBN_F32},
          {images, 1000, 196, SIMDBN_NCHW, SIMDBN_F32},
          {20, floats / 4 / (20 * 1027) + 1, 1027, SIMDBN_NCHW, SIMDBN_F32}};
}

}  // namespace simdbn_test

#endif  // SIMDBN_TESTS_BACKWARD_SHAPES_H_
