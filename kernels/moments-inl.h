// Per-target shifted-sum reductions (see moments.h for why they look like this).

// Per-target include guard, as Highway's own -inl.h headers do.
#if defined(SIMDBN_KERNELS_MOMENTS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDBN_KERNELS_MOMENTS_INL_H_
#undef SIMDBN_KERNELS_MOMENTS_INL_H_
#else
#define SIMDBN_KERNELS_MOMENTS_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/affine.h"  // kMaxLanes
#include "kernels/moments.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

static_assert(HWY_MAX_BYTES / sizeof(double) <= static_cast<size_t>(kColumnPad),
              "ColumnSums pads its arrays for at most kColumnPad double lanes");
static_assert(8 * HWY_MAX_BYTES / sizeof(double) <= static_cast<size_t>(kRunStateDoubles),
              "a run state holds eight vectors of doubles");

// x - shift, of floats widened to double.
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE V Shifted(DD dd, V x, V shift) {
#if HWY_TARGET <= HWY_AVX2
  // x * 1 - shift rounds exactly like x - shift, but runs on the FMA ports, which the loop
  // leaves idle, instead of the adder ports that the conversion and the sums already fill.
  return hn::MulSub(x, hn::Set(dd, 1.0), shift);
#else
  (void)dd;
  return hn::Sub(x, shift);
#endif
}

// x - shift for Lanes(dd) floats at p, widened first so that the difference is exact.
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE V ShiftedLoad(DD dd, const float* HWY_RESTRICT p, V shift) {
  const hn::Rebind<float, DD> df;
  return Shifted(dd, hn::PromoteTo(dd, hn::LoadU(df, p)), shift);
}

// x - shift for the first `count` (< Lanes(dd)) floats at p and 0 in the other lanes, without
// reading past p + count.
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE V ShiftedTailLoad(DD dd, const float* HWY_RESTRICT p, size_t count, V shift) {
  const hn::Rebind<float, DD> df;
#if HWY_TARGET <= HWY_AVX2
  // vmaskmovps and AVX-512 masked loads never touch the masked-off lanes.
  const V x = hn::PromoteTo(dd, hn::MaskedLoad(hn::FirstN(df, count), df, p));
#else
  // A loop of constant length (a copy of `count` would become a call to memcpy, which makes
  // the compiler spill every accumulator around it).
  HWY_ALIGN float buffer[kMaxLanes] = {};
  for (size_t k = 0; k + 1 < hn::Lanes(dd); ++k) {
    if (k < count) buffer[k] = p[k];
  }
  const V x = hn::PromoteTo(dd, hn::Load(df, buffer));
#endif
  return hn::IfThenElseZero(hn::FirstN(dd, count), hn::Sub(x, shift));
}

// The running sums of a channel's runs: four vectors of d and four of d^2, independent so
// that they hide the latency of the additions. Kept in registers across the runs of one call,
// or in memory between calls (kRunStateDoubles per channel) with the same operations.
template <class DD>
struct RunAccumulators {
  using V = hn::Vec<DD>;
  V s0, s1, s2, s3, q0, q1, q2, q3;
};

template <class DD>
HWY_INLINE RunAccumulators<DD> ZeroAccumulators(DD dd) {
  const auto z = hn::Zero(dd);
  return {z, z, z, z, z, z, z, z};
}

