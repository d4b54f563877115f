// What the memory hierarchy of this machine looks like, for decisions such as streaming stores.
#ifndef SIMDBN_KERNELS_CACHE_H_
#define SIMDBN_KERNELS_CACHE_H_

#include <cstddef>

namespace simdbn {

// Size of the last-level cache in bytes (32 MiB where the OS does not say).
size_t LastLevelCacheBytes();

// Whether an output should bypass the cache: when the job's memory traffic exceeds the
// last-level cache, the output would be evicted before anyone reads it, and a normal store would
// first read every line it writes.
inline bool ShouldStream(size_t traffic_bytes) { return traffic_bytes > LastLevelCacheBytes(); }

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_CACHE_H_
