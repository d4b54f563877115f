// The backward pass against the long-double reference, on every SIMD target this CPU supports:
// shape sweep, every plan, threads, alignment, in place, optional outputs, NaN, empty tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/threading.h"  // kMinBytesPerThread
#include "simdbn/simdbn.h"
#include "tests/backward_reference.h"
#include "tests/backward_shapes.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

struct Misalign {
  size_t x = 0, dy = 0, dx = 0, channel = 0;
};

// Inputs as after a forward training pass: save_mean and save_invstd are the f32 batch
// statistics of x (frozen: "running" statistics that differ from them).
struct Problem {
  simdbn_tensor_desc d;
  size_t size, c;
  GuardedBuffer x, dy, gamma, mean, invstd, dx, dgamma, dbeta;

  explicit Problem(const simdbn_tensor_desc& desc, bool frozen = false, const Misalign& m = {},
                   double x_mean = 0.5, double x_std = 2.0)
      : d(desc),
        size(static_cast<size_t>(desc.n * desc.c * desc.spatial)),
        c(static_cast<size_t>(desc.c)),
        x(size, m.x),
        dy(size, m.dy),
        gamma(c, m.channel),
        mean(c, m.channel),
        invstd(c, m.channel),
        dx(size, m.dx),
        dgamma(c, m.channel),
        dbeta(c, (m.channel + 1) % 16) {
    FillNormal(x.data(), size, 21, x_mean, x_std);
    FillNormal(dy.data(), size, 22, 0.1, 1.0);
    FillUniform(gamma.data(), c, 23, -2.0, 2.0);
    std::vector<long double> xl(x.data(), x.data() + size);
    const BatchStats s = BatchStatsReference(d, xl);
    for (size_t ch = 0; ch < c; ++ch) {
      const long double shift = frozen ? 0.1L * x_std : 0.0L;
      const long double scale = frozen ? 0.9L : 1.0L;
      mean[ch] = static_cast<float>(s.mean[ch] + shift);
      invstd[ch] = static_cast<float>(scale / std::sqrt(s.var[ch] + 1e-5L));
    }
  }

  struct Options {
    bool frozen = false;
    bool use_gamma = true;
    bool want_dgamma = true;
    bool want_dbeta = true;
    const simdbn_threading* threading = nullptr;
    float* dx = nullptr;  // default: the dx buffer
  };

  simdbn_status Run(const Options& o) {
    const auto fn = o.frozen ? &simdbn_backward_frozen : &simdbn_backward;
    return fn(&d, x.data(), dy.data(), o.use_gamma ? gamma.data() : nullptr, mean.data(),
              invstd.data(), o.dx != nullptr ? o.dx : dx.data(),
              o.want_dgamma ? dgamma.data() : nullptr, o.want_dbeta ? dbeta.data() : nullptr,
              o.threading);
  }

  std::string Name() const {
    std::ostringstream s;
    s << "n=" << d.n << " c=" << d.c << " spatial=" << d.spatial
      << (d.layout == SIMDBN_NCHW ? " NCHW" : " NHWC");
    return s.str();
  }
};

