// The threading contract: the same bits for one thread, all threads and a caller's pool; the
// caller's pool is used instead of our own threads; small tensors stay on the calling thread.
#include <gtest/gtest.h>

#include <dirent.h>

#include <vector>

#include "simdbn/simdbn.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

int ThreadsInProcess() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (const dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
    closedir(dir);
  }
  return count;
}

struct Tensor {
  simdbn_tensor_desc desc;
  std::vector<float> x, r, scale, bias;
  explicit Tensor(simdbn_tensor_desc d)
      : desc(d),
        x(static_cast<size_t>(d.n * d.c * d.spatial)),
        r(x.size()),
        scale(static_cast<size_t>(d.c)),
        bias(scale.size()) {
    FillNormal(x.data(), x.size(), 1);
    FillNormal(r.data(), r.size(), 2);
    FillNormal(scale.data(), scale.size(), 3);
    FillNormal(bias.data(), bias.size(), 4);
  }
  std::vector<float> Run(const simdbn_threading* threading) const {
    std::vector<float> y(x.size());
    EXPECT_EQ(SIMDBN_SUCCESS,
              simdbn_forward_inference(&desc, x.data(), scale.data(), bias.data(), r.data(),
                                       y.data(), SIMDBN_RELU, threading));
    return y;
  }
};

// First in this file and run in a process of its own by ctest: no OpenMP team exists yet.
TEST(Threading, CallerPoolIsUsedAndNoThreadsAreStarted) {
  const Tensor t({4, 64, 3136, SIMDBN_NCHW, SIMDBN_F32});
  const int before = ThreadsInProcess();
  TestPool pool;
  pool.pieces = 1;  // runs on one fresh thread that ends before the call returns
  const simdbn_threading threading = WithTestPool(&pool);
  t.Run(&threading);
  EXPECT_GT(pool.calls, 0);
  EXPECT_EQ(before, ThreadsInProcess());
}

TEST(Threading, SameBitsForAnyThreadCount) {
  for (const simdbn_layout layout : {SIMDBN_NCHW, SIMDBN_NHWC}) {
    for (const simdbn_tensor_desc d : {simdbn_tensor_desc{4, 64, 3136, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{1, 3, 300001, layout, SIMDBN_F32},
                                       simdbn_tensor_desc{64, 1000, 1, layout, SIMDBN_F32}}) {
      const Tensor t(d);
      const simdbn_threading one{1, nullptr, nullptr}, all{0, nullptr, nullptr};
      TestPool pool;
      const simdbn_threading caller = WithTestPool(&pool);
      const std::vector<float> y1 = t.Run(&one);
      EXPECT_TRUE(SameBits(y1.data(), t.Run(&all).data(), y1.size()));
      EXPECT_TRUE(SameBits(y1.data(), t.Run(nullptr).data(), y1.size()));
      EXPECT_TRUE(SameBits(y1.data(), t.Run(&caller).data(), y1.size()));
      EXPECT_GT(pool.calls, 0) << "the tensor was meant to be large enough to split";
    }
  }
}

TEST(Threading, OneThreadAndSmallTensorsStayOnTheCallingThread) {
  TestPool pool;
  simdbn_threading threading = WithTestPool(&pool);
  threading.num_threads = 1;
  Tensor({4, 64, 3136, SIMDBN_NHWC, SIMDBN_F32}).Run(&threading);
  EXPECT_EQ(0, pool.calls) << "num_threads = 1 must not use the pool";
  threading.num_threads = 0;
  Tensor({1, 16, 49, SIMDBN_NHWC, SIMDBN_F32}).Run(&threading);
  EXPECT_EQ(0, pool.calls) << "a 3 KiB tensor is not worth a thread";
}

}  // namespace
}  // namespace simdbn_test
