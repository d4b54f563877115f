// Per-target training forward of by-pixel tensors with few pixels (see FewPixelsTraining in
// training.h): a block of channels at a time, its moments, its per-channel outputs and its
// normalization while its values are in L1.
#include <algorithm>
#include <cstddef>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/training_few_pixels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/affine-inl.h"    // AffineStep
#include "kernels/finalize-inl.h"  // FinalizeRange
#include "kernels/moments-inl.h"   // ShiftedLoad
#include "kernels/training.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Moments of channels [ch, ch + K * Lanes(dd)) over the rows: each channel is one chunk,
// summed about its first value as BatchMoments sums every chunk (moments.h). K vectors of
// channels at once: one vector's sums down the rows are a chain of dependent additions.
template <size_t K, class DD>
HWY_INLINE void FewPixelsMomentsStep(DD dd, const FewPixelsRows& rows, size_t ch,
                                     simdbn_moments* HWY_RESTRICT m) {
  const hn::Rebind<float, DD> df;
  using V = hn::Vec<DD>;
  const size_t N = hn::Lanes(dd), c = static_cast<size_t>(rows.c);
  V shift[K], s1[K], s2[K];
  for (size_t k = 0; k < K; ++k) {
    const V first = hn::PromoteTo(dd, hn::LoadU(df, rows.x + ch + k * N));
    shift[k] = ShiftsFor(first);
    s1[k] = hn::Zero(dd);
    s2[k] = hn::Zero(dd);
  }
  for (size_t r = 0; r < static_cast<size_t>(rows.pixels); ++r) {
    for (size_t k = 0; k < K; ++k) {
      const V d = ShiftedLoad(dd, rows.x + r * c + ch + k * N, shift[k]);
      s1[k] = hn::Add(s1[k], d);
      s2[k] = hn::MulAdd(d, d, s2[k]);
    }
  }
  const V count = hn::Set(dd, static_cast<double>(rows.pixels));
  for (size_t k = 0; k < K; ++k) {
    const ShiftedMoments<V> chunk = MomentsOfSums(dd, count, s1[k], s2[k]);
    hn::StoreInterleaved3(count, hn::Add(shift[k], chunk.mean_shifted), chunk.m2, dd,
                          &m[k * N].count);
  }
}

// moments[0, end - begin) of channels [begin, end).
HWY_INLINE void FewPixelsMomentsRange(const FewPixelsRows& rows, size_t begin, size_t end,
                                      simdbn_moments* HWY_RESTRICT moments) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> d1;
  const size_t N = hn::Lanes(dd);
  size_t ch = begin;
  for (; ch + 4 * N <= end; ch += 4 * N) {
    FewPixelsMomentsStep<4>(dd, rows, ch, moments + (ch - begin));
  }
  for (; ch + N <= end; ch += N) FewPixelsMomentsStep<1>(dd, rows, ch, moments + (ch - begin));
  for (; ch < end; ++ch) FewPixelsMomentsStep<1>(d1, rows, ch, moments + (ch - begin));
}

// y of the `width` channels at rows.x of every row (the first of a block), with the block's
// constants k[0, width), by the affine map's step and walk (the bits of AffineNhwc; RunWalk
// loads four vectors before storing any). No HWY_RESTRICT: y may be x.
HWY_INLINE void FewPixelsNormalize(const FewPixelsRows& rows, const ChannelConstants& k,
                                   size_t width, float* y) {
  using Cfg = AffineConfig</*kCenter=*/true, false, false, /*kStream=*/false>;
  const size_t c = static_cast<size_t>(rows.c);
  for (size_t row = 0; row < static_cast<size_t>(rows.pixels); ++row) {
    const size_t at = row * c;
    RunWalk<Cfg>(y + at, width, [&](auto dv, const auto& memory, size_t i) {
      return AffineStep<Cfg>(dv, memory, rows.x + at + i, nullptr, y + at + i,
                             memory.Load(dv, k.center + i), memory.Load(dv, k.scale + i),
                             memory.Load(dv, k.bias + i));
    });
  }
}

void FewPixelsMomentsF32(const FewPixelsRows& rows, int64_t begin, int64_t end,
                         simdbn_moments* moments) {
  FewPixelsMomentsRange(rows, static_cast<size_t>(begin), static_cast<size_t>(end),
                        moments + begin);
}

// params with each array advanced by `first` channels: a block's view of them.
HWY_INLINE ChannelParams Advanced(const ChannelParams& p, size_t first) {
  const auto at = [first](auto* a) { return a != nullptr ? a + first : a; };
  return {at(p.gamma),        at(p.beta),        p.eps,           p.momentum,
          at(p.running_mean), at(p.running_var), at(p.save_mean), at(p.save_invstd)};
}

// The block's constants stay in L1: arrays of c (as TrainWithMoments uses) would move 36 bytes
// a channel more through L2 and L3 (written, read back, and read for ownership first).
void FewPixelsTrainingF32(const FewPixelsRows& rows, int64_t begin, int64_t end,
                          const ChannelParams& params, float* y) {
  simdbn_moments moments[kFewPixelsBlock];
  HWY_ALIGN float center[kFewPixelsBlock], scale[kFewPixelsBlock], bias[kFewPixelsBlock];
  const ChannelConstants k{center, scale, bias};
  const UniformReciprocals uniform = ReciprocalsOf(static_cast<double>(rows.pixels));
  for (int64_t ch = begin; ch < end; ch += kFewPixelsBlock) {
    const int64_t last = std::min(end, ch + kFewPixelsBlock);
    const size_t b = static_cast<size_t>(ch), e = static_cast<size_t>(last);
    FewPixelsMomentsRange(rows, b, e, moments);
    FinalizeRange(Advanced(params, b), 0, e - b, moments, uniform, k);
    FewPixelsNormalize({rows.x + b, rows.pixels, rows.c}, k, e - b, y + b);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace simdbn {

HWY_EXPORT(FewPixelsMomentsF32);
HWY_EXPORT(FewPixelsTrainingF32);

void FewPixelsMoments(const FewPixelsRows& rows, int64_t begin, int64_t end,
                      simdbn_moments* moments) {
  HWY_DYNAMIC_DISPATCH(FewPixelsMomentsF32)(rows, begin, end, moments);
}

void FewPixelsTraining(const FewPixelsRows& rows, int64_t begin, int64_t end,
                       const ChannelParams& params, float* y) {
  HWY_DYNAMIC_DISPATCH(FewPixelsTrainingF32)(rows, begin, end, params, y);
}

}  // namespace simdbn
#endif  // HWY_ONCE
