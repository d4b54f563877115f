#include "kernels/status.h"

#include <cstdarg>
#include <cstdio>

namespace simdbn {
namespace {

// One message per thread so that concurrent callers never see each other's errors. A fixed
// buffer keeps the failure path free of allocation (it also reports out-of-memory).
thread_local char last_error[512] = "";

}  // namespace

simdbn_status Fail(simdbn_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(last_error, sizeof(last_error), format, args);
  va_end(args);
  return status;
}

}  // namespace simdbn

extern "C" {

const char* simdbn_last_error_message(void) { return simdbn::last_error; }

const char* simdbn_status_string(simdbn_status status) {
  switch (status) {
    case SIMDBN_SUCCESS:
      return "success";
    case SIMDBN_INVALID_ARGUMENT:
      return "invalid argument";
    case SIMDBN_UNSUPPORTED:
      return "unsupported";
    case SIMDBN_OUT_OF_MEMORY:
      return "out of memory";
  }
  return "unknown status";
}

}  // extern "C"
