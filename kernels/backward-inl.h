// Per-target loops of the backward pass (see backward.h): the two per-channel sums, and dx.

// Per-target include guard, as Highway's own -inl.h headers do.
#if defined(SIMDBN_KERNELS_BACKWARD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDBN_KERNELS_BACKWARD_INL_H_
#undef SIMDBN_KERNELS_BACKWARD_INL_H_
#else
#define SIMDBN_KERNELS_BACKWARD_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/affine-inl.h"  // PlainMemory, StreamMemory, MaskedMemory, StreamPeel
#include "kernels/backward.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// dx is only written by the frozen-statistics reductions; elsewhere the pointer may be null and
// must not be offset.
template <bool kWriteDx, class T>
HWY_INLINE T* Advance(T* p, size_t i) {
  if constexpr (kWriteDx) {
    return p + i;
  } else {
    (void)i;
    return nullptr;
  }
}

// Double vectors that take the lanes of an f32 vector of D: half as many lanes, or one lane on
// HWY_SCALAR (the fallback target where GCC < 12.3 cannot build EMU128).
#if HWY_TARGET == HWY_SCALAR
template <class D>
using DoubleOf = hn::Rebind<double, D>;
#else
template <class D>
using DoubleOf = hn::Repartition<double, D>;
#endif

// Adds the lanes of an f32 vector into a double vector (exactly: doubles hold every f32).
template <class D>
HWY_INLINE void AddToDouble(D d, hn::Vec<D> v, hn::Vec<DoubleOf<D>>& total) {
  const DoubleOf<D> dd;
#if HWY_TARGET == HWY_SCALAR
  (void)d;
  total = hn::Add(total, hn::PromoteTo(dd, v));
#else
  const hn::Half<D> dh;
  (void)d;
  total = hn::Add(total, hn::PromoteTo(dd, hn::LowerHalf(dh, v)));
  total = hn::Add(total, hn::PromoteTo(dd, hn::UpperHalf(dh, v)));
#endif
}

// One vector of both sums with register accumulators (and dx = dy * k if kWriteDx). With a
// masked memory, the masked-off lanes load as 0 and their x - mean is zeroed too, so that an
// infinite mean does not turn them into 0 * Inf = NaN.
template <bool kWriteDx, class D, class Mem, class V = hn::Vec<D>>
HWY_INLINE void SumStep(D d, const Mem& mem, const float* x, const float* dy, float* dx, V mean,
                        V k, V& sum_dy, V& sum_dy_xmean) {
  const V g = mem.Load(d, dy);
  const V xmean = mem.Keep(d, hn::Sub(mem.Load(d, x), mean));
  sum_dy = hn::Add(sum_dy, g);
  sum_dy_xmean = hn::MulAdd(g, xmean, sum_dy_xmean);
  if constexpr (kWriteDx) mem.Store(hn::Mul(g, k), d, dx);
}

