// Training forward: batch statistics, y = (x - mean) * gamma * invstd + beta and the running
// statistics, simdbn against oneDNN's forward_training with use_scale | use_shift on the same
// tensor (oneDNN updates no running statistics; that per-channel work is negligible).
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_util.h"
#include "bench/onednn.h"
#include "simdbn/simdbn.h"

namespace simdbn_bench {
namespace {

// Traffic model: what training must move at the least, read x and write y. A library that
// reads x twice (statistics, then normalization) from memory shows as a lower figure: that is
// the cost the model is meant to expose.
constexpr double kTensorsMoved = 2.0;

// The batch statistics of x in double (two passes), as the parameters CheckInference compares
// y with: a training forward is an inference with these mean and variance.
ChannelParams BatchParams(const Shape& shape, Layout layout, const float* x) {
  ChannelParams params(shape.c);
  const auto c = static_cast<size_t>(shape.c);
  const auto spatial = static_cast<size_t>(shape.Spatial());
  const auto channel = [&](size_t i) {
    return layout == Layout::kNhwc ? i % c : i / spatial % c;
  };
  std::vector<double> sum(c, 0.0), squares(c, 0.0);
  const size_t elements = shape.Elements();
  for (size_t i = 0; i < elements; ++i) sum[channel(i)] += x[i];
  const double count = static_cast<double>(elements / c);
  for (size_t i = 0; i < elements; ++i) {
    const double d = x[i] - sum[channel(i)] / count;
    squares[channel(i)] += d * d;
  }
  for (size_t ch = 0; ch < c; ++ch) {
    params.mean[ch] = static_cast<float>(sum[ch] / count);
    params.var[ch] = static_cast<float>(squares[ch] / count);
  }
  return params;
}

void SimdbnTraining(benchmark::State& state, const Shape& shape, Layout layout, int threads) {
  const size_t elements = shape.Elements();
  const float* x = Buffer(kInput0, elements);
  float* y = Buffer(kOutput0, elements);
  const ChannelParams& params = Memoized<ChannelParams>(
      shape.Name() + LayoutName(layout), [&] { return BatchParams(shape, layout, x); });
  const auto c = static_cast<size_t>(shape.c);
  std::vector<float> running_mean(c, 0.0f), running_var(c, 1.0f), save_mean(c), save_invstd(c);
  const simdbn_tensor_desc desc = {shape.n, shape.c, shape.Spatial(),
                                   layout == Layout::kNchw ? SIMDBN_NCHW : SIMDBN_NHWC,
                                   SIMDBN_F32};
  const simdbn_threading threading = {threads, nullptr, nullptr};
  const auto run = [&] {
    return simdbn_forward_training(&desc, x, params.gamma.data(), params.beta.data(), kEps, 0.1f,
                                   running_mean.data(), running_var.data(), y, save_mean.data(),
                                   save_invstd.data(), &threading);
  };
  // A failure (e.g. one value per channel: no unbiased variance) skips the case.
  TimeSimdbn(state, shape, kTensorsMoved, run, [&] {
    if (!FirstCall(CaseName("Training", "simdbn", layout, shape, threads))) return std::string();
    return CheckInference(shape, layout, params, x, y);
  });
}

void OneDnnTraining(benchmark::State& state, const Shape& shape, Layout layout, int threads) {
  SetOneDnnThreads(threads);
  const size_t elements = PaddedElements(shape, layout);
  float* x = Buffer(kInput0, shape.Elements());
  float* y = Buffer(kOutput0, elements);
  // y is checked against oneDNN's own batch statistics: its f32 sums miss the double ones by
  // more than CheckInference's tolerance on large channels (see tests/training_onednn_test.cc),
  // and what is measured here is the speed of a training forward, not its accuracy.
  ChannelParams params(shape.c);
  std::vector<float> mean(params.gamma.size()), var(params.gamma.size());
  try {
    if (layout == Layout::kBlocked) {
      float* blocked = Buffer(kScratch0, elements);
      ReorderFromNchw(shape, x, layout, blocked);
      x = blocked;
    }
    const dnnl::memory::desc md = DataDesc(shape, layout);
    const dnnl::memory::desc cd = ChannelDesc(shape.c);
    const dnnl::batch_normalization_forward::desc desc(
        dnnl::prop_kind::forward_training, md, kEps,
        dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift);
    const dnnl::batch_normalization_forward::primitive_desc pd(desc, Engine());
    const dnnl::batch_normalization_forward primitive(pd);
    // gamma and beta are only read; oneDNN's memory objects take non-const pointers.
    std::vector<float> gamma = params.gamma, beta = params.beta;
    const std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, dnnl::memory(md, Engine(), x)},
        {DNNL_ARG_DST, dnnl::memory(md, Engine(), y)},
        {DNNL_ARG_MEAN, dnnl::memory(cd, Engine(), mean.data())},
        {DNNL_ARG_VARIANCE, dnnl::memory(cd, Engine(), var.data())},
        {DNNL_ARG_SCALE, dnnl::memory(cd, Engine(), gamma.data())},
        {DNNL_ARG_SHIFT, dnnl::memory(cd, Engine(), beta.data())},
    };
    // oneDNN's own statistics: y is checked as the inference it is with them.
    TimeOneDnn(state, shape, kTensorsMoved, primitive, args, pd.impl_info_str(), [&] {
      if (!FirstCall(CaseName("Training", "onednn", layout, shape, threads))) return std::string();
      params.mean = mean;
      params.var = var;
      return CheckInference(shape, layout, params, x, y);
    });
  } catch (const dnnl::error& e) {
    state.SkipWithError(e.what());
  }
}

void RegisterTraining(const Shape& shape, int threads) {
  RegisterComparison(
      "Training", shape, threads,
      [=](benchmark::State& state, Layout layout) {
        SimdbnTraining(state, shape, layout, threads);
      },
      [=](benchmark::State& state, Layout layout) {
        OneDnnTraining(state, shape, layout, threads);
      });
}

[[maybe_unused]] const bool kRegistered = AddOp("Training", RegisterTraining);

}  // namespace
}  // namespace simdbn_bench
