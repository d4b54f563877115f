// Thin helpers to run oneDNN's batch-normalization primitives on simdbn's tensor descriptions.
#ifndef SIMDBN_TESTS_ONEDNN_UTIL_H_
#define SIMDBN_TESTS_ONEDNN_UTIL_H_

#include <oneapi/dnnl/dnnl.hpp>

#include "simdbn/simdbn.h"

namespace simdbn_test {

// The same tensor as a 4-D oneDNN memory description (spatial becomes H, W = 1).
inline dnnl::memory::desc OneDnnDesc(const simdbn_tensor_desc& d) {
  using tag = dnnl::memory::format_tag;
  return dnnl::memory::desc({d.n, d.c, d.spatial, 1}, dnnl::memory::data_type::f32,
                            d.layout == SIMDBN_NCHW ? tag::nchw : tag::nhwc);
}

inline dnnl::memory::desc OneDnnChannels(int64_t c) {
  return dnnl::memory::desc({c}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
}

inline dnnl::engine& OneDnnEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

}  // namespace simdbn_test

#endif  // SIMDBN_TESTS_ONEDNN_UTIL_H_
