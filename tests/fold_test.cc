// simdbn_fold_inference: correctly rounded scale and bias, defaults for NULL gamma/beta, and
// exact aliasing of outputs with inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "simdbn/simdbn.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

constexpr int64_t kC = 1000;
constexpr float kEps = 1e-3f;

struct Params {
  std::vector<float> gamma, beta, mean, var;
  Params() : gamma(kC), beta(kC), mean(kC), var(kC) {
    FillUniform(gamma.data(), kC, 1, -3, 3);
    FillNormal(beta.data(), kC, 2);
    FillNormal(mean.data(), kC, 3, 0, 10);
    FillUniform(var.data(), kC, 4, 0, 5);
    var[0] = 0.0f;  // eps alone keeps the square root positive
  }
};

// The fold is computed in double and rounded once: within half an ulp of the exact value plus
// the double computation's own error (a few 2^-53 relative), far below the f32 half ulp.
void ExpectCorrectlyRounded(long double exact, float got, int64_t ch, const char* what) {
  const long double err = std::fabs(static_cast<long double>(got) - exact);
  EXPECT_LE(err, 0.5L * Ulp(exact) * (1 + 0x1p-20L) + 0x1p-149L)
      << what << "[" << ch << "] = " << got << ", exact " << static_cast<double>(exact);
}

TEST(Fold, CorrectlyRounded) {
  const Params p;
  std::vector<float> scale(kC), bias(kC);
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_fold_inference(kC, p.gamma.data(), p.beta.data(),
                                                  p.mean.data(), p.var.data(), kEps,
                                                  scale.data(), bias.data()));
  for (int64_t ch = 0; ch < kC; ++ch) {
    const long double s = p.gamma[ch] / std::sqrt(static_cast<long double>(p.var[ch]) + kEps);
    ExpectCorrectlyRounded(s, scale[ch], ch, "scale");
    ExpectCorrectlyRounded(p.beta[ch] - p.mean[ch] * s, bias[ch], ch, "bias");
  }
}

TEST(Fold, NullGammaMeansOneAndNullBetaMeansZero) {
  const Params p;
  std::vector<float> ones(kC, 1.0f), zeros(kC, 0.0f);
  std::vector<float> scale(kC), bias(kC), scale_explicit(kC), bias_explicit(kC);
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_fold_inference(kC, nullptr, nullptr, p.mean.data(),
                                                  p.var.data(), kEps, scale.data(), bias.data()));
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_fold_inference(kC, ones.data(), zeros.data(), p.mean.data(), p.var.data(),
                                  kEps, scale_explicit.data(), bias_explicit.data()));
  EXPECT_TRUE(SameBits(scale.data(), scale_explicit.data(), kC));
  EXPECT_TRUE(SameBits(bias.data(), bias_explicit.data(), kC));
}

TEST(Fold, OutputsMayAliasInputsExactly) {
  const Params p;
  std::vector<float> scale(kC), bias(kC);
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_fold_inference(kC, p.gamma.data(), p.beta.data(),
                                                  p.mean.data(), p.var.data(), kEps,
                                                  scale.data(), bias.data()));
  Params q;  // scale into gamma and bias into running_mean, in place
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_fold_inference(kC, q.gamma.data(), q.beta.data(),
                                                  q.mean.data(), q.var.data(), kEps,
                                                  q.gamma.data(), q.mean.data()));
  EXPECT_TRUE(SameBits(scale.data(), q.gamma.data(), kC));
  EXPECT_TRUE(SameBits(bias.data(), q.mean.data(), kC));
}

TEST(Fold, NaNStatisticsPropagate) {
  const float gamma = 1, beta = 0, mean = NAN, var = 1;
  float scale = 0, bias = 0;
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_fold_inference(1, &gamma, &beta, &mean, &var, kEps, &scale, &bias));
  EXPECT_TRUE(std::isnan(bias));
  const float nan_var = NAN;
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_fold_inference(1, &gamma, &beta, &mean, &nan_var, kEps, &scale, &bias));
  EXPECT_TRUE(std::isnan(scale));
}

}  // namespace
}  // namespace simdbn_test