// Checks dx (and the requested dgamma/dbeta) against the reference, and every guard.
void ExpectMatchesReference(const Problem& p, const Problem::Options& o, const float* dx) {
  const BackwardRef ref =
      BackwardReference(p.d, p.x.data(), p.dy.data(), o.use_gamma ? p.gamma.data() : nullptr,
                        p.mean.data(), p.invstd.data(), o.frozen);
  size_t bad = 0;
  int64_t first = -1;
  ForEachElement(p.d, [&](int64_t i, int64_t ch) {
    const long double want = ref.Dx(p.x[i], p.dy[i], ch);
    if (!(std::fabs(dx[i] - want) <= DxBound(ref, p.x[i], p.dy[i], ch, o.frozen))) {
      if (bad++ == 0) first = i;
    }
  });
  const std::string what = p.Name() + (o.frozen ? " frozen" : "");
  EXPECT_EQ(0u, bad) << what << ": first bad dx[" << first
                     << "] = " << (first >= 0 ? dx[first] : 0.0f);
  for (int64_t ch = 0; ch < p.d.c; ++ch) {
    const BackwardChannelRef& r = ref.channels[static_cast<size_t>(ch)];
    if (o.want_dgamma) {
      EXPECT_LE(std::fabs(p.dgamma[ch] - r.dgamma), DgammaBound(r))
          << what << " dgamma[" << ch << "] = " << p.dgamma[ch] << " want "
          << static_cast<double>(r.dgamma);
    }
    if (o.want_dbeta) {
      EXPECT_LE(std::fabs(p.dbeta[ch] - r.dbeta), DbetaBound(r))
          << what << " dbeta[" << ch << "] = " << p.dbeta[ch] << " want "
          << static_cast<double>(r.dbeta);
    }
  }
  for (const GuardedBuffer* b :
       {&p.x, &p.dy, &p.gamma, &p.mean, &p.invstd, &p.dx, &p.dgamma, &p.dbeta}) {
    EXPECT_TRUE(b->GuardsIntact()) << what;
  }
  if (!o.want_dgamma) {
    EXPECT_TRUE(p.dgamma.Untouched()) << what;
  }
  if (!o.want_dbeta) {
    EXPECT_TRUE(p.dbeta.Untouched()) << what;
  }
}

// Runs out of place and checks; inputs must come back unchanged.
void CheckCase(Problem& p, const Problem::Options& o) {
  const std::vector<float> x0(p.x.data(), p.x.data() + p.size);
  const std::vector<float> dy0(p.dy.data(), p.dy.data() + p.size);
  ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o)) << simdbn_last_error_message();
  ExpectMatchesReference(p, o, p.dx.data());
  EXPECT_TRUE(SameBits(p.x.data(), x0.data(), p.size)) << "x was modified";
  EXPECT_TRUE(SameBits(p.dy.data(), dy0.data(), p.size)) << "dy was modified";
}

class BackwardTest : public PerTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(BackwardTest);

TEST_P(BackwardTest, DispatchesToTheTargetUnderTest) {
  EXPECT_STREQ(hwy::TargetName(GetParam()), simdbn_target_name());
}

TEST_P(BackwardTest, MatchesReferenceOnShapeSweep) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const int64_t n : {1, 2, 5}) {
      for (const int64_t c : {1, 3, 15, 16, 17, 64, 255}) {
        for (const int64_t spatial : {1, 7, 49, 3136}) {
          for (const bool frozen : {false, true}) {
            Problem p({n, c, spatial, layout, SIMDBN_F32}, frozen);
            Problem::Options o;
            o.frozen = frozen;
            CheckCase(p, o);
          }
        }
      }
    }
  }
}

TEST_P(BackwardTest, MatchesReferenceOnEveryPlan) {
  for (const simdbn_tensor_desc& d : PlanShapes()) {
    for (const bool frozen : {false, true}) {
      Problem p(d, frozen);
      Problem::Options o;
      o.frozen = frozen;
      CheckCase(p, o);
    }
  }
}

TEST_P(BackwardTest, SameBitsForAnyThreads) {
  for (const simdbn_tensor_desc& d : PlanShapes()) {
    for (const bool frozen : {false, true}) {
      Problem p(d, frozen);
      std::vector<float> first_dx, first_dgamma, first_dbeta;
      for (const Threads t : {Threads::kOne, Threads::kAll, Threads::kCallerPool}) {
        TestPool pool;
        const simdbn_threading threading =
            t == Threads::kCallerPool
                ? WithTestPool(&pool)
                : simdbn_threading{t == Threads::kOne ? 1 : 0, nullptr, nullptr};
        Problem::Options o;
        o.frozen = frozen;
        o.threading = &threading;
        p.dx.FillSentinel();
        ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o)) << simdbn_last_error_message();
        // Every plan hands a caller's pool the work of a tensor large enough for two threads.
        if (t == Threads::kCallerPool &&
            2 * p.size * sizeof(float) >= 2 * simdbn::kMinBytesPerThread) {
          EXPECT_GT(pool.calls, 0) << p.Name();
        }
        if (t == Threads::kOne) {
          first_dx.assign(p.dx.data(), p.dx.data() + p.size);
          first_dgamma.assign(p.dgamma.data(), p.dgamma.data() + p.c);
          first_dbeta.assign(p.dbeta.data(), p.dbeta.data() + p.c);
          continue;
        }
        const std::string what = p.Name() + " " + ThreadsName(t) + (frozen ? " frozen" : "");
        EXPECT_TRUE(SameBits(first_dx.data(), p.dx.data(), p.size)) << what;
        EXPECT_TRUE(SameBits(first_dgamma.data(), p.dgamma.data(), p.c)) << what;
        EXPECT_TRUE(SameBits(first_dbeta.data(), p.dbeta.data(), p.c)) << what;
      }
    }
  }
}

