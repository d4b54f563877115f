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

#include <cmath>
#include <cstddef>
#include <limits>

#include "hwy/highway.h"
#include "kernels/backward.h"
#include "kernels/to_f32-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The f32 constants of Lanes(dd) channels (DxConstants without x_prescale).
template <class DD>
struct DxConstantVectors {
  hn::Vec<hn::Rebind<float, DD>> x_scale, dy_scale, dy_mean;
  bool all_normal;  // no channel needs an x_prescale (every x_scale 0 or a normal f32)
};

// 1 / m when m is a power of two (then v * (1 / m) rounds the same real number as v / m: the
// same bits without the divider, two divisions per vector of channels), else 0.
inline double ExactReciprocal(double m) {
  int exponent = 0;
  return std::frexp(m, &exponent) == 0.5 ? 1.0 / m : 0.0;
}

// The IEEE operations of DxConstantsFor in its order, each rounding once (no fused
// multiply-add), so the bits are the scalar formula's on every target. per_value:
// ExactReciprocal(m).
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE DxConstantVectors<DD> DxConstantsOf(DD dd, V dy, V dy_xmean, V gamma, V invstd,
                                               double m, double per_value) {
  const hn::Rebind<float, DD> df;
  const auto per_count = [&](V v) {
    return per_value != 0.0 ? hn::Mul(v, hn::Set(dd, per_value)) : hn::Div(v, hn::Set(dd, m));
  };
  const V k = hn::Mul(gamma, invstd);
  const V x_scale = per_count(hn::Mul(hn::Mul(hn::Mul(hn::Neg(k), invstd), invstd), dy_xmean));
  DxConstantVectors<DD> out{ToF32(df, x_scale), ToF32(df, k), ToF32(df, per_count(dy)), true};
  // No x_prescale where x_scale is exactly 0 (x == mean or dy == 0: M = 1, say) or strictly
  // between the f32 limits, so that its rounding is a normal f32 (NaN is neither). The limits
  // themselves are left to DxConstantsFor.
  using limits = std::numeric_limits<float>;
  const V magnitude = hn::Abs(x_scale);
  const auto in_range = hn::And(hn::Lt(hn::Set(dd, double{limits::min()}), magnitude),
                                hn::Lt(magnitude, hn::Set(dd, double{limits::max()})));
  out.all_normal = hn::AllTrue(dd, hn::Or(in_range, hn::Eq(magnitude, hn::Zero(dd))));
  return out;
}

// Lanes(dd) channels from ch; returns DxConstantVectors' all_normal. per_value:
// ExactReciprocal(a.m).
template <class DD>
HWY_INLINE bool DxConstantsStep(DD dd, size_t ch, const DxConstantsArgs& a, double per_value) {
  const hn::Rebind<float, DD> df;
  using V = hn::Vec<DD>;
  V dy, dy_xmean;
  hn::LoadInterleaved2(dd, &a.sums[ch].dy, dy, dy_xmean);
  const V invstd = hn::PromoteTo(dd, hn::LoadU(df, a.invstd + ch));
  const V gamma = PromoteOr(dd, a.gamma, ch, hn::Set(dd, 1.0));
  const DxConstantVectors<DD> k = DxConstantsOf(dd, dy, dy_xmean, gamma, invstd, a.m, per_value);
  hn::StoreU(k.x_scale, df, a.x_scale + ch);
  hn::StoreU(k.dy_scale, df, a.dy_scale + ch);
  hn::StoreU(k.dy_mean, df, a.dy_mean + ch);
  return k.all_normal;
}

HWY_INLINE bool DxConstantsRange(const DxConstantsArgs& a) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> d1;
  const size_t N = hn::Lanes(dd), c = static_cast<size_t>(a.c);
  const double per_value = ExactReciprocal(a.m);
  bool all_normal = true;
  size_t ch = 0;
  for (; ch + N <= c; ch += N) all_normal &= DxConstantsStep(dd, ch, a, per_value);
  for (; ch < c; ++ch) all_normal &= DxConstantsStep(d1, ch, a, per_value);
  return all_normal;
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_DX_CONSTANTS_INL_H_
