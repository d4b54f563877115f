// Per-target backward pass of by-pixel tensors with few pixels (see FewPixelsArgs in
// backward.h): a vector of channels at a time, its sums over the pixels in registers, dx's
// constants, dx and then dgamma and dbeta, while the channels' values are in L1.

// Per-target include guard, as Highway's own -inl.h headers do.
#if defined(SIMDBN_KERNELS_FEW_PIXELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDBN_KERNELS_FEW_PIXELS_INL_H_
#undef SIMDBN_KERNELS_FEW_PIXELS_INL_H_
#else
#define SIMDBN_KERNELS_FEW_PIXELS_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "hwy/highway.h"
#include "kernels/backward-inl.h"  // DxStep, DxConfig, PlainMemory
#include "kernels/backward.h"
#include "kernels/dx_constants-inl.h"
#include "kernels/partition.h"  // kFewPixelsBlock
#include "kernels/pixel_rows.h"
#include "kernels/to_f32-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// x_prescale and the constants of the lanes whose x_scale is not a normal f32, from
// DxConstantsFor lane by lane (data at extreme scales only).
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE void RescaleLanes(DD dd, V dy, V dy_xmean, V gamma, V invstd, double m,
                             DxConstantVectors<DD>* k, hn::Vec<hn::Rebind<float, DD>>* prescale) {
  const hn::Rebind<float, DD> df;
  constexpr size_t kMax = hn::MaxLanes(dd);
  HWY_ALIGN double sums_dy[kMax], sums_dy_xmean[kMax], g[kMax], s[kMax];
  HWY_ALIGN float x_scale[kMax], x_prescale[kMax];
  hn::Store(dy, dd, sums_dy);
  hn::Store(dy_xmean, dd, sums_dy_xmean);
  hn::Store(gamma, dd, g);
  hn::Store(invstd, dd, s);
  hn::Store(k->x_scale, df, x_scale);
  for (size_t i = 0; i < hn::Lanes(dd); ++i) {
    const DxConstants lane =
        DxConstantsFor({sums_dy[i], sums_dy_xmean[i]}, g[i], s[i], m, /*frozen=*/false);
    x_scale[i] = lane.x_scale;
    x_prescale[i] = lane.x_prescale;
  }
  k->x_scale = hn::Load(df, x_scale);
  *prescale = hn::Load(df, x_prescale);
}

// Channels are taken kFewPixelsBlock (partition.h) at a time, row by row within the block.
inline constexpr size_t kBlock = static_cast<size_t>(kFewPixelsBlock);

// Adds pixel row `row` of channels [ch, ch + Lanes(dd)) to the sums at j. In double: exact
// products, and one rounding per term, over at most kMaxFewPixels terms. kFirst: row 0, added
// to zeros in registers (the bits of sums zeroed first, without zeroing them).
template <bool kFirst, class DD>
HWY_INLINE void FewPixelsSums(DD dd, const FewPixelsArgs& a, size_t at, size_t ch, size_t j,
                              double* HWY_RESTRICT sum_dy, double* HWY_RESTRICT sum_dy_xmean) {
  const hn::Rebind<float, DD> df;
  const auto mean = hn::PromoteTo(dd, hn::LoadU(df, a.t.mean + ch));
  const auto g = hn::PromoteTo(dd, hn::LoadU(df, a.t.dy + at));
  const auto xmean = hn::Sub(hn::PromoteTo(dd, hn::LoadU(df, a.t.x + at)), mean);
  const auto dy = kFirst ? hn::Zero(dd) : hn::Load(dd, sum_dy + j);
  const auto dy_xmean = kFirst ? hn::Zero(dd) : hn::Load(dd, sum_dy_xmean + j);
  hn::Store(hn::Add(dy, g), dd, sum_dy + j);
  hn::Store(hn::MulAdd(g, xmean, dy_xmean), dd, sum_dy_xmean + j);
}

// Per-channel values of one block, at index j for channel ch + j.
struct FewPixelsBlock {
  HWY_ALIGN double sum_dy[kBlock];
  HWY_ALIGN double sum_dy_xmean[kBlock];
  HWY_ALIGN float mean[kBlock];
  HWY_ALIGN float prescale[kBlock];
  HWY_ALIGN float x_scale[kBlock];
  HWY_ALIGN float dy_scale[kBlock];
  HWY_ALIGN float dy_mean[kBlock];
};

