// Inference forward against the long-double reference, on every SIMD target this CPU supports.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cache.h"
#include "simdbn/simdbn.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

constexpr long double kU = 0x1p-24L;  // unit roundoff of f32

// Bound on |y - exact|: the product x * scale, the sum with bias and the residual add each
// round once (first order, at most u times the magnitude rounded; one FMA merges the first two
// and is then tighter). Twice u at the denormal end covers flush-free subnormal spacing.
long double Bound(float x, float scale, float bias, long double exact) {
  const long double product = static_cast<long double>(x) * scale;
  return kU * (std::fabs(product) + std::fabs(product + bias) + std::fabs(exact)) + 0x1p-148L;
}

struct Case {
  simdbn_tensor_desc desc;
  size_t misalign_x = 0, misalign_y = 0, misalign_r = 0, misalign_p = 0;
  bool only_residual_relu = false;  // the one variant that exercises every step
};

// Runs one shape out of place with and without residual and ReLU, and checks every element
// against the reference, the guards of every buffer, and that the inputs are unchanged.
void CheckCase(const Case& k) {
  const simdbn_tensor_desc& d = k.desc;
  const size_t size = static_cast<size_t>(d.n * d.c * d.spatial);
  const size_t c = static_cast<size_t>(d.c);
  GuardedBuffer x(size, k.misalign_x), y(size, k.misalign_y), r(size, k.misalign_r);
  GuardedBuffer scale(c, k.misalign_p), bias(c, k.misalign_p);
  FillNormal(x.data(), size, 1, 0.5, 2.0);
  FillNormal(r.data(), size, 2);
  FillUniform(scale.data(), c, 3, -2.0, 2.0);
  FillNormal(bias.data(), c, 4);
  const std::vector<float> x0(x.data(), x.data() + size);

  for (const bool residual : {false, true}) {
    for (const bool relu : {false, true}) {
      if (k.only_residual_relu && !(residual && relu)) continue;
      const float* res = residual ? r.data() : nullptr;
      ASSERT_EQ(SIMDBN_SUCCESS,
                simdbn_forward_inference(&d, x.data(), scale.data(), bias.data(), res, y.data(),
                                         relu ? static_cast<unsigned>(SIMDBN_RELU) : 0u,
                                         nullptr))
          << simdbn_last_error_message();
      size_t bad = 0;
      size_t first_bad = 0;
      long double first_want = 0;
      ForEachElement(d, [&](int64_t o, int64_t ch) {
        const size_t i = static_cast<size_t>(o);
        const long double want =
            InferenceExact(x[i], scale[ch], bias[ch], residual ? &r[i] : nullptr, relu);
        const long double err = std::fabs(static_cast<long double>(y[i]) - want);
        if (!(err <= Bound(x[i], scale[ch], bias[ch], want)) && bad++ == 0) {
          first_bad = i;
          first_want = want;
        }
      });
      EXPECT_EQ(0u, bad) << "n=" << d.n << " c=" << d.c << " spatial=" << d.spatial
                         << " layout=" << d.layout << " residual=" << residual
                         << " relu=" << relu << ": first bad element " << first_bad << " got "
                         << y[first_bad] << " want " << static_cast<double>(first_want);
      EXPECT_TRUE(y.GuardsIntact());
    }
  }
  EXPECT_TRUE(x.GuardsIntact() && r.GuardsIntact() && scale.GuardsIntact() &&
              bias.GuardsIntact());
  EXPECT_TRUE(SameBits(x.data(), x0.data(), size)) << "x was modified";
}

class InferenceTest : public PerTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(InferenceTest);

TEST_P(InferenceTest, DispatchesToTheTargetUnderTest) {
  EXPECT_STREQ(hwy::TargetName(GetParam()), simdbn_target_name());
}

TEST_P(InferenceTest, MatchesReferenceOnShapeSweep) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const int64_t n : {1, 2, 5}) {
      for (const int64_t c : {1, 3, 15, 16, 17, 64, 255}) {
        for (const int64_t spatial : {1, 7, 49, 3136}) {
          CheckCase({{n, c, spatial, layout, SIMDBN_F32}});
        }
      }
    }
  }
}

TEST_P(InferenceTest, MisalignedPointers) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const size_t m : {1, 2, 3, 5, 7}) {
      CheckCase({{2, 17, 49, layout, SIMDBN_F32}, m, (m * 3) % 16, m + 1, m});
      CheckCase({{3, 5, 1, layout, SIMDBN_F32}, m, (m * 5) % 16, 0, m});
    }
  }
}

