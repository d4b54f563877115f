#include "kernels/cache.h"

#include <unistd.h>

#include <initializer_list>

namespace simdbn {

size_t LastLevelCacheBytes() {
  static const size_t bytes = [] {
    for (const int name : {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
      const long value = sysconf(name);
      if (value > 0) return static_cast<size_t>(value);
    }
    return size_t{32} << 20;
  }();
  return bytes;
}

}  // namespace simdbn
