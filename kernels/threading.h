// One interface over the two ways work can run: the built-in OpenMP pool, or the caller's
// parallel_for. Work is always a fixed list of items (see partition.h); threads only decide who
// runs which item, never what an item computes, so results do not depend on the thread count.
#ifndef SIMDBN_KERNELS_THREADING_H_
#define SIMDBN_KERNELS_THREADING_H_

#include <cstddef>
#include <cstdint>

#include "simdbn/simdbn.h"

namespace simdbn {

// Below this much memory traffic per thread, waking another thread costs more than it saves.
// Measured at 2 threads, halving it from 256 KiB made 100-500 KiB tensors up to 2x faster (N=1
// 7x7, c = 1280, NCHW training 34 -> 18 us, inference 9.7 -> 5.6 us) and changed nothing above;
// halving it again made no consistent difference.
inline constexpr size_t kMinBytesPerThread = size_t{128} << 10;

// How many threads work of any size may run on: 1 for the calling thread alone, 0 when the
// caller's parallel_for decides.
int MaxThreads(const simdbn_threading* threading);

// Runs task(task_ctx, begin, end) over sub-ranges covering [0, num_items) exactly once and
// returns when all have run. traffic_bytes (what the whole job moves) decides how many threads
// are worth using; one useful thread, or num_threads == 1, runs everything on the calling thread.
void RunItems(const simdbn_threading* threading, int64_t num_items, size_t traffic_bytes,
              simdbn_task_fn task, void* task_ctx);

// The same for a callable f(begin, end).
template <class F>
void ParallelFor(const simdbn_threading* threading, int64_t num_items, size_t traffic_bytes,
                 const F& f) {
  // A caller's pool may hand out empty ranges (e.g. T chunks of ceil(n / T)); tasks that do
  // work before their loop must not see them.
  RunItems(
      threading, num_items, traffic_bytes,
      [](void* ctx, int64_t begin, int64_t end) {
        if (begin < end) (*static_cast<const F*>(ctx))(begin, end);
      },
      const_cast<F*>(&f));
}

// ParallelFor over items of `width` channels of c: f(first channel, end channel).
template <class F>
void ParallelForChannels(const simdbn_threading* threading, int64_t c, int64_t width,
                         size_t traffic_bytes, const F& f) {
  ParallelFor(threading, (c + width - 1) / width, traffic_bytes, [&](int64_t begin, int64_t end) {
    f(begin * width, end * width < c ? end * width : c);
  });
}

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_THREADING_H_
