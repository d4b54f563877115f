// Mergeable moments: simdbn_batch_moments against the long-double reference, Chan's merge,
// and normalization with caller-supplied moments (SyncBN, whole-dataset statistics).
#include <gtest/gtest.h>

#include <cmath>
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

std::vector<float> Data(const simdbn_tensor_desc& d, double mean, uint32_t seed) {
  std::vector<float> x(Size(d));
  FillNormal(x.data(), x.size(), seed, mean, 1.5);
  return x;
}

std::vector<simdbn_moments> Moments(const simdbn_tensor_desc& d, const float* x,
                                    const simdbn_threading* threading = nullptr) {
  std::vector<simdbn_moments> m(static_cast<size_t>(d.c));
  EXPECT_EQ(SIMDBN_SUCCESS, simdbn_batch_moments(&d, x, m.data(), threading))
      << simdbn_last_error_message();
  return m;
}

bool SameMoments(const std::vector<simdbn_moments>& a, const std::vector<simdbn_moments>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
}

class MomentsTest : public PerTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(MomentsTest);

// Bounds from training_reference.h: the mean in double within MeanErrorDouble, m2 within
// M2Error, the count exact.
TEST_P(MomentsTest, BatchMomentsMatchReference) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const simdbn_tensor_desc d : {simdbn_tensor_desc{1, 1, 2, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1, 3, 1, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{5, 17, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 64, 3136, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 3, 150001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1000, 2, 300, layout, SIMDBN_F32}}) {
      for (const double mean : {0.0, 1e4, 1e6}) {
        const std::vector<float> x = Data(d, mean, 1);
        const auto m = Moments(d, x.data());
        const auto ref = ReferenceMoments(d, x.data());
        for (size_t ch = 0; ch < m.size(); ++ch) {
          EXPECT_EQ(static_cast<double>(d.n * d.spatial), m[ch].count);
          EXPECT_LE(std::fabs(m[ch].mean - ref[ch].mean), MeanErrorDouble(ref[ch]))
              << "n=" << d.n << " c=" << d.c << " spatial=" << d.spatial << " mean " << mean;
          EXPECT_LE(std::fabs(m[ch].m2 - ref[ch].m2), M2Error(ref[ch]))
              << "n=" << d.n << " c=" << d.c << " spatial=" << d.spatial << " mean " << mean
              << " m2 " << m[ch].m2 << " want " << static_cast<double>(ref[ch].m2);
        }
      }
    }
  }
}

TEST_P(MomentsTest, SameBitsForAnyThreading) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const simdbn_tensor_desc d{4, 3, 150001, layout, SIMDBN_F32};
    const std::vector<float> x = Data(d, 3.0, 2);
    const simdbn_threading one{1, nullptr, nullptr};
    TestPool pool;
    const simdbn_threading caller = WithTestPool(&pool);
    const auto m1 = Moments(d, x.data(), &one);
    EXPECT_TRUE(SameMoments(m1, Moments(d, x.data(), nullptr)));
    EXPECT_TRUE(SameMoments(m1, Moments(d, x.data(), &caller)));
    EXPECT_GT(pool.calls, 0);
  }
}

