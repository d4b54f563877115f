// Per-target training forward of by-pixel tensors with few pixels (see FewPixelsTraining in
// training.h): a block of channels at a time, its moments, its per-channel outputs and its
// normalization while its values are in cache (L1 up to 16 pixels, L2 up to 64).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/training_few_pixels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/affine-inl.h"    // AffineStep
#include "kernels/finalize-inl.h"  // FinalizeEach
#include "kernels/moments-inl.h"   // ShiftedLoad
#include "kernels/pixel_rows.h"
#include "kernels/training.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The moments of channels [ch, ch + K * Lanes(dd)) over the rows, each channel one chunk summed
// about its first value as BatchMoments sums every chunk (moments.h); out(k, mean, m2) takes
// those of vector k. K vectors at once: one vector's sums down the rows are a chain of
// dependent additions. kPowerOfTwo: the count is a power of two, so that s1 times its exact
// reciprocal rounds the same real number as the quotient does: the same bits, no divider.
template <size_t K, bool kPowerOfTwo, class DD, class Out>
HWY_INLINE void FewPixelsMomentsStep(DD dd, const FewPixelsRows& rows, size_t ch,
                                     const Out& out) {
  const hn::Rebind<float, DD> df;
  using V = hn::Vec<DD>;
  const size_t N = hn::Lanes(dd), c = static_cast<size_t>(rows.c);
  V shift[K], s1[K], s2[K];
  for (size_t k = 0; k < K; ++k) {
    const V first = hn::PromoteTo(dd, hn::LoadU(df, rows.x + ch + k * N));
    shift[k] = ShiftsFor(first);
    // Row 0 from the values already loaded: the sums' bits are those of a loop from zero.
    const V d = Shifted(dd, first, shift[k]);
    s1[k] = hn::Add(hn::Zero(dd), d);
    s2[k] = hn::MulAdd(d, d, hn::Zero(dd));
  }
  for (size_t r = 1; r < static_cast<size_t>(rows.pixels); ++r) {
    for (size_t k = 0; k < K; ++k) {
      const V d = ShiftedLoad(dd, rows.x + r * c + ch + k * N, shift[k]);
      s1[k] = hn::Add(s1[k], d);
      s2[k] = hn::MulAdd(d, d, s2[k]);
    }
  }
  const V count = hn::Set(dd, static_cast<double>(rows.pixels));
  const V per_value = hn::Set(dd, 1.0 / static_cast<double>(rows.pixels));
  for (size_t k = 0; k < K; ++k) {
    const V mean_shifted = kPowerOfTwo ? hn::Mul(s1[k], per_value) : hn::Div(s1[k], count);
    const ShiftedMoments<V> chunk = MomentsOfQuotient(dd, mean_shifted, s1[k], s2[k]);
    out(k, hn::Add(shift[k], chunk.mean_shifted), chunk.m2);
  }
}

// FewPixelsMomentsStep over channels [begin, end): out(d, ch, mean, m2) takes the moments of
// the Lanes(d) channels from ch.
template <bool kPowerOfTwo, class Out>
HWY_INLINE void FewPixelsMomentsOf(const FewPixelsRows& rows, size_t begin, size_t end,
                                   const Out& out) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> d1;
  const size_t N = hn::Lanes(dd);
  size_t ch = begin;
  for (; ch + 4 * N <= end; ch += 4 * N) {
    FewPixelsMomentsStep<4, kPowerOfTwo>(dd, rows, ch, [&](size_t k, auto mean, auto m2) {
      out(dd, ch + k * N, mean, m2);
    });
  }
  for (; ch + N <= end; ch += N) {
    FewPixelsMomentsStep<1, kPowerOfTwo>(dd, rows, ch, [&](size_t, auto mean, auto m2) {
      out(dd, ch, mean, m2);
    });
  }
  for (; ch < end; ++ch) {
    FewPixelsMomentsStep<1, kPowerOfTwo>(d1, rows, ch, [&](size_t, auto mean, auto m2) {
      out(d1, ch, mean, m2);
    });
  }
}

