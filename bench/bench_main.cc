// simdbn_bench: every registered op, for every shape and thread count, simdbn against oneDNN on
// identical inputs, next to a copy of the same bytes, all in one process.
//
// Own flags (everything else goes to Google Benchmark):
//   --simdbn_shapes=full|quick   the real-network shape list, or a handful for a smoke test
//   --simdbn_shapes=N8_C300_S17x17,N64_C1000_S1,...
//                                these shapes instead, named as cases name them (N, C, then the
//                                1 to 3 spatial dims joined by x; S1 is an (N, C) tensor), so a
//                                shape outside the list can be measured without a rebuild; the
//                                report labels them "custom". A malformed name exits with 2.
//   --simdbn_threads=1,2         thread counts (default: 1 and all cores)
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "bench/bench_util.h"
#include "bench/onednn.h"
#include "bench/shapes.h"
#include "kernels/cache.h"  // LastLevelCacheBytes
#include "simdbn/simdbn.h"

namespace simdbn_bench {
namespace {

struct Options {
  std::string shape_set = "full";  // "full", "quick" or "custom", for the report's context
  std::vector<Shape> shapes = FullShapes();
  std::vector<int> threads;
};

// Strips our flags from argv so Google Benchmark sees only its own.
bool ParseOptions(int* argc, char** argv, Options* options) {
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--simdbn_shapes=", 0) == 0) {
      const std::string list = arg.substr(std::strlen("--simdbn_shapes="));
      std::string error;
      if (!ParseShapes(list, &options->shapes, &error)) {
        std::fprintf(stderr, "simdbn_bench: %s\n", error.c_str());
        return false;
      }
      options->shape_set = list == "full" || list == "quick" ? list : "custom";
    } else if (arg.rfind("--simdbn_threads=", 0) == 0) {
      options->threads.clear();
      const char* p = arg.c_str() + std::strlen("--simdbn_threads=");
      while (*p != '\0') {
        char* end = nullptr;
        const long t = std::strtol(p, &end, 10);
        if (end == p || t < 1) {
          std::fprintf(stderr, "simdbn_bench: bad thread list in %s\n", arg.c_str());
          return false;
        }
        options->threads.push_back(static_cast<int>(t));
        p = *end == ',' ? end + 1 : end;
      }
    } else if (arg.rfind("--simdbn_", 0) == 0) {
      std::fprintf(stderr, "simdbn_bench: unknown flag %s\n", arg.c_str());
      return false;
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  if (options->threads.empty()) {
    options->threads.push_back(1);
    const int cores = omp_get_num_procs();
    if (cores > 1) options->threads.push_back(cores);
  }
  return true;
}

// The report flags tensors that cannot stay in the last-level cache between calls.
std::string OneDnnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch);
}

}  // namespace
}  // namespace simdbn_bench

int main(int argc, char** argv) {
  using namespace simdbn_bench;
  Options options;
  if (!ParseOptions(&argc, argv, &options)) return 2;
  // Each case builds its primitive once, outside the timed loop, so the cache saves nothing; and
  // it takes an N x C x 1 x 1 tensor in nchw and in nhwc (the same bytes) for one key, so the
  // layout whose case ran first chose the other's implementation: N1_C100000_S1 NHWC inference
  // ran ncsp_bnorm at 0.57 ms or bnorm_tbb_jit at 0.04 ms depending on the shuffled order.
  dnnl::set_primitive_cache_capacity(0);
  for (const Shape& shape : options.shapes) {
    for (int threads : options.threads) {
      for (const Op& op : Ops()) op.registrar(shape, threads);
    }
  }
  benchmark::AddCustomContext("llc_bytes", std::to_string(simdbn::LastLevelCacheBytes()));
  benchmark::AddCustomContext("simdbn_target", simdbn_target_name());
  benchmark::AddCustomContext("onednn_version", OneDnnVersion());
  benchmark::AddCustomContext("blocked_layout", LayoutName(Layout::kBlocked));
  benchmark::AddCustomContext("shape_set", options.shape_set);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