TEST_P(BackwardTest, MisalignedPointers) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const size_t m : {1, 2, 3, 5, 7}) {
      for (const bool frozen : {false, true}) {
        const Misalign mis{m, (m * 3) % 16, (m * 5) % 16, m + 1};
        for (const simdbn_tensor_desc d : {simdbn_tensor_desc{2, 17, 49, layout, SIMDBN_F32},
                                           simdbn_tensor_desc{3, 5, 1, layout, SIMDBN_F32},
                                           simdbn_tensor_desc{2, 3, 70000, layout, SIMDBN_F32},
                                           simdbn_tensor_desc{2, 301, 5, layout, SIMDBN_F32}}) {
          Problem p(d, frozen, mis);
          Problem::Options o;
          o.frozen = frozen;
          CheckCase(p, o);
        }
      }
    }
  }
}

// Large enough for dx to bypass the cache with non-temporal stores, with a dx that needs peeling
// to reach vector alignment; frozen statistics with and without the sums.
TEST_P(BackwardTest, LargerThanCacheStreams) {
  for (const simdbn_tensor_desc& d : LargerThanCacheShapes()) {
    for (const bool frozen : {false, true}) {
      for (const bool sums : {true, false}) {
        if (!frozen && !sums) continue;
        Problem p(d, frozen, {0, 0, 3, 0});
        Problem::Options o;
        o.frozen = frozen;
        o.want_dgamma = o.want_dbeta = sums;
        CheckCase(p, o);
      }
    }
  }
}

// dx may be dy or x: every element is read before it is written, by the same step.
TEST_P(BackwardTest, InPlaceMatchesOutOfPlace) {
  for (const simdbn_tensor_desc& d : PlanShapes()) {
    for (const bool frozen : {false, true}) {
      for (const bool dgamma : {true, false}) {
        Problem p(d, frozen);
        Problem::Options o;
        o.frozen = frozen;
        o.want_dgamma = o.want_dbeta = dgamma;
        ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o)) << simdbn_last_error_message();
        const std::vector<float> want(p.dx.data(), p.dx.data() + p.size);
        const std::vector<float> x0(p.x.data(), p.x.data() + p.size);
        const std::vector<float> dy0(p.dy.data(), p.dy.data() + p.size);
        const std::string what = p.Name() + (frozen ? " frozen" : "");

        o.dx = p.dy.data();
        ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o)) << simdbn_last_error_message();
        EXPECT_TRUE(SameBits(want.data(), p.dy.data(), p.size)) << what << " dx == dy";
        std::copy(dy0.begin(), dy0.end(), p.dy.data());

        o.dx = p.x.data();
        ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o)) << simdbn_last_error_message();
        EXPECT_TRUE(SameBits(want.data(), p.x.data(), p.size)) << what << " dx == x";
        std::copy(x0.begin(), x0.end(), p.x.data());
        EXPECT_TRUE(p.x.GuardsIntact() && p.dy.GuardsIntact()) << what;
      }
    }
  }
}

// x == dy == dx: one buffer for everything.
TEST_P(BackwardTest, AllThreeTensorsTheSame) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    Problem p({2, 17, 300, layout, SIMDBN_F32});
    std::copy(p.x.data(), p.x.data() + p.size, p.dy.data());
    Problem::Options o;
    ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o));
    const std::vector<float> want(p.dx.data(), p.dx.data() + p.size);
    float* all = p.dy.data();
    EXPECT_EQ(SIMDBN_SUCCESS, simdbn_backward(&p.d, all, all, p.gamma.data(), p.mean.data(),
                                              p.invstd.data(), all, nullptr, nullptr, nullptr));
    EXPECT_TRUE(SameBits(want.data(), all, p.size));
  }
}