// Adds one run of `len` floats at p, prefetching kRunAhead floats ahead within the `readable`
// floats of the tensor from p. The double-precision sums put so many instructions between a
// core's loads that few of them are in flight at once: NCHW statistics read image by image
// (AddRowsToStates, N=32 at 56x56 and 28x28) took 5-24% longer without. A short run prefetches
// the same image's next channels, which the next work items read: N=32 channels of 14x14 or
// 7x7 are 32 runs 0.1-0.8 MB apart, more streams than the hardware prefetchers follow (the
// statistics pass took 1.3-1.37x as long without).
// each(i) runs once per four vectors (i: their first float): work of another stream for the
// same core (see SumsWhileNormalizing).
constexpr size_t kRunAhead = 512;
struct NoOtherWork {
  HWY_INLINE void operator()(size_t /* i */) const {}
};
template <class DD, class V = hn::Vec<DD>, class Each = NoOtherWork>
HWY_INLINE void AddRun(DD dd, const float* HWY_RESTRICT p, size_t len, V vs,
                       RunAccumulators<DD>& a, size_t readable, Each&& each = Each()) {
  const size_t N = hn::Lanes(dd);
  size_t i = 0;
  for (; i + 4 * N <= len; i += 4 * N) {
    if (i % 16 == 0) {
      // A line per 16 floats; a pointer past the tensor is never formed.
      for (size_t k = i; k < i + 4 * N && k + kRunAhead < readable; k += 16) {
        hwy::Prefetch(p + k + kRunAhead);
      }
    }
    if constexpr (!std::is_same_v<std::decay_t<Each>, NoOtherWork>) {
      // The other work first, then each vector added as soon as it is loaded: the same
      // operations, but with the other work's vectors live as well, four loaded vectors at once
      // made GCC keep accumulators on the stack, a chain through memory in every step. NCHW
      // training at 1 thread: 1.05-1.19x beyond the LLC (28x28 to 112x112), 1.56x at N = 2 and
      // 56x56 in cache; at 2 threads, bound by memory, the same. Alone, loading all four first
      // is 1.03-1.04x the faster (NCHW statistics at 28x28).
      each(i);
      const auto add = [&](V& s, V& q, size_t at) {
        const V d = ShiftedLoad(dd, p + at, vs);
        s = hn::Add(s, d);
        q = hn::MulAdd(d, d, q);
      };
      add(a.s0, a.q0, i);
      add(a.s1, a.q1, i + N);
      add(a.s2, a.q2, i + 2 * N);
      add(a.s3, a.q3, i + 3 * N);
      continue;
    }
    const V d0 = ShiftedLoad(dd, p + i, vs);
    const V d1 = ShiftedLoad(dd, p + i + N, vs);
    const V d2 = ShiftedLoad(dd, p + i + 2 * N, vs);
    const V d3 = ShiftedLoad(dd, p + i + 3 * N, vs);
    a.s0 = hn::Add(a.s0, d0);
    a.s1 = hn::Add(a.s1, d1);
    a.s2 = hn::Add(a.s2, d2);
    a.s3 = hn::Add(a.s3, d3);
    a.q0 = hn::MulAdd(d0, d0, a.q0);
    a.q1 = hn::MulAdd(d1, d1, a.q1);
    a.q2 = hn::MulAdd(d2, d2, a.q2);
    a.q3 = hn::MulAdd(d3, d3, a.q3);
  }
  for (; i + N <= len; i += N) {
    const V d = ShiftedLoad(dd, p + i, vs);
    a.s0 = hn::Add(a.s0, d);
    a.q0 = hn::MulAdd(d, d, a.q0);
  }
  if (i < len) {
    const V d = ShiftedTailLoad(dd, p + i, len - i, vs);
    a.s1 = hn::Add(a.s1, d);
    a.q1 = hn::MulAdd(d, d, a.q1);
  }
}

template <class DD>
HWY_INLINE ShiftedSums SumsOf(DD dd, const RunAccumulators<DD>& a) {
  ShiftedSums sums;
  sums.s1 = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(a.s0, a.s1), hn::Add(a.s2, a.s3))));
  sums.s2 = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(a.q0, a.q1), hn::Add(a.q2, a.q3))));
  return sums;
}

// `readable`: the floats of the tensor from x on (see AddRun).
HWY_INLINE ShiftedSums ShiftedRunSums(const float* HWY_RESTRICT x, size_t runs, size_t stride,
                                      size_t len, float shift, size_t readable) {
  const hn::ScalableTag<double> dd;
  const auto vs = hn::Set(dd, shift);
  auto a = ZeroAccumulators(dd);
  for (size_t r = 0; r < runs; ++r) {
    AddRun(dd, x + r * stride, len, vs, a, readable - r * stride);
  }
  return SumsOf(dd, a);
}

// The accumulators in memory: kRunStateDoubles doubles per channel.
template <class DD>
HWY_INLINE RunAccumulators<DD> LoadState(DD dd, const double* HWY_RESTRICT state) {
  const size_t N = hn::Lanes(dd);
  return {hn::Load(dd, state),         hn::Load(dd, state + N),     hn::Load(dd, state + 2 * N),
          hn::Load(dd, state + 3 * N), hn::Load(dd, state + 4 * N), hn::Load(dd, state + 5 * N),
          hn::Load(dd, state + 6 * N), hn::Load(dd, state + 7 * N)};
}

