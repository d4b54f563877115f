// Every invalid call returns its status, says which argument and why, and writes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "simdbn/simdbn.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

constexpr int64_t kC = 5;
constexpr int64_t kSpatial = 8;
constexpr size_t kSize = 2 * kC * kSpatial;

void ExpectFailure(simdbn_status want, simdbn_status got, const std::string& mention) {
  EXPECT_EQ(want, got) << simdbn_last_error_message();
  const std::string message = simdbn_last_error_message();
  EXPECT_NE(std::string::npos, message.find(mention))
      << "message \"" << message << "\" does not mention \"" << mention << "\"";
}

class ForwardInferenceErrors : public ::testing::Test {
 protected:
  ForwardInferenceErrors() : x(kSize), y(kSize), scale(kC), bias(kC) {
    FillNormal(x.data(), kSize, 1);
    FillNormal(scale.data(), kC, 2);
    FillNormal(bias.data(), kC, 3);
  }
  simdbn_status Call(const simdbn_tensor_desc* d, unsigned flags = 0,
                     const simdbn_threading* t = nullptr) {
    return simdbn_forward_inference(d, x.data(), scale.data(), bias.data(), nullptr, y.data(),
                                    flags, t);
  }
  void TearDown() override { EXPECT_TRUE(y.Untouched() && y.GuardsIntact()) << "y was written"; }

  simdbn_tensor_desc desc{2, kC, kSpatial, SIMDBN_NHWC, SIMDBN_F32};
  GuardedBuffer x, y, scale, bias;
};

TEST_F(ForwardInferenceErrors, NullPointers) {
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(nullptr), "desc");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, nullptr, scale.data(), bias.data(), nullptr,
                                         y.data(), 0, nullptr),
                "x is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, x.data(), nullptr, bias.data(), nullptr,
                                         y.data(), 0, nullptr),
                "scale is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, x.data(), scale.data(), nullptr, nullptr,
                                         y.data(), 0, nullptr),
                "bias is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, x.data(), scale.data(), bias.data(), nullptr,
                                         nullptr, 0, nullptr),
                "y is NULL");
}

TEST_F(ForwardInferenceErrors, BadShapes) {
  for (const auto& [n, c, spatial, mention] :
       {std::make_tuple(int64_t{-1}, kC, kSpatial, "n = -1"),
        std::make_tuple(int64_t{2}, int64_t{0}, kSpatial, "c = 0"),
        std::make_tuple(int64_t{2}, int64_t{-3}, kSpatial, "c = -3"),
        std::make_tuple(int64_t{2}, kC, int64_t{-7}, "spatial = -7"),
        std::make_tuple(int64_t{1} << 40, int64_t{1} << 20, int64_t{1} << 10, "overflows"),
        std::make_tuple(std::numeric_limits<int64_t>::max() / 8, kC, int64_t{1}, "overflows")}) {
    simdbn_tensor_desc d{n, c, spatial, SIMDBN_NCHW, SIMDBN_F32};
    ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(&d), mention);
  }
}

// Stores an int into a C enum field the way a C caller can, without C++'s out-of-range cast.
template <class Enum>
void SetRaw(Enum* field, int value) {
  std::memcpy(field, &value, sizeof(value));
}

TEST_F(ForwardInferenceErrors, UnknownEnumsAndFlags) {
  simdbn_tensor_desc d = desc;
  SetRaw(&d.layout, 7);
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(&d), "layout = 7");
  d = desc;
  SetRaw(&d.dtype, 9);
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(&d), "dtype = 9");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(&desc, 2u), "flags = 0x2");
  const simdbn_threading threading{-1, nullptr, nullptr};
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(&desc, 0, &threading), "num_threads = -1");
}

TEST_F(ForwardInferenceErrors, ReducedPrecisionIsUnsupportedButStillValidated) {
  simdbn_tensor_desc d = desc;
  for (const simdbn_dtype dtype : {SIMDBN_BF16, SIMDBN_F16}) {
    d.dtype = dtype;
    ExpectFailure(SIMDBN_UNSUPPORTED, Call(&d), dtype == SIMDBN_BF16 ? "BF16" : "F16");
    ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                  simdbn_forward_inference(&d, nullptr, scale.data(), bias.data(), nullptr,
                                           y.data(), 0, nullptr),
                  "x is NULL");
  }
}

