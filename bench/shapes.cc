#include "bench/shapes.h"

#include <iterator>
#include <map>
#include <tuple>

namespace simdbn_bench {
namespace {

struct LayerShape {
  int64_t c, h, w;
};

// torchvision resnet50 at 224x224 (v1.5: stride on the 3x3 conv, so the first 1x1 conv of each
// stage still runs at the previous resolution).
constexpr LayerShape kResNet50[] = {
    {64, 112, 112},                                    // stem
    {64, 56, 56},   {256, 56, 56},                     // layer1
    {128, 56, 56},  {128, 28, 28}, {512, 28, 28},      // layer2
    {256, 28, 28},  {256, 14, 14}, {1024, 14, 14},     // layer3
    {512, 14, 14},  {512, 7, 7},   {2048, 7, 7},       // layer4
};

// torchvision mobilenet_v2 at 224x224: expand, depthwise and project batch norms of each
// inverted-residual stage; most channel counts are not multiples of 16.
constexpr LayerShape kMobileNetV2[] = {
    {32, 112, 112}, {16, 112, 112},                    // stem, first block
    {96, 112, 112}, {96, 56, 56},   {24, 56, 56},      // 24-channel stage
    {144, 56, 56},  {144, 28, 28},  {32, 28, 28},      // 32-channel stage
    {192, 28, 28},  {192, 14, 14},  {64, 14, 14},      // 64-channel stage
    {384, 14, 14},  {96, 14, 14},   {576, 14, 14},     // 96-channel stage
    {576, 7, 7},    {160, 7, 7},    {960, 7, 7},       // 160-channel stage
    {320, 7, 7},    {1280, 7, 7},                      // 320-channel stage, last conv
};

constexpr int64_t kBatches[] = {1, 32};

void AddNetwork(const char* net, const LayerShape* layers, size_t count,
                std::vector<Shape>* shapes) {
  for (int64_t n : kBatches) {
    for (size_t i = 0; i < count; ++i) {
      shapes->push_back({net, n, layers[i].c, {layers[i].h, layers[i].w}});
    }
  }
}

// Keeps the first occurrence of each shape, in order, joining the labels of later duplicates.
std::vector<Shape> Deduplicate(const std::vector<Shape>& shapes) {
  std::vector<Shape> unique;
  std::map<std::tuple<int64_t, int64_t, std::vector<int64_t>>, size_t> index;
  for (const Shape& s : shapes) {
    const auto key = std::make_tuple(s.n, s.c, s.dims);
    const auto it = index.find(key);
    if (it == index.end()) {
      index.emplace(key, unique.size());
      unique.push_back(s);
    } else if (unique[it->second].net.find(s.net) == std::string::npos) {
      unique[it->second].net += "+" + s.net;
    }
  }
  return unique;
}

}  // namespace

int64_t Shape::Spatial() const {
  int64_t spatial = 1;
  for (int64_t d : dims) spatial *= d;
  return spatial;
}

std::string Shape::Name() const {
  std::string name = "N" + std::to_string(n) + "_C" + std::to_string(c) + "_S";
  if (dims.empty()) return name + "1";
  for (size_t i = 0; i < dims.size(); ++i) {
    name += (i == 0 ? "" : "x") + std::to_string(dims[i]);
  }
  return name;
}

std::vector<Shape> FullShapes() {
  std::vector<Shape> shapes;
  AddNetwork("ResNet-50", kResNet50, std::size(kResNet50), &shapes);
  AddNetwork("MobileNetV2", kMobileNetV2, std::size(kMobileNetV2), &shapes);
  shapes.push_back({"odd", 1, 3, {1024, 1024}});   // input normalization of a large image
  shapes.push_back({"odd", 32, 1000, {}});         // classifier logits: no spatial extent
  shapes.push_back({"odd", 256, 1000, {}});
  shapes.push_back({"odd", 4, 64, {8, 56, 56}});   // 3-D video network after its stem
  return Deduplicate(shapes);
}

std::vector<Shape> QuickShapes() {
  return {
      {"ResNet-50", 1, 64, {56, 56}},
      {"MobileNetV2", 1, 24, {56, 56}},
      {"odd", 32, 1000, {}},
      {"odd", 4, 64, {8, 56, 56}},
  };
}

}  // namespace simdbn_bench
