// Every invalid call of simdbn_backward / simdbn_backward_frozen returns its status, says which
// argument and why, and writes nothing: not dx, not dgamma, not dbeta.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "simdbn/simdbn.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

constexpr int64_t kC = 5;
constexpr int64_t kSpatial = 8;
constexpr size_t kSize = 2 * kC * kSpatial;

class BackwardErrors : public ::testing::TestWithParam<bool> {
 protected:
  // One buffer holds every tensor so that overlaps can be built inside valid memory:
  // x, dy, dx, then the channel arrays.
  BackwardErrors() : all_(3 * kSize + 6 * kC) {
    FillNormal(all_.data(), 2 * kSize, 1);
    for (size_t i = 0; i < kC; ++i) {
      gamma()[i] = 1.5f;
      mean()[i] = 0.25f;
      invstd()[i] = 2.0f;
    }
    before_.assign(all_.data(), all_.data() + all_.size());
  }

  float* x() { return all_.data(); }
  float* dy() { return all_.data() + kSize; }
  float* dx() { return all_.data() + 2 * kSize; }
  float* gamma() { return all_.data() + 3 * kSize; }
  float* mean() { return gamma() + kC; }
  float* invstd() { return mean() + kC; }
  float* dgamma() { return invstd() + kC; }
  float* dbeta() { return dgamma() + kC; }

  struct Args {
    const simdbn_tensor_desc* desc;
    const float *x, *dy, *gamma, *mean, *invstd;
    float *dx, *dgamma, *dbeta;
    const simdbn_threading* threading;
  };
  Args Valid() {
    return {&desc_, x(), dy(), gamma(), mean(), invstd(), dx(), dgamma(), dbeta(), nullptr};
  }

  void ExpectFailure(const Args& a, simdbn_status want, const std::string& mention) {
    const bool frozen = GetParam();
    const auto fn = frozen ? &simdbn_backward_frozen : &simdbn_backward;
    const simdbn_status got =
        fn(a.desc, a.x, a.dy, a.gamma, a.mean, a.invstd, a.dx, a.dgamma, a.dbeta, a.threading);
    EXPECT_EQ(want, got) << simdbn_last_error_message();
    const std::string message = simdbn_last_error_message();
    EXPECT_NE(std::string::npos, message.find(mention))
        << "message \"" << message << "\" does not mention \"" << mention << "\"";
    EXPECT_NE(std::string::npos,
              message.find(frozen ? "simdbn_backward_frozen" : "simdbn_backward"))
        << message;
    // Nothing written anywhere: not dx, dgamma or dbeta, nor any input they might alias.
    EXPECT_TRUE(SameBits(before_.data(), all_.data(), all_.size())) << mention;
    EXPECT_TRUE(all_.GuardsIntact());
  }

  simdbn_tensor_desc desc_{2, kC, kSpatial, SIMDBN_NCHW, SIMDBN_F32};
  GuardedBuffer all_;
  std::vector<float> before_;
};

std::string VariantName(const ::testing::TestParamInfo<bool>& variant) {
  return variant.param ? "Frozen" : "Normal";
}
INSTANTIATE_TEST_SUITE_P(Both, BackwardErrors, ::testing::Bool(), VariantName);

TEST_P(BackwardErrors, ValidCallsSucceed) {
  // The fixture itself is valid (and this is the only test that writes).
  const Args a = Valid();
  const auto fn = GetParam() ? &simdbn_backward_frozen : &simdbn_backward;
  EXPECT_EQ(SIMDBN_SUCCESS,
            fn(a.desc, a.x, a.dy, a.gamma, a.mean, a.invstd, a.dx, a.dgamma, a.dbeta, a.threading))
      << simdbn_last_error_message();
}

TEST_P(BackwardErrors, NullPointers) {
  Args a = Valid();
  a.desc = nullptr;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "desc is NULL");
  for (const auto& [field, name] :
       {std::make_tuple(&Args::x, "x is NULL"), std::make_tuple(&Args::dy, "dy is NULL"),
        std::make_tuple(&Args::mean, "save_mean is NULL"),
        std::make_tuple(&Args::invstd, "save_invstd is NULL")}) {
    a = Valid();
    a.*field = nullptr;
    ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, name);
  }
  a = Valid();
  a.dx = nullptr;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "dx is NULL");
}

