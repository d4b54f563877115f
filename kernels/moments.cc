// Dispatch of the shifted-sum reductions (moments-inl.h).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/moments.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/moments-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {

void AddRunSumsF32(const float* x, int64_t runs, int64_t stride, int64_t len, float shift,
                   int64_t readable, ShiftedSums* sums) {
  const ShiftedSums part = ShiftedRunSums(x, static_cast<size_t>(runs),
                                          static_cast<size_t>(stride), static_cast<size_t>(len),
                                          shift, static_cast<size_t>(readable));
  sums->s1 += part.s1;
  sums->s2 += part.s2;
}

void AddRowsToStatesF32(const float* x, int64_t rows, int64_t len, const float* shift,
                        double* states) {
  ShiftedRowsToStates(x, static_cast<size_t>(rows), static_cast<size_t>(len), shift, states);
}

ShiftedSums SumsOfStateF32(const double* state) { return StateSums(state); }

void ColumnSumsF32(const float* x, int64_t rows, int64_t stride, int64_t cols,
                   const double* shift, double* s1, double* s2) {
  ShiftedColumnSums(x, static_cast<size_t>(rows), static_cast<size_t>(stride),
                    static_cast<size_t>(cols), shift, s1, s2);
}

void ShiftsOfF32(const float* x, int64_t known, int64_t count, double* shift) {
  FirstValuesAsShifts(x, static_cast<size_t>(known), static_cast<size_t>(count), shift);
}

void MergeColumnSumsF32(bool first, int64_t c, double count, int64_t extra, const double* shift,
                        const double* s1, const double* s2, const double* reference,
                        double* total_count, double* total_mean, double* total_m2) {
  MergeColumns(first, static_cast<size_t>(c), count, static_cast<size_t>(extra), shift, s1, s2,
               reference, total_count, total_mean, total_m2);
}

void InterleaveMomentsF32(int64_t c, const double* reference, const double* count,
                          const double* mean, const double* m2, simdbn_moments* moments) {
  InterleaveMoments(static_cast<size_t>(c), reference, count, mean, m2, moments);
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace simdbn {

HWY_EXPORT(AddRunSumsF32);
HWY_EXPORT(AddRowsToStatesF32);
HWY_EXPORT(SumsOfStateF32);
HWY_EXPORT(ColumnSumsF32);
HWY_EXPORT(ShiftsOfF32);
HWY_EXPORT(MergeColumnSumsF32);
HWY_EXPORT(InterleaveMomentsF32);

void AddRunSums(const float* x, int64_t runs, int64_t stride, int64_t len, float shift,
                int64_t readable, ShiftedSums* sums) {
  HWY_DYNAMIC_DISPATCH(AddRunSumsF32)(x, runs, stride, len, shift, readable, sums);
}

void AddRowsToStates(const float* x, int64_t rows, int64_t len, const float* shift,
                     double* states) {
  HWY_DYNAMIC_DISPATCH(AddRowsToStatesF32)(x, rows, len, shift, states);
}

ShiftedSums SumsOfState(const double* state) {
  return HWY_DYNAMIC_DISPATCH(SumsOfStateF32)(state);
}

void ColumnSums(const float* x, int64_t rows, int64_t stride, int64_t cols, const double* shift,
                double* s1, double* s2) {
  HWY_DYNAMIC_DISPATCH(ColumnSumsF32)(x, rows, stride, cols, shift, s1, s2);
}

void ShiftsOf(const float* x, int64_t known, int64_t count, double* shift) {
  HWY_DYNAMIC_DISPATCH(ShiftsOfF32)(x, known, count, shift);
}

void MergeColumnSums(bool first, int64_t c, double count, int64_t extra, const double* shift,
                     const double* s1, const double* s2, const double* reference,
                     double* total_count, double* total_mean, double* total_m2) {
  HWY_DYNAMIC_DISPATCH(MergeColumnSumsF32)(first, c, count, extra, shift, s1, s2, reference,
                                           total_count, total_mean, total_m2);
}

void InterleaveMoments(int64_t c, const double* reference, const double* count,
                       const double* mean, const double* m2, simdbn_moments* moments) {
  HWY_DYNAMIC_DISPATCH(InterleaveMomentsF32)(c, reference, count, mean, m2, moments);
}

}  // namespace simdbn
#endif  // HWY_ONCE
