// The per-channel affine map every forward kernel ends with:
//   y = ((x - center[c]) * scale[c] + bias[c]) (+ residual) (then ReLU)
// Inference has no center (its mean is folded into bias); training subtracts the batch mean
// first because folding it would cancel for data far from zero.
#ifndef SIMDBN_KERNELS_AFFINE_H_
#define SIMDBN_KERNELS_AFFINE_H_

#include <cstdint>

#include "kernels/cache.h"  // kMinStreamRun
#include "kernels/partition.h"

namespace simdbn {

// The widest vector of any compiled target, in f32 lanes (AVX-512).
inline constexpr int64_t kMaxLanes = 16;

struct AffineArgs {
  const float* x;
  const float* residual;  // nullable
  float* y;
  // Per-channel constants. NCHW: c entries each. NHWC: the periodic form (MakePeriodic), so
  // that a vector starting at any channel is one load.
  const float* center;  // nullable: no subtraction
  const float* scale;
  const float* bias;
  int64_t c;
  int64_t cols;    // row length of the partition: NCHW spatial, NHWC c
  int64_t period;  // NHWC: PeriodOf(c)
  bool relu;
  bool stream;  // non-temporal stores: the output will not be read from cache soon
};

// NCHW: rows are (image, channel) pairs of `cols` = spatial elements.
void AffineNchw(const AffineArgs& args, const Slice& slice);

// How AffineNchw stores a slice: whole rows of at least a vector as one flat run, with
// streaming stores if args.stream (see AffineRowsFlat); other runs stream only if they are long
// enough to stream on their own (kMinStreamRun).
inline bool FlatNchwSlice(const AffineArgs& a, const Slice& slice) {
  return a.stream && slice.col_begin == 0 && slice.col_end == a.cols && a.cols >= kMaxLanes;
}
inline bool StreamsNchwSlice(const AffineArgs& a, const Slice& slice) {
  return a.stream &&
         (FlatNchwSlice(a, slice) || slice.col_end - slice.col_begin >= kMinStreamRun);
}
// NHWC (and any layout with spatial == 1): rows are pixels of `cols` = c elements.
void AffineNhwc(const AffineArgs& args, const Slice& slice);

// The NHWC kernels walk channels in steps of up to four vectors and wrap at the period, the
// smallest multiple of c that is at least four of the widest vectors: then every wrap is one
// subtraction. The periodic form runs four of the widest vectors past the period, so that the
// four loads of an unrolled step start at ch, ch + N, ch + 2N and ch + 3N without a wrap of
// their own (a compare and a conditional move each, a third of the loop's instructions; NHWC
// inference at 1 thread beyond the LLC took 6-14% longer with them).
inline int64_t PeriodOf(int64_t c) { return (4 * kMaxLanes + c - 1) / c * c; }
inline int64_t PeriodicSize(int64_t c) { return PeriodOf(c) + 4 * kMaxLanes; }

// Writes the periodic form out[i] = values[i % c] for i < PeriodicSize(c).
void MakePeriodic(const float* values, int64_t c, float* out);
// Turns values[0, c) into the periodic form in place (values holds PeriodicSize(c) floats).
void ExtendPeriodic(float* values, int64_t c);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_AFFINE_H_
