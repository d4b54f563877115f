#include "tests/test_util.h"

#include <algorithm>
#include <thread>

namespace simdbn_test {

void TestParallelFor(void* pool_ctx, int64_t n, simdbn_task_fn task, void* task_ctx) {
  auto* pool = static_cast<TestPool*>(pool_ctx);
  ++pool->calls;
  // Uneven pieces: the first is half of the range, the rest split what remains; empty ranges
  // before and after them, as pools that cut n into fixed chunks produce.
  std::vector<std::pair<int64_t, int64_t>> ranges = {{0, 0}};
  int64_t begin = 0;
  for (int p = 0; p < pool->pieces && begin < n; ++p) {
    const int64_t end =
        p + 1 == pool->pieces ? n : std::min(n, begin + std::max<int64_t>(1, (n - begin) / 2));
    ranges.emplace_back(begin, end);
    begin = end;
  }
  ranges.emplace_back(n, n);
  std::vector<std::thread> threads;
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
    threads.emplace_back([=] { task(task_ctx, it->first, it->second); });
  }
  for (auto& t : threads) t.join();
}

std::string ThreadsName(Threads t) {
  switch (t) {
    case Threads::kOne:
      return "OneThread";
    case Threads::kAll:
      return "AllThreads";
    case Threads::kCallerPool:
      return "CallerPool";
  }
  return "?";
}

}  // namespace simdbn_test
