#include "bench/bench_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>


#include "bench/onednn.h"

namespace simdbn_bench {
namespace {

constexpr size_t kAlignment = 64;

// splitmix64: a counter-based generator, so an input's value at an index does not depend on how
// large the buffer was when it was filled.
uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [lo, hi), from the top 24 bits so every value is exact in float.
float Uniform(uint64_t seed, uint64_t index, float lo, float hi) {
  const float unit = static_cast<float>(Mix(seed * 0x100000000ull + index) >> 40) * 0x1p-24f;
  return lo + (hi - lo) * unit;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

struct Pool {
  std::unique_ptr<float, FreeDeleter> data;
  size_t capacity = 0;
};

Pool& PoolFor(BufferId id) {
  static Pool pools[kNumBufferIds];
  return pools[id];
}

bool IsInput(BufferId id) { return id == kInput0 || id == kInput1; }

int64_t ChannelAt(const Shape& shape, Layout layout, size_t offset) {
  const auto off = static_cast<int64_t>(offset);
  switch (layout) {
    case Layout::kNchw:
      return off / shape.Spatial() % shape.c;
    case Layout::kNhwc:
      return off % shape.c;
    case Layout::kBlocked: {
      const int64_t block = BlockSize();
      const int64_t blocks = (shape.c + block - 1) / block;
      return off / (block * shape.Spatial()) % blocks * block + off % block;
    }
  }
  return -1;
}

}  // namespace

const char* LayoutName(Layout layout) {
  switch (layout) {
    case Layout::kNchw:
      return "NCHW";
    case Layout::kNhwc:
      return "NHWC";
    case Layout::kBlocked:
      return BlockSize() == 16 ? "nChw16c" : "nChw8c";
  }
  return "?";
}

size_t PaddedElements(const Shape& shape, Layout layout) {
  if (layout != Layout::kBlocked) return shape.Elements();
  const int64_t block = BlockSize();
  const int64_t padded_c = (shape.c + block - 1) / block * block;
  return static_cast<size_t>(shape.n * padded_c * shape.Spatial());
}

std::string CaseName(const std::string& op, const std::string& library, Layout layout,
                     const Shape& shape, int threads) {
  return op + "/" + library + "/" + LayoutName(layout) + "/" + shape.Name() +
         "/threads:" + std::to_string(threads);
}

void ReportTraffic(benchmark::State& state, const Shape& shape, double tensors_moved) {
  const double tensor_bytes = static_cast<double>(shape.Elements() * sizeof(float));
  const double traffic = tensors_moved * tensor_bytes;
  state.SetBytesProcessed(static_cast<int64_t>(traffic * static_cast<double>(state.iterations())));
  state.counters["traffic_bytes"] = traffic;
  state.counters["tensor_bytes"] = tensor_bytes;
}

void SetLabel(benchmark::State& state, const Shape& shape, const std::string& implementation) {
  state.SetLabel(shape.net + ";" + implementation);
}

float* Buffer(BufferId id, size_t elements) {
  Pool& pool = PoolFor(id);
  if (elements <= pool.capacity) return pool.data.get();
  const size_t bytes = (elements * sizeof(float) + kAlignment - 1) / kAlignment * kAlignment;
  float* p = static_cast<float*>(std::aligned_alloc(kAlignment, bytes));
  if (p == nullptr) {
    std::fprintf(stderr, "simdbn_bench: out of memory allocating %zu bytes\n", bytes);
    std::abort();
  }
  // Writing every element also faults in every page before any timing.
  if (IsInput(id)) {
    for (size_t i = 0; i < elements; ++i) p[i] = Uniform(id, i, -2.0f, 2.0f);
  } else {
    std::memset(p, 0, bytes);
  }
  pool.data.reset(p);
  pool.capacity = elements;
  return p;
}

ChannelParams::ChannelParams(int64_t c)
    : gamma(static_cast<size_t>(c)),
      beta(gamma.size()),
      mean(gamma.size()),
      var(gamma.size()) {
  for (size_t i = 0; i < gamma.size(); ++i) {
    gamma[i] = Uniform(100, i, 0.5f, 1.5f);
    beta[i] = Uniform(101, i, -0.5f, 0.5f);
    mean[i] = Uniform(102, i, -0.5f, 0.5f);
    var[i] = Uniform(103, i, 0.5f, 2.0f);
  }
}

std::string CheckInference(const Shape& shape, Layout layout, const ChannelParams& params,
                           const float* x, const float* y) {
  constexpr size_t kSamples = 1021;
  const size_t elements = PaddedElements(shape, layout);
  for (size_t k = 0; k < kSamples; ++k) {
    const size_t i = k * (elements - 1) / (kSamples - 1);
    const int64_t c = ChannelAt(shape, layout, i);
    if (c >= shape.c) continue;  // padding of a blocked layout
    const auto ch = static_cast<size_t>(c);
    const double s = params.gamma[ch] / std::sqrt(static_cast<double>(params.var[ch]) + kEps);
    const double ref = (x[i] - static_cast<double>(params.mean[ch])) * s + params.beta[ch];
    // A few ulp of every term a float implementation rounds: x * s, mean * s and beta.
    const double tol =
        1e-6 * (std::fabs(x[i] * s) + std::fabs(params.mean[ch] * s) + std::fabs(params.beta[ch]));
    if (!(std::fabs(y[i] - ref) <= tol)) {
      return "y[" + std::to_string(i) + "] = " + std::to_string(y[i]) + ", expected " +
             std::to_string(ref) + " (channel " + std::to_string(c) + ")";
    }
  }
  return "";
}

namespace {
std::vector<Op>& MutableOps() {
  static std::vector<Op> ops;
  return ops;
}
}  // namespace

bool AddOp(const char* name, OpRegistrar registrar) {
  std::vector<Op>& ops = MutableOps();
  ops.push_back({name, registrar});
  // Static initialization order differs between builds; a sorted list keeps runs comparable.
  std::sort(ops.begin(), ops.end(), [](const Op& a, const Op& b) { return a.name < b.name; });
  return true;
}

const std::vector<Op>& Ops() { return MutableOps(); }

bool FirstCall(const std::string& case_key) {
  static std::set<std::string> seen;
  return seen.insert(case_key).second;
}

void RegisterComparison(const std::string& op, const Shape& shape, int threads,
                        const LayoutCase& simdbn, const LayoutCase& onednn) {
  for (Layout layout : kPlainLayouts) {
    RegisterCase(CaseName(op, "simdbn", layout, shape, threads),
                 [=](benchmark::State& state) { simdbn(state, layout); });
  }
  for (Layout layout : {Layout::kNchw, Layout::kNhwc, Layout::kBlocked}) {
    RegisterCase(CaseName(op, "onednn", layout, shape, threads),
                 [=](benchmark::State& state) { onednn(state, layout); });
  }
}

}  // namespace simdbn_bench
