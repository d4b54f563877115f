// Dispatch of the per-channel affine map (affine-inl.h) to the best target of this CPU.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/affine.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/affine-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {

void AffineNchwF32(const AffineArgs& args, const Slice& slice) { AffineNchwSlice(args, slice); }
void AffineNhwcF32(const AffineArgs& args, const Slice& slice) { AffineNhwcSlice(args, slice); }

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstring>

namespace simdbn {

HWY_EXPORT(AffineNchwF32);
HWY_EXPORT(AffineNhwcF32);

void AffineNchw(const AffineArgs& args, const Slice& slice) {
  HWY_DYNAMIC_DISPATCH(AffineNchwF32)(args, slice);
}
void AffineNhwc(const AffineArgs& args, const Slice& slice) {
  HWY_DYNAMIC_DISPATCH(AffineNhwcF32)(args, slice);
}

void MakePeriodic(const float* values, int64_t c, float* out) {
  std::memcpy(out, values, static_cast<size_t>(c) * sizeof(float));
  ExtendPeriodic(out, c);
}

void ExtendPeriodic(float* values, int64_t c) {
  // Each entry copies the one a period earlier (a division per entry, i % c, would cost more
  // than the kernel on small tensors with many channels).
  for (int64_t i = c; i < PeriodicSize(c); ++i) values[i] = values[i - c];
}

}  // namespace simdbn
#endif  // HWY_ONCE
