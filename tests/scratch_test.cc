// The per-thread scratch arena: pieces are aligned and disjoint, memory is kept for the next
// call, a call nested inside another on the same thread (a caller's parallel_for that calls
// simdbn) gets memory of its own, and results never depend on what the arena held before.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/scratch.h"
#include "simdbn/simdbn.h"
#include "tests/test_util.h"

namespace simdbn_test {
namespace {

bool Disjoint(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa + a_bytes <= pb || pb + b_bytes <= pa;
}

TEST(Scratch, PiecesAreAlignedDisjointAndKeptForTheNextCall) {
  float* previous = nullptr;
  for (int call = 0; call < 3; ++call) {
    simdbn::Scratch scratch("test");
    float* f = nullptr;
    double* d = nullptr;
    char* empty = nullptr;
    ASSERT_EQ(SIMDBN_SUCCESS, scratch.Get(1000, &f));
    ASSERT_EQ(SIMDBN_SUCCESS, scratch.Get(3, &d));
    ASSERT_EQ(SIMDBN_SUCCESS, scratch.Get(0, &empty));
    for (const void* p : {static_cast<const void*>(f), static_cast<const void*>(d),
                          static_cast<const void*>(empty)}) {
      EXPECT_EQ(0u, reinterpret_cast<uintptr_t>(p) % 64);
    }
    EXPECT_TRUE(Disjoint(f, 1000 * sizeof(float), d, 3 * sizeof(double)));
    for (int i = 0; i < 1000; ++i) f[i] = static_cast<float>(i);  // ASan checks the bounds
    for (int i = 0; i < 3; ++i) d[i] = i;
    // From the second call on, what the first needed is there in one block.
    if (call == 2) {
      EXPECT_EQ(previous, f);
    }
    previous = f;
  }
}

TEST(Scratch, NestedScratchOnOneThreadGetsItsOwnMemory) {
  simdbn::Scratch outer("outer");
  float* a = nullptr;
  ASSERT_EQ(SIMDBN_SUCCESS, outer.Get(256, &a));
  simdbn::Scratch inner("inner");
  float* b = nullptr;
  ASSERT_EQ(SIMDBN_SUCCESS, inner.Get(256, &b));
  EXPECT_TRUE(Disjoint(a, 256 * sizeof(float), b, 256 * sizeof(float)));
}

TEST(Scratch, MoreThanAThreadKeepsStillWorks) {
  const size_t count = simdbn::Scratch::kKeepBytes / sizeof(double) + 1;
  for (int call = 0; call < 2; ++call) {
    simdbn::Scratch scratch("test");
    double* d = nullptr;
    ASSERT_EQ(SIMDBN_SUCCESS, scratch.Get(count, &d));
    d[0] = 1.0;
    d[count - 1] = 2.0;
  }
}

TEST(Scratch, ImpossibleSizeIsOutOfMemoryWithAMessage) {
  simdbn::Scratch scratch("simdbn_test_fn");
  double* d = nullptr;
  EXPECT_EQ(SIMDBN_OUT_OF_MEMORY, scratch.Get(SIZE_MAX / 4, &d));
  EXPECT_EQ(nullptr, d);
  EXPECT_NE(nullptr, std::strstr(simdbn_last_error_message(), "simdbn_test_fn"));
}

// Training forward on NHWC uses scratch for its statistics and constants.
struct Training {
  simdbn_tensor_desc desc;
  std::vector<float> x, y, mean, invstd;
  explicit Training(int64_t c)
      : desc{3, c, 49, SIMDBN_NHWC, SIMDBN_F32},
        x(static_cast<size_t>(3 * c * 49)),
        y(x.size()),
        mean(static_cast<size_t>(c)),
        invstd(mean.size()) {
    FillNormal(x.data(), x.size(), static_cast<uint32_t>(c), 5.0, 2.0);
  }
  simdbn_status Run(const simdbn_threading* threading) {
    return simdbn_forward_training(&desc, x.data(), nullptr, nullptr, 1e-5f, 0.1f, nullptr,
                                   nullptr, y.data(), mean.data(), invstd.data(), threading);
  }
};

// A caller's pool that first runs another simdbn call on the calling thread.
struct NestingPool {
  Training* inner;
  int calls = 0;
};
void NestingParallelFor(void* pool_ctx, int64_t n, simdbn_task_fn task, void* task_ctx) {
  auto* pool = static_cast<NestingPool*>(pool_ctx);
  ++pool->calls;
  const simdbn_threading one{1, nullptr, nullptr};
  EXPECT_EQ(SIMDBN_SUCCESS, pool->inner->Run(&one));
  task(task_ctx, 0, n);
}

TEST(Scratch, ACallNestedInACallersPoolGivesTheSameBits) {
  Training outer(2048), inner(1000), outer_alone(2048), inner_alone(1000);
  const simdbn_threading one{1, nullptr, nullptr};
  ASSERT_EQ(SIMDBN_SUCCESS, outer_alone.Run(&one));
  ASSERT_EQ(SIMDBN_SUCCESS, inner_alone.Run(&one));
  NestingPool pool{&inner};
  const simdbn_threading nesting{2, &NestingParallelFor, &pool};
  ASSERT_EQ(SIMDBN_SUCCESS, outer.Run(&nesting));
  EXPECT_GT(pool.calls, 0) << "the outer tensor was meant to be large enough to split";
  EXPECT_TRUE(SameBits(outer_alone.y.data(), outer.y.data(), outer.y.size()));
  EXPECT_TRUE(SameBits(outer_alone.invstd.data(), outer.invstd.data(), outer.invstd.size()));
  EXPECT_TRUE(SameBits(inner_alone.y.data(), inner.y.data(), inner.y.size()));
  EXPECT_TRUE(SameBits(inner_alone.mean.data(), inner.mean.data(), inner.mean.size()));
}

TEST(Scratch, ResultsDoNotDependOnWhatAnEarlierCallLeft) {
  const simdbn_threading one{1, nullptr, nullptr};
  Training small(7), large(3000), small_again(7);
  ASSERT_EQ(SIMDBN_SUCCESS, small.Run(&one));
  ASSERT_EQ(SIMDBN_SUCCESS, large.Run(&one));
  ASSERT_EQ(SIMDBN_SUCCESS, small_again.Run(&one));
  EXPECT_TRUE(SameBits(small.y.data(), small_again.y.data(), small.y.size()));
  EXPECT_TRUE(SameBits(small.mean.data(), small_again.mean.data(), small.mean.size()));
}

}  // namespace
}  // namespace simdbn_test
