// Backward: dx, dgamma and dbeta from x, dy and the saved batch statistics, simdbn against
// oneDNN's backward with use_scale | use_shift on the same tensors; and the frozen-statistics
// variant (simdbn_backward_frozen) against oneDNN's backward with use_global_stats.
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_util.h"
#include "bench/onednn.h"
#include "simdbn/simdbn.h"

namespace simdbn_bench {
namespace {

// Traffic model: what a backward pass must move at the least: read x and dy, write dx. A
// library that reads x and dy twice from memory (the sums, then dx) shows as a lower figure:
// that is the cost the model is meant to expose.
constexpr double kTensorsMoved = 3.0;

// Channel of element i in a plain layout.
size_t ChannelOf(const Shape& shape, Layout layout, size_t i) {
  const auto c = static_cast<size_t>(shape.c);
  return layout == Layout::kNhwc ? i % c : i / static_cast<size_t>(shape.Spatial()) % c;
}

// Batch statistics of x in double, and invstd rounded the way oneDNN computes it from var, so
// that both libraries see the same statistics.
struct Stats {
  std::vector<float> mean, var, invstd;
};

Stats BatchStats(const Shape& shape, Layout layout, const float* x) {
  const auto c = static_cast<size_t>(shape.c);
  const size_t elements = shape.Elements();
  const double count = static_cast<double>(elements / c);
  std::vector<double> sum(c, 0.0), squares(c, 0.0);
  for (size_t i = 0; i < elements; ++i) sum[ChannelOf(shape, layout, i)] += x[i];
  for (size_t i = 0; i < elements; ++i) {
    const size_t ch = ChannelOf(shape, layout, i);
    const double d = x[i] - sum[ch] / count;
    squares[ch] += d * d;
  }
  Stats s{std::vector<float>(c), std::vector<float>(c), std::vector<float>(c)};
  for (size_t ch = 0; ch < c; ++ch) {
    s.mean[ch] = static_cast<float>(sum[ch] / count);
    s.var[ch] = static_cast<float>(squares[ch] / count);
    s.invstd[ch] = 1.0f / std::sqrt(s.var[ch] + kEps);
  }
  return s;
}

// Compares dgamma, dbeta and a sample of dx (unless dx is null) with the closed form in double,
// from x and dy in a plain layout, within `tolerance` of each result's terms' magnitudes: far
// above the library's rounding, far below any wrong formula. oneDNN sums a channel in f32, an
// error that grows with the channel's size (1e-4 seen at 1M values), hence its looser bound.
// Returns "" or what differs.
constexpr double kSimdbnTolerance = 1e-5;
constexpr double kOneDnnTolerance = 1e-3;
std::string CheckBackward(const Shape& shape, Layout layout, const std::vector<float>& gamma,
                          const Stats& s, bool frozen, const float* x, const float* dy,
                          const float* dx, const float* dgamma, const float* dbeta,
                          double tolerance) {
  const auto c = static_cast<size_t>(shape.c);
  const size_t elements = shape.Elements();
  const double m = static_cast<double>(elements / c);
  std::vector<double> sum_dy(c, 0.0), sum_p(c, 0.0), abs_dy(c, 0.0), abs_p(c, 0.0);
  for (size_t i = 0; i < elements; ++i) {
    const size_t ch = ChannelOf(shape, layout, i);
    const double p = dy[i] * (static_cast<double>(x[i]) - s.mean[ch]);
    sum_dy[ch] += dy[i];
    sum_p[ch] += p;
    abs_dy[ch] += std::fabs(dy[i]);
    abs_p[ch] += std::fabs(p);
  }
  const auto fail = [](const char* what, size_t i, double got, double want) {
    return std::string(what) + "[" + std::to_string(i) + "] = " + std::to_string(got) +
           ", expected " + std::to_string(want);
  };
  for (size_t ch = 0; ch < c; ++ch) {
    const double want_dgamma = sum_p[ch] * s.invstd[ch];
    if (!(std::fabs(dgamma[ch] - want_dgamma) <= tolerance * abs_p[ch] * s.invstd[ch])) {
      return fail("dgamma", ch, dgamma[ch], want_dgamma);
    }
    if (!(std::fabs(dbeta[ch] - sum_dy[ch]) <= tolerance * abs_dy[ch])) {
      return fail("dbeta", ch, dbeta[ch], sum_dy[ch]);
    }
  }
  if (dx == nullptr) return "";
  constexpr size_t kSamples = 1021;
  for (size_t k = 0; k < kSamples; ++k) {
    const size_t i = k * (elements - 1) / (kSamples - 1);
    const size_t ch = ChannelOf(shape, layout, i);
    const double kk = static_cast<double>(gamma[ch]) * s.invstd[ch];
    const double xmean = static_cast<double>(x[i]) - s.mean[ch];
    const double dy_mean = frozen ? 0.0 : sum_dy[ch] / m;
    const double x_scale = frozen ? 0.0 : -kk * s.invstd[ch] * s.invstd[ch] * sum_p[ch] / m;
    const double want = kk * (dy[i] - dy_mean) + x_scale * xmean;
    const double terms =
        std::fabs(kk) * (std::fabs(dy[i]) + std::fabs(dy_mean)) + std::fabs(x_scale * xmean);
    if (!(std::fabs(dx[i] - want) <= tolerance * terms)) return fail("dx", i, dx[i], want);
  }
  return "";
}

void SimdbnBackward(benchmark::State& state, const Shape& shape, Layout layout, int threads,
                    bool frozen) {
  const size_t elements = shape.Elements();
  const float* x = Buffer(kInput0, elements);
  const float* dy = Buffer(kInput1, elements);
  float* dx = Buffer(kOutput0, elements);
  const ChannelParams params(shape.c);
  const Stats& stats = Memoized<Stats>(shape.Name() + LayoutName(layout),
                                      [&] { return BatchStats(shape, layout, x); });
  std::vector<float> dgamma(params.gamma.size()), dbeta(params.gamma.size());
  const simdbn_tensor_desc desc = {shape.n, shape.c, shape.Spatial(),
                                   layout == Layout::kNchw ? SIMDBN_NCHW : SIMDBN_NHWC, SIMDBN_F32};
  const simdbn_threading threading = {threads, nullptr, nullptr};
  const auto fn = frozen ? &simdbn_backward_frozen : &simdbn_backward;
  const auto run = [&] {
    return fn(&desc, x, dy, params.gamma.data(), stats.mean.data(), stats.invstd.data(), dx,
              dgamma.data(), dbeta.data(), &threading);
  };
  TimeSimdbn(state, shape, kTensorsMoved, run, [&] {
    const char* op = frozen ? "BackwardFrozen" : "Backward";
    if (!FirstCall(CaseName(op, "simdbn", layout, shape, threads))) return std::string();
    return CheckBackward(shape, layout, params.gamma, stats, frozen, x, dy, dx, dgamma.data(),
                         dbeta.data(), kSimdbnTolerance);
  });
}

void OneDnnBackward(benchmark::State& state, const Shape& shape, Layout layout, int threads,
                    bool frozen) {
  SetOneDnnThreads(threads);
  const size_t elements = PaddedElements(shape, layout);
  float* x = Buffer(kInput0, shape.Elements());
  float* dy = Buffer(kInput1, shape.Elements());
  float* dx = Buffer(kOutput0, elements);
  // Blocked cases see the NCHW tensors reordered: their statistics and the check of their
  // dgamma and dbeta use the NCHW ones (dx, blocked, is not checked).
  const Layout plain = layout == Layout::kNhwc ? Layout::kNhwc : Layout::kNchw;
  const float* plain_x = x;
  const float* plain_dy = dy;
  const Stats& stats = Memoized<Stats>(shape.Name() + LayoutName(plain),
                                      [&] { return BatchStats(shape, plain, x); });
  const ChannelParams params(shape.c);
  std::vector<float> dgamma(params.gamma.size()), dbeta(params.gamma.size());
  try {
    if (layout == Layout::kBlocked) {
      float* blocked_x = Buffer(kScratch0, elements);
      float* blocked_dy = Buffer(kScratch1, elements);
      ReorderFromNchw(shape, x, layout, blocked_x);
      ReorderFromNchw(shape, dy, layout, blocked_dy);
      x = blocked_x;
      dy = blocked_dy;
    }
    const dnnl::memory::desc md = DataDesc(shape, layout);
    const dnnl::memory::desc cd = ChannelDesc(shape.c);
    auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    if (frozen) flags = flags | dnnl::normalization_flags::use_global_stats;
    const dnnl::batch_normalization_forward::primitive_desc hint(
        {dnnl::prop_kind::forward_training, md, kEps, flags}, Engine());
    const dnnl::batch_normalization_backward::primitive_desc pd(
        {dnnl::prop_kind::backward, md, md, kEps, flags}, Engine(), hint);
    const dnnl::batch_normalization_backward primitive(pd);
    // Only read; oneDNN's memory objects take non-const pointers. oneDNN 2.6 wants beta as an
    // argument of the backward pass with use_shift, although no gradient depends on it.
    std::vector<float> gamma = params.gamma, beta = params.beta;
    std::vector<float> mean = stats.mean, var = stats.var;
    const std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, dnnl::memory(md, Engine(), x)},
        {DNNL_ARG_DIFF_DST, dnnl::memory(md, Engine(), dy)},
        {DNNL_ARG_MEAN, dnnl::memory(cd, Engine(), mean.data())},
        {DNNL_ARG_VARIANCE, dnnl::memory(cd, Engine(), var.data())},
        {DNNL_ARG_SCALE, dnnl::memory(cd, Engine(), gamma.data())},
        {DNNL_ARG_SHIFT, dnnl::memory(cd, Engine(), beta.data())},
        {DNNL_ARG_DIFF_SRC, dnnl::memory(md, Engine(), dx)},
        {DNNL_ARG_DIFF_SCALE, dnnl::memory(cd, Engine(), dgamma.data())},
        {DNNL_ARG_DIFF_SHIFT, dnnl::memory(cd, Engine(), dbeta.data())},
    };
    TimeOneDnn(state, shape, kTensorsMoved, primitive, args, pd.impl_info_str(), [&] {
      const char* op = frozen ? "BackwardFrozen" : "Backward";
      if (!FirstCall(CaseName(op, "onednn", layout, shape, threads))) return std::string();
      return CheckBackward(shape, plain, params.gamma, stats, frozen, plain_x, plain_dy,
                           layout == Layout::kBlocked ? nullptr : dx, dgamma.data(),
                           dbeta.data(), kOneDnnTolerance);
    });
  } catch (const dnnl::error& e) {
    state.SkipWithError(e.what());
  }
}

void Register(const char* op, const Shape& shape, int threads, bool frozen) {
  RegisterComparison(
      op, shape, threads,
      [=](benchmark::State& state, Layout layout) {
        SimdbnBackward(state, shape, layout, threads, frozen);
      },
      [=](benchmark::State& state, Layout layout) {
        OneDnnBackward(state, shape, layout, threads, frozen);
      });
}

void RegisterBackward(const Shape& shape, int threads) {
  Register("Backward", shape, threads, false);
}
void RegisterBackwardFrozen(const Shape& shape, int threads) {
  Register("BackwardFrozen", shape, threads, true);
}

[[maybe_unused]] const bool kRegistered = AddOp("Backward", RegisterBackward);
[[maybe_unused]] const bool kRegisteredFrozen = AddOp("BackwardFrozen", RegisterBackwardFrozen);

}  // namespace
}  // namespace simdbn_bench