// dx's constants (or k = gamma * invstd when frozen) of channels [ch, ch + Lanes(dd)).
// per_value: ExactReciprocal of the count.
template <class DD>
HWY_INLINE void FewPixelsConstants(DD dd, const FewPixelsArgs& a, size_t ch, size_t j,
                                   double per_value, FewPixelsBlock& b) {
  const hn::Rebind<float, DD> df;
  hn::Store(hn::LoadU(df, a.t.mean + ch), df, b.mean + j);
  if (a.frozen) {
    // The f32 product of two f32 values rounds the exact product once, as its double does.
    const auto gamma = a.t.gamma != nullptr ? hn::LoadU(df, a.t.gamma + ch) : hn::Set(df, 1.0f);
    hn::Store(hn::Mul(gamma, hn::LoadU(df, a.t.invstd + ch)), df, b.dy_scale + j);
    return;
  }
  const auto invstd = hn::PromoteTo(dd, hn::LoadU(df, a.t.invstd + ch));
  const auto gamma = PromoteOr(dd, a.t.gamma, ch, hn::Set(dd, 1.0));
  const double m = static_cast<double>(a.pixels);
  const auto dy = hn::Load(dd, b.sum_dy + j), dy_xmean = hn::Load(dd, b.sum_dy_xmean + j);
  DxConstantVectors<DD> k = DxConstantsOf(dd, dy, dy_xmean, gamma, invstd, m, per_value);
  auto prescale = hn::Set(df, 1.0f);
  if (!k.all_normal) RescaleLanes(dd, dy, dy_xmean, gamma, invstd, m, &k, &prescale);
  hn::Store(prescale, df, b.prescale + j);
  hn::Store(k.x_scale, df, b.x_scale + j);
  hn::Store(k.dy_scale, df, b.dy_scale + j);
  hn::Store(k.dy_mean, df, b.dy_mean + j);
}

// dx of channels [ch, ch + Lanes(d)) of one pixel row, by DxStep (backward-inl.h). The
// x_prescale is always applied (1 almost always: exact).
template <class D>
HWY_INLINE void FewPixelsDx(D d, const FewPixelsArgs& a, size_t at, size_t j,
                            const FewPixelsBlock& b) {
  const PlainMemory plain;
  const auto constant = [&](const float* p) { return hn::Load(d, p + j); };
  if (a.frozen) {
    const auto unused = hn::Zero(d);
    DxStep<DxConfig<false, true>>(d, plain, a.t.x + at, a.t.dy + at, a.t.dx + at, unused, unused,
                                  unused, constant(b.dy_scale), unused)();
    return;
  }
  DxStep<DxConfig<false, false, true>>(d, plain, a.t.x + at, a.t.dy + at, a.t.dx + at,
                                       constant(b.mean), constant(b.prescale),
                                       constant(b.x_scale), constant(b.dy_scale),
                                       constant(b.dy_mean))();
}

// dgamma = sum(dy * (x - mean)) * invstd and dbeta = sum(dy) of channels [ch, ch + Lanes(dd)).
template <class DD>
HWY_INLINE void FewPixelsChannelOutputs(DD dd, const FewPixelsArgs& a, size_t ch, size_t j,
                                        const FewPixelsBlock& b) {
  const hn::Rebind<float, DD> df;
  if (a.dgamma != nullptr) {
    const auto invstd = hn::PromoteTo(dd, hn::LoadU(df, a.t.invstd + ch));
    hn::StoreU(ToF32(df, hn::Mul(hn::Load(dd, b.sum_dy_xmean + j), invstd)), df, a.dgamma + ch);
  }
  if (a.dbeta != nullptr) hn::StoreU(ToF32(df, hn::Load(dd, b.sum_dy + j)), df, a.dbeta + ch);
}