// gamma NULL is gamma = 1; dgamma and dbeta may each be left out without changing dx.
TEST_P(BackwardTest, OptionalArguments) {
  for (const simdbn_tensor_desc& d : {simdbn_tensor_desc{2, 17, 49, SIMDBN_NCHW, SIMDBN_F32},
                                      simdbn_tensor_desc{2, 17, 49, SIMDBN_NHWC, SIMDBN_F32},
                                      simdbn_tensor_desc{2, 3, 70000, SIMDBN_NCHW, SIMDBN_F32}}) {
    for (const bool frozen : {false, true}) {
      Problem p(d, frozen);
      Problem::Options o;
      o.frozen = frozen;
      ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o));
      const std::vector<float> want(p.dx.data(), p.dx.data() + p.size);
      const std::string what = p.Name() + (frozen ? " frozen" : "");
      for (const int outputs : {0, 1, 2}) {
        Problem q(d, frozen);
        o.want_dgamma = outputs == 1;
        o.want_dbeta = outputs == 2;
        CheckCase(q, o);
        EXPECT_TRUE(SameBits(want.data(), q.dx.data(), q.size)) << what << " outputs " << outputs;
      }
      Problem ones(d, frozen);
      for (size_t ch = 0; ch < ones.c; ++ch) ones.gamma[ch] = 1.0f;
      o = Problem::Options{};
      o.frozen = frozen;
      ASSERT_EQ(SIMDBN_SUCCESS, ones.Run(o));
      const std::vector<float> with_ones(ones.dx.data(), ones.dx.data() + ones.size);
      o.use_gamma = false;
      CheckCase(ones, o);
      EXPECT_TRUE(SameBits(with_ones.data(), ones.dx.data(), ones.size)) << what << " gamma NULL";
    }
  }
}

// Mean 1e4, standard deviation 1: sum(dy * x) - mean * sum(dy) in f32 would lose every digit of
// dgamma; centring first keeps the bound relative to |dy * (x - mean)|.
TEST_P(BackwardTest, DataFarFromZero) {
  for (const simdbn_tensor_desc& d : {simdbn_tensor_desc{4, 16, 3136, SIMDBN_NCHW, SIMDBN_F32},
                                      simdbn_tensor_desc{4, 16, 3136, SIMDBN_NHWC, SIMDBN_F32},
                                      simdbn_tensor_desc{2, 3, 70000, SIMDBN_NCHW, SIMDBN_F32}}) {
    Problem p(d, false, {}, 1e4, 1.0);
    CheckCase(p, {});
  }
}

TEST_P(BackwardTest, PropagatesNaNAndInfinity) {
  for (const simdbn_tensor_desc& d : {simdbn_tensor_desc{2, 3, 20, SIMDBN_NCHW, SIMDBN_F32},
                                      simdbn_tensor_desc{2, 3, 20, SIMDBN_NHWC, SIMDBN_F32}}) {
    for (const bool frozen : {false, true}) {
      Problem p(d, frozen);
      p.dy[0] = NAN;                                     // channel 0 in both layouts
      p.x[d.layout == SIMDBN_NCHW ? 20 : 1] = INFINITY;  // channel 1
      Problem::Options o;
      o.frozen = frozen;
      ASSERT_EQ(SIMDBN_SUCCESS, p.Run(o));
      EXPECT_TRUE(std::isnan(p.dbeta[0]) && std::isnan(p.dgamma[0]));
      EXPECT_TRUE(std::isinf(p.dgamma[1]) || std::isnan(p.dgamma[1]));
      EXPECT_TRUE(std::isfinite(p.dbeta[2]) && std::isfinite(p.dgamma[2]));
      EXPECT_TRUE(std::isnan(p.dx[0]));
      ForEachElement(d, [&](int64_t i, int64_t ch) {
        // Normal: a non-finite sum reaches every dx of its channel. Frozen: only that element.
        if (ch == 0 && !frozen) {
          EXPECT_TRUE(std::isnan(p.dx[i])) << i;
        }
        if (ch == 2) {
          EXPECT_TRUE(std::isfinite(p.dx[i])) << i;
        }
      });
    }
  }
}