template <class DD>
HWY_INLINE void StoreState(DD dd, const RunAccumulators<DD>& a, double* HWY_RESTRICT state) {
  const size_t N = hn::Lanes(dd);
  hn::Store(a.s0, dd, state);
  hn::Store(a.s1, dd, state + N);
  hn::Store(a.s2, dd, state + 2 * N);
  hn::Store(a.s3, dd, state + 3 * N);
  hn::Store(a.q0, dd, state + 4 * N);
  hn::Store(a.q1, dd, state + 5 * N);
  hn::Store(a.q2, dd, state + 6 * N);
  hn::Store(a.q3, dd, state + 7 * N);
}

// Adds row r < rows (at x + r * len, with shift shift[r]) to state + r * kRunStateDoubles:
// consecutive channels of one image, read in memory order (and prefetched across rows).
HWY_INLINE void ShiftedRowsToStates(const float* HWY_RESTRICT x, size_t rows, size_t len,
                                    const float* HWY_RESTRICT shift, double* HWY_RESTRICT state) {
  const hn::ScalableTag<double> dd;
  for (size_t r = 0; r < rows; ++r) {
    double* st = state + r * kRunStateDoubles;
    auto a = LoadState(dd, st);
    AddRun(dd, x + r * len, len, hn::Set(dd, shift[r]), a, (rows - r) * len);
    StoreState(dd, a, st);
  }
}

HWY_INLINE ShiftedSums StateSums(const double* HWY_RESTRICT state) {
  const hn::ScalableTag<double> dd;
  return SumsOf(dd, LoadState(dd, state));
}

// Adds four rows of shifted values to the column sums: they are loaded and stored once per
// four rows.
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE void AddColumns4(DD dd, V d0, V d1, V d2, V d3, double* HWY_RESTRICT s1,
                            double* HWY_RESTRICT s2) {
  const V sum = hn::Add(hn::Add(d0, d1), hn::Add(d2, d3));
  const V squares = hn::MulAdd(d3, d3, hn::MulAdd(d2, d2, hn::MulAdd(d1, d1, hn::Mul(d0, d0))));
  hn::StoreU(hn::Add(hn::LoadU(dd, s1), sum), dd, s1);
  hn::StoreU(hn::Add(hn::LoadU(dd, s2), squares), dd, s2);
}

template <class DD, class V = hn::Vec<DD>>
HWY_INLINE void AddColumns1(DD dd, V d, double* HWY_RESTRICT s1, double* HWY_RESTRICT s2) {
  hn::StoreU(hn::Add(hn::LoadU(dd, s1), d), dd, s1);
  hn::StoreU(hn::MulAdd(d, d, hn::LoadU(dd, s2)), dd, s2);
}

