// Per-channel statistics as mergeable pieces.
//
// The SIMD reductions (moments-inl.h, dispatched here) return sums of d = x - shift and d^2,
// where shift is one value of the channel, accumulated in double. x and shift are f32, so in
// double d is exact (or within 2^-53 relative when their exponents differ by more than 29) and
// d^2 loses at most 2^-53: nothing of the f32 data is lost before the sums, and the shift keeps
// the sum of squares from dwarfing the variance when |mean| >> std (at mean 1e6 and std 1,
// unshifted f32 sums of x^2 lose every digit). The sums of a channel's blocks use one shift,
// so they add up directly; Chan's formula merges moments about different means (another
// process, another tensor).
#ifndef SIMDBN_KERNELS_MOMENTS_H_
#define SIMDBN_KERNELS_MOMENTS_H_

#include <cmath>
#include <cstdint>

#include "simdbn/simdbn.h"

namespace simdbn {

// Sum of (x - shift) and of (x - shift)^2 over some values of one channel.
struct ShiftedSums {
  double s1 = 0.0;
  double s2 = 0.0;
};

// Arrays handed to ColumnSums hold this multiple of entries, so that whole vectors of any
// target can be loaded and stored past `cols`.
inline constexpr int64_t kColumnPad = 16;

// Adds to *sums the sums over `runs` runs of `len` contiguous floats, run r starting at
// x + r * stride (one channel of an NCHW tensor): sums->s1 += (sum of the runs' s1), likewise
// s2. The order of additions depends only on the arguments. (Adding here rather than returning
// the pair keeps the caller's compiler from moving it through memory as one vector: a
// store-forwarding stall per call.)
void AddRunSums(const float* x, int64_t runs, int64_t stride, int64_t len, float shift,
                ShiftedSums* sums);

// The running sums of AddRunSums kept in memory between calls, so that the runs of many
// channels can be read in memory order (image by image) with the same bits as AddRunSums over
// all of a channel's runs at once: kRunStateDoubles doubles per channel, 64-byte aligned,
// zero before the first run.
inline constexpr int64_t kRunStateDoubles = 64;
// For r < rows: adds the run x + r * len (channel r, shift shift[r]) to state r.
void AddRowsToStates(const float* x, int64_t rows, int64_t len, const float* shift,
                     double* states);
// The sums of one state, as AddRunSums would have added them.
ShiftedSums SumsOfState(const double* state);

// For every column j < cols: s1[j] += sum over r < rows of (x[r * stride + j] - shift[j]) and
// s2[j] likewise of the squares (pixels of an NHWC tensor: column j is channel j % c). shift,
// s1 and s2 hold cols rounded up to kColumnPad entries; the padding of shift must be finite.
void ColumnSums(const float* x, int64_t rows, int64_t stride, int64_t cols, const double* shift,
                double* s1, double* s2);

// The shift of a channel: its first value, or 0 when that is not finite (so that an Inf
// elsewhere still yields an infinite mean rather than Inf - Inf = NaN).
inline float ShiftFor(float first) { return std::isfinite(first) ? first : 0.0f; }

// Moments of `count` values from their shifted sums.
inline simdbn_moments MomentsFromSums(double count, float shift, const ShiftedSums& sums) {
  if (count == 0.0) return simdbn_moments{0.0, 0.0, 0.0};
  const double mean_shifted = sums.s1 / count;
  // s2 >= s1^2 / count in exact arithmetic; rounding may undercut it by a few ulp of s2 when
  // the variance is ~0. The comparison keeps NaN.
  double m2 = sums.s2 - sums.s1 * mean_shifted;
  if (m2 < 0.0) m2 = 0.0;
  return simdbn_moments{count, shift + mean_shifted, m2};
}

// moments[ch] = MomentsFromSums(count, shift[ch], {s1[ch], s2[ch]}) for ch < c, count > 0:
// the same bits, vectorized over channels (with many small channels the scalar divisions
// cost as much as reading the data).
void MomentsOfSums(int64_t c, double count, const double* shift, const double* s1,
                   const double* s2, simdbn_moments* moments);

// Chan, Golub and LeVeque's pairwise update: the moments of the union of both sets of values.
simdbn_moments MergeMoments(const simdbn_moments& a, const simdbn_moments& b);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_MOMENTS_H_