// No values: dx untouched, dgamma and dbeta are empty sums (0). No SIMD code runs.
TEST(BackwardEmpty, WritesZeroSumsAndNoDx) {
  for (const simdbn_tensor_desc d : {simdbn_tensor_desc{0, 3, 7, SIMDBN_NCHW, SIMDBN_F32},
                                     simdbn_tensor_desc{2, 3, 0, SIMDBN_NHWC, SIMDBN_F32}}) {
    for (const bool frozen : {false, true}) {
      GuardedBuffer dx(4), dgamma(3), dbeta(3);
      const float x[4] = {1, 2, 3, 4}, stats[3] = {1, 1, 1};
      const auto fn = frozen ? &simdbn_backward_frozen : &simdbn_backward;
      EXPECT_EQ(SIMDBN_SUCCESS,
                fn(&d, x, x, stats, stats, stats, dx.data(), dgamma.data(), dbeta.data(), nullptr));
      EXPECT_TRUE(dx.Untouched());
      for (size_t ch = 0; ch < 3; ++ch) {
        EXPECT_EQ(0.0f, dgamma[ch]);
        EXPECT_EQ(0.0f, dbeta[ch]);
      }
      EXPECT_TRUE(dgamma.GuardsIntact() && dbeta.GuardsIntact());
    }
  }
}

// ---- Finite differences: the gradients are those of the forward computation ----

// Central differences with h = 2^-17 in long double: the truncation error h^2 / 6 * |L'''|
// stays below 1e-10 for these inputs (|L'''| < 1e3), the rounding 2^-64 |L| / h below 1e-12;
// 1e-8 of the gradient's magnitude is then a safe bound.
constexpr long double kStep = 0x1p-17L;
constexpr long double kFdTolerance = 1e-8L;
constexpr long double kFdEps = 1e-3L;

struct FdCase {
  simdbn_tensor_desc d;
  std::vector<float> x, dy, gamma, beta;
  std::vector<long double> xl, gl, bl;
  BatchStats stats;
  std::vector<long double> invstd;

  explicit FdCase(const simdbn_tensor_desc& desc) : d(desc) {
    const size_t size = static_cast<size_t>(d.n * d.c * d.spatial), c = static_cast<size_t>(d.c);
    x.resize(size);
    dy.resize(size);
    gamma.resize(c);
    beta.resize(c);
    FillNormal(x.data(), size, 31, 0.5, 2.0);
    FillNormal(dy.data(), size, 32);
    FillUniform(gamma.data(), c, 33, -2.0, 2.0);
    FillNormal(beta.data(), c, 34);
    xl.assign(x.begin(), x.end());
    gl.assign(gamma.begin(), gamma.end());
    bl.assign(beta.begin(), beta.end());
    stats = BatchStatsReference(d, xl);
    for (const long double v : stats.var) invstd.push_back(1 / std::sqrt(v + kFdEps));
  }
  long double Loss() { return TrainingLoss(d, xl, gl, bl, kFdEps, dy.data()); }
};

std::vector<simdbn_tensor_desc> FdShapes() {
  return {{2, 3, 5, SIMDBN_NCHW, SIMDBN_F32}, {2, 3, 5, SIMDBN_NHWC, SIMDBN_F32},
          {3, 4, 1, SIMDBN_NCHW, SIMDBN_F32}, {1, 2, 6, SIMDBN_NHWC, SIMDBN_F32},
          {2, 1, 3, SIMDBN_NCHW, SIMDBN_F32}, {1, 2, 1, SIMDBN_NHWC, SIMDBN_F32}};
}

long double FdBound(long double fd) { return kFdTolerance * (1 + std::fabs(fd)); }