TEST_F(ForwardInferenceErrors, PartialOverlapIsRejected) {
  // y one element past x: neither the same buffer nor disjoint.
  GuardedBuffer big(kSize + 1);
  big.FillSentinel();
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, big.data(), scale.data(), bias.data(), nullptr,
                                         big.data() + 1, 0, nullptr),
                "partially overlaps");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, x.data(), scale.data(), bias.data(),
                                         big.data() + 1, big.data(), 0, nullptr),
                "residual");
  EXPECT_TRUE(big.Untouched());
  // The constants may not live inside the output either.
  GuardedBuffer out(kSize);
  out.FillSentinel();
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, x.data(), out.data() + 3, bias.data(), nullptr,
                                         out.data(), 0, nullptr),
                "scale");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_forward_inference(&desc, x.data(), scale.data(), out.data() + kSize - 1,
                                         nullptr, out.data(), 0, nullptr),
                "bias");
  EXPECT_TRUE(out.Untouched());
}

#if !defined(__SANITIZE_ADDRESS__)  // ASan aborts on impossible allocations instead of failing
TEST(ForwardInferenceOutOfMemory, ScratchThatCannotBeAllocated) {
  // An (N, C) input of 2^53 channels: a valid request whose per-channel scratch needs 2^56
  // bytes. Tensors that large cannot exist, so the pointers are addresses far enough apart for
  // the overlap checks, never dereferenced: the allocation fails before any access.
  const simdbn_tensor_desc d{1, int64_t{1} << 53, 1, SIMDBN_NHWC, SIMDBN_F32};
  const auto at = FakeAddress;
  ExpectFailure(SIMDBN_OUT_OF_MEMORY,
                simdbn_forward_inference(&d, at(uint64_t{1} << 58), at(uint64_t{1} << 60),
                                         at(uint64_t{1} << 61), nullptr, at(uint64_t{1} << 59),
                                         0, nullptr),
                "cannot allocate");
}
#endif

class FoldErrors : public ::testing::Test {
 protected:
  FoldErrors() : gamma(kC), beta(kC), mean(kC), var(kC), scale(kC), bias(kC) {
    FillNormal(gamma.data(), kC, 1);
    FillNormal(beta.data(), kC, 2);
    FillNormal(mean.data(), kC, 3);
    FillUniform(var.data(), kC, 4, 0.5, 2);
  }
  simdbn_status Call(int64_t c = kC, float eps = 1e-5f) {
    return simdbn_fold_inference(c, gamma.data(), beta.data(), mean.data(), var.data(), eps,
                                 scale.data(), bias.data());
  }
  void TearDown() override {
    EXPECT_TRUE(scale.Untouched() && bias.Untouched()) << "an output was written";
  }
  GuardedBuffer gamma, beta, mean, var, scale, bias;
};

TEST_F(FoldErrors, BadArguments) {
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(0), "c = 0");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(-2), "c = -2");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(kC, -1e-3f), "eps");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(kC, NAN), "eps = nan");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(kC, INFINITY), "eps = inf");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_fold_inference(kC, gamma.data(), beta.data(), nullptr, var.data(), 1e-5f,
                                      scale.data(), bias.data()),
                "running_mean is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_fold_inference(kC, gamma.data(), beta.data(), mean.data(), nullptr, 1e-5f,
                                      scale.data(), bias.data()),
                "running_var is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_fold_inference(kC, gamma.data(), beta.data(), mean.data(), var.data(),
                                      1e-5f, nullptr, bias.data()),
                "scale is NULL");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_fold_inference(kC, gamma.data(), beta.data(), mean.data(), var.data(),
                                      1e-5f, scale.data(), nullptr),
                "bias is NULL");
}

TEST_F(FoldErrors, NegativeVarianceNamesTheChannel) {
  var[3] = -0.25f;
  ExpectFailure(SIMDBN_INVALID_ARGUMENT, Call(), "running_var[3] = -0.25");
}

TEST_F(FoldErrors, OverlappingOutputsAreRejected) {
  GuardedBuffer both(2 * kC);
  both.FillSentinel();
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_fold_inference(kC, gamma.data(), beta.data(), mean.data(), var.data(),
                                      1e-5f, both.data(), both.data() + 2),
                "overlap");
  ExpectFailure(SIMDBN_INVALID_ARGUMENT,
                simdbn_fold_inference(kC, gamma.data(), beta.data(), both.data() + 1, var.data(),
                                      1e-5f, both.data(), bias.data()),
                "partially overlaps");
  EXPECT_TRUE(both.Untouched());
}

TEST(StatusStrings, EveryStatusHasAName) {
  EXPECT_STREQ("success", simdbn_status_string(SIMDBN_SUCCESS));
  EXPECT_STREQ("invalid argument", simdbn_status_string(SIMDBN_INVALID_ARGUMENT));
  EXPECT_STREQ("unsupported", simdbn_status_string(SIMDBN_UNSUPPORTED));
  EXPECT_STREQ("out of memory", simdbn_status_string(SIMDBN_OUT_OF_MEMORY));
  EXPECT_STREQ("unknown status", simdbn_status_string(static_cast<simdbn_status>(42)));
}

}  // namespace
}  // namespace simdbn_test
