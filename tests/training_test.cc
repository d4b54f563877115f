// Training forward against the long-double two-pass reference, on every SIMD target this CPU
// supports: statistics, running statistics, outputs, threading, numerics far from zero.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cache.h"
#include "simdbn/simdbn.h"
#include "tests/reference.h"
#include "tests/test_util.h"
#include "tests/training_reference.h"

namespace simdbn_test {
namespace {

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;

size_t Size(const simdbn_tensor_desc& d) { return static_cast<size_t>(d.n * d.c * d.spatial); }

// Every buffer of one call, guarded, with its own misalignment.
struct Call {
  simdbn_tensor_desc desc;
  GuardedBuffer x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd;
  std::vector<float> running_mean0, running_var0;  // before the call
  float momentum = kMomentum;
  float eps = kEps;

  explicit Call(const simdbn_tensor_desc& d, size_t misalign_x = 0, size_t misalign_y = 0,
                size_t misalign_c = 0)
      : desc(d),
        x(Size(d), misalign_x),
        y(Size(d), misalign_y),
        gamma(static_cast<size_t>(d.c), misalign_c),
        beta(static_cast<size_t>(d.c), misalign_c),
        running_mean(static_cast<size_t>(d.c), misalign_c),
        running_var(static_cast<size_t>(d.c), misalign_c),
        save_mean(static_cast<size_t>(d.c), misalign_c),
        save_invstd(static_cast<size_t>(d.c), misalign_c) {
    const size_t c = static_cast<size_t>(d.c);
    // Channels with different means and spreads, so that a mixed-up channel shows.
    FillNormal(x.data(), Size(d), 1);
    ForEachElement(d, [&](int64_t o, int64_t ch) {
      x[static_cast<size_t>(o)] = static_cast<float>(0.37 * static_cast<double>(ch) - 3.0 +
                                                     (0.5 + ch % 5) * x[static_cast<size_t>(o)]);
    });
    FillUniform(gamma.data(), c, 2, -2.0, 2.0);
    FillNormal(beta.data(), c, 3);
    FillNormal(running_mean.data(), c, 4);
    FillUniform(running_var.data(), c, 5, 0.5, 2.0);
    running_mean0.assign(running_mean.data(), running_mean.data() + c);
    running_var0.assign(running_var.data(), running_var.data() + c);
  }

  simdbn_status Run(const simdbn_threading* threading = nullptr) {
    return simdbn_forward_training(&desc, x.data(), gamma.data(), beta.data(), eps, momentum,
                                   running_mean.data(), running_var.data(), y.data(),
                                   save_mean.data(), save_invstd.data(), threading);
  }

  bool GuardsIntact() const {
    return x.GuardsIntact() && y.GuardsIntact() && gamma.GuardsIntact() && beta.GuardsIntact() &&
           running_mean.GuardsIntact() && running_var.GuardsIntact() &&
           save_mean.GuardsIntact() && save_invstd.GuardsIntact();
  }
};

std::string Describe(const simdbn_tensor_desc& d) {
  return "n=" + std::to_string(d.n) + " c=" + std::to_string(d.c) +
         " spatial=" + std::to_string(d.spatial) + (d.layout == SIMDBN_NCHW ? " NCHW" : " NHWC");
}

// Checks every output of a finished call against the reference and the bounds of
// training_reference.h. x is the input of the call (y may have overwritten the buffer).
void CheckOutputs(const Call& k, const float* x, const float* y) {
  const simdbn_tensor_desc& d = k.desc;
  const auto ref = ReferenceMoments(d, x);
  for (int64_t ch = 0; ch < d.c; ++ch) {
    const size_t i = static_cast<size_t>(ch);
    const ReferenceStats& r = ref[i];
    EXPECT_LE(std::fabs(k.save_mean[i] - r.mean), SaveMeanBound(r))
        << Describe(d) << " channel " << ch << " save_mean " << k.save_mean[i] << " want "
        << static_cast<double>(r.mean);
    const long double inv = r.Invstd(kEps);
    EXPECT_LE(std::fabs(k.save_invstd[i] - inv), SaveInvstdBound(r, kEps))
        << Describe(d) << " channel " << ch << " save_invstd " << k.save_invstd[i] << " want "
        << static_cast<double>(inv);
    const long double m = k.momentum;
    const long double rm0 = k.running_mean0[i], rv0 = k.running_var0[i];
    const long double rm = (1 - m) * rm0 + m * r.mean;
    EXPECT_LE(std::fabs(k.running_mean[i] - rm),
              RunningMeanBound(rm, MeanErrorDouble(r), (1 - m) * rm0, m * r.mean, k.momentum))
        << Describe(d) << " channel " << ch;
    const long double rv = (1 - m) * rv0 + m * r.Unbiased();
    EXPECT_LE(std::fabs(k.running_var[i] - rv),
              RunningVarBound(rv, UnbiasedError(r), (1 - m) * rv0, m * r.Unbiased(), k.momentum))
        << Describe(d) << " channel " << ch << " running_var " << k.running_var[i] << " want "
        << static_cast<double>(rv);
  }
  size_t bad = 0, first_bad = 0;
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    const size_t i = static_cast<size_t>(o), c = static_cast<size_t>(ch);
    const long double want = ExactOutput(x[i], ref[c], kEps, k.gamma[c], k.beta[c]);
    const long double err = std::fabs(y[i] - want);
    if (!(err <= OutputBound(x[i], ref[c], kEps, k.gamma[c], want)) && bad++ == 0) first_bad = i;
  });
  EXPECT_EQ(0u, bad) << Describe(d) << ": first bad element " << first_bad << " got "
                     << y[first_bad];
}

