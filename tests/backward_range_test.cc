// simdbn_backward on data whose standard deviation is far from 1 (1e26; 1e-25 with eps = 0):
// x_scale = -k invstd^2 sum(dy (x - mean)) / M, at most about k invstd |dy| (1e-52; 1e50), then
// leaves the f32 range although every exact dx, k and normalized value is a normal f32. Every
// plan, both layouts, every target.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "simdbn/simdbn.h"
#include "tests/backward_reference.h"
#include "tests/backward_shapes.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

// x of channel ch has standard deviation std_of[ch] and mean 3 std (so that std 1e-25 needs no
// subnormal x); save_mean and save_invstd are its exact statistics with eps = 0, rounded to f32.
struct RangeProblem {
  simdbn_tensor_desc d;
  size_t size;
  std::vector<float> x, dy, gamma, mean, invstd, dx, dgamma, dbeta;

  RangeProblem(const simdbn_tensor_desc& desc, const std::vector<double>& std_of)
      : d(desc), size(static_cast<size_t>(desc.n * desc.c * desc.spatial)) {
    const size_t c = static_cast<size_t>(d.c);
    x.resize(size);
    dy.resize(size);
    gamma.resize(c);
    dx.resize(size);
    dgamma.resize(c);
    dbeta.resize(c);
    std::vector<float> unit(size);
    FillNormal(unit.data(), size, 41);
    FillNormal(dy.data(), size, 42, 0.1, 1.0);
    FillUniform(gamma.data(), c, 43, 0.5, 2.0);
    ForEachElement(d, [&](int64_t i, int64_t ch) {
      const double s = std_of[static_cast<size_t>(ch) % std_of.size()];
      x[i] = static_cast<float>(s * (3.0 + unit[i]));
    });
    const std::vector<long double> xl(x.begin(), x.end());
    const BatchStats stats = BatchStatsReference(d, xl);
    for (size_t ch = 0; ch < c; ++ch) {
      mean.push_back(static_cast<float>(stats.mean[ch]));
      invstd.push_back(static_cast<float>(1 / std::sqrt(stats.var[ch])));
    }
  }

  simdbn_status Run(float* out, const simdbn_threading* threading = nullptr) {
    return simdbn_backward(&d, x.data(), dy.data(), gamma.data(), mean.data(), invstd.data(), out,
                           dgamma.data(), dbeta.data(), threading);
  }

  std::string Name() const {
    std::ostringstream s;
    s << "n=" << d.n << " c=" << d.c << " spatial=" << d.spatial
      << (d.layout == SIMDBN_NCHW ? " NCHW" : " NHWC") << " invstd[0]=" << invstd[0];
    return s.str();
  }
};

void ExpectWithinBound(const RangeProblem& p) {
  const BackwardRef ref = BackwardReference(p.d, p.x.data(), p.dy.data(), p.gamma.data(),
                                            p.mean.data(), p.invstd.data(), false);
  size_t bad = 0;
  std::ostringstream first;
  ForEachElement(p.d, [&](int64_t i, int64_t ch) {
    const long double want = ref.Dx(p.x[i], p.dy[i], ch);
    if (!(std::fabs(p.dx[i] - want) <= DxBound(ref, p.x[i], p.dy[i], ch, false)) && bad++ == 0) {
      first << "dx[" << i << "] = " << p.dx[i] << " want " << static_cast<double>(want);
    }
  });
  EXPECT_EQ(0u, bad) << p.Name() << ": first bad " << first.str();
  for (int64_t ch = 0; ch < p.d.c; ++ch) {
    const BackwardChannelRef& r = ref.channels[static_cast<size_t>(ch)];
    EXPECT_LE(std::fabs(p.dgamma[ch] - r.dgamma), DgammaBound(r)) << p.Name() << " dgamma";
    EXPECT_LE(std::fabs(p.dbeta[ch] - r.dbeta), DbetaBound(r)) << p.Name() << " dbeta";
  }
}

// Every plan, plus the fuzzer's case (n = 64, c = 1, spatial = 1).
std::vector<simdbn_tensor_desc> RangeShapes() {
  std::vector<simdbn_tensor_desc> shapes = PlanShapes();
  shapes.push_back({64, 1, 1, SIMDBN_NCHW, SIMDBN_F32});
  return shapes;
}

