// What every benchmarked op shares: case names, the traffic model, deterministic inputs that all
// libraries read, per-channel parameters, a spot check of results, and the op registry.
#ifndef SIMDBN_BENCH_BENCH_UTIL_H_
#define SIMDBN_BENCH_BENCH_UTIL_H_

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bench/shapes.h"
#include "simdbn/simdbn.h"

namespace simdbn_bench {

// kBlocked is oneDNN's native channel-blocked layout for this CPU (see onednn.h).
enum class Layout { kNchw, kNhwc, kBlocked };
constexpr Layout kPlainLayouts[] = {Layout::kNchw, Layout::kNhwc};

const char* LayoutName(Layout layout);  // "NCHW", "NHWC", "nChw16c" / "nChw8c"
// Floats a tensor of this shape occupies in the layout (blocked layouts pad C to the block).
size_t PaddedElements(const Shape& shape, Layout layout);

// "Inference/simdbn/NHWC/N32_C256_S56x56/threads:2". Google Benchmark appends "/real_time".
std::string CaseName(const std::string& op, const std::string& library, Layout layout,
                     const Shape& shape, int threads);

// Registers fn(state) under name with the settings every case shares.
template <class Fn>
void RegisterCase(const std::string& name, Fn fn) {
  // Real time: the work runs on a pool, so the calling thread's CPU time says little.
  benchmark::RegisterBenchmark(name.c_str(), fn)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// The traffic model: bytes an op must move through memory per call, counted on the logical
// tensor (padding of blocked layouts is the library's own cost). Sets bytes_per_second and the
// per-call "traffic_bytes" and "tensor_bytes" counters the report recomputes figures from.
void ReportTraffic(benchmark::State& state, const Shape& shape, double tensors_moved);
// "net;implementation" as the case's label.
void SetLabel(benchmark::State& state, const Shape& shape, const std::string& implementation);

// The timed part of every simdbn case: runs it once (skipping the case with simdbn's message if
// it fails, or with check()'s if that returns one), then times it and reports the traffic and
// the SIMD target. A template, so that the timed loop calls run directly.
template <class Run, class Check>
void TimeSimdbn(benchmark::State& state, const Shape& shape, double tensors_moved, const Run& run,
                const Check& check) {
  if (run() != SIMDBN_SUCCESS) {
    state.SkipWithError(simdbn_last_error_message());
    return;
  }
  const std::string error = check();
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  for (auto _ : state) run();
  ReportTraffic(state, shape, tensors_moved);
  SetLabel(state, shape, std::string("simdbn:") + simdbn_target_name());
}

// Registers an op's cases for one shape: simdbn in the plain layouts, oneDNN in those and in its
// blocked layout. Each function runs one case in the given layout.
using LayoutCase = std::function<void(benchmark::State& state, Layout layout)>;
void RegisterComparison(const std::string& op, const Shape& shape, int threads,
                        const LayoutCase& simdbn, const LayoutCase& onednn);


// Process-wide 64-byte aligned buffers, grown on demand and reused by every case, so cases do not
// pay for page faults and all libraries read the same bytes. Inputs hold a fixed pseudo-random
// pattern that depends only on (id, index); nobody may write them. Outputs and scratch are
// zero-filled when allocated (pages touched) and otherwise hold whatever the last case wrote.
// A pointer stays valid until a larger request for the same id; a case asks once per id.
enum BufferId { kInput0, kInput1, kOutput0, kScratch0, kScratch1, kScratch2, kNumBufferIds };
float* Buffer(BufferId id, size_t elements);

// Deterministic per-channel parameters, identical for every library.
inline constexpr float kEps = 1e-5f;
struct ChannelParams {
  explicit ChannelParams(int64_t c);
  std::vector<float> gamma, beta, mean, var;
};

// Compares a sample of y with y = (x - mean) * gamma / sqrt(var + eps) + beta computed in double,
// both tensors in the given layout. Returns "" or what differs, so a case that measures the wrong
// computation fails loudly instead of reporting a fast number.
std::string CheckInference(const Shape& shape, Layout layout, const ChannelParams& params,
                           const float* x, const float* y);

// Google Benchmark calls a case's function several times while it sizes the iteration count.
// Work that depends on the inputs alone (reference statistics) is made once per key and
// process; result checks run on a case's first call only (FirstCall).
template <class T, class Make>
const T& Memoized(const std::string& key, const Make& make) {
  static std::map<std::string, T> cache;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make()).first;
  return it->second;
}
bool FirstCall(const std::string& case_key);

// The op registry: each bench/op_*.cc adds one function that registers its cases for a shape and
// a thread count, so a new op is one new file and one line in CMakeLists.txt.
// Use at namespace scope: [[maybe_unused]] const bool kRegistered = AddOp("Copy", RegisterCopy);
using OpRegistrar = void (*)(const Shape& shape, int threads);
struct Op {
  std::string name;
  OpRegistrar registrar;
};
bool AddOp(const char* name, OpRegistrar registrar);
const std::vector<Op>& Ops();  // sorted by name

}  // namespace simdbn_bench

#endif  // SIMDBN_BENCH_BENCH_UTIL_H_
