// The per-channel affine map every forward kernel ends with:
//   y = ((x - center[c]) * scale[c] + bias[c]) (+ residual) (then ReLU)
// Inference has no center (its mean is folded into bias); training subtracts the batch mean
// first because folding it would cancel for data far from zero.
#ifndef SIMDBN_KERNELS_AFFINE_H_
#define SIMDBN_KERNELS_AFFINE_H_

#include <cstdint>

#include "kernels/partition.h"

namespace simdbn {

// The widest vector of any compiled target, in f32 lanes (AVX-512).
inline constexpr int64_t kMaxLanes = 16;

struct AffineArgs {
  const float* x;
  const float* residual;  // nullable
  float* y;
  // Per-channel constants. NCHW: c entries each. NHWC: the "periodic" form, c + kMaxLanes
  // entries with p[i] = value[i % c], so that a vector starting at any channel is one load.
  const float* center;  // nullable: no subtraction
  const float* scale;
  const float* bias;
  int64_t c;
  int64_t cols;  // row length of the partition: NCHW spatial, NHWC c
  bool relu;
  bool stream;  // non-temporal stores: the output will not be read from cache soon
};

// NCHW: rows are (image, channel) pairs of `cols` = spatial elements.
void AffineNchw(const AffineArgs& args, const Slice& slice);
// NHWC (and any layout with spatial == 1): rows are pixels of `cols` = c elements.
void AffineNhwc(const AffineArgs& args, const Slice& slice);

// Writes the periodic form of values[0, c) into out[0, c + kMaxLanes).
void MakePeriodic(const float* values, int64_t c, float* out);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_AFFINE_H_
