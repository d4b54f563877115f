// Argument checks shared by every entry point. Each returns SIMDBN_SUCCESS or records a message
// naming the function, the argument, its value and what was expected.
#ifndef SIMDBN_KERNELS_VALIDATE_H_
#define SIMDBN_KERNELS_VALIDATE_H_

#include <cstddef>
#include <cstdint>

#include "simdbn/simdbn.h"

namespace simdbn {

// A checked view of a tensor descriptor.
struct TensorShape {
  int64_t n, c, spatial;
  simdbn_layout layout;
  simdbn_dtype dtype;
  int64_t elements;  // n * c * spatial, known not to overflow in bytes
  size_t bytes;      // elements * the size of dtype
};

simdbn_status CheckDesc(const char* fn, const simdbn_tensor_desc* desc, TensorShape* shape);

// A single channel is one contiguous run of n * spatial values in either layout: the plans see
// it as one image of one row rather than n short rows (NCHW) or n * spatial one-value pixels.
inline TensorShape OneChannelAsOneRun(TensorShape shape) {
  if (shape.c == 1) {
    shape.spatial *= shape.n;
    shape.n = 1;
    shape.layout = SIMDBN_NCHW;
  }
  return shape;
}
// Called last, so that an invalid request is reported as invalid before it is unsupported.
simdbn_status CheckSupported(const char* fn, const TensorShape& shape);
simdbn_status CheckNotNull(const char* fn, const char* name, const void* p);
// c > 0 for the per-channel entry points that take no descriptor.
simdbn_status CheckChannels(const char* fn, int64_t c);
// c > 0 and small enough that per-channel scratch (a few periodic arrays of PeriodicSize(c)
// floats, a few arrays of c doubles) has a size that fits in size_t.
simdbn_status CheckChannelArrays(const char* fn, int64_t c);
simdbn_status CheckEps(const char* fn, float eps);
simdbn_status CheckThreading(const char* fn, const simdbn_threading* threading);

// Two buffers may be the same buffer (in place) or disjoint; anything in between would make the
// result depend on the order of the loop, so it is rejected.
simdbn_status CheckNoPartialOverlap(const char* fn, const char* a_name, const void* a,
                                    size_t a_bytes, const char* b_name, const void* b,
                                    size_t b_bytes);
// Buffers that may not share any byte, not even exactly (two outputs, or an output and an
// input of another size).
simdbn_status CheckDisjoint(const char* fn, const char* a_name, const void* a, size_t a_bytes,
                            const char* b_name, const void* b, size_t b_bytes);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_VALIDATE_H_