constexpr double kHuge = 1e26, kTinyStd = 1e-25;

class BackwardRangeTest : public PerTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(BackwardRangeTest);

TEST_P(BackwardRangeTest, MatchesReferenceAtExtremeScales) {
  for (const simdbn_tensor_desc& d : RangeShapes()) {
    for (const double s : {kHuge, kTinyStd}) {
      RangeProblem p(d, {s});
      ASSERT_EQ(SIMDBN_SUCCESS, p.Run(p.dx.data())) << simdbn_last_error_message();
      ExpectWithinBound(p);
    }
  }
}

// Large enough for non-temporal stores of dx.
TEST_P(BackwardRangeTest, LargerThanCacheStreams) {
  for (const simdbn_tensor_desc& d : LargerThanCacheShapes()) {
    RangeProblem p(d, {kHuge, 2.0, kTinyStd});
    ASSERT_EQ(SIMDBN_SUCCESS, p.Run(p.dx.data())) << simdbn_last_error_message();
    ExpectWithinBound(p);
  }
}

// Channels of ordinary scale keep their bits when another channel of the call is extreme: the
// range handling changes nothing for them.
TEST_P(BackwardRangeTest, OrdinaryChannelsKeepTheirBits) {
  for (const simdbn_tensor_desc& d : RangeShapes()) {
    if (d.c == 1) continue;
    for (const double s : {kHuge, kTinyStd}) {
      RangeProblem ordinary(d, {2.0});
      ASSERT_EQ(SIMDBN_SUCCESS, ordinary.Run(ordinary.dx.data()));
      RangeProblem mixed(d, {s, 2.0});  // even channels extreme, odd ones as `ordinary`
      ASSERT_EQ(SIMDBN_SUCCESS, mixed.Run(mixed.dx.data()));
      ExpectWithinBound(mixed);
      size_t differ = 0;
      ForEachElement(d, [&](int64_t i, int64_t ch) {
        if (ch % 2 == 1 && !SameBits(&ordinary.dx[i], &mixed.dx[i], 1)) ++differ;
      });
      EXPECT_EQ(0u, differ) << mixed.Name();
      for (int64_t ch = 1; ch < d.c; ch += 2) {
        EXPECT_TRUE(SameBits(&ordinary.dgamma[ch], &mixed.dgamma[ch], 1)) << mixed.Name();
        EXPECT_TRUE(SameBits(&ordinary.dbeta[ch], &mixed.dbeta[ch], 1)) << mixed.Name();
      }
    }
  }
}

// The choice depends on the data only: the same bits for any threads, and in place.
TEST_P(BackwardRangeTest, SameBitsForAnyThreadsAndInPlace) {
  for (const simdbn_tensor_desc& d : RangeShapes()) {
    RangeProblem p(d, {kHuge, kTinyStd, 2.0});
    ASSERT_EQ(SIMDBN_SUCCESS, p.Run(p.dx.data()));
    const std::vector<float> want = p.dx;
    for (const Threads t : {Threads::kAll, Threads::kCallerPool}) {
      TestPool pool;
      const simdbn_threading threading =
          t == Threads::kCallerPool ? WithTestPool(&pool) : simdbn_threading{0, nullptr, nullptr};
      std::fill(p.dx.begin(), p.dx.end(), 0.0f);
      ASSERT_EQ(SIMDBN_SUCCESS, p.Run(p.dx.data(), &threading));
      EXPECT_TRUE(SameBits(want.data(), p.dx.data(), p.size)) << p.Name() << " " << ThreadsName(t);
    }
    for (std::vector<float>* in : {&p.dy, &p.x}) {
      const std::vector<float> saved = *in;
      ASSERT_EQ(SIMDBN_SUCCESS, p.Run(in->data()));
      EXPECT_TRUE(SameBits(want.data(), in->data(), p.size))
          << p.Name() << (in == &p.dy ? " dx == dy" : " dx == x");
      *in = saved;
    }
  }
}

}  // namespace
}  // namespace simdbn_test