// Both sums of one contiguous run of one channel. Four accumulators per sum hide the add
// latency; after kChunkTerms steps they are merged pairwise and move into double. An f32 lane
// thus rounds at most kChunkTerms - 1 + 2 additions: (kChunkTerms + 1) u of the terms'
// magnitudes to first order, for any run length.
template <bool kWriteDx>
HWY_INLINE ChannelSums RunSums(const float* x, const float* dy, float* dx, size_t count, float mean,
                               float k) {
  const hn::ScalableTag<float> d;
  const DoubleOf<decltype(d)> dd;
  const size_t N = hn::Lanes(d);
  const PlainMemory plain;
  const auto m = hn::Set(d, mean), kv = hn::Set(d, k);
  auto total_dy = hn::Zero(dd), total_dy_xmean = hn::Zero(dd);

  size_t i = 0;
  while (i + 4 * N <= count) {
    auto s0 = hn::Zero(d), s1 = s0, s2 = s0, s3 = s0;
    auto p0 = hn::Zero(d), p1 = p0, p2 = p0, p3 = p0;
    for (int64_t step = 0; step < kChunkTerms && i + 4 * N <= count; ++step, i += 4 * N) {
      SumStep<kWriteDx>(d, plain, x + i, dy + i, Advance<kWriteDx>(dx, i), m, kv, s0, p0);
      SumStep<kWriteDx>(d, plain, x + i + N, dy + i + N, Advance<kWriteDx>(dx, i + N), m, kv, s1,
                        p1);
      SumStep<kWriteDx>(d, plain, x + i + 2 * N, dy + i + 2 * N, Advance<kWriteDx>(dx, i + 2 * N),
                        m, kv, s2, p2);
      SumStep<kWriteDx>(d, plain, x + i + 3 * N, dy + i + 3 * N, Advance<kWriteDx>(dx, i + 3 * N),
                        m, kv, s3, p3);
    }
    AddToDouble(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3)), total_dy);
    AddToDouble(d, hn::Add(hn::Add(p0, p1), hn::Add(p2, p3)), total_dy_xmean);
  }

  auto s = hn::Zero(d), p = hn::Zero(d);
  for (; i + N <= count; i += N) {
    SumStep<kWriteDx>(d, plain, x + i, dy + i, Advance<kWriteDx>(dx, i), m, kv, s, p);
  }
  double tail_dy = 0.0, tail_dy_xmean = 0.0;
  if (i < count) {
#if !HWY_MEM_OPS_MIGHT_FAULT
    const MaskedMemory<decltype(d)> masked{hn::FirstN(d, count - i)};
    SumStep<kWriteDx>(d, masked, x + i, dy + i, Advance<kWriteDx>(dx, i), m, kv, s, p);
#else
    const hn::CappedTag<float, 1> d1;
    auto s1 = hn::Zero(d1), p1 = hn::Zero(d1);
    for (; i < count; ++i) {
      SumStep<kWriteDx>(d1, plain, x + i, dy + i, Advance<kWriteDx>(dx, i), hn::Set(d1, mean),
                        hn::Set(d1, k), s1, p1);
    }
    tail_dy = hn::GetLane(s1);
    tail_dy_xmean = hn::GetLane(p1);
#endif
  }
  AddToDouble(d, s, total_dy);
  AddToDouble(d, p, total_dy_xmean);
  return {hn::GetLane(hn::SumOfLanes(dd, total_dy)) + tail_dy,
          hn::GetLane(hn::SumOfLanes(dd, total_dy_xmean)) + tail_dy_xmean};
}

// One vector of both sums into accumulator arrays indexed like the data (by-pixel layouts,
// where neighbouring lanes belong to different channels).
template <bool kWriteDx, class D, class Mem>
HWY_INLINE void ArrayStep(D d, const Mem& mem, const float* x, const float* dy, float* dx,
                          const float* mean, const float* k, float* acc_dy, float* acc_dy_xmean) {
  const auto g = mem.Load(d, dy);
  const auto xmean = hn::Sub(mem.Load(d, x), mem.Load(d, mean));
  hn::StoreU(hn::Add(hn::LoadU(d, acc_dy), g), d, acc_dy);
  hn::StoreU(hn::MulAdd(g, xmean, hn::LoadU(d, acc_dy_xmean)), d, acc_dy_xmean);
  if constexpr (kWriteDx) mem.Store(hn::Mul(g, mem.Load(d, k)), d, dx);
}

// Adds a segment of `count` values to acc[0, count); mean[i] (and k[i]) belong to value i.
template <bool kWriteDx>
HWY_INLINE void SegmentSums(const float* x, const float* dy, float* dx, size_t count,
                            const float* mean, const float* k, float* acc_dy, float* acc_dy_xmean) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const PlainMemory plain;
  size_t i = 0;
  for (; i + N <= count; i += N) {
    ArrayStep<kWriteDx>(d, plain, x + i, dy + i, Advance<kWriteDx>(dx, i), mean + i,
                        Advance<kWriteDx>(k, i), acc_dy + i, acc_dy_xmean + i);
  }
  if (i == count) return;
