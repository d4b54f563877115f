// Tensor shapes the benchmark runs: every batch-normalization layer of real networks, plus odd
// sizes that stress the corners (few channels, no spatial extent, 3-D data).
#ifndef SIMDBN_BENCH_SHAPES_H_
#define SIMDBN_BENCH_SHAPES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace simdbn_bench {

struct Shape {
  std::string net;              // where the shape comes from, e.g. "ResNet-50"
  int64_t n = 0;
  int64_t c = 0;
  std::vector<int64_t> dims;    // spatial dimensions: {H, W}, {D, H, W}, or {} for (N, C)

  int64_t Spatial() const;      // product of dims, 1 for (N, C)
  size_t Elements() const { return static_cast<size_t>(n * c * Spatial()); }
  std::string Name() const;     // "N32_C256_S56x56"; "N32_C1000_S1" for (N, C)
};

// Every distinct (N, C, spatial) batch-normalization input of ResNet-50 and MobileNetV2 at batch 1
// and 32, then the odd sizes. A shape both networks share is listed once, labelled with both.
std::vector<Shape> FullShapes();

// A handful covering each regime (cache-resident, DRAM-bound, C not a multiple of 16, spatial 1)
// for a smoke test.
std::vector<Shape> QuickShapes();

// The shapes of --simdbn_shapes: "full", "quick", or a comma-separated list of names as Name()
// prints them ("N8_C300_S17x17,N64_C1000_S1"), labelled "custom", so that a shape outside the
// fixed list can be measured without a rebuild. Returns false with *error saying which name is
// wrong and why.
bool ParseShapes(const std::string& list, std::vector<Shape>* shapes, std::string* error);

}  // namespace simdbn_bench

#endif  // SIMDBN_BENCH_SHAPES_H_
