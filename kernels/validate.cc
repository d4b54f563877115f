#include "kernels/validate.h"

#include <cinttypes>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/affine.h"  // kMaxLanes
#include "kernels/status.h"

namespace simdbn {
namespace {

bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a);
  const uintptr_t b0 = reinterpret_cast<uintptr_t>(b);
  return a_bytes != 0 && b_bytes != 0 && a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

// A C caller may store any int in an enum field; reading one outside the enumerators as the C++
// enum type is undefined, so the check reads the raw value.
template <class Enum>
int RawValue(const Enum& field) {
  static_assert(sizeof(Enum) == sizeof(int), "C enums are int-sized on supported ABIs");
  int raw;
  std::memcpy(&raw, &field, sizeof(raw));
  return raw;
}

}  // namespace

simdbn_status CheckNotNull(const char* fn, const char* name, const void* p) {
  if (p != nullptr) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT, "%s: %s is NULL; expected a valid pointer", fn, name);
}

simdbn_status CheckChannels(const char* fn, int64_t c) {
  if (c > 0) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT, "%s: c = %" PRId64 "; expected c > 0", fn, c);
}

simdbn_status CheckChannelArrays(const char* fn, int64_t c) {
  SIMDBN_RETURN_IF_ERROR(CheckChannels(fn, c));
  if (c <= std::numeric_limits<int64_t>::max() / (8 * kMaxLanes)) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT, "%s: c = %" PRId64 " is too large", fn, c);
}

simdbn_status CheckDesc(const char* fn, const simdbn_tensor_desc* desc, TensorShape* shape) {
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "desc", desc));
  if (desc->n < 0 || desc->spatial < 0) {
    return Fail(SIMDBN_INVALID_ARGUMENT,
                "%s: desc has n = %" PRId64 ", spatial = %" PRId64 "; expected both >= 0", fn,
                desc->n, desc->spatial);
  }
  SIMDBN_RETURN_IF_ERROR(CheckChannels(fn, desc->c));
  const int layout = RawValue(desc->layout);
  if (layout != SIMDBN_NCHW && layout != SIMDBN_NHWC) {
    return Fail(SIMDBN_INVALID_ARGUMENT,
                "%s: desc->layout = %d; expected SIMDBN_NCHW (0) or SIMDBN_NHWC (1)", fn, layout);
  }
  const int dtype = RawValue(desc->dtype);
  if (dtype != SIMDBN_F32 && dtype != SIMDBN_BF16 && dtype != SIMDBN_F16) {
    return Fail(SIMDBN_INVALID_ARGUMENT,
                "%s: desc->dtype = %d; expected SIMDBN_F32 (0), SIMDBN_BF16 (1) or SIMDBN_F16 (2)",
                fn, dtype);
  }
  // Every byte offset must fit in int64_t (and so in ptrdiff_t and size_t).
  const int64_t max_elements = std::numeric_limits<int64_t>::max() / int64_t{sizeof(float)};
  int64_t elements = 0;
  if (__builtin_mul_overflow(desc->n, desc->c, &elements) ||
      __builtin_mul_overflow(elements, desc->spatial, &elements) || elements > max_elements) {
    return Fail(SIMDBN_INVALID_ARGUMENT,
                "%s: n * c * spatial = %" PRId64 " * %" PRId64 " * %" PRId64
                " overflows; expected at most %" PRId64 " elements",
                fn, desc->n, desc->c, desc->spatial, max_elements);
  }
  shape->n = desc->n;
  shape->c = desc->c;
  shape->spatial = desc->spatial;
  shape->layout = desc->layout;
  shape->dtype = desc->dtype;
  shape->elements = elements;
  shape->bytes = static_cast<size_t>(elements) * (desc->dtype == SIMDBN_F32 ? 4 : 2);
  return SIMDBN_SUCCESS;
}

simdbn_status CheckSupported(const char* fn, const TensorShape& shape) {
  if (shape.dtype == SIMDBN_F32) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_UNSUPPORTED, "%s: desc->dtype = %s is not supported yet; use SIMDBN_F32",
              fn, shape.dtype == SIMDBN_BF16 ? "SIMDBN_BF16" : "SIMDBN_F16");
}

simdbn_status CheckEps(const char* fn, float eps) {
  if (eps >= 0.0f && std::isfinite(eps)) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT, "%s: eps = %.9g; expected a finite value >= 0", fn,
              static_cast<double>(eps));
}

simdbn_status CheckThreading(const char* fn, const simdbn_threading* threading) {
  if (threading == nullptr || threading->num_threads >= 0) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT,
              "%s: threading->num_threads = %d; expected 0 (all cores) or a positive count", fn,
              threading->num_threads);
}

simdbn_status CheckNoPartialOverlap(const char* fn, const char* a_name, const void* a,
                                    size_t a_bytes, const char* b_name, const void* b,
                                    size_t b_bytes) {
  if (!Overlap(a, a_bytes, b, b_bytes) || (a == b && a_bytes == b_bytes)) return SIMDBN_SUCCESS;
  if (a == b) {
    return Fail(SIMDBN_INVALID_ARGUMENT,
                "%s: %s and %s are the same pointer %p but have %zu and %zu bytes; in-place use "
                "needs buffers of the same size",
                fn, a_name, b_name, a, a_bytes, b_bytes);
  }
  return Fail(SIMDBN_INVALID_ARGUMENT,
              "%s: %s [%p, +%zu bytes) partially overlaps %s [%p, +%zu bytes); expected the same "
              "buffer (in place) or disjoint buffers",
              fn, a_name, a, a_bytes, b_name, b, b_bytes);
}

simdbn_status CheckDisjoint(const char* fn, const char* a_name, const void* a, size_t a_bytes,
                            const char* b_name, const void* b, size_t b_bytes) {
  if (!Overlap(a, a_bytes, b, b_bytes)) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT,
              "%s: %s [%p, +%zu bytes) and %s [%p, +%zu bytes) overlap; expected disjoint "
              "buffers",
              fn, a_name, a, a_bytes, b_name, b, b_bytes);
}

}  // namespace simdbn