#if !HWY_MEM_OPS_MIGHT_FAULT
  // The accumulators are padded by a vector: their masked-off lanes add zeros.
  const MaskedMemory<decltype(d)> masked{hn::FirstN(d, count - i)};
  ArrayStep<kWriteDx>(d, masked, x + i, dy + i, Advance<kWriteDx>(dx, i), mean + i,
                      Advance<kWriteDx>(k, i), acc_dy + i, acc_dy_xmean + i);
#else
  const hn::CappedTag<float, 1> d1;
  for (; i < count; ++i) {
    ArrayStep<kWriteDx>(d1, plain, x + i, dy + i, Advance<kWriteDx>(dx, i), mean + i,
                        Advance<kWriteDx>(k, i), acc_dy + i, acc_dy_xmean + i);
  }
#endif
}

// Adds acc[0, count) to sums[0, count) in double and clears acc.
HWY_INLINE void FlushRun(float* HWY_RESTRICT acc, size_t count, double* HWY_RESTRICT sums) {
  size_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> d;
  const hn::Half<decltype(d)> dh;
  const DoubleOf<decltype(d)> dd;
  const size_t N = hn::Lanes(d), half = hn::Lanes(dd);
  for (; i + N <= count; i += N) {
    const auto v = hn::LoadU(d, acc + i);
    hn::StoreU(hn::Add(hn::LoadU(dd, sums + i), hn::PromoteTo(dd, hn::LowerHalf(dh, v))), dd,
               sums + i);
    hn::StoreU(hn::Add(hn::LoadU(dd, sums + i + half), hn::PromoteTo(dd, hn::UpperHalf(dh, v))), dd,
               sums + i + half);
    hn::StoreU(hn::Zero(d), d, acc + i);
  }
#endif
  for (; i < count; ++i) {
    sums[i] += acc[i];
    acc[i] = 0.0f;
  }
}

// Moves acc[0, count), whose position i has channel (c0 + i) % c, into the slots of those
// channels: run by run of consecutive channels.
HWY_INLINE void FlushArrays(float* acc_dy, float* acc_dy_xmean, size_t count, size_t c, size_t c0,
                            const Slots& slots) {
  for (size_t i = 0, ch = c0; i < count; ch = 0) {
    const size_t run = std::min(count - i, c - ch);
    FlushRun(acc_dy + i, run, slots.dy + ch);
    FlushRun(acc_dy_xmean + i, run, slots.dy_xmean + ch);
    i += run;
  }
}

// Rows (NCHW): each row is one run of one channel.
template <bool kWriteDx>
HWY_INLINE void ReduceRowsSlice(const ReduceArgs& a, const Slice& slice, int64_t num_slots,
                                const Slots& slots) {
  std::fill(slots.dy, slots.dy + num_slots, 0.0);
  std::fill(slots.dy_xmean, slots.dy_xmean + num_slots, 0.0);
  const size_t count = static_cast<size_t>(slice.col_end - slice.col_begin);
  int64_t ch = slice.row_begin % a.c;  // advances with the row: no division per row
  for (int64_t row = slice.row_begin; row < slice.row_end; ++row, ch = ch + 1 == a.c ? 0 : ch + 1) {
    const size_t offset = static_cast<size_t>(row * a.cols + slice.col_begin);
    const ChannelSums sums =
        RunSums<kWriteDx>(a.x + offset, a.dy + offset, Advance<kWriteDx>(a.dx, offset), count,
                          a.mean[ch], kWriteDx ? a.dy_scale[ch] : 0.0f);
    const int64_t slot = a.slot_per_channel ? ch : row - slice.row_begin;
    slots.dy[slot] += sums.dy;
    slots.dy_xmean[slot] += sums.dy_xmean;
  }
}

