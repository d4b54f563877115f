// simdbn_bench: every registered op, for every shape and thread count, simdbn against oneDNN on
// identical inputs, next to a copy of the same bytes, all in one process.
//
// Own flags (everything else goes to Google Benchmark):
//   --simdbn_shapes=full|quick   the real-network shape list, or a handful for a smoke test
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
#include "simdbn/simdbn.h"

namespace simdbn_bench {
namespace {

struct Options {
  bool quick = false;
  std::vector<int> threads;
};

// Strips our flags from argv so Google Benchmark sees only its own.
bool ParseOptions(int* argc, char** argv, Options* options) {
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--simdbn_shapes=quick" || arg == "--simdbn_shapes=full") {
      options->quick = arg == "--simdbn_shapes=quick";
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
  const std::vector<Shape> shapes = options.quick ? QuickShapes() : FullShapes();
  for (const Shape& shape : shapes) {
    for (int threads : options.threads) {
      for (const Op& op : Ops()) op.registrar(shape, threads);
    }
  }
  benchmark::AddCustomContext("llc_bytes", std::to_string(LastLevelCacheBytes()));
  benchmark::AddCustomContext("simdbn_target", simdbn_target_name());
  benchmark::AddCustomContext("onednn_version", OneDnnVersion());
  benchmark::AddCustomContext("blocked_layout", LayoutName(Layout::kBlocked));
  benchmark::AddCustomContext("shape_set", options.quick ? "quick" : "full");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