// The moments of two halves of a batch, merged, are the moments of the whole up to the errors
// of each half (M2Error, MeanErrorDouble) carried through Chan's formula, plus its own few
// roundings: |err m2| <= e2a + e2b + 2 |delta| (ema + emb) na nb / n + 4 u64 (m2a + m2b +
// delta^2 na nb / n).
TEST_P(MomentsTest, MergedHalvesEqualTheWhole) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const double mean : {0.5, 1e6}) {
      const simdbn_tensor_desc whole{5, 17, 49, layout, SIMDBN_F32};
      // Images are contiguous in both layouts: the first 2 and the last 3 are sub-tensors.
      const simdbn_tensor_desc first{2, 17, 49, layout, SIMDBN_F32};
      const simdbn_tensor_desc second{3, 17, 49, layout, SIMDBN_F32};
      const std::vector<float> x = Data(whole, mean, 3);
      const float* x2 = x.data() + Size(first);
      const auto a = Moments(first, x.data());
      const auto b = Moments(second, x2);
      std::vector<simdbn_moments> merged(17);
      ASSERT_EQ(SIMDBN_SUCCESS, simdbn_merge_moments(17, a.data(), b.data(), merged.data()));
      const auto ra = ReferenceMoments(first, x.data());
      const auto rb = ReferenceMoments(second, x2);
      const auto rw = ReferenceMoments(whole, x.data());
      for (size_t ch = 0; ch < 17; ++ch) {
        const long double na = ra[ch].count, nb = rb[ch].count, n = na + nb;
        const long double delta = std::fabs(rb[ch].mean - ra[ch].mean);
        const long double ema = MeanErrorDouble(ra[ch]), emb = MeanErrorDouble(rb[ch]);
        EXPECT_EQ(rw[ch].count, merged[ch].count);
        EXPECT_LE(std::fabs(merged[ch].mean - rw[ch].mean),
                  ema + emb + 4 * kU64 * (std::fabs(rw[ch].mean) + delta));
        const long double m2_bound =
            M2Error(ra[ch]) + M2Error(rb[ch]) + 2 * delta * (ema + emb) * na * nb / n +
            4 * kU64 * (ra[ch].m2 + rb[ch].m2 + delta * delta * na * nb / n);
        EXPECT_LE(std::fabs(merged[ch].m2 - rw[ch].m2), m2_bound)
            << "channel " << ch << " mean " << mean;
      }
    }
  }
}

// Chan's formula on numbers small enough to do by hand: {1, 2, 3, 4} has (4, 2.5, 5), {10} has
// (1, 10, 0), and {1, 2, 3, 4, 10} has (5, 4, 50).
TEST(Moments, MergeByHand) {
  const simdbn_moments a[2] = {{4, 2.5, 5}, {1, 10, 0}};
  const simdbn_moments b[2] = {{1, 10, 0}, {4, 2.5, 5}};
  simdbn_moments out[2];
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_merge_moments(2, a, b, out));
  for (const simdbn_moments& m : out) {
    EXPECT_EQ(5.0, m.count);
    EXPECT_EQ(4.0, m.mean);
    EXPECT_EQ(50.0, m.m2);
  }
}

// Infinite means merge as a sum would: Inf with a finite mean or with Inf stays Inf, +Inf with
// -Inf is NaN (Chan's a.mean + (b.mean - a.mean) * share would make NaN of the first two).
TEST(Moments, InfiniteMeansMergeAsSums) {
  const double inf = std::numeric_limits<double>::infinity();
  const simdbn_moments a[3] = {{3, inf, NAN}, {3, inf, NAN}, {3, inf, NAN}};
  const simdbn_moments b[3] = {{2, 1.5, 0.5}, {2, inf, NAN}, {2, -inf, NAN}};
  simdbn_moments out[3];
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_merge_moments(3, a, b, out));
  EXPECT_EQ(inf, out[0].mean);
  EXPECT_EQ(inf, out[1].mean);
  EXPECT_TRUE(std::isnan(out[2].mean));
  for (const simdbn_moments& m : out) {
    EXPECT_EQ(5.0, m.count);
    EXPECT_TRUE(std::isnan(m.m2));
  }
}

TEST(Moments, EmptySideIsTheIdentity) {
  simdbn_moments a[3] = {{0, 0, 0}, {7, 1e6 + 0.1, 3.25}, {0, 0, 0}};
  const simdbn_moments b[3] = {{7, 1e6 + 0.1, 3.25}, {0, 0, 0}, {0, 0, 0}};
  simdbn_moments out[3];
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_merge_moments(3, a, b, out));
  EXPECT_EQ(0, std::memcmp(&out[0], &b[0], sizeof(out[0])));
  EXPECT_EQ(0, std::memcmp(&out[1], &a[1], sizeof(out[1])));
  EXPECT_EQ(0.0, out[2].count);
  EXPECT_EQ(0.0, out[2].m2);
  // In place: out == a.
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_merge_moments(3, a, b, a));
  EXPECT_EQ(0, std::memcmp(a, out, sizeof(out)));
}

TEST(Moments, EmptyTensorHasZeroMoments) {
  for (const simdbn_tensor_desc d : {simdbn_tensor_desc{0, 3, 7, SIMDBN_NCHW, SIMDBN_F32},
                                     simdbn_tensor_desc{2, 3, 0, SIMDBN_NHWC, SIMDBN_F32}}) {
    simdbn_moments m[3];
    std::memset(m, 0xff, sizeof(m));
    const float x = 1.0f;
    ASSERT_EQ(SIMDBN_SUCCESS, simdbn_batch_moments(&d, &x, m, nullptr));
    for (const simdbn_moments& v : m) EXPECT_TRUE(v.count == 0 && v.mean == 0 && v.m2 == 0);
  }
}