// The closed form (with exact statistics) is the gradient of the training forward.
TEST(BackwardFiniteDifferences, ReferenceIsTheGradientOfTrainingForward) {
  for (const simdbn_tensor_desc& d : FdShapes()) {
    FdCase f(d);
    const BackwardRef ref = BackwardReference(d, f.x.data(), f.dy.data(), f.gamma.data(),
                                              f.stats.mean.data(), f.invstd.data(), false);
    const auto loss = [&] { return f.Loss(); };
    ForEachElement(d, [&](int64_t i, int64_t ch) {
      const long double fd = CentralDifference(&f.xl, static_cast<size_t>(i), kStep, loss);
      EXPECT_LE(std::fabs(fd - ref.Dx(f.x[i], f.dy[i], ch)), FdBound(fd)) << "dx[" << i << "]";
    });
    for (int64_t ch = 0; ch < d.c; ++ch) {
      const BackwardChannelRef& r = ref.channels[static_cast<size_t>(ch)];
      const size_t c = static_cast<size_t>(ch);
      const long double dgamma = CentralDifference(&f.gl, c, kStep, loss);
      const long double dbeta = CentralDifference(&f.bl, c, kStep, loss);
      EXPECT_LE(std::fabs(dgamma - r.dgamma), FdBound(dgamma)) << "dgamma[" << ch << "]";
      EXPECT_LE(std::fabs(dbeta - r.dbeta), FdBound(dbeta)) << "dbeta[" << ch << "]";
    }
  }
}

// simdbn_backward, given the f32-rounded statistics a forward pass saves, against finite
// differences of the exact training forward. Besides DxBound, rounding the saved statistics
// moves dx: invstd by u (k scales with invstd, x_scale with invstd^3) and mean by
// u |mean| (through x - mean and through sum(dy * (x - mean))); the bound is twice that
// first-order estimate.
TEST_P(BackwardTest, MatchesFiniteDifferencesOfTrainingForward) {
  for (const simdbn_tensor_desc& d : FdShapes()) {
    FdCase f(d);
    const size_t size = f.x.size(), c = f.gamma.size();
    std::vector<float> mean(c), invstd(c), dx(size), dgamma(c), dbeta(c);
    for (size_t ch = 0; ch < c; ++ch) {
      mean[ch] = static_cast<float>(f.stats.mean[ch]);
      invstd[ch] = static_cast<float>(f.invstd[ch]);
    }
    ASSERT_EQ(SIMDBN_SUCCESS,
              simdbn_backward(&d, f.x.data(), f.dy.data(), f.gamma.data(), mean.data(),
                              invstd.data(), dx.data(), dgamma.data(), dbeta.data(), nullptr));
    const BackwardRef ref = BackwardReference(d, f.x.data(), f.dy.data(), f.gamma.data(),
                                              mean.data(), invstd.data(), false);
    const auto loss = [&] { return f.Loss(); };
    ForEachElement(d, [&](int64_t i, int64_t ch) {
      const BackwardChannelRef& r = ref.channels[static_cast<size_t>(ch)];
      const long double xmean = std::fabs(f.x[i] - r.mean);
      const long double stats_rounding =
          2 * kU *
          (std::fabs(r.k) * (std::fabs(f.dy[i]) + std::fabs(r.dy_mean)) +
           3 * std::fabs(r.x_scale) * xmean +
           std::fabs(r.mean) * (std::fabs(r.x_scale) + std::fabs(r.k) * r.invstd * r.invstd *
                                                           std::fabs(r.sum_dy) * xmean / ref.m));
      const long double fd = CentralDifference(&f.xl, static_cast<size_t>(i), kStep, loss);
      EXPECT_LE(std::fabs(dx[i] - fd),
                DxBound(ref, f.x[i], f.dy[i], ch, false) + stats_rounding + FdBound(fd))
          << d.layout << " dx[" << i << "] = " << dx[i];
    });
    for (size_t ch = 0; ch < c; ++ch) {
      const BackwardChannelRef& r = ref.channels[ch];
      const long double dgamma_fd = CentralDifference(&f.gl, ch, kStep, loss);
      const long double dbeta_fd = CentralDifference(&f.bl, ch, kStep, loss);
      const long double stats_rounding =
          2 * kU * (std::fabs(r.dgamma) + std::fabs(r.mean) * std::fabs(r.sum_dy) * r.invstd);
      EXPECT_LE(std::fabs(dgamma[ch] - dgamma_fd),
                DgammaBound(r) + stats_rounding + FdBound(dgamma_fd));
      EXPECT_LE(std::fabs(dbeta[ch] - dbeta_fd), DbetaBound(r) + FdBound(dbeta_fd));
    }
  }
}

