#include "bench/onednn.h"

#include <omp.h>

#include <string>

namespace simdbn_bench {
namespace {

using Tag = dnnl::memory::format_tag;

Tag FormatTag(Layout layout, size_t spatial_rank, int block) {
  const bool is_3d = spatial_rank == 3;
  switch (layout) {
    case Layout::kNchw:
      return is_3d ? Tag::ncdhw : Tag::nchw;
    case Layout::kNhwc:
      return is_3d ? Tag::ndhwc : Tag::nhwc;
    case Layout::kBlocked:
      if (block == 16) return is_3d ? Tag::nCdhw16c : Tag::nChw16c;
      return is_3d ? Tag::nCdhw8c : Tag::nChw8c;
  }
  return Tag::undef;
}

dnnl::memory::dims Dims(const Shape& shape) {
  dnnl::memory::dims dims = {shape.n, shape.c};
  dims.insert(dims.end(), shape.dims.begin(), shape.dims.end());
  while (dims.size() < 4) dims.push_back(1);
  return dims;
}

bool HasJitBatchNorm(int block) {
  const dnnl::memory::desc md({2, 64, 8, 8}, dnnl::memory::data_type::f32,
                              block == 16 ? Tag::nChw16c : Tag::nChw8c);
  const dnnl::batch_normalization_forward::desc desc(
      dnnl::prop_kind::forward_inference, md, kEps,
      dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
          dnnl::normalization_flags::use_shift);
  const dnnl::batch_normalization_forward::primitive_desc pd(desc, Engine());
  return std::string(pd.impl_info_str()).find("ref") == std::string::npos;
}

}  // namespace

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& Stream() {
  static dnnl::stream stream(Engine());
  return stream;
}

int BlockSize() {
  static const int block = HasJitBatchNorm(16) ? 16 : 8;
  return block;
}

dnnl::memory::desc DataDesc(const Shape& shape, Layout layout) {
  const dnnl::memory::dims dims = Dims(shape);
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32,
                            FormatTag(layout, dims.size() - 2, BlockSize()));
}

dnnl::memory::desc ChannelDesc(int64_t c) {
  return dnnl::memory::desc({c}, dnnl::memory::data_type::f32, Tag::a);
}

void ReorderFromNchw(const Shape& shape, const float* src, Layout layout, float* dst) {
  dnnl::memory from(DataDesc(shape, Layout::kNchw), Engine(), const_cast<float*>(src));
  dnnl::memory to(DataDesc(shape, layout), Engine(), dst);
  dnnl::reorder(from, to).execute(Stream(), from, to);
  Stream().wait();
}

void SetOneDnnThreads(int threads) { omp_set_num_threads(threads); }

void TimeOneDnn(benchmark::State& state, const Shape& shape, double tensors_moved,
                const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args,
                const char* implementation, const std::function<std::string()>& check) {
  primitive.execute(Stream(), args);
  Stream().wait();
  const std::string error = check();
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  for (auto _ : state) {
    primitive.execute(Stream(), args);
    Stream().wait();
  }
  ReportTraffic(state, shape, tensors_moved);
  SetLabel(state, shape, std::string("onednn:") + implementation);
}

}  // namespace simdbn_bench
