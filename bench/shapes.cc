#include "bench/shapes.h"

#include <algorithm>
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

// The benchmark holds up to six tensors of a shape at once (x, dy, y and oneDNN's blocked
// copies); 1 GiB of f32 each keeps a mistyped name from exhausting the machine.
constexpr int64_t kMaxCustomElements = int64_t{1} << 28;

// Advances *p past `expected` if it is there.
bool Consume(const char** p, char expected) {
  if (**p != expected) return false;
  ++*p;
  return true;
}

// Reads a positive decimal number without sign or leading zero (Name() prints neither).
bool ConsumePositive(const char** p, int64_t* value) {
  const char* s = *p;
  if (*s < '1' || *s > '9') return false;
  int64_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) {
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *s - '0', &v)) {
      return false;
    }
  }
  *p = s;
  *value = v;
  return true;
}

// Parses one name as Name() prints it; returns "" or why it is not one.
std::string ParseShape(const std::string& name, Shape* shape) {
  Shape s;
  s.net = "custom";
  const char* p = name.c_str();
  bool ok = Consume(&p, 'N') && ConsumePositive(&p, &s.n) && Consume(&p, '_') &&
            Consume(&p, 'C') && ConsumePositive(&p, &s.c) && Consume(&p, '_') && Consume(&p, 'S');
  if (ok) {
    do {
      int64_t d = 0;
      ok = ConsumePositive(&p, &d);
      s.dims.push_back(d);
    } while (ok && Consume(&p, 'x'));
  }
  if (!ok || *p != '\0') {
    return "bad shape name \"" + name +
           "\" (expected N<n>_C<c>_S<d>[x<d>...], e.g. N32_C256_S56x56, or N32_C1000_S1 for an "
           "(N, C) tensor)";
  }
  // Name() prints an (N, C) tensor as S1: read S1 back as one.
  if (s.dims == std::vector<int64_t>{1}) s.dims.clear();
  if (s.dims.size() > 3) {
    return "shape \"" + name + "\" has " + std::to_string(s.dims.size()) +
           " spatial dimensions; oneDNN's plain formats stop at 3 (ncdhw)";
  }
  int64_t elements = s.n;
  bool overflow = __builtin_mul_overflow(elements, s.c, &elements);
  for (int64_t d : s.dims) overflow = overflow || __builtin_mul_overflow(elements, d, &elements);
  if (overflow || elements > kMaxCustomElements) {
    return "shape \"" + name + "\" is larger than the benchmark's limit of " +
           std::to_string(kMaxCustomElements) + " elements (1 GiB of f32)";
  }
  *shape = s;
  return "";
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

bool ParseShapes(const std::string& list, std::vector<Shape>* shapes, std::string* error) {
  if (list == "full" || list == "quick") {
    *shapes = list == "full" ? FullShapes() : QuickShapes();
    return true;
  }
  std::vector<Shape> parsed;
  for (size_t begin = 0; begin <= list.size();) {
    const size_t end = std::min(list.find(',', begin), list.size());
    const std::string name = list.substr(begin, end - begin);
    Shape shape;
    *error = name.empty() ? "empty shape name in \"" + list + "\"" : ParseShape(name, &shape);
    if (!error->empty()) return false;
    parsed.push_back(shape);
    begin = end + 1;
  }
  // A shape named twice would register the same case names twice.
  *shapes = Deduplicate(parsed);
  return true;
}

}  // namespace simdbn_bench
