// Long-double references for the backward pass: the closed-form gradients, and the forward
// training computation they are the derivative of (for finite differences). Plain loops.
#ifndef SIMDBN_TESTS_BACKWARD_REFERENCE_H_
#define SIMDBN_TESTS_BACKWARD_REFERENCE_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "simdbn/simdbn.h"
#include "tests/reference.h"

namespace simdbn_test {

// One channel of the backward pass, with the magnitudes that bound rounding errors.
struct BackwardChannelRef {
  long double sum_dy = 0, sum_dy_xmean = 0;  // sum(dy), sum(dy * (x - mean))
  long double abs_dy = 0, abs_dy_xmean = 0;  // sum(|dy|), sum(|dy * (x - mean)|)
  long double mean = 0, invstd = 0;
  long double dgamma = 0, dbeta = 0;
  // dx = k * (dy - dy_mean) + x_scale * (x - mean)
  long double k = 0, x_scale = 0, dy_mean = 0;
};

struct BackwardRef {
  std::vector<BackwardChannelRef> channels;
  long double m = 0;  // n * spatial

  long double Dx(float x, float dy, int64_t ch) const {
    const BackwardChannelRef& r = channels[static_cast<size_t>(ch)];
    return r.k * (dy - r.dy_mean) + r.x_scale * (static_cast<long double>(x) - r.mean);
  }
};

// The gradients given f32 inputs exactly as the caller passes them (gamma may be null: 1), and
// statistics as f32 (what simdbn sees) or long double (exact, for finite differences).
// frozen: the statistics are constants, dx = dy * gamma * invstd.
template <class Stat>
BackwardRef BackwardReference(const simdbn_tensor_desc& d, const float* x, const float* dy,
                              const float* gamma, const Stat* mean, const Stat* invstd,
                              bool frozen) {
  BackwardRef ref;
  ref.channels.resize(static_cast<size_t>(d.c));
  ref.m = static_cast<long double>(d.n) * d.spatial;
  for (int64_t ch = 0; ch < d.c; ++ch) {
    ref.channels[static_cast<size_t>(ch)].mean = mean[ch];
    ref.channels[static_cast<size_t>(ch)].invstd = invstd[ch];
  }
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    BackwardChannelRef& r = ref.channels[static_cast<size_t>(ch)];
    const long double g = dy[o];
    const long double p = g * (static_cast<long double>(x[o]) - r.mean);
    r.sum_dy += g;
    r.sum_dy_xmean += p;
    r.abs_dy += std::fabs(g);
    r.abs_dy_xmean += std::fabs(p);
  });
  for (int64_t ch = 0; ch < d.c; ++ch) {
    BackwardChannelRef& r = ref.channels[static_cast<size_t>(ch)];
    r.dbeta = r.sum_dy;
    r.dgamma = r.sum_dy_xmean * r.invstd;
    r.k = (gamma != nullptr ? gamma[ch] : 1.0L) * r.invstd;
    if (!frozen && ref.m > 0) {
      r.x_scale = -r.k * r.invstd * r.dgamma / ref.m;
      r.dy_mean = r.dbeta / ref.m;
    }
  }
  return ref;
}

// ---- Bounds on simdbn's rounding errors, derived from its arithmetic (kernels/backward*) ----

constexpr long double kU = 0x1p-24L;  // unit roundoff of f32

// Error of either sum, relative to the sum of its terms' magnitudes. An f32 lane adds at most
// 16 terms before they move into double (kChunkTerms), then at most 3 more additions merge
// accumulators: gamma_19 ~ 19 u. Each term carries one rounding of x - mean and, on targets
// without FMA, one of the product: 21 u; 24 u leaves room for the second-order terms.
constexpr long double kSumError = 24 * kU;

// Smallest magnitudes taken into account, far below anything the data produces.
constexpr long double kTiny = 0x1p-120L;

