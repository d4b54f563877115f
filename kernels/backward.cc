// Dispatch of the backward loops (backward-inl.h) to the best target of this CPU.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/backward.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/backward-inl.h"
#include "kernels/dx_constants-inl.h"
#include "kernels/few_pixels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {

void ReduceRowsF32(const ReduceArgs& args, const Slice& slice, int64_t num_slots,
                   const Slots& slots) {
  args.dy_scale != nullptr ? ReduceRowsSlice<true>(args, slice, num_slots, slots)
                           : ReduceRowsSlice<false>(args, slice, num_slots, slots);
}
void ReducePixelsF32(const ReduceArgs& args, const Slice& slice, const Slots& slots) {
  args.dy_scale != nullptr ? ReducePixelsSlice<true>(args, slice, slots)
                           : ReducePixelsSlice<false>(args, slice, slots);
}
void DxRowsF32(const DxArgs& args, const Slice& slice) { DxRowsSlice(args, slice); }
void DxPixelsF32(const DxArgs& args, const Slice& slice) { DxPixelsSlice(args, slice); }
void BackwardChannelF32(const ChannelArgs& args, int64_t channel, ChannelSums* sums) {
  BackwardChannelImpl(args, channel, sums);
}
bool DxConstantsF32(const DxConstantsArgs& args) { return DxConstantsRange(args); }
void FewPixelsF32(const FewPixelsArgs& args, int64_t begin, int64_t end) {
  FewPixelsRange(args, static_cast<size_t>(begin), static_cast<size_t>(end));
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace simdbn {

HWY_EXPORT(ReduceRowsF32);
HWY_EXPORT(ReducePixelsF32);
HWY_EXPORT(DxRowsF32);
HWY_EXPORT(DxPixelsF32);
HWY_EXPORT(BackwardChannelF32);
HWY_EXPORT(DxConstantsF32);
HWY_EXPORT(FewPixelsF32);

void ReduceRows(const ReduceArgs& args, const Slice& slice, int64_t num_slots, const Slots& slots) {
  HWY_DYNAMIC_DISPATCH(ReduceRowsF32)(args, slice, num_slots, slots);
}
void ReducePixels(const ReduceArgs& args, const Slice& slice, const Slots& slots) {
  HWY_DYNAMIC_DISPATCH(ReducePixelsF32)(args, slice, slots);
}
void DxRows(const DxArgs& args, const Slice& slice) {
  HWY_DYNAMIC_DISPATCH(DxRowsF32)(args, slice);
}
void DxPixels(const DxArgs& args, const Slice& slice) {
  HWY_DYNAMIC_DISPATCH(DxPixelsF32)(args, slice);
}
void BackwardChannel(const ChannelArgs& args, int64_t channel, ChannelSums* sums) {
  HWY_DYNAMIC_DISPATCH(BackwardChannelF32)(args, channel, sums);
}
bool ComputeDxConstants(const DxConstantsArgs& args) {
  return HWY_DYNAMIC_DISPATCH(DxConstantsF32)(args);
}
void BackwardFewPixels(const FewPixelsArgs& args, int64_t begin, int64_t end) {
  HWY_DYNAMIC_DISPATCH(FewPixelsF32)(args, begin, end);
}

}  // namespace simdbn
#endif  // HWY_ONCE