// simdbn_forward_training equals simdbn_batch_moments followed by
// simdbn_forward_training_moments on d, bit for bit.
void ExpectTrainingIsMomentsThenTraining(const simdbn_tensor_desc& d) {
  const std::vector<float> x = Data(d, 1e4, 4);
  const size_t c = static_cast<size_t>(d.c);
  std::vector<float> gamma(c), beta(c), rm(c, 0.5f), rv(c, 2.0f);
  FillNormal(gamma.data(), c, 5);
  FillNormal(beta.data(), c, 6);
  std::vector<float> y1(x.size()), mean1(c), inv1(c), rm1 = rm, rv1 = rv;
  std::vector<float> y2(x.size()), mean2(c), inv2(c), rm2 = rm, rv2 = rv;
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_forward_training(&d, x.data(), gamma.data(), beta.data(), kEps,
                                                    kMomentum, rm1.data(), rv1.data(), y1.data(),
                                                    mean1.data(), inv1.data(), nullptr));
  const auto m = Moments(d, x.data());
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_forward_training_moments(&d, x.data(), m.data(), gamma.data(), beta.data(),
                                            kEps, kMomentum, rm2.data(), rv2.data(), y2.data(),
                                            mean2.data(), inv2.data(), nullptr))
      << simdbn_last_error_message();
  EXPECT_TRUE(SameBits(y1.data(), y2.data(), x.size())) << "n=" << d.n << " c=" << d.c;
  EXPECT_TRUE(SameBits(mean1.data(), mean2.data(), c));
  EXPECT_TRUE(SameBits(inv1.data(), inv2.data(), c));
  EXPECT_TRUE(SameBits(rm1.data(), rm2.data(), c));
  EXPECT_TRUE(SameBits(rv1.data(), rv2.data(), c));
}

