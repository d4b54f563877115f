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

// 1 / count and count / (count - 1) (rounded to f32) of every channel, when all have the same
// count (training forward); zeros when each channel's count is its own.
struct UniformReciprocals {
  double per_value = 0.0;
  float dof_ratio = 0.0f;
};
// The ratio that turns the biased variance into the unbiased one, rounded to f32: the same
// expression for a channel's own count (the same bits).
inline float DofRatio(double count) { return static_cast<float>(count / (count - 1.0)); }
inline UniformReciprocals ReciprocalsOf(double uniform_count) {
  if (!(uniform_count > 1.0)) return {};
  return {1.0 / uniform_count, DofRatio(uniform_count)};
}

// What the step takes in double, each rounded once to f32: the mean, the biased variance m2 *
// (1 / count) and the updated running mean (in double because its two terms may cancel; the
// running variance's are both >= 0). The rest of the step is in f32, var + eps and the unbiased
// variance included: with few pixels the step is most of a call, and the conversions between
// double and f32 were most of the step (1.4-1.5x on N2_C4096_S1 against widening gamma, beta
// and the running statistics to double and narrowing the outputs back).
template <class DF>
struct StepInputs {
  hn::Vec<DF> mean, var, running_mean;
};

// The inputs of Lanes(dd) channels from ch, whose moments are mean and m2. Reads running_mean
// (an input too) and writes nothing.
template <bool kAllGiven, class DD, class V = hn::Vec<DD>>
HWY_INLINE StepInputs<hn::Rebind<float, DD>> InputsOf(DD dd, const ChannelParams& p, size_t ch,
                                                      V mean, V m2, V per_value) {
  const hn::Rebind<float, DD> df;
  StepInputs<hn::Rebind<float, DD>> in{ToF32(df, mean), ToF32(df, hn::Mul(m2, per_value)),
                                       hn::Zero(df)};
  if (kAllGiven || p.running_mean != nullptr) {
    const V momentum = hn::Set(dd, static_cast<double>(p.momentum));
    const V keep = hn::Sub(hn::Set(dd, 1.0), momentum);
    const V running = hn::PromoteTo(dd, hn::LoadU(df, p.running_mean + ch));
    in.running_mean = ToF32(df, hn::Add(hn::Mul(keep, running), hn::Mul(momentum, mean)));
  }
  return in;
}

#if HWY_TARGET != HWY_SCALAR
// Two halves' inputs as one vector of twice their lanes.
template <class DF>
HWY_INLINE StepInputs<DF> Combined(DF df, const StepInputs<hn::Half<DF>>& lo,
                                   const StepInputs<hn::Half<DF>>& hi) {
  return {hn::Combine(df, hi.mean, lo.mean), hn::Combine(df, hi.var, lo.var),
          hn::Combine(df, hi.running_mean, lo.running_mean)};
}
#endif

// Lanes(df) channels from ch, whose inputs are `in`. Only IEEE operations that round once (no
// fused multiply-add): the same bits on every target and for any grouping of channels into
// vectors. kAllGiven: gamma, beta and both running statistics are known to be given, so no
// vector tests for them (1.1x on the step of few pixels, whose loop the instructions in flight
// bound).
template <bool kAllGiven, class DF, class V = hn::Vec<DF>>
HWY_INLINE void FinalizeVector(DF df, const ChannelParams& p, size_t ch,
                               const StepInputs<DF>& in, V dof_ratio, const ChannelConstants& k) {
  const V one = hn::Set(df, 1.0f);
  // Every input before any output: gamma or beta may be an output array.
  const V gamma = kAllGiven || p.gamma != nullptr ? hn::LoadU(df, p.gamma + ch) : one;
  const V beta = kAllGiven || p.beta != nullptr ? hn::LoadU(df, p.beta + ch) : hn::Zero(df);
  const bool has_running_var = kAllGiven || p.running_var != nullptr;
  const V running_var = has_running_var ? hn::LoadU(df, p.running_var + ch) : hn::Zero(df);

  const V invstd = hn::Div(one, hn::Sqrt(hn::Add(in.var, hn::Set(df, p.eps))));
  if (kAllGiven || p.running_mean != nullptr) hn::StoreU(in.running_mean, df, p.running_mean + ch);
  if (has_running_var) {
    const V momentum = hn::Set(df, p.momentum);
    const V keep = hn::Set(df, static_cast<float>(1.0 - static_cast<double>(p.momentum)));
    const V unbiased = hn::Mul(in.var, dof_ratio);
    const V updated = hn::Add(hn::Mul(keep, running_var), hn::Mul(momentum, unbiased));
    hn::StoreU(updated, df, p.running_var + ch);
  }
  hn::StoreU(in.mean, df, p.save_mean + ch);
  hn::StoreU(invstd, df, p.save_invstd + ch);
  // The map subtracts the f32 mean the backward pass will see, then one FMA.
  hn::StoreU(in.mean, df, k.center + ch);
  hn::StoreU(hn::Mul(gamma, invstd), df, k.scale + ch);
  hn::StoreU(beta, df, k.bias + ch);
}