// Bound on |dx - exact| for simdbn_backward. dx = (dy - dy_mean) * k + (x - mean) * x_scale
// rounds the three constants, the two differences, the product and the multiply-add (its
// product too without FMA): at most 5 u of the terms' magnitudes. The sums' errors
// (kSumError) reach x_scale and dy_mean through / M.
inline long double DxBound(const BackwardRef& ref, float x, float dy, int64_t ch, bool frozen) {
  const BackwardChannelRef& r = ref.channels[static_cast<size_t>(ch)];
  // Frozen: dx = dy * fl(k), two roundings.
  if (frozen) return 2 * kU * std::fabs(r.k * dy) + kTiny;
  const long double xmean = std::fabs(static_cast<long double>(x) - r.mean);
  const long double from_sums =
      std::fabs(r.k) *
      (xmean * r.invstd * r.invstd * kSumError * r.abs_dy_xmean + kSumError * r.abs_dy) / ref.m;
  return 5 * kU *
             (std::fabs(r.k) * (std::fabs(dy) + std::fabs(r.dy_mean)) +
              std::fabs(r.x_scale) * xmean) +
         from_sums + kTiny;
}

// dgamma = fl(sum * invstd) and dbeta = fl(sum): the sum's error plus one rounding.
inline long double DgammaBound(const BackwardChannelRef& r) {
  return kSumError * r.abs_dy_xmean * std::fabs(r.invstd) + kU * std::fabs(r.dgamma) + kTiny;
}
inline long double DbetaBound(const BackwardChannelRef& r) {
  return kSumError * r.abs_dy + kU * std::fabs(r.dbeta) + kTiny;
}

// Batch statistics of a long-double tensor: mean and biased variance per channel.
struct BatchStats {
  std::vector<long double> mean, var;
};

inline BatchStats BatchStatsReference(const simdbn_tensor_desc& d,
                                      const std::vector<long double>& x) {
  BatchStats s;
  s.mean.assign(static_cast<size_t>(d.c), 0);
  s.var.assign(static_cast<size_t>(d.c), 0);
  const long double m = static_cast<long double>(d.n) * d.spatial;
  ForEachElement(d, [&](int64_t o, int64_t ch) { s.mean[ch] += x[o]; });
  for (auto& v : s.mean) v /= m;
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    const long double v = x[o] - s.mean[ch];
    s.var[ch] += v * v;
  });
  for (auto& v : s.var) v /= m;
  return s;
}

// The training forward y = gamma * (x - mean) / sqrt(var + eps) + beta with batch statistics,
// contracted with dy: the scalar whose gradient simdbn_backward computes.
inline long double TrainingLoss(const simdbn_tensor_desc& d, const std::vector<long double>& x,
                                const std::vector<long double>& gamma,
                                const std::vector<long double>& beta, long double eps,
                                const float* dy) {
  const BatchStats s = BatchStatsReference(d, x);
  long double loss = 0;
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    const long double y = gamma[ch] * (x[o] - s.mean[ch]) / std::sqrt(s.var[ch] + eps) + beta[ch];
    loss += static_cast<long double>(dy[o]) * y;
  });
  return loss;
}

// The same with fixed statistics (frozen, eval-mode BN).
inline long double FrozenLoss(const simdbn_tensor_desc& d, const std::vector<long double>& x,
                              const std::vector<long double>& gamma,
                              const std::vector<long double>& beta,
                              const std::vector<long double>& mean,
                              const std::vector<long double>& invstd, const float* dy) {
  long double loss = 0;
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    const long double y = gamma[ch] * (x[o] - mean[ch]) * invstd[ch] + beta[ch];
    loss += static_cast<long double>(dy[o]) * y;
  });
  return loss;
}

// Central difference of f at v[i] with step h (in long double, rounding stays far below the
// truncation error h^2 / 6 * f''').
template <class F>
long double CentralDifference(std::vector<long double>* v, size_t i, long double h, const F& f) {
  const long double saved = (*v)[i];
  (*v)[i] = saved + h;
  const long double up = f();
  (*v)[i] = saved - h;
  const long double down = f();
  (*v)[i] = saved;
  return (up - down) / (2 * h);
}

}  // namespace simdbn_test

#endif  // SIMDBN_TESTS_BACKWARD_REFERENCE_H_
