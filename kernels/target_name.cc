// simdbn_target_name(): which Highway target the dispatcher picks for this CPU.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/target_name.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {

int64_t CompiledTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "simdbn/simdbn.h"

namespace simdbn {
HWY_EXPORT(CompiledTarget);
}  // namespace simdbn

extern "C" const char* simdbn_target_name(void) {
  return hwy::TargetName(HWY_DYNAMIC_DISPATCH(simdbn::CompiledTarget)());
}
#endif  // HWY_ONCE