// Channels [begin, begin + width), width <= kBlock.
HWY_INLINE void FewPixelsBlockRun(const FewPixelsArgs& a, size_t begin, size_t width) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> dd1;
  const hn::ScalableTag<float> df;
  const hn::CappedTag<float, 1> df1;
  const size_t Nd = hn::Lanes(dd), Nf = hn::Lanes(df);
  const size_t c = static_cast<size_t>(a.c);
  FewPixelsBlock b;
  const auto sums_of_row = [&](auto first, size_t row) {
    constexpr bool kFirst = decltype(first)::value;
    const size_t at = row * c + begin;
    size_t j = 0;
    for (; j + Nd <= width; j += Nd) {
      FewPixelsSums<kFirst>(dd, a, at + j, begin + j, j, b.sum_dy, b.sum_dy_xmean);
    }
    for (; j < width; ++j) {
      FewPixelsSums<kFirst>(dd1, a, at + j, begin + j, j, b.sum_dy, b.sum_dy_xmean);
    }
  };
  sums_of_row(std::true_type(), 0);
  for (size_t row = 1; row < static_cast<size_t>(a.pixels); ++row) {
    sums_of_row(std::false_type(), row);
  }
  const double per_value = ExactReciprocal(static_cast<double>(a.pixels));
  size_t j = 0;
  for (; j + Nd <= width; j += Nd) FewPixelsConstants(dd, a, begin + j, j, per_value, b);
  for (; j < width; ++j) FewPixelsConstants(dd1, a, begin + j, j, per_value, b);
  // dx row by row. x and dy of every channel of the block were read above, and each element is
  // read before dx (which may be x or dy) is written.
  for (size_t row = 0; row < static_cast<size_t>(a.pixels); ++row) {
    const size_t at = row * c + begin;
    for (j = 0; j + Nf <= width; j += Nf) FewPixelsDx(df, a, at + j, j, b);
    for (; j < width; ++j) FewPixelsDx(df1, a, at + j, j, b);
  }
  // Last: dgamma and dbeta may alias an input of these channels (even x or dy, with one pixel).
  for (j = 0; j + Nd <= width; j += Nd) FewPixelsChannelOutputs(dd, a, begin + j, j, b);
  for (; j < width; ++j) FewPixelsChannelOutputs(dd1, a, begin + j, j, b);
}

// a with every per-channel array advanced by `first` channels.
HWY_INLINE FewPixelsArgs AdvancedArgs(const FewPixelsArgs& a, size_t first) {
  const auto at = [first](auto* p) { return p != nullptr ? p + first : p; };
  FewPixelsArgs out = a;
  out.t.gamma = at(a.t.gamma);
  out.t.mean = a.t.mean + first;
  out.t.invstd = a.t.invstd + first;
  out.dgamma = at(a.dgamma);
  out.dbeta = at(a.dbeta);
  return out;
}

// NCHW (a.spatial != 0): x and dy of a block copied into by-pixel rows, dx computed over the
// copy of dy and copied back. Two copies of kBackwardCopyFloats (training's single copy holds
// kTrainingCopyFloats: distinct names, as both are inline variables of one namespace).
inline constexpr size_t kBackwardCopyFloats = 2048;
static_assert(kBackwardCopyFloats / kMaxFewPixels >= 16, "a copy holds 16 channels at least");
HWY_INLINE void FewPixelsNchw(const FewPixelsArgs& a, size_t begin, size_t end) {
  HWY_ALIGN float x_rows[kBackwardCopyFloats], dy_rows[kBackwardCopyFloats];
  for (size_t first = begin; first < end;) {
    const NchwCopy block = CopyAt(a.c, a.spatial, a.pixels, first, end, kBackwardCopyFloats);
    const size_t width = block.width;
    ToPixelRows(a.t.x, block, x_rows);
    ToPixelRows(a.t.dy, block, dy_rows);
    FewPixelsArgs rows = AdvancedArgs(a, first);
    rows.t.x = x_rows;
    rows.t.dy = dy_rows;
    rows.t.dx = dy_rows;
    rows.c = static_cast<int64_t>(width);
    rows.spatial = 0;
    FewPixelsBlockRun(rows, 0, width);
    FromPixelRows(dy_rows, block, a.t.dx);
    first += width;
  }
}

HWY_INLINE void FewPixelsRange(const FewPixelsArgs& a, size_t begin, size_t end) {
  if (a.spatial != 0) return FewPixelsNchw(a, begin, end);
  for (size_t ch = begin; ch < end; ch += kBlock) {
    FewPixelsBlockRun(a, ch, std::min(kBlock, end - ch));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_FEW_PIXELS_INL_H_
