// The C++ layer: same results as the C ABI, errors as exceptions, any callable as a pool.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "simdbn/simdbn.hpp"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

TEST(CppApi, ForwardInferenceMatchesTheCAbi) {
  const simdbn::Shape shape{2, 7, 300, simdbn::Layout::kNHWC};
  std::vector<float> x(static_cast<size_t>(shape.size())), y(x.size()), y_c(x.size());
  std::vector<float> scale(7), bias(7);
  FillNormal(x.data(), x.size(), 1);
  FillNormal(scale.data(), 7, 2);
  FillNormal(bias.data(), 7, 3);
  simdbn::InferenceOptions options;
  options.relu = true;
  simdbn::ForwardInference(shape, x.data(), scale.data(), bias.data(), y.data(), options);
  const simdbn_tensor_desc desc = shape.desc();
  ASSERT_EQ(SIMDBN_SUCCESS, simdbn_forward_inference(&desc, x.data(), scale.data(), bias.data(),
                                                     nullptr, y_c.data(), SIMDBN_RELU, nullptr));
  EXPECT_TRUE(SameBits(y.data(), y_c.data(), y.size()));
}

TEST(CppApi, ErrorsThrowWithStatusAndMessage) {
  const simdbn::Shape shape{1, 0, 5, simdbn::Layout::kNCHW};
  float x[5] = {}, y[5] = {}, scale[1] = {}, bias[1] = {};
  try {
    simdbn::ForwardInference(shape, x, scale, bias, y);
    FAIL() << "no exception";
  } catch (const simdbn::Error& e) {
    EXPECT_EQ(SIMDBN_INVALID_ARGUMENT, e.status());
    EXPECT_NE(std::string::npos, std::string(e.what()).find("c = 0"));
  }
}

TEST(CppApi, AnyCallableServesAsThePool) {
  int calls = 0;
  auto pool = [&calls](int64_t n, const auto& task) {
    ++calls;
    std::thread other([&] { task(n / 2, n); });
    task(0, n / 2);
    other.join();
  };
  const simdbn_threading threading = simdbn::UsePool(pool);
  const simdbn::Shape shape{4, 64, 3136, simdbn::Layout::kNCHW};
  std::vector<float> x(static_cast<size_t>(shape.size()), 2.0f), y(x.size());
  const std::vector<float> scale(64, 3.0f), bias(64, 1.0f);
  simdbn::InferenceOptions options;
  options.threading = &threading;
  simdbn::ForwardInference(shape, x.data(), scale.data(), bias.data(), y.data(), options);
  EXPECT_EQ(1, calls);
  for (const float v : y) ASSERT_EQ(7.0f, v);
}

TEST(CppApi, TrainingAndBackwardMatchTheCAbi) {
  const simdbn::Shape shape{3, 5, 40, simdbn::Layout::kNHWC};
  const size_t size = static_cast<size_t>(shape.size());
  std::vector<float> x(size), dy(size), y(size), dx(size), y_c(size), dx_c(size);
  std::vector<float> mean(5), invstd(5), mean_c(5), invstd_c(5), dgamma(5), dgamma_c(5);
  FillNormal(x.data(), size, 1, 3.0, 2.0);
  FillNormal(dy.data(), size, 2);
  simdbn::ForwardTraining(shape, x.data(), y.data(), mean.data(), invstd.data());
  simdbn::BackwardOptions options;
  options.dgamma = dgamma.data();
  simdbn::Backward(shape, x.data(), dy.data(), mean.data(), invstd.data(), dx.data(), options);

  const simdbn_tensor_desc desc = shape.desc();
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_forward_training(&desc, x.data(), nullptr, nullptr, 1e-5f, 0.1f, nullptr,
                                    nullptr, y_c.data(), mean_c.data(), invstd_c.data(), nullptr));
  ASSERT_EQ(SIMDBN_SUCCESS,
            simdbn_backward(&desc, x.data(), dy.data(), nullptr, mean_c.data(), invstd_c.data(),
                            dx_c.data(), dgamma_c.data(), nullptr, nullptr));
  EXPECT_TRUE(SameBits(y.data(), y_c.data(), size));
  EXPECT_TRUE(SameBits(dx.data(), dx_c.data(), size));
  EXPECT_TRUE(SameBits(dgamma.data(), dgamma_c.data(), 5));
}

}  // namespace
}  // namespace simdbn_test
