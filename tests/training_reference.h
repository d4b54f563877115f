// The long-double two-pass reference of the training statistics, and the bounds on simdbn's
// distance from it that follow from simdbn's arithmetic (see kernels/moments.h).
#ifndef SIMDBN_TESTS_TRAINING_REFERENCE_H_
#define SIMDBN_TESTS_TRAINING_REFERENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "simdbn/simdbn.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace simdbn_test {

struct ReferenceStats {
  int64_t count = 0;
  long double mean = 0, m2 = 0;
  long double max_dev = 0;  // max |x - mean|
  long double max_abs = 0;  // max |x|
  long double Var() const { return m2 / count; }
  long double Unbiased() const { return m2 / (count - 1); }
  long double Invstd(float eps) const { return 1 / std::sqrt(Var() + eps); }
};

// Two passes in long double: the mean (sums of f32 values of similar magnitude are exact or
// nearly so in 64 bits), then the squared deviations from it.
inline std::vector<ReferenceStats> ReferenceMoments(const simdbn_tensor_desc& d, const float* x) {
  std::vector<ReferenceStats> s(static_cast<size_t>(d.c));
  std::vector<long double> sum(s.size(), 0.0L);
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    ReferenceStats& r = s[static_cast<size_t>(ch)];
    sum[static_cast<size_t>(ch)] += x[o];
    r.max_abs = std::max(r.max_abs, std::fabs(static_cast<long double>(x[o])));
    ++r.count;
  });
  for (size_t ch = 0; ch < s.size(); ++ch) s[ch].mean = sum[ch] / s[ch].count;
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    ReferenceStats& r = s[static_cast<size_t>(ch)];
    const long double dev = x[o] - r.mean;
    r.m2 += dev * dev;
    r.max_dev = std::max(r.max_dev, std::fabs(dev));
  });
  return s;
}

constexpr long double kU32 = 0x1p-24L;  // unit roundoff of f32
constexpr long double kU64 = 0x1p-53L;  // unit roundoff of double

// How far the double mean may be from the exact one. simdbn sums d = x - shift (shift: a value
// of the channel, so |d| <= 2 max|x|) in double: recursive summation of M terms errs by at most
// (M - 1) u64 sum|d| (plus u64 |d| for each d that is not exact), and mean = shift + s1 / M
// adds two roundings.
inline long double MeanErrorDouble(const ReferenceStats& r) {
  const long double m = static_cast<long double>(r.count);
  return kU64 * ((m + 3) * 2 * r.max_abs + 2 * std::fabs(r.mean));
}
// save_mean: that, then one rounding to f32 (half an ulp of the value, which is within
// MeanErrorDouble of the exact mean).
inline long double SaveMeanBound(const ReferenceStats& r) {
  const long double e = MeanErrorDouble(r);
  return Ulp(std::fabs(r.mean) + e) / 2 + e;
}

// How far m2 may be from the exact one. With D = max|x - mean| and shift a value of the channel,
// |d| <= 2 D, so s2 <= 4 M D^2 and |s1| <= 2 M D. Each d^2 rounds once and the sum of M of them
// errs by at most (M - 1) u64 s2; m2 = s2 - s1 * (s1 / M) adds 2 |s1 / M| err(s1) and two
// roundings of s1^2 / M. Altogether below 12 (M + 2) M u64 D^2.
inline long double M2Error(const ReferenceStats& r) {
  const long double m = static_cast<long double>(r.count);
  return 12 * (m + 2) * m * kU64 * r.max_dev * r.max_dev;
}
// Relative error of invstd = fl(1 / fl(sqrt(a32))), a32 = fl(var32 + eps), var32 = fl32(m2 *
// (1 / M)) with the product in double: half the relative error of var + eps (m2's error, the
// product by 1 / M and 1 / M itself in double, then the two f32 roundings of var32 and a32),
// and the f32 roundings of the square root and the division. The products of two error terms
// are covered by the 1.001 factor.
inline long double InvstdRelError(const ReferenceStats& r, float eps) {
  const long double m = static_cast<long double>(r.count);
  return 1.001L * (M2Error(r) / m / (r.Var() + eps) / 2 + 2 * kU64 + 3 * kU32);
}
inline long double SaveInvstdBound(const ReferenceStats& r, float eps) {
  return r.Invstd(eps) * InvstdRelError(r, eps);
}

// running_mean = (1 - momentum) running0 + momentum mean in double, rounded once to f32 (its
// two terms may cancel): the batch mean's own error, a few double roundings of the terms, half
// an ulp.
inline long double RunningMeanBound(long double exact, long double batch_error,
                                    long double term0, long double term1, float momentum) {
  const long double e = momentum * batch_error + 4 * kU64 * (std::fabs(term0) + std::fabs(term1));
  return Ulp(std::fabs(exact) + e) / 2 + e;
}
// running_var = fl(fl(keep32 running0) + fl(momentum unbiased32)) in f32, keep32 = fl32(1 -
// momentum), unbiased32 = fl(var32 * ratio32) and ratio32 = fl32(M / (M - 1)): the error of
// unbiased32 (batch_error, see UnbiasedError), two f32 roundings in each term, half an ulp of
// the sum.
inline long double RunningVarBound(long double exact, long double batch_error, long double term0,
                                   long double term1, float momentum) {
  const long double e =
      1.001L * (momentum * batch_error + 2 * kU32 * (std::fabs(term0) + std::fabs(term1)));
  return Ulp(std::fabs(exact) + e) / 2 + e;
}

// How far unbiased32 may be from the exact unbiased variance: m2's error, three double
// roundings (1 / M, the product, M / (M - 1)) and three f32 ones (var32, ratio32, the product).
inline long double UnbiasedError(const ReferenceStats& r) {
  return M2Error(r) / (r.count - 1) + (3 * kU64 + 3 * kU32) * r.Unbiased();
}

// y = fl(fl(x - mean32) * scale32 + beta), scale32 = fl(gamma * invstd32). With exact
// y* = (x - mean) gamma invstd + beta:
//   |y - y*| <= |gamma invstd| (|mean - mean32| + |x - mean32| (3 u32 + e_inv)) + u32 |y*|
// where e_inv is the relative error of invstd32 (InvstdRelError) and the three u32 are the
// rounding of x - mean32, of scale32 and of the product on targets without FMA (SSE4 and
// below). The u32^2 terms are covered by the 1.001 factor, and 2^-140 covers a subnormal result.
inline long double OutputBound(float x, const ReferenceStats& r, float eps, float gamma,
                               long double exact_y) {
  const long double g_inv = std::fabs(static_cast<long double>(gamma) * r.Invstd(eps));
  const long double mean_error = SaveMeanBound(r);
  const long double dev = std::fabs(x - r.mean) + mean_error;
  return 1.001L * (g_inv * (mean_error + dev * (3 * kU32 + InvstdRelError(r, eps))) +
                   kU32 * std::fabs(exact_y)) +
         0x1p-140L;
}

inline long double ExactOutput(float x, const ReferenceStats& r, float eps, float gamma,
                               float beta) {
  return (x - r.mean) * r.Invstd(eps) * gamma + beta;
}

}  // namespace simdbn_test

#endif  // SIMDBN_TESTS_TRAINING_REFERENCE_H_
