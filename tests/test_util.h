// What every simdbn test needs: guarded buffers, deterministic data, per-target fixtures and a
// caller-supplied thread pool.
#ifndef SIMDBN_TESTS_TEST_UTIL_H_
#define SIMDBN_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "hwy/tests/hwy_gtest.h"
#include "simdbn/simdbn.h"

namespace simdbn_test {

// A float array surrounded by sentinel guards and placed `misalign` floats past a 64-byte
// boundary, so tests see both reads of uninitialized tails and writes past the end.
class GuardedBuffer {
 public:
  static constexpr size_t kGuard = 64;  // floats on each side, more than any vector

  explicit GuardedBuffer(size_t size, size_t misalign = 0)
      : size_(size), storage_(size + 2 * kGuard + misalign + 16) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(storage_.data());
    const size_t aligned = (64 - base % 64) % 64 / sizeof(float);
    begin_ = aligned + kGuard + misalign;
    for (size_t i = 0; i < storage_.size(); ++i) storage_[i] = Sentinel();
  }
  float* data() { return storage_.data() + begin_; }
  const float* data() const { return storage_.data() + begin_; }
  size_t size() const { return size_; }
  float& operator[](size_t i) { return data()[i]; }
  float operator[](size_t i) const { return data()[i]; }

  // True when no byte outside [data(), data() + size()) has changed.
  bool GuardsIntact() const {
    for (size_t i = 0; i < storage_.size(); ++i) {
      if (i >= begin_ && i < begin_ + size_) continue;
      if (!IsSentinel(storage_[i])) return false;
    }
    return true;
  }
  // True when every element still holds the sentinel (nothing was written).
  bool Untouched() const {
    for (size_t i = 0; i < size_; ++i)
      if (!IsSentinel(data()[i])) return false;
    return true;
  }
  void FillSentinel() {
    for (size_t i = 0; i < size_; ++i) data()[i] = Sentinel();
  }

  static float Sentinel() {
    const uint32_t bits = 0x7fc0dead;  // a quiet NaN no kernel would produce
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
  static bool IsSentinel(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    return bits == 0x7fc0dead;
  }

 private:
  size_t size_;
  std::vector<float> storage_;
  size_t begin_ = 0;
};

// Deterministic pseudo-random data: a counter hashed by splitmix64, cheap enough for the
// multi-million-element sweeps that run once per SIMD target.
inline uint64_t SplitMix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Uniform in [0, 1) with 53 random bits.
inline double Uniform01(uint64_t seed, uint64_t i) {
  return static_cast<double>(SplitMix64(seed * 0x9e3779b97f4a7c15ull + i) >> 11) * 0x1p-53;
}
inline void FillUniform(float* p, size_t n, uint32_t seed, double lo, double hi) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<float>(lo + (hi - lo) * Uniform01(seed, i));
}
// Approximately normal (sum of four uniforms: mean 0, variance 1, tails cut at 3.46 std).
inline void FillNormal(float* p, size_t n, uint32_t seed, double mean = 0.0, double stddev = 1.0) {
  for (size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (uint64_t k = 0; k < 4; ++k) sum += Uniform01(seed, 4 * i + k);
    p[i] = static_cast<float>(mean + stddev * (sum - 2.0) * 1.7320508075688772);
  }
}

inline bool SameBits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// A pointer to `address`, for requests too large to exist whose checks fail before any access
// (out-of-memory tests): never dereferenced.
inline float* FakeAddress(uint64_t address) { return reinterpret_cast<float*>(address); }

// Unit in the last place of an f32 value of magnitude |v| (the spacing of floats near v).
inline long double Ulp(long double v) {
  const float f = static_cast<float>(std::fabs(static_cast<double>(v)));
  if (f < 1.17549435e-38f) return 1.40129846e-45L;  // subnormal spacing
  return static_cast<long double>(std::nextafter(f, INFINITY)) - f;
}

// A caller-supplied pool for the threading interface: splits [0, n) into uneven pieces and runs
// them on fresh std::threads in reverse order, so any dependence on the partition shows.
void TestParallelFor(void* pool_ctx, int64_t n, simdbn_task_fn task, void* task_ctx);
struct TestPool {
  int pieces = 3;
  int calls = 0;  // how often simdbn used the pool
};
inline simdbn_threading WithTestPool(TestPool* pool) {
  return simdbn_threading{0, &TestParallelFor, pool};
}

// The three ways a caller can ask for threads; results must not depend on which.
enum class Threads { kOne, kAll, kCallerPool };
std::string ThreadsName(Threads t);

// A test fixture that runs once per SIMD target this CPU supports (Highway's pattern): the
// library's dispatcher is pointed at one target at a time.
class PerTarget : public hwy::TestWithParamTarget {};

}  // namespace simdbn_test

#endif  // SIMDBN_TESTS_TEST_UTIL_H_
