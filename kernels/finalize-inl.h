// Per-target step of training forward over a range of channels (see finalize.h).

// Per-target include guard, as Highway's own -inl.h headers do.
#if defined(SIMDBN_KERNELS_FINALIZE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDBN_KERNELS_FINALIZE_INL_H_
#undef SIMDBN_KERNELS_FINALIZE_INL_H_
#else
#define SIMDBN_KERNELS_FINALIZE_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"
#include "kernels/finalize.h"
#include "kernels/to_f32-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 1 / count and 1 / (count - 1) of every channel, when all have the same count (training
// forward); zeros when each channel's count is its own.
struct UniformReciprocals {
  double per_value = 0.0, per_dof = 0.0;
};
inline UniformReciprocals ReciprocalsOf(double uniform_count) {
  if (!(uniform_count > 1.0)) return {};
  return {1.0 / uniform_count, 1.0 / (uniform_count - 1.0)};
}

// Lanes(dd) channels from ch, whose moments are mean and m2 and whose counts have reciprocals
// per_value (1 / count) and per_dof (1 / (count - 1)). The variances are m2 times those: two
// roundings where a quotient would take one, but with one count for every channel the
// reciprocals are computed once per call (a call with few pixels spent about a tenth of its
// time on those two divisions per vector of channels). Only IEEE operations that round once
// (no fused multiply-add): the bits are those of the scalar formula on every target, and the
// same whether the reciprocals are computed once or per vector. kAllGiven: gamma, beta and
// both running statistics are known to be given, so no vector tests for them (1.1x on the
// step of few pixels, whose loop the instructions in flight bound).
template <bool kAllGiven = false, class DD, class V = hn::Vec<DD>>
HWY_INLINE void FinalizeVector(DD dd, const ChannelParams& p, size_t ch, V mean, V m2,
                               V per_value, V per_dof, const ChannelConstants& k) {
  const hn::Rebind<float, DD> df;
  const V one = hn::Set(dd, 1.0);
  const bool has_gamma = kAllGiven || p.gamma != nullptr;
  const bool has_beta = kAllGiven || p.beta != nullptr;
  const bool has_running_mean = kAllGiven || p.running_mean != nullptr;
  const bool has_running_var = kAllGiven || p.running_var != nullptr;
  // Every input before any output.
  const V gamma = has_gamma ? hn::PromoteTo(dd, hn::LoadU(df, p.gamma + ch)) : one;
  // beta is stored as read: its round trip through double would give the same bits.
  const auto beta = has_beta ? hn::LoadU(df, p.beta + ch) : hn::Zero(df);
  const V running_mean =
      has_running_mean ? hn::PromoteTo(dd, hn::LoadU(df, p.running_mean + ch)) : hn::Zero(dd);
  const V running_var =
      has_running_var ? hn::PromoteTo(dd, hn::LoadU(df, p.running_var + ch)) : hn::Zero(dd);

  const V momentum = hn::Set(dd, static_cast<double>(p.momentum));
  const V keep = hn::Sub(one, momentum);
  const V variance = hn::Mul(m2, per_value);
  const V eps = hn::Set(dd, static_cast<double>(p.eps));
  const V invstd = hn::Div(one, hn::Sqrt(hn::Add(variance, eps)));
  if (has_running_mean) {
    const V updated = hn::Add(hn::Mul(keep, running_mean), hn::Mul(momentum, mean));
    hn::StoreU(ToF32(df, updated), df, p.running_mean + ch);
  }
  if (has_running_var) {
    const V unbiased = hn::Mul(m2, per_dof);
    const V updated = hn::Add(hn::Mul(keep, running_var), hn::Mul(momentum, unbiased));
    hn::StoreU(ToF32(df, updated), df, p.running_var + ch);
  }
  const auto mean_f = ToF32(df, mean);
  hn::StoreU(mean_f, df, p.save_mean + ch);
  hn::StoreU(ToF32(df, invstd), df, p.save_invstd + ch);
  // The map subtracts the f32 mean the backward pass will see, then one FMA.
  hn::StoreU(mean_f, df, k.center + ch);
  hn::StoreU(ToF32(df, hn::Mul(gamma, invstd)), df, k.scale + ch);
  hn::StoreU(beta, df, k.bias + ch);
}

// The same for the channels whose moments are m[0, Lanes(dd)).
template <class DD>
HWY_INLINE void FinalizeStep(DD dd, const ChannelParams& p, size_t ch, const simdbn_moments* m,
                             const UniformReciprocals& uniform, const ChannelConstants& k) {
  hn::Vec<DD> count, mean, m2;
  hn::LoadInterleaved3(dd, &m->count, count, mean, m2);
  const hn::Vec<DD> one = hn::Set(dd, 1.0);
  const bool known = uniform.per_value != 0.0;
  FinalizeVector(dd, p, ch, mean, m2,
                 known ? hn::Set(dd, uniform.per_value) : hn::Div(one, count),
                 known ? hn::Set(dd, uniform.per_dof) : hn::Div(one, hn::Sub(count, one)), k);
}

HWY_INLINE void FinalizeRange(const ChannelParams& p, size_t begin, size_t end,
                              const simdbn_moments* moments, const UniformReciprocals& uniform,
                              const ChannelConstants& k) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> d1;
  const size_t N = hn::Lanes(dd);
  size_t ch = begin;
  for (; ch + N <= end; ch += N) FinalizeStep(dd, p, ch, moments + (ch - begin), uniform, k);
  for (; ch < end; ++ch) FinalizeStep(d1, p, ch, moments + (ch - begin), uniform, k);
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_FINALIZE_INL_H_
