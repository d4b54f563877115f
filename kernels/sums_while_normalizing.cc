// Per-target lockstep of AddRunSums and the affine map (see sums_while_normalizing.h).
#include "kernels/sums_while_normalizing.h"

#include <cstddef>
#include <cstdint>
#include <type_traits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/sums_while_normalizing.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/affine-inl.h"   // AffineRun, AffineStep, StreamPeel
#include "kernels/moments-inl.h"  // AddRun, SumsOf

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class Cfg>
HWY_INLINE ShiftedSums SumsWhileNormalizing(const float* HWY_RESTRICT x, size_t runs,
                                            size_t stride, size_t len, float shift,
                                            size_t readable, const RunsToNormalize& o) {
  const hn::ScalableTag<double> dd;
  const hn::ScalableTag<float> df;
  const size_t chunk = 4 * hn::Lanes(dd);  // floats AddRun takes per step
  using Mem = std::conditional_t<Cfg::kStream, StreamMemory, PlainMemory>;
  const auto step = [&](auto dv, const auto& memory, const float* from, float* to) {
    return AffineStep<Cfg>(dv, memory, from, from, to, hn::Set(dv, o.center),
                           hn::Set(dv, o.scale), hn::Set(dv, o.bias));
  };
  auto a = ZeroAccumulators(dd);
  for (size_t r = 0; r < runs; ++r) {
    const float* from = o.x + r * stride;
    float* to = o.y + r * stride;
    // The leading elements up to the alignment that streaming stores need, one by one; then
    // one chunk of y per chunk of the sums, as far as y's run goes.
    size_t done = StreamPeel<Cfg>(to, len);
    AffineRun<Cfg>(from, from, to, done, o.center, o.scale, o.bias);
    AddRun(dd, x + r * stride, len, hn::Set(dd, shift), a, readable - r * stride,
           [&](size_t /* i */) {
             if (done + chunk > len) return;
             if (chunk == 2 * hn::Lanes(df)) {
               // Both vectors loaded before either is stored (see WholeVectors).
               const size_t next = done + hn::Lanes(df);
               const auto store0 = step(df, Mem(), from + done, to + done);
               const auto store1 = step(df, Mem(), from + next, to + next);
               store0();
               store1();
             } else {
               WholeVectors(df, Mem(), 0, chunk, [&](auto dv, const auto& memory, size_t at) {
                 return step(dv, memory, from + done + at, to + done + at);
               });
             }
             done += chunk;
           });
    AffineRun<Cfg>(from + done, from + done, to + done, len - done, o.center, o.scale, o.bias);
  }
  if constexpr (Cfg::kStream) hwy::FlushStream();
  return SumsOf(dd, a);
}

void AddRunSumsWhileNormalizingF32(const float* x, int64_t runs, int64_t stride, int64_t len,
                                   float shift, int64_t readable, ShiftedSums* sums,
                                   const RunsToNormalize& other) {
  const auto run = [&](auto cfg) {
    const ShiftedSums part = SumsWhileNormalizing<decltype(cfg)>(
        x, static_cast<size_t>(runs), static_cast<size_t>(stride), static_cast<size_t>(len),
        shift, static_cast<size_t>(readable), other);
    sums->s1 += part.s1;
    sums->s2 += part.s2;
  };
  other.stream ? run(AffineConfig</*kCenter=*/true, false, false, /*kStream=*/true>{})
               : run(AffineConfig</*kCenter=*/true, false, false, /*kStream=*/false>{});
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace simdbn {

HWY_EXPORT(AddRunSumsWhileNormalizingF32);

void AddRunSumsWhileNormalizing(const float* x, int64_t runs, int64_t stride, int64_t len,
                                float shift, int64_t readable, ShiftedSums* sums,
                                const RunsToNormalize& other) {
  HWY_DYNAMIC_DISPATCH(AddRunSumsWhileNormalizingF32)(x, runs, stride, len, shift, readable,
                                                      sums, other);
}

}  // namespace simdbn
#endif  // HWY_ONCE