// Pixels (NHWC, or spatial == 1): an item is the channels [col_begin, col_end) of whole pixels.
// With a period and all channels, the item is one flat run whose position i has channel i % c,
// accumulated period by period; otherwise each pixel's channels are cut into blocks. Either way
// each f32 accumulator takes kChunkTerms terms at most.
template <bool kWriteDx>
HWY_INLINE void ReducePixelsSlice(const ReduceArgs& a, const Slice& slice, const Slots& slots) {
  const size_t c = static_cast<size_t>(a.c);
  const size_t first = static_cast<size_t>(slice.col_begin);
  const size_t last = static_cast<size_t>(slice.col_end);
  std::fill(slots.dy + first, slots.dy + last, 0.0);
  std::fill(slots.dy_xmean + first, slots.dy_xmean + last, 0.0);
  // Only the part in use is cleared (a masked tail may touch one vector past it).
  HWY_ALIGN float acc_dy[kMaxPeriod + kMaxLanes];
  HWY_ALIGN float acc_dy_xmean[kMaxPeriod + kMaxLanes];
  const bool flat = a.period != 0 && first == 0 && last == c;
  const size_t used =
      (flat ? static_cast<size_t>(a.period) : std::min<size_t>(last - first, kMaxPeriod)) +
      kMaxLanes;
  std::fill(acc_dy, acc_dy + used, 0.0f);
  std::fill(acc_dy_xmean, acc_dy_xmean + used, 0.0f);
  const size_t rows = static_cast<size_t>(slice.row_end - slice.row_begin);
  const size_t begin = static_cast<size_t>(slice.row_begin) * c;

  if (flat) {
    const size_t period = static_cast<size_t>(a.period);
    const size_t count = rows * c;
    int64_t periods = 0;
    for (size_t i = 0; i < count; i += period) {
      const size_t at = begin + i;
      SegmentSums<kWriteDx>(a.x + at, a.dy + at, Advance<kWriteDx>(a.dx, at),
                            std::min(period, count - i), a.mean, a.dy_scale, acc_dy, acc_dy_xmean);
      if (++periods == kChunkTerms) {
        FlushArrays(acc_dy, acc_dy_xmean, period, c, 0, slots);
        periods = 0;
      }
    }
    FlushArrays(acc_dy, acc_dy_xmean, period, c, 0, slots);
    return;
  }

  // The per-channel arrays have c entries at least (a period is a multiple of c).
  for (size_t block = first; block < last; block += kMaxPeriod) {
    const size_t width = std::min<size_t>(kMaxPeriod, last - block);
    int64_t pixels = 0;
    for (size_t r = 0; r < rows; ++r) {
      const size_t at = begin + r * c + block;
      SegmentSums<kWriteDx>(a.x + at, a.dy + at, Advance<kWriteDx>(a.dx, at), width, a.mean + block,
                            Advance<kWriteDx>(a.dy_scale, block), acc_dy, acc_dy_xmean);
      if (++pixels == kChunkTerms) {
        FlushArrays(acc_dy, acc_dy_xmean, width, c, block, slots);
        pixels = 0;
      }
    }
    FlushArrays(acc_dy, acc_dy_xmean, width, c, block, slots);
  }
}

template <bool kStream_, bool kDyOnly_, bool kPrescale_ = false>
struct DxConfig {
  static constexpr bool kStream = kStream_, kDyOnly = kDyOnly_, kPrescale = kPrescale_;
};

// kPrescale (x_prescale of DxConstants) only where some channel needs it: ordinary data keeps
// its loop, without the extra multiply.
template <class F>
HWY_INLINE void WithDxConfig(bool stream, bool dy_only, bool prescale, const F& f) {
  if (stream) {
    if (dy_only) return f(DxConfig<true, true>{});
    prescale ? f(DxConfig<true, false, true>{}) : f(DxConfig<true, false>{});
  } else {
    if (dy_only) return f(DxConfig<false, true>{});
    prescale ? f(DxConfig<false, false, true>{}) : f(DxConfig<false, false>{});
  }
}