// FinalizeVector over channels [begin, end); inputs(d, ch) gives the inputs of the Lanes(d)
// channels from ch for a tag d of doubles, ratios(df, ch) their DofRatio for a tag df of floats.
// Two vectors of doubles make one of floats, so that the f32 part runs at full width.
template <bool kAllGiven, class Inputs, class Ratios>
HWY_INLINE void FinalizeEach(const ChannelParams& p, size_t begin, size_t end,
                             const Inputs& inputs, const Ratios& ratios,
                             const ChannelConstants& k) {
  const hn::ScalableTag<double> dd;
  const hn::CappedTag<double, 1> d1;
  const size_t N = hn::Lanes(dd);
  size_t ch = begin;
#if HWY_TARGET != HWY_SCALAR
  const hn::Twice<hn::Rebind<float, decltype(dd)>> df;
  for (; ch + 2 * N <= end; ch += 2 * N) {
    FinalizeVector<kAllGiven>(df, p, ch, Combined(df, inputs(dd, ch), inputs(dd, ch + N)),
                              ratios(df, ch), k);
  }
#endif
  const hn::Rebind<float, decltype(dd)> dh;
  for (; ch + N <= end; ch += N) {
    FinalizeVector<kAllGiven>(dh, p, ch, inputs(dd, ch), ratios(dh, ch), k);
  }
  const hn::Rebind<float, decltype(d1)> d1f;
  for (; ch < end; ++ch) FinalizeVector<kAllGiven>(d1f, p, ch, inputs(d1, ch), ratios(d1f, ch), k);
}

// The step of channels [begin, end), whose moments are moments[0, end - begin).
HWY_INLINE void FinalizeRange(const ChannelParams& p, size_t begin, size_t end,
                              const simdbn_moments* moments, const UniformReciprocals& uniform,
                              const ChannelConstants& k) {
  const bool known = uniform.per_value != 0.0;
  const auto inputs = [&](auto d, size_t ch) {
    hn::Vec<decltype(d)> count, mean, m2;
    hn::LoadInterleaved3(d, &moments[ch - begin].count, count, mean, m2);
    return InputsOf<false>(d, p, ch, mean, m2,
                           known ? hn::Set(d, uniform.per_value) : hn::Div(hn::Set(d, 1.0), count));
  };
  // Counts of their own (moments supplied by the caller) are rare: a division per lane.
  const auto ratios = [&](auto df, size_t ch) {
    if (known) return hn::Set(df, uniform.dof_ratio);
    HWY_ALIGN float ratio[hn::MaxLanes(df)];
    for (size_t i = 0; i < hn::Lanes(df); ++i) ratio[i] = DofRatio(moments[ch - begin + i].count);
    return hn::Load(df, ratio);
  };
  FinalizeEach<false>(p, begin, end, inputs, ratios, k);
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_FINALIZE_INL_H_
