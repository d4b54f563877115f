// The long-double reference every kernel is compared with: plain loops, no cleverness.
#ifndef SIMDBN_TESTS_REFERENCE_H_
#define SIMDBN_TESTS_REFERENCE_H_

#include <cmath>
#include <cstdint>

#include "simdbn/simdbn.h"

namespace simdbn_test {

// Offset of element (image i, channel ch, position s) in either layout.
inline int64_t Offset(const simdbn_tensor_desc& d, int64_t i, int64_t ch, int64_t s) {
  return d.layout == SIMDBN_NCHW ? (i * d.c + ch) * d.spatial + s : (i * d.spatial + s) * d.c + ch;
}

// Calls f(offset, channel) for every element.
template <class F>
void ForEachElement(const simdbn_tensor_desc& d, const F& f) {
  for (int64_t i = 0; i < d.n; ++i)
    for (int64_t ch = 0; ch < d.c; ++ch)
      for (int64_t s = 0; s < d.spatial; ++s) f(Offset(d, i, ch, s), ch);
}

// Inference of one element with f32 scale/bias: the exact value of
// x * scale + bias (+ residual) (then ReLU).
inline long double InferenceExact(float x, float scale, float bias, const float* residual,
                                  bool relu) {
  long double v = static_cast<long double>(x) * scale + bias;
  if (residual != nullptr) v += *residual;
  return relu && v < 0 ? 0 : v;
}

}  // namespace simdbn_test

#endif  // SIMDBN_TESTS_REFERENCE_H_