// dx = (dy - dy_mean) * dy_scale + (x - mean) * x_scale, x - mean first times x_prescale under
// kPrescale (DxConstantsFor). Both differences are formed first: centring x keeps data far from
// zero from cancelling, and dy - dy_mean is exact where it cancels completely.
// Loads now and returns the function that computes and stores, as AffineStep (affine-inl.h).
template <class Cfg, class D, class Mem, class V = hn::Vec<D>>
HWY_INLINE auto DxStep(D d, const Mem& mem, const float* x, const float* dy, float* dx, V mean,
                       V x_prescale, V x_scale, V dy_scale, V dy_mean) {
  const V g = mem.Load(d, dy);
  // Frozen statistics (kDyOnly) read dy and dy_scale only; x_prescale only under kPrescale.
  const V in = Cfg::kDyOnly ? g : mem.Load(d, x);
  return [=]() {
    if constexpr (Cfg::kDyOnly) {
      mem.Store(hn::Mul(g, dy_scale), d, dx);
    } else {
      V xmean = hn::Sub(in, mean);
      if constexpr (Cfg::kPrescale) xmean = hn::Mul(xmean, x_prescale);
      mem.Store(hn::MulAdd(hn::Sub(g, dy_mean), dy_scale, hn::Mul(xmean, x_scale)), d, dx);
    }
  };
}

struct Constants {
  float mean, x_scale, dy_scale, dy_mean, x_prescale;
};

// One channel's contiguous run, constants broadcast.
template <class Cfg>
HWY_INLINE void DxRun(const float* x, const float* dy, float* dx, size_t count,
                      const Constants& k) {
  RunWalk<Cfg>(dx, count, [&](auto dv, const auto& memory, size_t i) {
    return DxStep<Cfg>(dv, memory, x + i, dy + i, dx + i, hn::Set(dv, k.mean),
                       hn::Set(dv, k.x_prescale), hn::Set(dv, k.x_scale), hn::Set(dv, k.dy_scale),
                       hn::Set(dv, k.dy_mean));
  });
}

// A run over whole or partial pixels: x[i] has channel (c0 + i) % c and the constants are in
// periodic form (affine.h), walked by PeriodicWalk (affine-inl.h).
template <class Cfg>
HWY_INLINE void DxPeriodicRun(const DxArgs& a, size_t offset, size_t count, size_t c0) {
  const size_t period = static_cast<size_t>(PeriodOf(a.c));
  const float* x = a.x + offset;
  const float* dy = a.dy + offset;
  float* dx = a.dx + offset;
  // Locals, not a's members: the compiler cannot tell that stores to dx leave `a` unchanged and
  // would reload every pointer after every store.
  const float* HWY_RESTRICT mean = a.mean;
  const float* HWY_RESTRICT x_scale = a.x_scale;
  const float* HWY_RESTRICT dy_scale = a.dy_scale;
  const float* HWY_RESTRICT dy_mean = a.dy_mean;
  const float* HWY_RESTRICT x_prescale = a.x_prescale;
  const auto step = [&](auto dv, const auto& memory, size_t i, size_t ch) {
    // Frozen statistics come without mean, x_scale and dy_mean: only dy_scale is read.
    const auto load = [&](const float* p, auto used) {
      if constexpr (decltype(used)::value) {
        return hn::LoadU(dv, p + ch);
      } else {
        (void)p;
        return hn::Zero(dv);
      }
    };
    using Sums = std::bool_constant<!Cfg::kDyOnly>;
    return DxStep<Cfg>(dv, memory, x + i, dy + i, dx + i, load(mean, Sums{}),
                       load(x_prescale, std::bool_constant<Cfg::kPrescale>{}),
                       load(x_scale, Sums{}), hn::LoadU(dv, dy_scale + ch), load(dy_mean, Sums{}));
  };

  PeriodicWalk<Cfg>(dx, count, period, c0, step);
}