// Runs one shape out of place and checks everything, including that x is unchanged.
void CheckCase(const simdbn_tensor_desc& d, size_t misalign_x = 0, size_t misalign_y = 0,
               size_t misalign_c = 0) {
  Call k(d, misalign_x, misalign_y, misalign_c);
  const std::vector<float> x0(k.x.data(), k.x.data() + Size(d));
  ASSERT_EQ(SIMDBN_SUCCESS, k.Run()) << Describe(d) << ": " << simdbn_last_error_message();
  CheckOutputs(k, x0.data(), k.y.data());
  EXPECT_TRUE(SameBits(k.x.data(), x0.data(), x0.size())) << Describe(d) << ": x was modified";
  EXPECT_TRUE(k.GuardsIntact()) << Describe(d);
}

class TrainingTest : public PerTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(TrainingTest);

TEST_P(TrainingTest, DispatchesToTheTargetUnderTest) {
  EXPECT_STREQ(hwy::TargetName(GetParam()), simdbn_target_name());
}

TEST_P(TrainingTest, MatchesReferenceOnShapeSweep) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const int64_t n : {1, 2, 5}) {
      for (const int64_t c : {1, 3, 15, 16, 17, 64, 255}) {
        for (const int64_t spatial : {1, 7, 49, 3136}) {
          const simdbn_tensor_desc d{n, c, spatial, layout, SIMDBN_F32};
          if (n * spatial == 1) {
            Call k(d);
            EXPECT_EQ(SIMDBN_INVALID_ARGUMENT, k.Run()) << "one value per channel";
            continue;
          }
          CheckCase(d);
        }
      }
    }
  }
}

// Channels too large to be normalized while in cache (statistics in blocks merged across
// items, then a second pass), rows split into pieces, many NHWC items, NHWC rows cut into
// pieces of columns (the last with a partial super-row across pieces), and huge c.
TEST_P(TrainingTest, LargeChannels) {
  for (const simdbn_tensor_desc d : {simdbn_tensor_desc{2, 3, 150001, SIMDBN_NCHW, SIMDBN_F32},
                                     simdbn_tensor_desc{300, 2, 1000, SIMDBN_NCHW, SIMDBN_F32},
                                     simdbn_tensor_desc{40000, 2, 7, SIMDBN_NCHW, SIMDBN_F32},
                                     simdbn_tensor_desc{1, 3, 200003, SIMDBN_NHWC, SIMDBN_F32},
                                     simdbn_tensor_desc{3, 5000, 7, SIMDBN_NHWC, SIMDBN_F32},
                                     simdbn_tensor_desc{3, 63, 500, SIMDBN_NHWC, SIMDBN_F32},
                                     simdbn_tensor_desc{2, 20001, 3, SIMDBN_NHWC, SIMDBN_F32},
                                     simdbn_tensor_desc{70001, 3, 1, SIMDBN_NCHW, SIMDBN_F32}}) {
    CheckCase(d);
  }
}

// Outputs larger than the cache are written with non-temporal stores: fused NCHW channels in
// groups of whole rows (one run across the rows of a group), fused channels of many images
// (each run summed in lockstep with the normalization of the channel before; runs of odd
// length, so that every run of y starts at another alignment), NCHW channels whose groups are
// too short to stream (two passes instead), and NHWC.
TEST_P(TrainingTest, LargerThanCacheStreams) {
  const int64_t floats = static_cast<int64_t>(simdbn::LastLevelCacheBytes() / 4);
  const int64_t c = floats / 2 / (4 * 196) + 3;  // x + y exceed the cache
  CheckCase({4, c, 196, SIMDBN_NCHW, SIMDBN_F32}, 1, 3);
  CheckCase({20, floats / 2 / (20 * 1027) + 1, 1027, SIMDBN_NCHW, SIMDBN_F32}, 1, 3);
  CheckCase({4, c, 196, SIMDBN_NHWC, SIMDBN_F32}, 1, 3);
  CheckCase({floats / 2 / (17 * 196) + 3, 17, 196, SIMDBN_NCHW, SIMDBN_F32}, 2, 5);
}

