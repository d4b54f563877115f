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

// Whether an output written in contiguous runs of `run_elements` should bypass the cache: when
// the job's memory traffic exceeds the last-level cache, the output would be evicted before
// anyone reads it, and a normal store would first read every line it writes.
inline bool ShouldStream(size_t traffic_bytes, int64_t run_elements) {
  return traffic_bytes > LastLevelCacheBytes() && run_elements >= kMinStreamRun;
}

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_CACHE_H_
