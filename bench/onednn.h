// The oneDNN side of each comparison: engine, stream, and memory descriptions of the same
// tensors simdbn sees.
#ifndef SIMDBN_BENCH_ONEDNN_H_
#define SIMDBN_BENCH_ONEDNN_H_

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "bench/bench_util.h"
#include "bench/shapes.h"

namespace simdbn_bench {

dnnl::engine& Engine();
dnnl::stream& Stream();

// Channels per block of Layout::kBlocked: 16 where oneDNN has a JIT batch norm for nChw16c
// (AVX-512), else 8. On AVX2, oneDNN 2.6 runs nChw16c through its scalar reference code
// (~0.2 GB/s), which would make the "fastest blocked layout" reference meaningless.
int BlockSize();

// The tensor as oneDNN sees it: f32, dims {N, C, spatial...} (at least 4-D: an (N, C) tensor
// becomes N x C x 1 x 1), in the layout's format tag (nchw / ncdhw, nhwc / ndhwc, nChw16c /
// nCdhw16c ...).
dnnl::memory::desc DataDesc(const Shape& shape, Layout layout);
dnnl::memory::desc ChannelDesc(int64_t c);

// Writes the NCHW tensor src into dst (PaddedElements floats) in the given layout, so cases in
// a blocked layout see the same logical values as the plain ones.
void ReorderFromNchw(const Shape& shape, const float* src, Layout layout, float* dst);

// Makes oneDNN's next primitive run on this many OpenMP threads.
void SetOneDnnThreads(int threads);

// The timed part of every oneDNN case: runs the primitive once, skips the case with check()'s
// message if it returns one, then times execute + wait and reports the traffic and the
// implementation oneDNN chose.
void TimeOneDnn(benchmark::State& state, const Shape& shape, double tensors_moved,
                const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args,
                const char* implementation, const std::function<std::string()>& check);

}  // namespace simdbn_bench

#endif  // SIMDBN_BENCH_ONEDNN_H_
