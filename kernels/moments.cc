// Dispatch of the shifted-sum reductions (moments-inl.h) and the scalar algebra of moments.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/moments.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/moments-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {

void AddRunSumsF32(const float* x, int64_t runs, int64_t stride, int64_t len, float shift,
                   ShiftedSums* sums) {
  const ShiftedSums part = ShiftedRunSums(x, static_cast<size_t>(runs),
                                          static_cast<size_t>(stride), static_cast<size_t>(len),
                                          shift);
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

void MomentsOfSumsF32(int64_t c, double count, const double* shift, const double* s1,
                      const double* s2, simdbn_moments* moments) {
  MomentsOfSums(static_cast<size_t>(c), count, shift, s1, s2, moments);
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
HWY_EXPORT(MomentsOfSumsF32);

void AddRunSums(const float* x, int64_t runs, int64_t stride, int64_t len, float shift,
                ShiftedSums* sums) {
  HWY_DYNAMIC_DISPATCH(AddRunSumsF32)(x, runs, stride, len, shift, sums);
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

void MomentsOfSums(int64_t c, double count, const double* shift, const double* s1,
                   const double* s2, simdbn_moments* moments) {
  HWY_DYNAMIC_DISPATCH(MomentsOfSumsF32)(c, count, shift, s1, s2, moments);
}

simdbn_moments MergeMoments(const simdbn_moments& a, const simdbn_moments& b) {
  // An empty side must not turn the other into NaN (0 / 0) or move it by rounding.
  if (b.count == 0.0) return a;
  if (a.count == 0.0) return b;
  const double count = a.count + b.count;
  const double delta = b.mean - a.mean;
  const double b_share = b.count / count;
  return simdbn_moments{count, a.mean + delta * b_share,
                        a.m2 + b.m2 + delta * delta * (a.count * b_share)};
}

}  // namespace simdbn
#endif  // HWY_ONCE