// Beyond the LLC, channels of runs too short to stream alone (28x28, 17x17, 14x14) are fused in
// groups read image by image (kernels/training.h), each group's rows normalized as one run
// whose vectors straddle rows: one block of images and two (48 images of 28x28: 41 + 7),
// misaligned, in place, and the same bits for any threading.
TEST_P(TrainingTest, GroupsReadImageByImageBeyondTheCache) {
  const int64_t floats = static_cast<int64_t>(simdbn::LastLevelCacheBytes() / 4);
  for (const auto& [n, spatial] :
       std::vector<std::pair<int64_t, int64_t>>{{32, 784}, {48, 784}, {32, 289}, {20, 196}}) {
    const simdbn_tensor_desc d{n, floats / 2 / (n * spatial) + 1, spatial, SIMDBN_NCHW,
                               SIMDBN_F32};
    CheckCase(d, 1, 3, 1);
    const simdbn_threading one{1, nullptr, nullptr};
    TestPool pool;
    const simdbn_threading caller = WithTestPool(&pool);
    Call a(d), b(d), in(d);
    ASSERT_EQ(SIMDBN_SUCCESS, a.Run(&one));
    ASSERT_EQ(SIMDBN_SUCCESS, b.Run(&caller));
    EXPECT_GT(pool.calls, 0) << Describe(d);
    ASSERT_EQ(SIMDBN_SUCCESS,
              simdbn_forward_training(&d, in.x.data(), in.gamma.data(), in.beta.data(), kEps,
                                      kMomentum, in.running_mean.data(), in.running_var.data(),
                                      in.x.data(), in.save_mean.data(), in.save_invstd.data(),
                                      nullptr));
    const size_t c = static_cast<size_t>(d.c);
    EXPECT_TRUE(SameBits(a.y.data(), b.y.data(), Size(d))) << Describe(d);
    EXPECT_TRUE(SameBits(a.y.data(), in.x.data(), Size(d))) << Describe(d);
    for (const Call* other : {&b, &in}) {
      EXPECT_TRUE(SameBits(a.save_mean.data(), other->save_mean.data(), c)) << Describe(d);
      EXPECT_TRUE(SameBits(a.save_invstd.data(), other->save_invstd.data(), c)) << Describe(d);
      EXPECT_TRUE(SameBits(a.running_mean.data(), other->running_mean.data(), c));
      EXPECT_TRUE(SameBits(a.running_var.data(), other->running_var.data(), c));
    }
  }
}

// By-pixel tensors of at most 64 pixels (an (N, C) input with a small batch, N = 1 at 7x7) go
// a block of 256 channels at a time: channel counts around the block and vector sizes, 2 to 64
// pixels, and one past (65 pixels, the general plan).
TEST_P(TrainingTest, FewPixels) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const int64_t c : {2, 7, 255, 256, 257, 1001, 4099}) {
      for (const int64_t n : {2, 16, 17, 64, 65}) CheckCase({n, c, 1, layout, SIMDBN_F32});
    }
  }
  CheckCase({3, 300, 5, SIMDBN_NHWC, SIMDBN_F32});   // 15 pixels
  CheckCase({1, 300, 49, SIMDBN_NHWC, SIMDBN_F32});  // 49 pixels of one image
  CheckCase({4, 25000, 1, SIMDBN_NHWC, SIMDBN_F32});
}

// NCHW tensors of at most 24 pixels in runs of at most 16 take the same plan through copies of
// blocks of channels: runs of 2-16, blocks of 64-256 channels and their tails, and the shapes
// just past (17 values in one image, 26 pixels), which take the NCHW plans.
TEST_P(TrainingTest, FewPixelsNchw) {
  for (const int64_t c : {2, 7, 63, 64, 65, 255, 256, 257, 1001}) {
    for (const auto& [n, spatial] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 2}, {1, 4}, {2, 12}, {3, 8}, {12, 2}, {1, 16}, {1, 17}, {2, 13}}) {
      CheckCase({n, c, spatial, SIMDBN_NCHW, SIMDBN_F32});
    }
  }
}

TEST_P(TrainingTest, MisalignedPointers) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const size_t m : {1, 2, 3, 5, 7}) {
      CheckCase({2, 17, 49, layout, SIMDBN_F32}, m, (m * 3) % 16, m);
      CheckCase({3, 5, 1, layout, SIMDBN_F32}, m, (m * 5) % 16, m + 1);
      CheckCase({5, 301, 1, layout, SIMDBN_F32}, m, (m * 11) % 16, m);
      CheckCase({2, 3, 70001, layout, SIMDBN_F32}, m, (m * 7) % 16, m);
      CheckCase({2, 301, 5, layout, SIMDBN_F32}, m, (m * 13) % 16, m);
    }
  }
}

TEST_P(TrainingTest, InPlaceMatchesOutOfPlace) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const simdbn_tensor_desc d : {simdbn_tensor_desc{2, 17, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 3, 150001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{6, 1001, 1, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{3, 1001, 4, layout, SIMDBN_F32}}) {
      Call out(d), in(d);
      ASSERT_EQ(SIMDBN_SUCCESS, out.Run());
      ASSERT_EQ(SIMDBN_SUCCESS,
                simdbn_forward_training(&d, in.x.data(), in.gamma.data(), in.beta.data(), kEps,
                                        kMomentum, in.running_mean.data(),
                                        in.running_var.data(), in.x.data(), in.save_mean.data(),
                                        in.save_invstd.data(), nullptr));
      const size_t c = static_cast<size_t>(d.c);
      EXPECT_TRUE(SameBits(out.y.data(), in.x.data(), Size(d))) << Describe(d);
      EXPECT_TRUE(SameBits(out.save_mean.data(), in.save_mean.data(), c));
      EXPECT_TRUE(SameBits(out.save_invstd.data(), in.save_invstd.data(), c));
      EXPECT_TRUE(SameBits(out.running_var.data(), in.running_var.data(), c));
      EXPECT_TRUE(in.GuardsIntact());

      // gamma and beta may be the very arrays that receive save_invstd and save_mean.
      Call alias(d);
      std::memcpy(alias.save_invstd.data(), alias.gamma.data(), c * sizeof(float));
      std::memcpy(alias.save_mean.data(), alias.beta.data(), c * sizeof(float));
      ASSERT_EQ(SIMDBN_SUCCESS,
                simdbn_forward_training(&d, alias.x.data(), alias.save_invstd.data(),
                                        alias.save_mean.data(), kEps, kMomentum,
                                        alias.running_mean.data(), alias.running_var.data(),
                                        alias.y.data(), alias.save_mean.data(),
                                        alias.save_invstd.data(), nullptr))
          << simdbn_last_error_message();
      EXPECT_TRUE(SameBits(out.y.data(), alias.y.data(), Size(d))) << Describe(d);
      EXPECT_TRUE(SameBits(out.save_mean.data(), alias.save_mean.data(), c));
      EXPECT_TRUE(SameBits(out.save_invstd.data(), alias.save_invstd.data(), c));
    }
  }
}