// Large enough to bypass the cache with non-temporal stores, with an output that needs
// peeling to reach vector alignment: long rows cut into pieces, and NCHW rows shorter than a
// cache line or not a whole number of lines, walked as one run across rows (vectors that
// straddle two channels).
TEST_P(InferenceTest, LargerThanCacheStreams) {
  const int64_t floats = static_cast<int64_t>(simdbn::LastLevelCacheBytes() / 4);
  const int64_t spatial = floats / 3 + 5;
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    CheckCase({{1, 3, spatial, layout, SIMDBN_F32}, 1, 3, 2, 0, true});
  }
  for (const int64_t rows : {int64_t{16}, int64_t{17}, int64_t{49}, int64_t{196}}) {
    const int64_t c = 17, n = floats / 2 / (c * rows) + 3;  // x + y exceed the cache
    CheckCase({{n, c, rows, SIMDBN_NCHW, SIMDBN_F32}, 2, 5, 1, 0, true});
  }
}

TEST_P(InferenceTest, InPlaceMatchesOutOfPlace) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d{2, 17, 49, layout, SIMDBN_F32};
    const size_t size = static_cast<size_t>(d.n * d.c * d.spatial);
    std::vector<float> x(size), r(size), scale(17), bias(17), y(size);
    FillNormal(x.data(), size, 5);
    FillNormal(r.data(), size, 6);
    FillNormal(scale.data(), 17, 7);
    FillNormal(bias.data(), 17, 8);
    ASSERT_EQ(SIMDBN_SUCCESS, simdbn_forward_inference(&d, x.data(), scale.data(), bias.data(),
                                                       r.data(), y.data(), SIMDBN_RELU, nullptr));
    std::vector<float> in_x = x, in_r = r;
    ASSERT_EQ(SIMDBN_SUCCESS, simdbn_forward_inference(&d, in_x.data(), scale.data(),
                                                       bias.data(), r.data(), in_x.data(),
                                                       SIMDBN_RELU, nullptr));
    ASSERT_EQ(SIMDBN_SUCCESS, simdbn_forward_inference(&d, x.data(), scale.data(), bias.data(),
                                                       in_r.data(), in_r.data(), SIMDBN_RELU,
                                                       nullptr));
    EXPECT_TRUE(SameBits(y.data(), in_x.data(), size)) << "y == x";
    EXPECT_TRUE(SameBits(y.data(), in_r.data(), size)) << "y == residual";
  }
}

TEST_P(InferenceTest, PropagatesNaNAndInfinity) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d{1, 3, 20, layout, SIMDBN_F32};
    std::vector<float> x(60, 1.0f), y(60);
    const float scale[3] = {1.0f, -1.0f, 2.0f}, bias[3] = {0.0f, 0.0f, 0.0f};
    x[0] = NAN;
    x[1] = INFINITY;
    x[59] = -NAN;
    for (const unsigned flags : {0u, static_cast<unsigned>(SIMDBN_RELU)}) {
      ASSERT_EQ(SIMDBN_SUCCESS, simdbn_forward_inference(&d, x.data(), scale, bias, nullptr,
                                                         y.data(), flags, nullptr));
      EXPECT_TRUE(std::isnan(y[0])) << "flags " << flags;
      EXPECT_TRUE(std::isnan(y[59])) << "flags " << flags;
      const long double inf_scale = scale[layout == SIMDBN_NCHW ? 0 : 1];
      const float want_inf = flags != 0 && inf_scale < 0 ? 0.0f : inf_scale * INFINITY;
      EXPECT_EQ(want_inf, y[1]) << "flags " << flags;
    }
  }
}

// Returns before any dispatch, so not a per-target test.
TEST(Inference, EmptyTensorsWriteNothing) {
  for (const simdbn_tensor_desc d : {simdbn_tensor_desc{0, 3, 7, SIMDBN_NCHW, SIMDBN_F32},
                                     simdbn_tensor_desc{2, 3, 0, SIMDBN_NHWC, SIMDBN_F32}}) {
    GuardedBuffer y(4);
    const float x[4] = {1, 2, 3, 4}, scale[3] = {1, 1, 1}, bias[3] = {0, 0, 0};
    EXPECT_EQ(SIMDBN_SUCCESS,
              simdbn_forward_inference(&d, x, scale, bias, nullptr, y.data(), 0, nullptr));
    EXPECT_TRUE(y.Untouched());
  }
}

}  // namespace
}  // namespace simdbn_test
