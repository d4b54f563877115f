// simdbn inference gives oneDNN's forward-inference results (use_global_stats | use_scale |
// use_shift, ReLU through fuse_norm_relu) within a bound that follows from both computations.
// oneDNN 2.6 has no residual add for batch normalization (no post-ops, no fuse_norm_add_relu):
// with a residual, simdbn is compared with oneDNN's output plus the residual, then ReLU, as an
// engine would compute it with oneDNN.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "simdbn/simdbn.h"
#include "tests/onednn_util.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

constexpr float kEps = 1e-5f;

// oneDNN computes gamma / sqrtf(var + eps) * (x - mean) + beta in f32; simdbn folds in double
// and does one FMA. Each side makes at most a few roundings of terms no larger than
// |scale| * (|x| + |mean|) and |beta|, so 8 u of their sum bounds the difference.
long double Bound(float x, float mean, float scale, float beta) {
  return 8 * 0x1p-24L * (std::fabs(scale) * (std::fabs(x) + std::fabs(mean)) + std::fabs(beta)) +
         0x1p-140L;
}

void CompareWithOneDnn(const simdbn_tensor_desc& d, bool relu, bool residual) {
  const size_t size = static_cast<size_t>(d.n * d.c * d.spatial);
  const size_t c = static_cast<size_t>(d.c);
  std::vector<float> x(size), y(size), y_dnnl(size), skip(residual ? size : 0);
  std::vector<float> gamma(c), beta(c), mean(c), var(c), scale(c), bias(c);
  FillNormal(x.data(), size, 11, 0.3, 1.5);
  FillUniform(gamma.data(), c, 12, -2, 2);
  FillNormal(beta.data(), c, 13);
  FillNormal(mean.data(), c, 14, 0.3, 0.5);
  FillUniform(var.data(), c, 15, 0.1, 4);
  FillNormal(skip.data(), skip.size(), 16, -0.2, 1.0);

  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_fold_inference(d.c, gamma.data(), beta.data(), mean.data(),
                                                  var.data(), kEps, scale.data(), bias.data()));
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_forward_inference(&d, x.data(), scale.data(), bias.data(),
                                     residual ? skip.data() : nullptr, y.data(),
                                     relu ? static_cast<unsigned>(SIMDBN_RELU) : 0u, nullptr));

  using dnnl::normalization_flags;
  const auto flags = normalization_flags::use_global_stats | normalization_flags::use_scale |
                     normalization_flags::use_shift |
                     (relu && !residual ? normalization_flags::fuse_norm_relu
                                        : normalization_flags::none);
  dnnl::engine& engine = OneDnnEngine();
  const auto md = OneDnnDesc(d);
  const auto cd = OneDnnChannels(d.c);
  const dnnl::batch_normalization_forward::primitive_desc pd(
      {dnnl::prop_kind::forward_inference, md, kEps, flags}, engine);
  dnnl::stream stream(engine);
  dnnl::batch_normalization_forward(pd).execute(
      stream, {{DNNL_ARG_SRC, dnnl::memory(md, engine, x.data())},
               {DNNL_ARG_DST, dnnl::memory(md, engine, y_dnnl.data())},
               {DNNL_ARG_MEAN, dnnl::memory(cd, engine, mean.data())},
               {DNNL_ARG_VARIANCE, dnnl::memory(cd, engine, var.data())},
               {DNNL_ARG_SCALE, dnnl::memory(cd, engine, gamma.data())},
               {DNNL_ARG_SHIFT, dnnl::memory(cd, engine, beta.data())}});
  stream.wait();

  size_t bad = 0;
  ForEachElement(d, [&](int64_t o, int64_t ch) {
    const size_t i = static_cast<size_t>(o);
    long double expected = y_dnnl[i], bound = Bound(x[i], mean[ch], scale[ch], beta[ch]);
    if (residual) {
      // Both sides round the sum once more: u of its terms each.
      bound += 0x1p-23L * (std::fabs(expected) + std::fabs(skip[i]));
      expected += skip[i];
      if (relu && expected < 0) expected = 0;  // ReLU only shrinks the difference
    }
    if (!(std::fabs(static_cast<long double>(y[i]) - expected) <= bound)) ++bad;
  });
  EXPECT_EQ(0u, bad) << "n=" << d.n << " c=" << d.c << " spatial=" << d.spatial
                     << " layout=" << d.layout << " relu=" << relu << " residual=" << residual;
}

class InferenceOneDnnTest : public PerTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(InferenceOneDnnTest);

TEST_P(InferenceOneDnnTest, SameAsOneDnnForwardInference) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const int64_t n : {1, 2, 5}) {
      for (const int64_t c : {1, 3, 15, 16, 17, 64, 255}) {
        for (const int64_t spatial : {1, 7, 49, 3136}) {
          for (const bool relu : {false, true}) {
            for (const bool residual : {false, true}) {
              CompareWithOneDnn({n, c, spatial, layout, SIMDBN_F32}, relu, residual);
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace simdbn_test