TEST_P(TrainingTest, NullGammaBetaAndRunningStatistics) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d{2, 17, 49, layout, SIMDBN_F32};
    Call with(d), without(d);
    for (size_t i = 0; i < 17; ++i) {
      with.gamma[i] = 1.0f;
      with.beta[i] = 0.0f;
    }
    ASSERT_EQ(SIMDBN_SUCCESS, with.Run());
    ASSERT_EQ(SIMDBN_SUCCESS,
              simdbn_forward_training(&d, without.x.data(), nullptr, nullptr, kEps, kMomentum,
                                      nullptr, nullptr, without.y.data(),
                                      without.save_mean.data(), without.save_invstd.data(),
                                      nullptr));
    EXPECT_TRUE(SameBits(with.y.data(), without.y.data(), Size(d)));
    EXPECT_TRUE(SameBits(with.save_mean.data(), without.save_mean.data(), 17));
    EXPECT_TRUE(SameBits(with.save_invstd.data(), without.save_invstd.data(), 17));
  }
}

// Every value of a channel equal: the variance is exactly 0 (no rounding residue), invstd is
// exactly the f32 1 / sqrt(eps), and y is exactly beta.
TEST_P(TrainingTest, ConstantChannelsHaveZeroVariance) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const simdbn_tensor_desc d : {simdbn_tensor_desc{3, 5, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 3, 150001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{4, 5, 1, layout, SIMDBN_F32}}) {
      Call k(d);
      const float values[5] = {3.7f, 1e6f + 0.5f, -0.0f, -1e-30f, 1.17549435e-38f};
      ForEachElement(d, [&](int64_t o, int64_t ch) { k.x[static_cast<size_t>(o)] = values[ch]; });
      ASSERT_EQ(SIMDBN_SUCCESS, k.Run());
      const float invstd = 1.0f / std::sqrt(kEps);
      const float keep = static_cast<float>(1.0 - static_cast<double>(kMomentum));
      for (size_t ch = 0; ch < static_cast<size_t>(d.c); ++ch) {
        EXPECT_EQ(values[ch], k.save_mean[ch]) << Describe(d) << " channel " << ch;
        EXPECT_EQ(invstd, k.save_invstd[ch]) << Describe(d) << " channel " << ch;
        const float rv = keep * k.running_var0[ch];
        EXPECT_EQ(rv, k.running_var[ch]) << Describe(d) << " channel " << ch;
      }
      ForEachElement(d, [&](int64_t o, int64_t ch) {
        EXPECT_EQ(k.beta[static_cast<size_t>(ch)], k.y[static_cast<size_t>(o)]);
      });
    }
  }
}

// With eps = 0 a constant channel is 0 / 0, as the formula says: invstd Inf and y NaN. The
// other channels are normalized as usual.
TEST_P(TrainingTest, ZeroEpsOnAConstantChannelIsZeroOverZero) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d{2, 3, 49, layout, SIMDBN_F32};
    Call k(d);
    k.eps = 0.0f;
    ForEachElement(d, [&](int64_t o, int64_t ch) {
      if (ch == 1) k.x[static_cast<size_t>(o)] = 2.5f;
    });
    ASSERT_EQ(SIMDBN_SUCCESS, k.Run());
    EXPECT_EQ(2.5f, k.save_mean[1]) << Describe(d);
    EXPECT_EQ(std::numeric_limits<float>::infinity(), k.save_invstd[1]) << Describe(d);
    ForEachElement(d, [&](int64_t o, int64_t ch) {
      const float y = k.y[static_cast<size_t>(o)];
      EXPECT_EQ(ch == 1, std::isnan(y)) << Describe(d) << " channel " << ch;
    });
  }
}

// NaN anywhere in a channel makes its statistics and outputs NaN; Inf makes its mean Inf and
// its variance NaN. Other channels are untouched by either.
TEST_P(TrainingTest, PropagatesNaNAndInfinity) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const simdbn_tensor_desc d : {simdbn_tensor_desc{2, 4, 20, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 4, 150001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{3, 4, 1, layout, SIMDBN_F32}}) {
      Call clean(d), k(d);
      // Channel 0: NaN first (where the shift is taken); 1: NaN last; 2: +Inf first and last
      // (in different chunks of the larger shape, whose moments merge); 3: clean.
      k.x[static_cast<size_t>(Offset(d, 0, 0, 0))] = NAN;
      k.x[static_cast<size_t>(Offset(d, d.n - 1, 1, d.spatial - 1))] = NAN;
      k.x[static_cast<size_t>(Offset(d, 0, 2, 0))] = INFINITY;
      k.x[static_cast<size_t>(Offset(d, d.n - 1, 2, d.spatial - 1))] = INFINITY;
      ASSERT_EQ(SIMDBN_SUCCESS, clean.Run());
      ASSERT_EQ(SIMDBN_SUCCESS, k.Run());
      for (size_t ch : {0, 1}) {
        EXPECT_TRUE(std::isnan(k.save_mean[ch])) << Describe(d) << " channel " << ch;
        EXPECT_TRUE(std::isnan(k.save_invstd[ch])) << Describe(d) << " channel " << ch;
        EXPECT_TRUE(std::isnan(k.running_mean[ch]) && std::isnan(k.running_var[ch]));
      }
      EXPECT_EQ(INFINITY, k.save_mean[2]) << Describe(d);
      EXPECT_TRUE(std::isnan(k.save_invstd[2])) << Describe(d);
      EXPECT_TRUE(std::isnan(k.running_var[2])) << Describe(d);
      EXPECT_EQ(clean.save_mean[3], k.save_mean[3]);
      EXPECT_EQ(clean.save_invstd[3], k.save_invstd[3]);
      ForEachElement(d, [&](int64_t o, int64_t ch) {
        const size_t i = static_cast<size_t>(o);
        if (ch < 3) {
          EXPECT_TRUE(std::isnan(k.y[i])) << Describe(d) << " channel " << ch << " at " << o;
        } else {
          EXPECT_EQ(clean.y[i], k.y[i]);
        }
      });
    }
  }
}