// FewPixelsMomentsOf, kPowerOfTwo chosen by the count.
template <class Out>
HWY_INLINE void FewPixelsMomentsRange(const FewPixelsRows& rows, size_t begin, size_t end,
                                      const Out& out) {
  const auto pixels = static_cast<uint64_t>(rows.pixels);
  (pixels & (pixels - 1)) == 0 ? FewPixelsMomentsOf<true>(rows, begin, end, out)
                               : FewPixelsMomentsOf<false>(rows, begin, end, out);
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

// NCHW rows (rows.spatial != 0) go through copies of at most kTrainingCopyFloats values.
inline constexpr size_t kTrainingCopyFloats = 4096;
static_assert(kTrainingCopyFloats / kMaxNchwFewPixels >= 16,
              "a copy holds 16 channels at least");

void FewPixelsMomentsF32(const FewPixelsRows& rows, int64_t begin, int64_t end,
                         simdbn_moments* moments) {
  const auto count = static_cast<double>(rows.pixels);
  const auto b = static_cast<size_t>(begin), e = static_cast<size_t>(end);
  const auto store_to = [count](simdbn_moments* m) {
    return [count, m](auto d, size_t ch, auto mean, auto m2) {
      hn::StoreInterleaved3(hn::Set(d, count), mean, m2, d, &m[ch].count);
    };
  };
  if (rows.spatial == 0) return FewPixelsMomentsRange(rows, b, e, store_to(moments));
  HWY_ALIGN float buffer[kTrainingCopyFloats];
  for (size_t first = b; first < e;) {
    const NchwCopy block =
        CopyAt(rows.c, rows.spatial, rows.pixels, first, e, kTrainingCopyFloats);
    ToPixelRows(rows.x, block, buffer);
    FewPixelsMomentsRange({buffer, rows.pixels, static_cast<int64_t>(block.width)}, 0,
                          block.width, store_to(moments + first));
    first += block.width;
  }
}

// params with each array advanced by `first` channels: a block's view of them.
HWY_INLINE ChannelParams Advanced(const ChannelParams& p, size_t first) {
  const auto at = [first](auto* a) { return a != nullptr ? a + first : a; };
  return {at(p.gamma),        at(p.beta),        p.eps,           p.momentum,
          at(p.running_mean), at(p.running_var), at(p.save_mean), at(p.save_invstd)};
}

// The step of the block's `width` channels, whose moments are mean and m2.
template <bool kAllGiven>
HWY_INLINE void FinalizeBlock(const ChannelParams& block, size_t width, const double* mean,
                              const double* m2, const UniformReciprocals& uniform,
                              const ChannelConstants& k) {
  const auto inputs = [&](auto d, size_t j) {
    return InputsOf<kAllGiven>(d, block, j, hn::Load(d, mean + j), hn::Load(d, m2 + j),
                               hn::Set(d, uniform.per_value));
  };
  const auto ratios = [&](auto df, size_t) { return hn::Set(df, uniform.dof_ratio); };
  FinalizeEach<kAllGiven>(block, 0, width, inputs, ratios, k);
}

// The block's moments and constants stay in L1, in arrays of their own: arrays of c (as
// TrainWithMoments uses) moved 36 bytes a channel more through L2 and L3 (written, read back,
// and read for ownership first), and the interleaved simdbn_moments cost shuffles both ways
// (1.13-1.2x without, N2_C1000 to N8_C4096).
HWY_INLINE void TrainPixelRows(const FewPixelsRows& rows, int64_t begin, int64_t end,
                               const ChannelParams& params, float* y) {
  HWY_ALIGN double mean[kFewPixelsBlock], m2[kFewPixelsBlock];
  HWY_ALIGN float center[kFewPixelsBlock], scale[kFewPixelsBlock], bias[kFewPixelsBlock];
  const ChannelConstants k{center, scale, bias};
  const auto count = static_cast<double>(rows.pixels);
  const UniformReciprocals uniform = ReciprocalsOf(count);
  const bool all_given = params.gamma != nullptr && params.beta != nullptr &&
                         params.running_mean != nullptr && params.running_var != nullptr;
  for (int64_t ch = begin; ch < end; ch += kFewPixelsBlock) {
    const size_t b = static_cast<size_t>(ch);
    const size_t width = static_cast<size_t>(std::min(end, ch + kFewPixelsBlock)) - b;
    FewPixelsMomentsRange(rows, b, b + width, [&](auto d, size_t at, auto mean_v, auto m2_v) {
      hn::Store(mean_v, d, mean + (at - b));
      hn::Store(m2_v, d, m2 + (at - b));
    });
    const ChannelParams block = Advanced(params, b);
    all_given ? FinalizeBlock<true>(block, width, mean, m2, uniform, k)
              : FinalizeBlock<false>(block, width, mean, m2, uniform, k);
    FewPixelsNormalize({rows.x + b, rows.pixels, rows.c}, k, width, y + b);
  }
}

// NCHW rows a copy at a time, normalized in the copy (the same bits as by-pixel rows of the
// same values: each channel's operations and their order are the same).
void FewPixelsTrainingF32(const FewPixelsRows& rows, int64_t begin, int64_t end,
                          const ChannelParams& params, float* y) {
  if (rows.spatial == 0) return TrainPixelRows(rows, begin, end, params, y);
  HWY_ALIGN float buffer[kTrainingCopyFloats];
  const auto e = static_cast<size_t>(end);
  for (size_t first = static_cast<size_t>(begin); first < e;) {
    const NchwCopy block =
        CopyAt(rows.c, rows.spatial, rows.pixels, first, e, kTrainingCopyFloats);
    const auto w = static_cast<int64_t>(block.width);
    ToPixelRows(rows.x, block, buffer);
    TrainPixelRows({buffer, rows.pixels, w}, 0, w, Advanced(params, first), buffer);
    FromPixelRows(buffer, block, y);
    first += block.width;
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
