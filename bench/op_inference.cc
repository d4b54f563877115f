// Inference: y = x * scale[c] + bias[c] with folded running statistics, simdbn against oneDNN's
// forward_inference with use_global_stats | use_scale | use_shift on the same tensor.
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_util.h"
#include "bench/onednn.h"
#include "simdbn/simdbn.h"

namespace simdbn_bench {
namespace {

// Traffic model: read x, write y. (A residual input would add one read; oneDNN has no such
// fusion to compare with, so it is not benchmarked.)
constexpr double kTensorsMoved = 2.0;

void SimdbnInference(benchmark::State& state, const Shape& shape, Layout layout, int threads) {
  const size_t elements = shape.Elements();
  const float* x = Buffer(kInput0, elements);
  float* y = Buffer(kOutput0, elements);
  const ChannelParams params(shape.c);
  std::vector<float> scale(params.gamma.size()), bias(params.gamma.size());
  const simdbn_tensor_desc desc = {shape.n, shape.c, shape.Spatial(),
                                   layout == Layout::kNchw ? SIMDBN_NCHW : SIMDBN_NHWC,
                                   SIMDBN_F32};
  const simdbn_threading threading = {threads, nullptr, nullptr};
  const auto run = [&] {
    return simdbn_forward_inference(&desc, x, scale.data(), bias.data(), nullptr, y, 0,
                                    &threading);
  };
  if (simdbn_fold_inference(shape.c, params.gamma.data(), params.beta.data(), params.mean.data(),
                            params.var.data(), kEps, scale.data(),
                            bias.data()) != SIMDBN_SUCCESS) {
    state.SkipWithError(simdbn_last_error_message());
    return;
  }
  TimeSimdbn(state, shape, kTensorsMoved, run,
             [&] { return CheckInference(shape, layout, params, x, y); });
}

void OneDnnInference(benchmark::State& state, const Shape& shape, Layout layout, int threads) {
  SetOneDnnThreads(threads);
  const size_t elements = PaddedElements(shape, layout);
  float* x = Buffer(kInput0, shape.Elements());
  float* y = Buffer(kOutput0, elements);
  try {
    if (layout == Layout::kBlocked) {
      float* blocked = Buffer(kScratch0, elements);
      ReorderFromNchw(shape, x, layout, blocked);
      x = blocked;
    }
    ChannelParams params(shape.c);
    const dnnl::memory::desc md = DataDesc(shape, layout);
    const dnnl::memory::desc cd = ChannelDesc(shape.c);
    const dnnl::batch_normalization_forward::desc desc(
        dnnl::prop_kind::forward_inference, md, kEps,
        dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
            dnnl::normalization_flags::use_shift);
    const dnnl::batch_normalization_forward::primitive_desc pd(desc, Engine());
    const dnnl::batch_normalization_forward primitive(pd);
    const std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, dnnl::memory(md, Engine(), x)},
        {DNNL_ARG_DST, dnnl::memory(md, Engine(), y)},
        {DNNL_ARG_MEAN, dnnl::memory(cd, Engine(), params.mean.data())},
        {DNNL_ARG_VARIANCE, dnnl::memory(cd, Engine(), params.var.data())},
        {DNNL_ARG_SCALE, dnnl::memory(cd, Engine(), params.gamma.data())},
        {DNNL_ARG_SHIFT, dnnl::memory(cd, Engine(), params.beta.data())},
    };
    TimeOneDnn(state, shape, kTensorsMoved, primitive, args, pd.impl_info_str(),
               [&] { return CheckInference(shape, layout, params, x, y); });
  } catch (const dnnl::error& e) {
    state.SkipWithError(e.what());
  }
}

void RegisterInference(const Shape& shape, int threads) {
  for (Layout layout : kPlainLayouts) {
    RegisterCase(CaseName("Inference", "simdbn", layout, shape, threads),
                 [=](benchmark::State& state) { SimdbnInference(state, shape, layout, threads); });
  }
  for (Layout layout : {Layout::kNchw, Layout::kNhwc, Layout::kBlocked}) {
    RegisterCase(CaseName("Inference", "onednn", layout, shape, threads),
                 [=](benchmark::State& state) { OneDnnInference(state, shape, layout, threads); });
  }
}

[[maybe_unused]] const bool kRegistered = AddOp("Inference", RegisterInference);

}  // namespace
}  // namespace simdbn_bench