TEST_P(BackwardErrors, BadShapesAndEnums) {
  for (const auto& [n, c, spatial, mention] :
       {std::make_tuple(int64_t{-1}, kC, kSpatial, "n = -1"),
        std::make_tuple(int64_t{2}, int64_t{0}, kSpatial, "c = 0"),
        std::make_tuple(int64_t{2}, kC, int64_t{-7}, "spatial = -7"),
        std::make_tuple(int64_t{1} << 40, int64_t{1} << 20, int64_t{1} << 10, "overflows"),
        // Valid as a tensor (no values), but its per-channel scratch could not be addressed.
        std::make_tuple(int64_t{0}, std::numeric_limits<int64_t>::max() / 8, int64_t{1},
                        "too large")}) {
    simdbn_tensor_desc d{n, c, spatial, SIMDBN_NCHW, SIMDBN_F32};
    Args a = Valid();
    a.desc = &d;
    ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, mention);
  }
  simdbn_tensor_desc d = desc_;
  d.layout = static_cast<simdbn_layout>(7);
  Args a = Valid();
  a.desc = &d;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "layout = 7");
  d = desc_;
  d.dtype = static_cast<simdbn_dtype>(9);
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "dtype = 9");
}

TEST_P(BackwardErrors, UnsupportedDtype) {
  for (const simdbn_dtype dtype : {SIMDBN_BF16, SIMDBN_F16}) {
    simdbn_tensor_desc d = desc_;
    d.dtype = dtype;
    Args a = Valid();
    a.desc = &d;
    ExpectFailure(a, SIMDBN_UNSUPPORTED, "not supported");
  }
}

TEST_P(BackwardErrors, NegativeThreads) {
  const simdbn_threading threading{-2, nullptr, nullptr};
  Args a = Valid();
  a.threading = &threading;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "num_threads = -2");
}

TEST_P(BackwardErrors, PartialOverlaps) {
  Args a = Valid();
  a.dx = x() + 1;  // dx shares all but one float with x
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "x [");
  a = Valid();
  a.dx = dy() + 3;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "dy [");
  // Per-channel inputs are read while dx is written: no shared byte at all.
  a = Valid();
  a.gamma = dx() + 7;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "gamma [");
  a = Valid();
  a.mean = dx() + kSize - 2;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "save_mean [");
  a = Valid();
  a.invstd = dx();
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "save_invstd [");
  // The outputs may not share memory with each other.
  a = Valid();
  a.dbeta = dgamma() + 2;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "dgamma [");
  a = Valid();
  a.dbeta = dgamma();
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "overlap");
  a = Valid();
  a.dgamma = dx() + 10;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "dgamma [");
  // An output may alias an input exactly, never partially.
  a = Valid();
  a.dgamma = gamma() + 1;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "partially overlaps");
  a = Valid();
  a.dbeta = x() + 4;
  ExpectFailure(a, SIMDBN_INVALID_ARGUMENT, "partially overlaps");
}

// Outputs that alias an input exactly are allowed: they are written after every read.
TEST_P(BackwardErrors, ExactAliasesOfChannelInputsAreAllowed) {
  std::vector<float> want_dgamma(kC), want_dbeta(kC);
  const auto fn = GetParam() ? &simdbn_backward_frozen : &simdbn_backward;
  ASSERT_EQ(SIMDBN_SUCCESS, fn(&desc_, x(), dy(), gamma(), mean(), invstd(), dx(),
                               want_dgamma.data(), want_dbeta.data(), nullptr));
  const std::vector<float> want_dx(dx(), dx() + kSize);
  std::fill(dx(), dx() + kSize, 0.0f);
  ASSERT_EQ(SIMDBN_SUCCESS,
            fn(&desc_, x(), dy(), gamma(), mean(), invstd(), dx(), gamma(), mean(), nullptr))
      << simdbn_last_error_message();
  EXPECT_TRUE(SameBits(want_dx.data(), dx(), kSize));
  EXPECT_TRUE(SameBits(want_dgamma.data(), gamma(), kC));
  EXPECT_TRUE(SameBits(want_dbeta.data(), mean(), kC));
}

#if !defined(__SANITIZE_ADDRESS__)  // ASan aborts on impossible allocations instead of failing
TEST_P(BackwardErrors, ScratchThatCannotBeAllocated) {
  // 32 pixels of 2^53 channels (more pixels than the few-pixel plan takes, which needs no
  // scratch): a valid request whose per-channel scratch needs 2^56 bytes or more. Tensors that
  // large cannot exist, so the pointers are addresses far enough apart for the overlap checks,
  // never dereferenced: the allocation fails before any access.
  simdbn_tensor_desc d{32, int64_t{1} << 53, 1, SIMDBN_NHWC, SIMDBN_F32};
  const auto at = FakeAddress;
  float* tensor = at(uint64_t{1} << 61);
  const Args a{&d,     tensor,  tensor,  nullptr, at(0x1000), at(uint64_t{1} << 62),
               tensor, nullptr, nullptr, nullptr};
  ExpectFailure(a, SIMDBN_OUT_OF_MEMORY, "cannot allocate");
}
#endif

}  // namespace
}  // namespace simdbn_test