// Values small enough to do by hand. Channel 0 holds {1, 2, 3, 4}: mean 2.5, biased variance
// 1.25, unbiased 5/3. Channel 1 holds {-2, 0, 0, 2}: mean 0, variance 2, unbiased 8/3.
TEST_P(TrainingTest, RunningStatisticsByHand) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d{2, 2, 2, layout, SIMDBN_F32};
    const float ch0[4] = {1, 2, 3, 4}, ch1[4] = {-2, 0, 0, 2};
    std::vector<float> x(8), y(8);
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t s = 0; s < 2; ++s) {
        x[static_cast<size_t>(Offset(d, i, 0, s))] = ch0[2 * i + s];
        x[static_cast<size_t>(Offset(d, i, 1, s))] = ch1[2 * i + s];
      }
    }
    float running_mean[2] = {0.5f, -1.0f}, running_var[2] = {2.0f, 0.0f};
    float save_mean[2], save_invstd[2];
    const float gamma[2] = {2.0f, 1.0f}, beta[2] = {1.0f, 0.0f};
    ASSERT_EQ(SIMDBN_SUCCESS,
              simdbn_forward_training(&d, x.data(), gamma, beta, 0.0f, 0.25f, running_mean,
                                      running_var, y.data(), save_mean, save_invstd, nullptr));
    // 0.75 * 0.5 + 0.25 * 2.5 = 1; 0.75 * -1 + 0.25 * 0 = -0.75.
    EXPECT_EQ(1.0f, running_mean[0]);
    EXPECT_EQ(-0.75f, running_mean[1]);
    // 0.75 * 2 + 0.25 * 5/3 = 23/12; 0.75 * 0 + 0.25 * 8/3 = 2/3, in f32: the unbiased
    // variances are the biased ones (exact here) times 4/3 rounded to f32, and the products by
    // 0.75 and 0.25 are exact.
    const float ratio = static_cast<float>(4.0 / 3.0);
    EXPECT_EQ(1.5f + 0.25f * (1.25f * ratio), running_var[0]);
    EXPECT_EQ(0.25f * (2.0f * ratio), running_var[1]);
    EXPECT_EQ(2.5f, save_mean[0]);
    EXPECT_EQ(0.0f, save_mean[1]);
    EXPECT_EQ(1.0f / std::sqrt(1.25f), save_invstd[0]);
    EXPECT_EQ(1.0f / std::sqrt(2.0f), save_invstd[1]);
    // Channel 1 at x = 2: (2 - 0) * 1 / sqrt(2) = sqrt(2) with scale rounded to f32.
    const float scale1 = 1.0f / std::sqrt(2.0f);
    EXPECT_EQ(2.0f * scale1, y[static_cast<size_t>(Offset(d, 1, 1, 1))]);
    // Channel 0 at x = 3: (3 - 2.5) * 2 / sqrt(1.25) + 1; the product by 0.5 is exact, so
    // targets with and without FMA round the same once.
    const float scale0 = 2.0f * (1.0f / std::sqrt(1.25f));
    EXPECT_EQ(0.5f * scale0 + 1.0f, y[static_cast<size_t>(Offset(d, 1, 0, 0))]);
  }
}

