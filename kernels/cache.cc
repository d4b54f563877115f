#include "kernels/cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace simdbn {
namespace {

// The largest data or unified cache the kernel lists for cpu0, from sysfs. Preferred over
// sysconf, which on some virtual machines reports the host's whole L3 (256 MiB seen where the
// guest's share is 32 MiB).
size_t SysfsLastLevelCacheBytes() {
  size_t best = 0;
  for (int index = 0; index < 8; ++index) {
    char path[96];
    std::snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/", index);
    char file[128];
    std::snprintf(file, sizeof(file), "%stype", path);
    char type[32] = "";
    if (FILE* f = std::fopen(file, "r")) {
      const bool ok = std::fscanf(f, "%31s", type) == 1;
      std::fclose(f);
      if (!ok) continue;
    } else {
      continue;
    }
    if (std::strcmp(type, "Instruction") == 0) continue;
    std::snprintf(file, sizeof(file), "%ssize", path);
    unsigned long value = 0;
    char unit = 0;
    if (FILE* f = std::fopen(file, "r")) {
      const int fields = std::fscanf(f, "%lu%c", &value, &unit);
      std::fclose(f);
      if (fields < 1) continue;
    }
    size_t bytes = value;
    if (unit == 'K') bytes <<= 10;
    if (unit == 'M') bytes <<= 20;
    if (bytes > best) best = bytes;
  }
  return best;
}

}  // namespace

size_t LastLevelCacheBytes() {
  static const size_t bytes = [] {
    if (const size_t sysfs = SysfsLastLevelCacheBytes(); sysfs != 0) return sysfs;
    const long value = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return value > 0 ? static_cast<size_t>(value) : size_t{32} << 20;
  }();
  return bytes;
}

}  // namespace simdbn
