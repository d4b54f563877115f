// Per-channel statistics as mergeable pieces: each fixed chunk of a channel's values becomes
// its own (count, mean, m2), and the chunks are merged by Chan's formula in a fixed order.
//
// Within a chunk, the SIMD reductions (moments-inl.h, dispatched here) form sums of
// d = x - shift and d^2 in double, where shift is the chunk's first value. x and shift are f32,
// so in double d is exact (or within 2^-53 relative when their exponents differ by more than
// 29) and d^2 loses at most 2^-53: nothing of the f32 data is lost before the sums. The shift
// keeps the sum of squares from dwarfing the variance when |mean| >> std (at mean 1e6 and std 1,
// unshifted f32 sums of x^2 lose every digit), and taking it from the chunk itself keeps it
// close to the chunk's values even when the data drift across the tensor. The chunk's moments
// follow with one division (m2 = s2 - s1^2 / count); chunks hold at most 32K values, so what
// rounding leaves in them stays far below f32 precision. Merging moments
// about different means, rather than sums about one shift, is what Chan's formula is for.
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
// s2. The order of additions depends only on the arguments. readable: how many floats of the
// tensor start at x, for prefetches. (Adding here rather than returning the pair keeps the
// caller's compiler from moving it through memory as one vector: a store-forwarding stall per
// call.)
void AddRunSums(const float* x, int64_t runs, int64_t stride, int64_t len, float shift,
                int64_t readable, ShiftedSums* sums);

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

// The shift of a chunk: its first value, or 0 when that is not finite (so that an Inf
// elsewhere still yields an infinite mean rather than Inf - Inf = NaN).
inline float ShiftFor(float first) { return std::isfinite(first) ? first : 0.0f; }

// shift[j] = ShiftFor(x[j]) for j < known and 0 for known <= j < count, count a multiple of
// kColumnPad: the shifts of ColumnSums, vectorized (one per channel of a wide NHWC row).
void ShiftsOf(const float* x, int64_t known, int64_t count, double* shift);

// Moments of `count` values from their sums about a shift, the mean measured from a reference
// value: offset = shift - reference (exact in double for f32 values). Chunks merge their means
// as distances from one reference per channel (its first value), so that the rounding of the
// means and of their differences scales with the spread of the data, not with |mean|: at mean
// 1e6, merging absolute means would leave m2 errors a thousand times larger (still far below
// f32 precision).
inline simdbn_moments MomentsFromSums(double count, double offset, const ShiftedSums& sums) {
  if (count == 0.0) return simdbn_moments{0.0, 0.0, 0.0};
  const double mean_shifted = sums.s1 / count;
  // s2 >= s1^2 / count in exact arithmetic; rounding may undercut it by a few ulp of s2 when
  // the variance is ~0. The comparison keeps NaN.
  double m2 = sums.s2 - sums.s1 * mean_shifted;
  if (m2 < 0.0) m2 = 0.0;
  return simdbn_moments{count, offset + mean_shifted, m2};
}

// For ch < c: merges into total[ch] (total_count, total_mean, total_m2 hold c entries each;
// means measured from reference[ch]) the moments of column ch from its sums about shift[ch],
// of `count` values, or count + 1 in the first `extra` columns; `first`: the totals hold
// nothing yet and are only written. Lane by lane the operations of MomentsFromSums and
// MergeMoments, vectorized over channels (with many small channels the scalar divisions cost
// as much as reading the data).
void MergeColumnSums(bool first, int64_t c, double count, int64_t extra, const double* shift,
                     const double* s1, const double* s2, const double* reference,
                     double* total_count, double* total_mean, double* total_m2);

// moments[ch] = {count[ch], reference[ch] + mean[ch], m2[ch]} for ch < c.
void InterleaveMoments(int64_t c, const double* reference, const double* count,
                       const double* mean, const double* m2, simdbn_moments* moments);

// Chan, Golub and LeVeque's pairwise update: the moments of the union of both sets of values.
// An infinite mean stays infinite (Inf merged with a finite mean or with the same Inf).
inline simdbn_moments MergeMoments(const simdbn_moments& a, const simdbn_moments& b) {
  // An empty side must not turn the other into NaN (0 / 0) or move it by rounding.
  if (b.count == 0.0) return a;
  if (a.count == 0.0) return b;
  const double count = a.count + b.count;
  const double delta = b.mean - a.mean;
  const double b_share = b.count / count;
  // a.mean + delta * b_share keeps equal means exact; where delta is not finite (an infinite
  // mean) it would give Inf - Inf, while the weighted mean keeps Inf, or makes NaN of +Inf
  // with -Inf, as a sum would.
  const double mean = std::isfinite(delta) ? a.mean + delta * b_share
                                           : a.mean * (a.count / count) + b.mean * b_share;
  return simdbn_moments{count, mean, a.m2 + b.m2 + delta * delta * (a.count * b_share)};
}

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_MOMENTS_H_