// Frozen statistics: the gradient of the eval-mode forward with the statistics as constants.
TEST_P(BackwardTest, FrozenMatchesFiniteDifferencesOfEvalForward) {
  for (const simdbn_tensor_desc& d : FdShapes()) {
    FdCase f(d);
    const size_t size = f.x.size(), c = f.gamma.size();
    std::vector<float> mean(c), invstd(c), dx(size), dgamma(c), dbeta(c);
    FillNormal(mean.data(), c, 35, 0.3, 0.5);
    FillUniform(invstd.data(), c, 36, 0.5, 2.0);
    const std::vector<long double> mean_l(mean.begin(), mean.end());
    const std::vector<long double> invstd_l(invstd.begin(), invstd.end());
    ASSERT_EQ(SIMDBN_SUCCESS, simdbn_backward_frozen(&d, f.x.data(), f.dy.data(), f.gamma.data(),
                                                     mean.data(), invstd.data(), dx.data(),
                                                     dgamma.data(), dbeta.data(), nullptr));
    const BackwardRef ref = BackwardReference(d, f.x.data(), f.dy.data(), f.gamma.data(),
                                              mean.data(), invstd.data(), true);
    const auto loss = [&] {
      return FrozenLoss(d, f.xl, f.gl, f.bl, mean_l, invstd_l, f.dy.data());
    };
    ForEachElement(d, [&](int64_t i, int64_t ch) {
      const long double fd = CentralDifference(&f.xl, static_cast<size_t>(i), kStep, loss);
      EXPECT_LE(std::fabs(dx[i] - fd), DxBound(ref, f.x[i], f.dy[i], ch, true) + FdBound(fd))
          << "dx[" << i << "]";
    });
    for (size_t ch = 0; ch < c; ++ch) {
      const BackwardChannelRef& r = ref.channels[ch];
      const long double dgamma_fd = CentralDifference(&f.gl, ch, kStep, loss);
      const long double dbeta_fd = CentralDifference(&f.bl, ch, kStep, loss);
      EXPECT_LE(std::fabs(dgamma[ch] - dgamma_fd), DgammaBound(r) + FdBound(dgamma_fd));
      EXPECT_LE(std::fabs(dbeta[ch] - dbeta_fd), DbetaBound(r) + FdBound(dbeta_fd));
    }
  }
}