HWY_INLINE void ShiftedColumnSums(const float* HWY_RESTRICT x, size_t rows, size_t stride,
                                  size_t cols, const double* HWY_RESTRICT shift,
                                  double* HWY_RESTRICT s1, double* HWY_RESTRICT s2) {
  const hn::ScalableTag<double> dd;
  const size_t N = hn::Lanes(dd);
  const size_t full = cols / N * N;
  const size_t tail = cols - full;
  // Each group of four rows is read as four interleaved streams, which the hardware
  // prefetchers follow poorly from DRAM (measured: 30% below one row at a time), while one row
  // at a time is 3x slower in cache (a load and store of the sums per vector). So four rows,
  // with software prefetches ahead of them. Where a group is contiguous and at most
  // kMaxSequentialGroup long, the prefetches run in memory order, kSequentialAhead or one group
  // ahead: NHWC training statistics with c = 16-512 took 25-40% less time beyond the LLC and
  // up to 20% less in cache than with per-stream prefetches. Longer groups fetch each stream
  // two groups ahead (a memory-order stream a whole group ahead, 16 KiB at c = 1024, measured
  // no faster: it runs out of L1).
  constexpr size_t kSequentialAhead = 1024, kMaxSequentialGroup = 2048;  // floats
  const bool sequential = stride == cols && 4 * cols <= kMaxSequentialGroup;
  const size_t ahead = std::max(kSequentialAhead, 4 * cols);
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* p0 = x + r * stride;
    const float* p1 = p0 + stride;
    const float* p2 = p1 + stride;
    const float* p3 = p2 + stride;
    // Only formed when the prefetched lines lie inside the tensor: a pointer past its end is
    // undefined.
    const bool prefetch = sequential ? (r + 4) * stride + ahead <= rows * stride
                                     : r + 12 <= rows;
    const float* next = !prefetch ? p0 : sequential ? p0 + ahead : p0 + 8 * stride;
    size_t j = 0;
    for (; j < full; j += N) {
      if (prefetch && sequential && 4 * j % 16 == 0) {
        // Floats [4j, 4j + 4N) of the group are consumed per iteration: a line per 16.
        for (size_t k = 0; k < 4 * N; k += 16) hwy::Prefetch(next + 4 * j + k);
      } else if (prefetch && !sequential && j % 16 == 0) {
        hwy::Prefetch(next + j);
        hwy::Prefetch(next + stride + j);
        hwy::Prefetch(next + 2 * stride + j);
        hwy::Prefetch(next + 3 * stride + j);
      }
      const auto vs = hn::LoadU(dd, shift + j);
      AddColumns4(dd, ShiftedLoad(dd, p0 + j, vs), ShiftedLoad(dd, p1 + j, vs),
                  ShiftedLoad(dd, p2 + j, vs), ShiftedLoad(dd, p3 + j, vs), s1 + j, s2 + j);
    }
    if (tail != 0) {
      const auto vs = hn::LoadU(dd, shift + j);
      AddColumns4(dd, ShiftedTailLoad(dd, p0 + j, tail, vs), ShiftedTailLoad(dd, p1 + j, tail, vs),
                  ShiftedTailLoad(dd, p2 + j, tail, vs), ShiftedTailLoad(dd, p3 + j, tail, vs),
                  s1 + j, s2 + j);
    }
  }
  for (; r < rows; ++r) {
    const float* p = x + r * stride;
    size_t j = 0;
    for (; j < full; j += N) {
      AddColumns1(dd, ShiftedLoad(dd, p + j, hn::LoadU(dd, shift + j)), s1 + j, s2 + j);
    }
    if (tail != 0) {
      AddColumns1(dd, ShiftedTailLoad(dd, p + j, tail, hn::LoadU(dd, shift + j)), s1 + j, s2 + j);
    }
  }
}

// ShiftFor (moments.h), lane by lane.
template <class V>
HWY_INLINE V ShiftsFor(V first) {
  // first - first is 0 when first is finite and NaN otherwise, so it equals itself exactly
  // when first is finite: two operations before the select, where IsFinite takes four on AVX2.
  const V zero_if_finite = hn::Sub(first, first);
  return hn::IfThenElseZero(hn::Eq(zero_if_finite, zero_if_finite), first);
}

// MomentsFromSums (moments.h) lane by lane, before the offset: the mean about the shift and m2.
template <class V>
struct ShiftedMoments {
  V mean_shifted, m2;
};
// The same from mean_shifted = s1 / count.
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE ShiftedMoments<V> MomentsOfQuotient(DD dd, V mean_shifted, V s1, V s2) {
  const V m2 = hn::Sub(s2, hn::Mul(s1, mean_shifted));
  // Rounding may take m2 a few ulp below 0; the comparison keeps NaN.
  return {mean_shifted, hn::IfThenZeroElse(hn::Lt(m2, hn::Zero(dd)), m2)};
}
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE ShiftedMoments<V> MomentsOfSums(DD dd, V count, V s1, V s2) {
  return MomentsOfQuotient(dd, hn::Div(s1, count), s1, s2);
}

HWY_INLINE void FirstValuesAsShifts(const float* HWY_RESTRICT x, size_t known, size_t count,
                                    double* HWY_RESTRICT shift) {
  const hn::ScalableTag<double> dd;
  const size_t N = hn::Lanes(dd);
  size_t j = 0;
  for (; j + N <= known; j += N) {
    hn::StoreU(ShiftsFor(ShiftedLoad(dd, x + j, hn::Zero(dd))), dd, shift + j);
  }
  if (j < known) {
    hn::StoreU(ShiftsFor(ShiftedTailLoad(dd, x + j, known - j, hn::Zero(dd))), dd, shift + j);
    j += N;
  }
  for (; j < count; ++j) shift[j] = 0.0;
}