TEST_P(TrainingTest, SameBitsForAnyThreading) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    // Fused NCHW channels in groups, two-pass NCHW (read image by image, pieces, blocks of
    // images), NHWC super-rows, NHWC rows cut into pieces of columns (few wide rows; with a
    // partial super-row; enough row blocks that threads merge ranges of channels), and few
    // pixels in blocks of channels.
    for (const simdbn_tensor_desc d : {simdbn_tensor_desc{4, 256, 784, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{8, 64, 3136, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{4, 3, 150001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1000, 4, 300, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1, 3, 300001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1, 2048, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1, 2048, 81, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{3, 63, 500, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 1000, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{24, 1001, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{16, 8191, 1, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 8191, 4, layout, SIMDBN_F32}}) {
      const simdbn_threading one{1, nullptr, nullptr}, all{0, nullptr, nullptr};
      TestPool pool;
      const simdbn_threading caller = WithTestPool(&pool);
      Call a(d), b(d), p(d);
      ASSERT_EQ(SIMDBN_SUCCESS, a.Run(&one));
      ASSERT_EQ(SIMDBN_SUCCESS, b.Run(&all));
      ASSERT_EQ(SIMDBN_SUCCESS, p.Run(&caller));
      EXPECT_GT(pool.calls, 0) << Describe(d) << " was meant to be large enough to split";
      const size_t c = static_cast<size_t>(d.c);
      for (const Call* other : {&b, &p}) {
        EXPECT_TRUE(SameBits(a.y.data(), other->y.data(), Size(d))) << Describe(d);
        EXPECT_TRUE(SameBits(a.save_mean.data(), other->save_mean.data(), c)) << Describe(d);
        EXPECT_TRUE(SameBits(a.save_invstd.data(), other->save_invstd.data(), c)) << Describe(d);
        EXPECT_TRUE(SameBits(a.running_mean.data(), other->running_mean.data(), c));
        EXPECT_TRUE(SameBits(a.running_var.data(), other->running_var.data(), c));
      }
    }
  }
}

// ---- Numerics far from zero ----

// The accuracy bar of issue 4 (oneDNN 2.6.3 misses it by 1.5% at mean 1e4 in NHWC):
// save_mean within 1 ulp of the exact mean plus 1e-5 std, save_invstd within 2e-5 and the
// unbiased running_var (momentum 1) within 3e-5, relative.
struct BarErrors {
  double mean_ulps = 0, mean_std = 0, invstd = 0, running_var = 0;
};

// Worst channel's errors; the mean passes when |err| <= 1 ulp + 1e-5 std.
bool MeetsBar(const std::vector<ReferenceStats>& ref, const float* mean, const float* invstd,
              const float* running_var, BarErrors* worst) {
  bool pass = true;
  for (size_t ch = 0; ch < ref.size(); ++ch) {
    const ReferenceStats& r = ref[ch];
    const long double sd = std::sqrt(r.Var());
    const long double err = std::fabs(mean[ch] - r.mean);
    pass &= err <= Ulp(r.mean) + 1e-5L * sd;
    worst->mean_ulps = std::max(worst->mean_ulps, static_cast<double>(err / Ulp(r.mean)));
    worst->mean_std = std::max(worst->mean_std, static_cast<double>(err / sd));
    const long double inv = r.Invstd(kEps);
    const double inv_err = static_cast<double>(std::fabs(invstd[ch] - inv) / inv);
    const double rv_err =
        static_cast<double>(std::fabs(running_var[ch] - r.Unbiased()) / r.Unbiased());
    pass &= inv_err <= 2e-5 && rv_err <= 3e-5;  // false for NaN too
    worst->invstd = std::max(worst->invstd, std::isnan(inv_err) ? INFINITY : inv_err);
    worst->running_var = std::max(worst->running_var, std::isnan(rv_err) ? INFINITY : rv_err);
  }
  return pass;
}

// 16 x 56 x 56 = 50,176 values per channel with std 1, as in the oneDNN measurement.
simdbn_tensor_desc BarShape(simdbn_layout layout) { return {16, 4, 3136, layout, SIMDBN_F32}; }

void FillShifted(float* x, size_t size, double mean, uint32_t seed) {
  FillNormal(x, size, seed, mean, 1.0);
}

TEST_P(TrainingTest, MeetsAccuracyBarFarFromZero) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const double mean : {1e4, 1e5, 1e6}) {
      const simdbn_tensor_desc d = BarShape(layout);
      Call k(d);
      k.momentum = 1.0f;  // running_var becomes the batch's unbiased variance
      FillShifted(k.x.data(), Size(d), mean, 7);
      ASSERT_EQ(SIMDBN_SUCCESS, k.Run());
      const auto ref = ReferenceMoments(d, k.x.data());
      BarErrors worst;
      EXPECT_TRUE(MeetsBar(ref, k.save_mean.data(), k.save_invstd.data(), k.running_var.data(),
                           &worst))
          << Describe(d) << " mean " << mean;
      std::printf("[ accuracy ] %s %s mean %g: save_mean %.3f ulp (%.2e std), save_invstd %.2e, "
                  "running_var %.2e relative\n",
                  hwy::TargetName(GetParam()), layout == SIMDBN_NCHW ? "NCHW" : "NHWC", mean,
                  worst.mean_ulps, worst.mean_std, worst.invstd, worst.running_var);
      // The tighter bounds that follow from the arithmetic hold too.
      CheckOutputs(k, k.x.data(), k.y.data());
    }
  }
}

// 4M values in one channel at mean 1e6: long sums would drift in f32; in double they do not.
TEST_P(TrainingTest, MeetsAccuracyBarOnLargeChannels) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d{2, 1, int64_t{1} << 21, layout, SIMDBN_F32};
    Call k(d);
    k.momentum = 1.0f;
    FillShifted(k.x.data(), Size(d), 1e6, 8);
    ASSERT_EQ(SIMDBN_SUCCESS, k.Run());
    const auto ref = ReferenceMoments(d, k.x.data());
    BarErrors worst;
    EXPECT_TRUE(
        MeetsBar(ref, k.save_mean.data(), k.save_invstd.data(), k.running_var.data(), &worst));
    std::printf("[ accuracy ] %s %s 4M values at mean 1e6: save_mean %.3f ulp, save_invstd "
                "%.2e, running_var %.2e relative\n",
                hwy::TargetName(GetParam()), layout == SIMDBN_NCHW ? "NCHW" : "NHWC",
                worst.mean_ulps, worst.invstd, worst.running_var);
  }
}

