// Per-target conversions between the f32 arrays and the doubles of the per-channel steps.

// Per-target include guard, as Highway's own -inl.h headers do.
#if defined(SIMDBN_KERNELS_TO_F32_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDBN_KERNELS_TO_F32_INL_H_
#undef SIMDBN_KERNELS_TO_F32_INL_H_
#else
#define SIMDBN_KERNELS_TO_F32_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rounds to f32 as IEEE conversion does: to nearest, overflowing to infinity. (Highway's
// emulated targets saturate to the largest finite value instead, which would turn an infinite
// mean or an out-of-range constant finite.)
template <class DF, class V>
HWY_INLINE hn::Vec<DF> ToF32(DF df, V v) {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
  const hn::Rebind<double, DF> dd;
  HWY_ALIGN double wide[hn::MaxLanes(dd)];
  HWY_ALIGN float narrow[hn::MaxLanes(df)];
  hn::Store(v, dd, wide);
  for (size_t i = 0; i < hn::Lanes(df); ++i) narrow[i] = static_cast<float>(wide[i]);
  return hn::Load(df, narrow);
#else
  return hn::DemoteTo(df, v);
#endif
}

// The Lanes(dd) floats at p + ch in double, or `absent` when p is null (a nullable
// per-channel array: gamma, beta, running statistics).
template <class DD, class V = hn::Vec<DD>>
HWY_INLINE V PromoteOr(DD dd, const float* p, size_t ch, V absent) {
  const hn::Rebind<float, DD> df;
  return p != nullptr ? hn::PromoteTo(dd, hn::LoadU(df, p + ch)) : absent;
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_TO_F32_INL_H_
