// Per-target computation of dx's per-channel constants (DxConstantsFor in backward.h), a vector
// of channels at a time: with thousands of channels and few values each (N = 1 at 7x7), the
// scalar divisions took a fifth of a backward call.

// Per-target include guard, as Highway's own -inl.h headers do.
#if defined(SIMDBN_KERNELS_DX_CONSTANTS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDBN_KERNELS_DX_CONSTANTS_INL_H_
#undef SIMDBN_KERNELS_DX_CONSTANTS_INL_H_
#else
#define SIMDBN_KERNELS_DX_CONSTANTS_INL_H_
#endif

#include <cstddef>
#include <limits>

#include "hwy/highway.h"
#include "kernels/backward.h"
#include "kernels/to_f32-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Lanes(dd) channels from ch. The IEEE operations of DxConstantsFor in its order, each rounding
// once (no fused multiply-add), so the bits are the scalar formula's on every target. Returns
// whether every x_scale is a normal f32 (then no channel needs an x_prescale).
template <class DD>
HWY_INLINE bool DxConstantsStep(DD dd, size_t ch, const DxConstantsArgs& a) {
  const hn::Rebind<float, DD> df;
  using V = hn::Vec<DD>;
  V dy, dy_xmean;
  hn::LoadInterleaved2(dd, &a.sums[ch].dy, dy, dy_xmean);
  const V invstd = hn::PromoteTo(dd, hn::LoadU(df, a.invstd + ch));
  const V gamma = a.gamma != nullptr ? hn::PromoteTo(dd, hn::LoadU(df, a.gamma + ch))
                                     : hn::Set(dd, 1.0);
  const V m = hn::Set(dd, a.m);
  const V k = hn::Mul(gamma, invstd);
  const V x_scale = hn::Div(hn::Mul(hn::Mul(hn::Mul(hn::Neg(k), invstd), invstd), dy_xmean), m);
  const auto x_scale_f = ToF32(df, x_scale);
  hn::StoreU(x_scale_f, df, a.x_scale + ch);
  hn::StoreU(ToF32(df, k), df, a.dy_scale + ch);
  hn::StoreU(ToF32(df, hn::Div(dy, m)), df, a.dy_mean + ch);
  // Normal: above the largest subnormal and below infinity (NaN is neither).
  using limits = std::numeric_limits<float>;
  constexpr float kLargestSubnormal = limits::min() - limits::denorm_min();
  const auto magnitude = hn::Abs(x_scale_f);
  const auto normal = hn::And(hn::Lt(hn::Set(df, kLargestSubnormal), magnitude),
                              hn::Lt(magnitude, hn::Set(df, limits::infinity())));
  return hn::AllTrue(df, normal);
}

HWY_INLINE bool DxConstantsRange(const DxConstantsArgs& a) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> d1;
  const size_t N = hn::Lanes(dd), c = static_cast<size_t>(a.c);
  bool all_normal = true;
  size_t ch = 0;
  for (; ch + N <= c; ch += N) all_normal &= DxConstantsStep(dd, ch, a);
  for (; ch < c; ++ch) all_normal &= DxConstantsStep(d1, ch, a);
  return all_normal;
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_DX_CONSTANTS_INL_H_
