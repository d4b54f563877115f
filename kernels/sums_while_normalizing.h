// The statistics of one channel's block read in lockstep with the normalization of another
// channel's block of the same shape: fused NCHW training of large channels, one per group
// (FusedTraining), as beyond the LLC. Reading the next channel from memory block by block, then
// normalizing this one from cache block by block, keeps only reads or only writes in flight at
// a time; a core that interleaves them every few vectors keeps both in flight, as inference
// does. In a model of the two loops (N = 32 at 56x56 and 112x112, beyond the LLC, 1 and 2
// threads), training took 1.20-1.33x the time of inference interleaved, 1.49-1.63x block by
// block; in the library, 1.05-1.72x faster (docs/training.md). The same for groups of small
// channels read image by image (FusedImageByImage in training.h).
#ifndef SIMDBN_KERNELS_SUMS_WHILE_NORMALIZING_H_
#define SIMDBN_KERNELS_SUMS_WHILE_NORMALIZING_H_

#include <cstdint>

#include "kernels/moments.h"

namespace simdbn {

// `runs` runs of one channel to normalize, run r at x + r * stride into y + r * stride, with
// the channel's constants.
struct RunsToNormalize {
  const float* x;
  float* y;
  float center, scale, bias;
  bool stream;  // non-temporal stores for y
};

// AddRunSums (moments.h), the same bits, while normalizing `other`: `runs` runs of the same
// `len` and `stride`, y = (x - center) * scale + bias with the bits of the affine map
// (affine.h). other.y may be other.x; neither may overlap the summed runs.
void AddRunSumsWhileNormalizing(const float* x, int64_t runs, int64_t stride, int64_t len,
                                float shift, int64_t readable, ShiftedSums* sums,
                                const RunsToNormalize& other);

// `rows` consecutive rows of `len` floats to normalize (one contiguous run), row r at
// x + r * len into y + r * len with the constants center[r], scale[r], bias[r].
struct RowsToNormalize {
  const float* x;
  float* y;
  const float* center;
  const float* scale;
  const float* bias;
  int64_t rows;
  bool stream;  // non-temporal stores for y
};

// AddRowsToStates (moments.h) of `rows` rows, the same bits, while normalizing other's rows of
// the same len (>= 16), in lockstep as far as they go, then the rest. other.y may be other.x;
// neither may overlap x. rows or other.rows may be 0.
void AddRowsToStatesWhileNormalizing(const float* x, int64_t rows, int64_t len,
                                     const float* shift, double* states,
                                     const RowsToNormalize& other);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_SUMS_WHILE_NORMALIZING_H_