// The bar has teeth: E[x^2] - E[x]^2 with f32 sums (8 lanes, as a SIMD kernel would) misses it
// by orders of magnitude at mean 1e4 already, and unshifted sums in double still miss it at 1e6.
template <class T>
void NaiveStats(const simdbn_tensor_desc& d, const float* x, std::vector<float>* mean,
                std::vector<float>* invstd, std::vector<float>* unbiased) {
  const size_t c = static_cast<size_t>(d.c);
  std::vector<T> s(8 * c, T(0)), q(8 * c, T(0));
  std::vector<size_t> lane(c, 0);
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    const size_t at = 8 * static_cast<size_t>(ch) + lane[static_cast<size_t>(ch)]++ % 8;
    const T v = x[o];
    s[at] += v;
    q[at] += v * v;
  });
  for (size_t ch = 0; ch < c; ++ch) {
    T sum = 0, squares = 0;
    for (size_t l = 0; l < 8; ++l) {
      sum += s[8 * ch + l];
      squares += q[8 * ch + l];
    }
    const T count = static_cast<T>(d.n * d.spatial);
    const T m = sum / count;
    const T var = squares / count - m * m;
    (*mean)[ch] = static_cast<float>(m);
    (*invstd)[ch] = static_cast<float>(1 / std::sqrt(var + kEps));
    (*unbiased)[ch] = static_cast<float>(var * count / (count - 1));
  }
}

TEST(TrainingNumerics, NaiveSumOfSquaresFailsTheBar) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d = BarShape(layout);
    std::vector<float> x(Size(d)), mean(4), invstd(4), unbiased(4);
    for (const double m : {1e4, 1e6}) {
      FillShifted(x.data(), x.size(), m, 7);
      const auto ref = ReferenceMoments(d, x.data());
      BarErrors f32, f64;
      NaiveStats<float>(d, x.data(), &mean, &invstd, &unbiased);
      EXPECT_FALSE(MeetsBar(ref, mean.data(), invstd.data(), unbiased.data(), &f32));
      NaiveStats<double>(d, x.data(), &mean, &invstd, &unbiased);
      const bool f64_pass = MeetsBar(ref, mean.data(), invstd.data(), unbiased.data(), &f64);
      if (m == 1e6) {
        EXPECT_FALSE(f64_pass);
      }
      std::printf("[ accuracy ] naive E[x^2]-E[x]^2 %s mean %g: f32 invstd %.2e, running_var "
                  "%.2e; unshifted double invstd %.2e, running_var %.2e relative\n",
                  layout == SIMDBN_NCHW ? "NCHW" : "NHWC", m, f32.invstd, f32.running_var,
                  f64.invstd, f64.running_var);
    }
  }
}

// ---- Errors: each returns its status, names the argument, and writes nothing ----

void ExpectFailure(simdbn_status want, simdbn_status got, const std::string& mention) {
  EXPECT_EQ(want, got) << simdbn_last_error_message();
  const std::string message = simdbn_last_error_message();
  EXPECT_NE(std::string::npos, message.find(mention))
      << "message \"" << message << "\" does not mention \"" << mention << "\"";
}

class TrainingErrors : public ::testing::Test {
 protected:
  static constexpr int64_t kC = 5, kSpatial = 8;
  TrainingErrors()
      : x(2 * kC * kSpatial), y(x.size()), gamma(kC), beta(kC), running_mean(kC),
        running_var(kC), save_mean(kC), save_invstd(kC) {
    FillNormal(x.data(), x.size(), 1);
    FillNormal(gamma.data(), kC, 2);
    FillNormal(beta.data(), kC, 3);
    // Sentinels are valid running statistics (NaN propagates), and show any write.
    running_mean.FillSentinel();
    running_var.FillSentinel();
  }
  simdbn_status Run(const simdbn_tensor_desc* d, float eps = kEps, float momentum = kMomentum,
                     const simdbn_threading* t = nullptr) {
    return simdbn_forward_training(d, x.data(), gamma.data(), beta.data(), eps, momentum,
                                   running_mean.data(), running_var.data(), y.data(),
                                   save_mean.data(), save_invstd.data(), t);
  }
  void TearDown() override {
    for (const GuardedBuffer* b : {&y, &running_mean, &running_var, &save_mean, &save_invstd}) {
      EXPECT_TRUE(b->Untouched() && b->GuardsIntact()) << "an output was written";
    }
  }

  simdbn_tensor_desc desc{2, kC, kSpatial, SIMDBN_NHWC, SIMDBN_F32};
  GuardedBuffer x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd;
};

TEST_F(TrainingErrors, NullPointers) {
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(nullptr), "desc is NULL");
  const auto call = [&](const void* xp, void* yp, float* mean, float* invstd) {
    return simdbn_forward_training(&desc, xp, gamma.data(), beta.data(), kEps, kMomentum,
                                   running_mean.data(), running_var.data(), yp, mean, invstd,
                                   nullptr);
  };
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(nullptr, y.data(), save_mean.data(), save_invstd.data()), "x is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(x.data(), nullptr, save_mean.data(), save_invstd.data()), "y is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, call(x.data(), y.data(), nullptr, save_invstd.data()),
                "save_mean is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, call(x.data(), y.data(), save_mean.data(), nullptr),
                "save_invstd is NULL");
}

