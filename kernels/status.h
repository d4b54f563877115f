// The error channel of the API layer: a status plus this thread's human-readable message.
#ifndef SIMDBN_KERNELS_STATUS_H_
#define SIMDBN_KERNELS_STATUS_H_

#include "simdbn/simdbn.h"

namespace simdbn {

// Records a printf-style message as this thread's last error and returns `status`.
simdbn_status Fail(simdbn_status status, const char* format, ...)
    __attribute__((format(printf, 2, 3)));

}  // namespace simdbn

// Propagates a non-success status to the caller.
#define SIMDBN_RETURN_IF_ERROR(expr)                          \
  do {                                                        \
    const simdbn_status simdbn_status_ = (expr);              \
    if (simdbn_status_ != SIMDBN_SUCCESS) return simdbn_status_; \
  } while (0)

#endif  // SIMDBN_KERNELS_STATUS_H_