// Against finite differences of the simdbn_forward_training kernel itself (f32 output): the
// backward pass is the gradient of what the forward kernel computes. Central differences of an
// f32 loss need a large step, so two steps are combined (Richardson: (4 D(h/2) - D(h)) / 3
// cancels the h^2 term). Its error has two parts, bounded separately:
// - rounding: each y is within 16 u of |gamma * xhat| + |beta| (a few roundings of the
//   statistics and of the affine map), so the loss within `noise` = 16 u sum |dy| (...), and
//   the combination within 3 noise / h (|4 / (h/2)| + |1 / h|, over 3, per side pair);
// - truncation: the same combination of the exact (long-double) forward is computed too; its
//   distance to the exact gradient is the truncation error, counted twice.
TEST_P(BackwardTest, MatchesFiniteDifferencesOfTrainingKernel) {
  constexpr float kEps = static_cast<float>(kFdEps);
  constexpr float kH = 0.25f;
  for (const simdbn_tensor_desc& d : FdShapes()) {
    if (d.n * d.spatial < 2) continue;  // training forward needs two values per channel
    FdCase f(d);
    const size_t size = f.x.size(), c = f.gamma.size();
    std::vector<float> y(size), mean(c), invstd(c), dx(size), dgamma(c), dbeta(c);
    const auto forward = [&](const std::vector<float>& x, float* save_mean, float* save_invstd) {
      EXPECT_EQ(SIMDBN_SUCCESS, simdbn_forward_training(&d, x.data(), f.gamma.data(), f.beta.data(),
                                                        kEps, 0.0f, nullptr, nullptr, y.data(),
                                                        save_mean, save_invstd, nullptr))
          << simdbn_last_error_message();
      long double loss = 0;
      for (size_t i = 0; i < size; ++i) loss += static_cast<long double>(f.dy[i]) * y[i];
      return loss;
    };
    forward(f.x, mean.data(), invstd.data());
    ASSERT_EQ(SIMDBN_SUCCESS,
              simdbn_backward(&d, f.x.data(), f.dy.data(), f.gamma.data(), mean.data(),
                              invstd.data(), dx.data(), dgamma.data(), dbeta.data(), nullptr));
    const BackwardRef ref = BackwardReference(d, f.x.data(), f.dy.data(), f.gamma.data(),
                                              f.stats.mean.data(), f.invstd.data(), false);
    long double noise = 0;
    ForEachElement(d, [&](int64_t i, int64_t ch) {
      const long double xhat = (f.xl[i] - f.stats.mean[ch]) * f.invstd[ch];
      noise +=
          16 * kU * std::fabs(f.dy[i]) * (std::fabs(f.gamma[ch] * xhat) + std::fabs(f.beta[ch]));
    });
    std::vector<float> scratch_mean(c), scratch_invstd(c);
    std::vector<float> xp = f.x;
    ForEachElement(d, [&](int64_t i, int64_t ch) {
      const size_t o = static_cast<size_t>(i);
      // D(h) of the kernel and of the exact forward, with the steps f32 can represent.
      const auto differences = [&](float h, long double* exact) {
        xp[o] = f.x[o] + h;
        const float up = xp[o];
        const long double l_up = forward(xp, scratch_mean.data(), scratch_invstd.data());
        f.xl[o] = up;
        const long double e_up = f.Loss();
        xp[o] = f.x[o] - h;
        const float down = xp[o];
        const long double l_down = forward(xp, scratch_mean.data(), scratch_invstd.data());
        f.xl[o] = down;
        const long double e_down = f.Loss();
        xp[o] = f.x[o];
        f.xl[o] = f.x[o];
        const long double step = static_cast<long double>(up) - down;
        *exact = (e_up - e_down) / step;
        return (l_up - l_down) / step;
      };
      long double exact_h, exact_h2;
      const long double d_h = differences(kH, &exact_h);
      const long double d_h2 = differences(kH / 2, &exact_h2);
      const long double fd = (4 * d_h2 - d_h) / 3;
      const long double truncation =
          std::fabs((4 * exact_h2 - exact_h) / 3 - ref.Dx(f.x[o], f.dy[o], ch));
      const long double bound = 3 * noise / kH + 2 * truncation + 1e-6L * (1 + std::fabs(fd));
      EXPECT_LE(std::fabs(dx[o] - fd), bound)
          << d.layout << " dx[" << i << "] = " << dx[o] << " fd " << static_cast<double>(fd)
          << " noise/h " << static_cast<double>(3 * noise / kH) << " truncation "
          << static_cast<double>(truncation);
    });
    // The loss is linear in gamma and beta: one central difference, no truncation error.
    for (std::vector<float>* v : {&f.gamma, &f.beta}) {
      const std::vector<float>& grad = v == &f.gamma ? dgamma : dbeta;
      for (size_t ch = 0; ch < c; ++ch) {
        const float saved = (*v)[ch];
        (*v)[ch] = saved + kH;
        const long double up = forward(f.x, scratch_mean.data(), scratch_invstd.data());
        (*v)[ch] = saved - kH;
        const long double down = forward(f.x, scratch_mean.data(), scratch_invstd.data());
        (*v)[ch] = saved;
        const long double fd = (up - down) / (2 * kH);
        EXPECT_LE(std::fabs(grad[ch] - fd), noise / kH + 1e-6L * (1 + std::fabs(fd)))
            << (v == &f.gamma ? "dgamma[" : "dbeta[") << ch << "]";
      }
    }
  }
}

}  // namespace
}  // namespace simdbn_test