TEST_F(TrainingErrors, BadShapesAndEnums) {
  for (const auto& [n, c, spatial, mention] :
       {std::make_tuple(int64_t{-1}, kC, kSpatial, "n = -1"),
        std::make_tuple(int64_t{2}, int64_t{0}, kSpatial, "c = 0"),
        std::make_tuple(int64_t{2}, kC, int64_t{-7}, "spatial = -7"),
        std::make_tuple(int64_t{1} << 40, int64_t{1} << 20, int64_t{1} << 10, "overflows")}) {
    simdbn_tensor_desc d{n, c, spatial, SIMDBN_NCHW, SIMDBN_F32};
    ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&d), mention);
  }
  simdbn_tensor_desc d = desc;
  d.layout = static_cast<simdbn_layout>(7);
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&d), "layout = 7");
  d = desc;
  d.dtype = static_cast<simdbn_dtype>(9);
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&d), "dtype = 9");
  const simdbn_threading threading{-1, nullptr, nullptr};
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, kEps, kMomentum, &threading),
                "num_threads = -1");
}

TEST_F(TrainingErrors, EpsAndMomentum) {
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, -1e-3f), "eps = -0.001");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, NAN), "eps = nan");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, INFINITY), "eps = inf");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, kEps, -0.125f), "momentum = -0.125");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, kEps, 1.5f), "momentum = 1.5");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, kEps, NAN), "momentum = nan");
  // Enough digits to tell the value from 1.
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&desc, kEps, std::nextafter(1.0f, 2.0f)),
                "momentum = 1.00000012;");
}

TEST_F(TrainingErrors, FewerThanTwoValuesPerChannel) {
  for (const auto& [n, spatial, mention] : {std::make_tuple(1, 1, "= 1 values per channel"),
                                            std::make_tuple(0, 8, "= 0 values per channel"),
                                            std::make_tuple(2, 0, "= 0 values per channel")}) {
    for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
      const simdbn_tensor_desc d{n, kC, spatial, layout, SIMDBN_F32};
      ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&d), mention);
    }
  }
}

TEST_F(TrainingErrors, OverlapsAreRejected) {
  GuardedBuffer big(x.size() + 1);
  big.FillSentinel();
  const auto call = [&](const void* xp, void* yp, const float* g, float* rm, float* rv,
                        float* mean, float* invstd) {
    return simdbn_forward_training(&desc, xp, g, beta.data(), kEps, kMomentum, rm, rv, yp, mean,
                                   invstd, nullptr);
  };
  // y one element past x.
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(big.data(), big.data() + 1, gamma.data(), running_mean.data(),
                     running_var.data(), save_mean.data(), save_invstd.data()),
                "partially overlaps");
  EXPECT_TRUE(big.Untouched());
  // Per-channel outputs inside y or x, or sharing bytes with each other.
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(x.data(), big.data(), gamma.data(), running_mean.data(), running_var.data(),
                     big.data() + 3, save_invstd.data()),
                "save_mean");
  EXPECT_TRUE(big.Untouched());
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(big.data(), y.data(), gamma.data(), running_mean.data(), running_var.data(),
                     save_mean.data(), big.data() + 7),
                "save_invstd");
  EXPECT_TRUE(big.Untouched());
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(x.data(), y.data(), gamma.data(), big.data(), big.data() + 2,
                     save_mean.data(), save_invstd.data()),
                "running_var");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(x.data(), y.data(), gamma.data(), running_mean.data(), running_var.data(),
                     save_mean.data(), save_mean.data()),
                "overlap");
  // gamma partially over an output.
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(x.data(), y.data(), save_mean.data() + 1, running_mean.data(),
                     running_var.data(), save_mean.data(), save_invstd.data()),
                "gamma");
  EXPECT_TRUE(big.Untouched());
}

#if !defined(__SANITIZE_ADDRESS__)  // ASan aborts on impossible allocations instead of failing
TEST_F(TrainingErrors, ScratchThatCannotBeAllocated) {
  // 72 pixels of 2^53 channels (more than the few-pixel plan takes, which needs no scratch): a
  // valid request whose statistics need 2^56 bytes or more of scratch. Tensors that large
  // cannot exist, so the pointers are addresses far enough apart for the overlap checks, never
  // dereferenced: the allocation fails before any access.
  const simdbn_tensor_desc d{72, int64_t{1} << 53, 1, SIMDBN_NHWC, SIMDBN_F32};
  // x and y take 2^61.2 bytes each; the six per-channel arrays 2^55 each, between them.
  const auto at = FakeAddress;
  const auto channels = [&](uint64_t k) { return at((uint64_t{3} << 60) + (k << 56)); };
  ExpectFailure(SIMDBN_OUT_OF_MEMORY,
                simdbn_forward_training(&d, at(0x1000), channels(0), channels(1), kEps, kMomentum,
                                        channels(2), channels(3), at(uint64_t{1} << 62),
                                        channels(4), channels(5), nullptr),
                "cannot allocate");
}
#endif

TEST_F(TrainingErrors, ReducedPrecisionIsUnsupportedButStillValidated) {
  simdbn_tensor_desc d = desc;
  for (const simdbn_dtype dtype : {SIMDBN_BF16, SIMDBN_F16}) {
    d.dtype = dtype;
    ExpectFailure(SIMDBN_UNSUPPORTED, Run(&d), dtype == SIMDBN_BF16 ? "BF16" : "F16");
    ExpectFailure(SIMDBN_INVALID_ARGUMENT, Run(&d, kEps, 2.0f), "momentum");
  }
}

}  // namespace
}  // namespace simdbn_test
