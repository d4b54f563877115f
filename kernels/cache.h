// What the memory hierarchy of this machine looks like, for decisions such as streaming stores.
#ifndef SIMDBN_KERNELS_CACHE_H_
#define SIMDBN_KERNELS_CACHE_H_

#include <cstddef>
#include <cstdint>

namespace simdbn {

// Size of the last-level cache in bytes (32 MiB where the OS does not say).
size_t LastLevelCacheBytes();

// Non-temporal stores pay off on long contiguous runs only. Where a run ends inside a cache
// line, the line is written partly by ordinary stores and partly through a write-combining
// buffer that is then flushed half full (measured: NCHW rows of 196 floats at 40% of a copy's
// bandwidth with streaming, rows of 49 at 10%).
inline constexpr int64_t kMinStreamRun = 1024;

// Whether an output written in contiguous runs of `run_elements` by at most `max_threads`
// threads (MaxThreads: 1 the calling thread alone, 0 unknown) should bypass the cache: when the
// job's memory traffic exceeds half the last-level cache, the output would mostly be evicted
// before anyone reads it (the LLC also holds the weights, the next layer's other inputs and
// other cores' data), and a normal store would first read every line it writes. Measured on a
// shared 32 MiB L3 (inference and training, tensors of 8-15 MB: traffic 16-29 MB), streaming
// stores were 1.1-1.8x as fast at 1 thread; at 2 threads 0.95-1.8x in a busy hour and 0.8-1.1x
// in a quiet one. One thread alone gains from 7/16 of the LLC already: at 15.3-16 MiB of
// traffic (five shapes of 7.7-8 MB, both layouts) inference and training were 1.08-1.84x as
// fast streaming at 1 thread, while at 2 threads streaming made most such shapes slower (up to
// 2.4x), and at 11.5-12.3 MiB it was 0.85-1.2x. oneDNN streams every aligned output, whatever
// its size.
// max_threads where the threads are unknown or must not matter (a plan that decides bits).
inline constexpr int kThreadsUnknown = 0;
inline bool ShouldStream(size_t traffic_bytes, int64_t run_elements, int max_threads) {
  const size_t llc = LastLevelCacheBytes();
  const size_t threshold = max_threads == 1 ? llc / 16 * 7 : llc / 2;
  return traffic_bytes > threshold && run_elements >= kMinStreamRun;
}

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_CACHE_H_