// Whichever way the shape is planned: fused NCHW against statistics read channel by channel
// or image by image, in one block of images or two; two-pass NCHW; NHWC; few pixels by pixel,
// a block of channels at a time.
TEST_P(MomentsTest, TrainingIsBatchMomentsThenTrainingWithMoments) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const simdbn_tensor_desc d : {simdbn_tensor_desc{5, 17, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{3, 70, 400, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{200, 3, 300, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 3, 150001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1000, 2, 300, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{7, 1001, 1, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{16, 3000, 1, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{3, 37, 5, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1, 300, 49, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{64, 257, 1, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{2, 300, 12, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1, 1001, 4, layout, SIMDBN_F32}}) {
      ExpectTrainingIsMomentsThenTraining(d);
    }
  }
}

// NCHW beyond the LLC fuses channels of any number of images (kernels/training.h), each run
// summed in lockstep with the normalization of the channel before: 6 and 20 images once x and
// y exceed it, 20 once x alone does; and groups of channels of 28x28 and 17x17.
TEST_P(MomentsTest, TrainingBeyondTheCacheIsBatchMomentsThenTrainingWithMoments) {
  const int64_t floats = static_cast<int64_t>(simdbn::LastLevelCacheBytes() / sizeof(float));
  const int64_t spatial = 1024;  // runs long enough to stream
  for (const auto& [n, wanted] : std::vector<std::pair<int64_t, int64_t>>{
           {6, floats / 2}, {20, floats / 2}, {20, floats}}) {  // wanted: x's size
    ExpectTrainingIsMomentsThenTraining(
        {n, wanted / (n * spatial) + 1, spatial, SIMDBN_NCHW, SIMDBN_F32});
  }
  // Runs too short to stream alone: groups of channels read image by image, in one block of
  // images and in two, rows of whole cache lines and not.
  for (const auto& [n, len] :
       std::vector<std::pair<int64_t, int64_t>>{{32, 784}, {48, 784}, {20, 289}}) {
    ExpectTrainingIsMomentsThenTraining(
        {n, floats / 2 / (n * len) + 1, len, SIMDBN_NCHW, SIMDBN_F32});
  }
}

// SyncBN: three processes with 2, 3 and 1 images each compute their moments, merge all of them
// in rank order, and normalize their own images with the merged statistics. Every rank gets the
// same save_mean/save_invstd, and its y matches the reference of the whole batch.
TEST_P(MomentsTest, SyncBatchNormAcrossRanks) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    const int64_t c = 5, spatial = 49;
    const simdbn_tensor_desc whole{6, c, spatial, layout, SIMDBN_F32};
    const std::vector<float> x = Data(whole, 100.0, 7);
    const int64_t images[3] = {2, 3, 1};
    std::vector<simdbn_moments> global(c, simdbn_moments{0, 0, 0});
    size_t offset = 0;
    for (const int64_t n : images) {
      const simdbn_tensor_desc part{n, c, spatial, layout, SIMDBN_F32};
      const auto local = Moments(part, x.data() + offset);
      ASSERT_EQ(SIMDBN_SUCCESS,
                simdbn_merge_moments(c, global.data(), local.data(), global.data()));
      offset += Size(part);
    }
    const auto ref = ReferenceMoments(whole, x.data());
    std::vector<float> first_mean, first_invstd;
    offset = 0;
    for (const int64_t n : images) {
      const simdbn_tensor_desc part{n, c, spatial, layout, SIMDBN_F32};
      std::vector<float> y(Size(part)), mean(c), invstd(c);
      ASSERT_EQ(SIMDBN_SUCCESS,
                simdbn_forward_training_moments(&part, x.data() + offset, global.data(), nullptr,
                                                nullptr, kEps, kMomentum, nullptr, nullptr,
                                                y.data(), mean.data(), invstd.data(), nullptr));
      if (first_mean.empty()) {
        first_mean = mean;
        first_invstd = invstd;
      }
      EXPECT_TRUE(SameBits(first_mean.data(), mean.data(), c));
      EXPECT_TRUE(SameBits(first_invstd.data(), invstd.data(), c));
      // The merged statistics err by a few times the bounds of one tensor (see
      // MergedHalvesEqualTheWhole), far below the f32 roundings that OutputBound allows.
      const float* xp = x.data() + offset;
      size_t bad = 0;
      ForEachElement(part, [&](int64_t o, int64_t ch) {
        const size_t i = static_cast<size_t>(o);
        const ReferenceStats& r = ref[static_cast<size_t>(ch)];
        const long double want = ExactOutput(xp[i], r, kEps, 1.0f, 0.0f);
        bad += !(std::fabs(y[i] - want) <= OutputBound(xp[i], r, kEps, 1.0f, want));
      });
      EXPECT_EQ(0u, bad) << "rank with " << n << " images";
      offset += Size(part);
    }
  }
}

// With supplied moments the local tensor may be empty (a rank without samples): only the
// per-channel outputs are written.
TEST(Moments, TrainingWithMomentsOnAnEmptyTensor) {
  const simdbn_tensor_desc d{0, 2, 49, SIMDBN_NCHW, SIMDBN_F32};
  const simdbn_moments m[2] = {{10, 1.0, 9.0}, {4, -2.0, 12.0}};
  float running_mean[2] = {0, 0}, running_var[2] = {1, 1}, mean[2], invstd[2];
  GuardedBuffer y(1);
  const float x = 0.0f;
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_forward_training_moments(&d, &x, m, nullptr, nullptr, 0.0f, 0.5f,
                                            running_mean, running_var, y.data(), mean, invstd,
                                            nullptr));
  EXPECT_TRUE(y.Untouched());
  EXPECT_EQ(1.0f, mean[0]);
  EXPECT_EQ(-2.0f, mean[1]);
  // The variance (m2 times 1 / count in double) rounded once to f32, plus eps (0 here) in f32,
  // then the f32 square root and division.
  EXPECT_EQ(1.0f / std::sqrt(static_cast<float>(9.0 * (1.0 / 10.0))), invstd[0]);
  EXPECT_EQ(1.0f / std::sqrt(3.0f), invstd[1]);
  EXPECT_EQ(0.5f, running_mean[0]);
  EXPECT_EQ(-1.0f, running_mean[1]);
  EXPECT_EQ(1.0f, running_var[0]);  // 0.5 * 1 + 0.5 * 9 / 9
  EXPECT_EQ(2.5f, running_var[1]);  // 0.5 * 1 + 0.5 * 12 / 3
}

// ---- Errors ----

void ExpectFailure(simdbn_status want, simdbn_status got, const std::string& mention) {
  EXPECT_EQ(want, got) << simdbn_last_error_message();
  const std::string message = simdbn_last_error_message();
  EXPECT_NE(std::string::npos, message.find(mention))
      << "message \"" << message << "\" does not mention \"" << mention << "\"";
}

bool AllBytes(const void* p, size_t bytes, unsigned char value) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i)
    if (b[i] != value) return false;
  return true;
}