HWY_INLINE void DxRowsSlice(const DxArgs& a, const Slice& slice) {
  WithDxConfig(a.stream, a.dy_only, a.x_prescale != nullptr, [&](auto cfg) {
    using Cfg = decltype(cfg);
    const size_t count = static_cast<size_t>(slice.col_end - slice.col_begin);
    // The channel advances with the row: one division per slice, not per row.
    int64_t ch = slice.row_begin % a.c;
    for (int64_t row = slice.row_begin; row < slice.row_end;
         ++row, ch = ch + 1 == a.c ? 0 : ch + 1) {
      const int64_t offset = row * a.cols + slice.col_begin;
      const Constants k = Cfg::kDyOnly
                              ? Constants{0.0f, 0.0f, a.dy_scale[ch], 0.0f, 1.0f}
                              : Constants{a.mean[ch], a.x_scale[ch], a.dy_scale[ch], a.dy_mean[ch],
                                          Cfg::kPrescale ? a.x_prescale[ch] : 1.0f};
      DxRun<Cfg>(a.x + offset, a.dy + offset, a.dx + offset, count, k);
    }
    if constexpr (Cfg::kStream) hwy::FlushStream();
  });
}

HWY_INLINE void DxPixelsSlice(const DxArgs& a, const Slice& slice) {
  WithDxConfig(a.stream, a.dy_only, a.x_prescale != nullptr, [&](auto cfg) {
    using Cfg = decltype(cfg);
    // Whole pixels are one flat run starting at channel 0; a piece of a pixel starts mid-way.
    const int64_t offset = slice.row_begin * a.cols + slice.col_begin;
    const int64_t count =
        (slice.row_end - slice.row_begin - 1) * a.cols + slice.col_end - slice.col_begin;
    DxPeriodicRun<Cfg>(a, static_cast<size_t>(offset), static_cast<size_t>(count),
                       static_cast<size_t>(slice.col_begin));
    if constexpr (Cfg::kStream) hwy::FlushStream();
  });
}

// A whole NCHW channel: its n runs are reduced, then differentiated while still in cache.
HWY_INLINE void BackwardChannelImpl(const ChannelArgs& a, int64_t ch, ChannelSums* out) {
  const BackwardTensors& t = a.t;
  const size_t spatial = static_cast<size_t>(a.spatial);
  const float mean = t.mean[ch];
  ChannelSums sums{0.0, 0.0};
  for (int64_t i = 0; i < a.n; ++i) {
    const size_t offset = static_cast<size_t>((i * a.c + ch) * a.spatial);
    const ChannelSums run =
        RunSums<false>(t.x + offset, t.dy + offset, nullptr, spatial, mean, 0.0f);
    sums.dy += run.dy;
    sums.dy_xmean += run.dy_xmean;
  }
  *out = sums;
  const DxConstants k = DxConstantsFor(sums, t.gamma != nullptr ? t.gamma[ch] : 1.0, t.invstd[ch],
                                       static_cast<double>(a.n * a.spatial), /*frozen=*/false);
  WithDxConfig(a.stream, false, k.x_prescale != 1.0f, [&](auto cfg) {
    using Cfg = decltype(cfg);
    for (int64_t i = 0; i < a.n; ++i) {
      const size_t offset = static_cast<size_t>((i * a.c + ch) * a.spatial);
      DxRun<Cfg>(t.x + offset, t.dy + offset, t.dx + offset, spatial,
                 {mean, k.x_scale, k.dy_scale, k.dy_mean, k.x_prescale});
    }
    if constexpr (Cfg::kStream) hwy::FlushStream();
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_BACKWARD_INL_H_