// MergeColumnSums for the Lanes(dd) columns from ch: each column's moments from its sums, as
// MomentsFromSums, merged into the totals as MergeMoments does, lane by lane.
template <class DD>
HWY_INLINE void MergeColumnsStep(DD dd, bool first, size_t ch, double count, size_t extra,
                                 const double* HWY_RESTRICT shift, const double* HWY_RESTRICT s1,
                                 const double* HWY_RESTRICT s2,
                                 const double* HWY_RESTRICT reference,
                                 double* HWY_RESTRICT total_count,
                                 double* HWY_RESTRICT total_mean,
                                 double* HWY_RESTRICT total_m2) {
  using V = hn::Vec<DD>;
  const V zero = hn::Zero(dd);
  const V one_more = hn::IfThenElseZero(hn::FirstN(dd, extra > ch ? extra - ch : 0),
                                        hn::Set(dd, 1.0));
  const V nb = hn::Add(hn::Set(dd, count), one_more);
  const ShiftedMoments<V> b =
      MomentsOfSums(dd, nb, hn::LoadU(dd, s1 + ch), hn::LoadU(dd, s2 + ch));
  const V offset = hn::Sub(hn::LoadU(dd, shift + ch), hn::LoadU(dd, reference + ch));
  const V mb = hn::Add(offset, b.mean_shifted);
  const V m2b = b.m2;

  if (first) {  // nothing to merge with yet
    hn::StoreU(nb, dd, total_count + ch);
    hn::StoreU(mb, dd, total_mean + ch);
    hn::StoreU(m2b, dd, total_m2 + ch);
    return;
  }
  const V na = hn::LoadU(dd, total_count + ch);
  const auto a_empty = hn::Eq(na, zero);
  const V ma = hn::LoadU(dd, total_mean + ch);
  const V m2a = hn::LoadU(dd, total_m2 + ch);
  const V n = hn::Add(na, nb);
  const V delta = hn::Sub(mb, ma);
  const V b_share = hn::Div(nb, n);
  V mean = hn::Add(ma, hn::Mul(delta, b_share));
  const auto finite = hn::IsFinite(delta);
  if (!hn::AllTrue(dd, finite)) {
    const V weighted = hn::Add(hn::Mul(ma, hn::Div(na, n)), hn::Mul(mb, b_share));
    mean = hn::IfThenElse(finite, mean, weighted);
  }
  const V m2 = hn::Add(hn::Add(m2a, m2b), hn::Mul(hn::Mul(delta, delta), hn::Mul(na, b_share)));
  // An empty side leaves the other as it is (nb is 0 only in columns without values).
  const auto b_empty = hn::Eq(nb, zero);
  hn::StoreU(n, dd, total_count + ch);
  hn::StoreU(hn::IfThenElse(b_empty, ma, hn::IfThenElse(a_empty, mb, mean)), dd,
             total_mean + ch);
  hn::StoreU(hn::IfThenElse(b_empty, m2a, hn::IfThenElse(a_empty, m2b, m2)), dd, total_m2 + ch);
}

HWY_INLINE void MergeColumns(bool first, size_t c, double count, size_t extra,
                             const double* HWY_RESTRICT shift, const double* HWY_RESTRICT s1,
                             const double* HWY_RESTRICT s2, const double* HWY_RESTRICT reference,
                             double* HWY_RESTRICT total_count, double* HWY_RESTRICT total_mean,
                             double* HWY_RESTRICT total_m2) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> d1;
  const size_t N = hn::Lanes(dd);
  size_t ch = 0;
  for (; ch + N <= c; ch += N) {
    MergeColumnsStep(dd, first, ch, count, extra, shift, s1, s2, reference, total_count,
                     total_mean, total_m2);
  }
  for (; ch < c; ++ch) {
    MergeColumnsStep(d1, first, ch, count, extra, shift, s1, s2, reference, total_count,
                     total_mean, total_m2);
  }
}

// moments[ch] = {count[ch], reference[ch] + mean[ch], m2[ch]} for ch < c.
HWY_INLINE void InterleaveMoments(size_t c, const double* HWY_RESTRICT reference,
                                  const double* HWY_RESTRICT count,
                                  const double* HWY_RESTRICT mean,
                                  const double* HWY_RESTRICT m2,
                                  simdbn_moments* HWY_RESTRICT moments) {
  const hn::ScalableTag<double> dd;
  const size_t N = hn::Lanes(dd);
  size_t ch = 0;
  for (; ch + N <= c; ch += N) {
    hn::StoreInterleaved3(hn::LoadU(dd, count + ch),
                          hn::Add(hn::LoadU(dd, reference + ch), hn::LoadU(dd, mean + ch)),
                          hn::LoadU(dd, m2 + ch), dd, &moments[ch].count);
  }
  for (; ch < c; ++ch) moments[ch] = {count[ch], reference[ch] + mean[ch], m2[ch]};
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_MOMENTS_INL_H_
