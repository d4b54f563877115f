// Dispatch of the per-channel step of training forward (finalize-inl.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/finalize.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/finalize-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {

void FinalizeChannelsF32(const ChannelParams& params, int64_t begin, int64_t end,
                         const simdbn_moments* moments, double uniform_count,
                         const ChannelConstants& constants) {
  FinalizeRange(params, static_cast<size_t>(begin), static_cast<size_t>(end), moments,
                ReciprocalsOf(uniform_count), constants);
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace simdbn {

HWY_EXPORT(FinalizeChannelsF32);

void FinalizeChannels(const ChannelParams& params, int64_t begin, int64_t end,
                      const simdbn_moments* moments, double uniform_count,
                      const ChannelConstants& constants) {
  HWY_DYNAMIC_DISPATCH(FinalizeChannelsF32)(params, begin, end, moments, uniform_count,
                                            constants);
}

}  // namespace simdbn
#endif  // HWY_ONCE