TEST(MomentsErrors, BatchMoments) {
  const simdbn_tensor_desc d{2, 3, 4, SIMDBN_NCHW, SIMDBN_F32};
  std::vector<float> x(24, 1.0f);
  simdbn_moments m[3];
  std::memset(m, 0xab, sizeof(m));
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_batch_moments(nullptr, x.data(), m, nullptr),
                "desc is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_batch_moments(&d, nullptr, m, nullptr),
                "x is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_batch_moments(&d, x.data(), nullptr, nullptr),
                "moments is NULL");
  const simdbn_tensor_desc bad{2, -3, 4, SIMDBN_NCHW, SIMDBN_F32};
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_batch_moments(&bad, x.data(), m, nullptr),
                "c = -3");
  const simdbn_threading threading{-2, nullptr, nullptr};
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_batch_moments(&d, x.data(), m, &threading),
                "num_threads = -2");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_batch_moments(&d, x.data(), reinterpret_cast<simdbn_moments*>(x.data()),
                                     nullptr),
                "overlap");
  const simdbn_tensor_desc bf16{2, 3, 4, SIMDBN_NCHW, SIMDBN_BF16};
  ExpectFailure(SIMDBN_UNSUPPORTED, simdbn_batch_moments(&bf16, x.data(), m, nullptr), "BF16");
  EXPECT_TRUE(AllBytes(m, sizeof(m), 0xab));
}

TEST(MomentsErrors, Merge) {
  simdbn_moments a[2] = {{2, 0, 1}, {3, 1, 2}}, b[2] = {{2, 0, 1}, {3, 1, 2}};
  simdbn_moments out[3];
  std::memset(out, 0xab, sizeof(out));
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(0, a, b, out), "c = 0");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(2, nullptr, b, out), "a is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(2, a, nullptr, out), "b is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(2, a, b, nullptr), "out is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(2, a, b, a + 1),
                "partially overlaps");
  b[1].count = -1;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(2, a, b, out), "b[1].count = -1");
  b[1].count = NAN;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(2, a, b, out), "b[1].count = nan");
  b[1].count = 3;
  a[0].m2 = -0.5;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, simdbn_merge_moments(2, a, b, out), "a[0].m2 = -0.5");
  EXPECT_TRUE(AllBytes(out, sizeof(out), 0xab));
  EXPECT_EQ(3.0, a[1].count);  // a + 1 was not written either
}

TEST(MomentsErrors, TrainingWithMoments) {
  const simdbn_tensor_desc d{2, 3, 4, SIMDBN_NHWC, SIMDBN_F32};
  std::vector<float> x(24);
  FillNormal(x.data(), x.size(), 1);
  simdbn_moments m[3] = {{8, 0, 1}, {8, 0, 1}, {8, 0, 1}};
  GuardedBuffer y(24), mean(3), invstd(3), rm(3), rv(3);
  rm.FillSentinel();
  rv.FillSentinel();
  const auto call = [&](const simdbn_moments* moments, float momentum = kMomentum) {
    return simdbn_forward_training_moments(&d, x.data(), moments, nullptr, nullptr, kEps,
                                           momentum, rm.data(), rv.data(), y.data(), mean.data(),
                                           invstd.data(), nullptr);
  };
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, call(nullptr), "moments is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, call(m, 1.25f), "momentum = 1.25");
  m[2].count = 1;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, call(m), "moments[2].count = 1");
  m[2].count = INFINITY;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, call(m), "moments[2].count = inf");
  m[2].count = 8;
  m[1].m2 = -1;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, call(m), "moments[1].m2 = -1");
  m[1].m2 = 1;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                call(reinterpret_cast<const simdbn_moments*>(y.data())), "moments");
  for (const GuardedBuffer* b : {&y, &mean, &invstd, &rm, &rv}) {
    EXPECT_TRUE(b->Untouched() && b->GuardsIntact());
  }
}

}  // namespace
}  // namespace simdbn_test
