// A stand-in for Highway with 64-byte vectors (16 floats, 8 doubles) in plain C++, so that the
// kernels' AVX-512 logic (lane counts, tails, buffer sizes, alignment, straddling vectors) runs on
// machines without AVX-512. It claims HWY_TARGET == HWY_AVX3 and HWY_MEM_OPS_MIGHT_FAULT == 0,
// as the real AVX3 target does, so the masked-tail paths run too. Masked loads and stores touch
// only their active lanes, and aligned ones abort on a misaligned pointer, so that the sanitizer
// build catches what the hardware would. Only the operations the kernels use are here; it checks
// simdbn's code, not Highway's AVX-512 intrinsics.
#ifndef SIMDBN_TESTS_WIDE_LANES_HWY_HIGHWAY_H_
#define SIMDBN_TESTS_WIDE_LANES_HWY_HIGHWAY_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "hwy/base.h"            // HWY_RESTRICT, HWY_INLINE (the real ones)
#include "hwy/detect_targets.h"  // HWY_AVX3
#include "hwy/targets.h"         // TargetName

#undef HWY_TARGET
#define HWY_TARGET HWY_AVX3
#define HWY_NAMESPACE N_WIDE_LANES
#define HWY_MAX_BYTES 64
#define HWY_ALIGN alignas(64)
#define HWY_MEM_OPS_MIGHT_FAULT 0
#define HWY_BEFORE_NAMESPACE() static_assert(true, "")
#define HWY_AFTER_NAMESPACE() static_assert(true, "")
#define HWY_ONCE 1
// One target, called directly: HWY_EXPORT names the function, HWY_DYNAMIC_DISPATCH calls it.
#define HWY_EXPORT(name) \
  [[maybe_unused]] static decltype(&HWY_NAMESPACE::name) const name##WideLanes = &HWY_NAMESPACE::name
#define HWY_DYNAMIC_DISPATCH(name) (*name##WideLanes)

namespace hwy {
namespace N_WIDE_LANES {

template <typename T, size_t N>
struct Simd {
  static_assert(N >= 1 && N * sizeof(T) <= 64, "at most 64 bytes");
};
template <typename T, size_t N>
struct VecN {
  T raw[N];
};
template <typename T, size_t N>
struct MaskN {
  bool bit[N];
};

template <typename T>
using ScalableTag = Simd<T, 64 / sizeof(T)>;
template <typename T, size_t kLimit>
using CappedTag = Simd<T, (kLimit < 64 / sizeof(T) ? kLimit : 64 / sizeof(T))>;

template <class D>
struct Traits;
template <typename T, size_t N>
struct Traits<Simd<T, N>> {
  using Lane = T;
  static constexpr size_t kN = N;
};
template <class D>
struct Traits<const D> : Traits<D> {};
template <class D>
using TFromD = typename Traits<D>::Lane;
template <class D>
using Vec = VecN<TFromD<D>, Traits<D>::kN>;
template <class D>
using Mask = MaskN<TFromD<D>, Traits<D>::kN>;
template <typename NewT, class D>
using Rebind = Simd<NewT, Traits<D>::kN>;
template <typename NewT, class D>
using Repartition = Simd<NewT, Traits<D>::kN * sizeof(TFromD<D>) / sizeof(NewT)>;
template <class D>
using Half = Simd<TFromD<D>, Traits<D>::kN / 2>;
template <class D>
using Twice = Simd<TFromD<D>, Traits<D>::kN * 2>;

template <typename T, size_t N>
constexpr size_t Lanes(Simd<T, N>) {
  return N;
}
template <typename T, size_t N>
constexpr size_t MaxLanes(Simd<T, N>) {
  return N;
}

// Whole vectors of 16 bytes or more must be aligned to their size, as on the hardware.
template <typename T, size_t N>
void CheckAligned(const void* p, const char* op) {
  const size_t bytes = N * sizeof(T) >= 16 ? N * sizeof(T) : sizeof(T);
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0) {
    std::fprintf(stderr, "wide lanes: misaligned %s at %p\n", op, p);
    std::abort();
  }
}

// Applies f to every lane: the body of each operation below.
template <typename T, size_t N, class F>
VecN<T, N> Lanewise(const F& f) {
  VecN<T, N> v;
  for (size_t i = 0; i < N; ++i) v.raw[i] = f(i);
  return v;
}

template <typename T, size_t N>
VecN<T, N> Zero(Simd<T, N>) {
  return Lanewise<T, N>([](size_t) { return T(0); });
}
template <typename T, size_t N, typename U>
VecN<T, N> Set(Simd<T, N>, U value) {
  return Lanewise<T, N>([&](size_t) { return static_cast<T>(value); });
}
template <typename T, size_t N>
VecN<T, N> LoadU(Simd<T, N>, const T* p) {
  return Lanewise<T, N>([&](size_t i) { return p[i]; });
}
template <typename T, size_t N>
VecN<T, N> Load(Simd<T, N> d, const T* p) {
  CheckAligned<T, N>(p, "Load");
  return LoadU(d, p);
}
template <typename T, size_t N>
void StoreU(VecN<T, N> v, Simd<T, N>, T* p) {
  for (size_t i = 0; i < N; ++i) p[i] = v.raw[i];
}
template <typename T, size_t N>
void Store(VecN<T, N> v, Simd<T, N> d, T* p) {
  CheckAligned<T, N>(p, "Store");
  StoreU(v, d, p);
}
template <typename T, size_t N>
void Stream(VecN<T, N> v, Simd<T, N> d, T* p) {
  CheckAligned<T, N>(p, "Stream");
  StoreU(v, d, p);
}

template <typename T, size_t N>
MaskN<T, N> FirstN(Simd<T, N>, size_t count) {
  MaskN<T, N> m;
  for (size_t i = 0; i < N; ++i) m.bit[i] = i < count;
  return m;
}
template <typename T, size_t N>
VecN<T, N> MaskedLoad(MaskN<T, N> m, Simd<T, N>, const T* p) {
  return Lanewise<T, N>([&](size_t i) { return m.bit[i] ? p[i] : T(0); });
}
template <typename T, size_t N>
void BlendedStore(VecN<T, N> v, MaskN<T, N> m, Simd<T, N>, T* p) {
  for (size_t i = 0; i < N; ++i) {
    if (m.bit[i]) p[i] = v.raw[i];
  }
}
template <typename T, size_t N>
MaskN<T, N> Lt(VecN<T, N> a, VecN<T, N> b) {
  MaskN<T, N> m;
  for (size_t i = 0; i < N; ++i) m.bit[i] = a.raw[i] < b.raw[i];
  return m;
}
template <typename T, size_t N>
MaskN<T, N> Eq(VecN<T, N> a, VecN<T, N> b) {
  MaskN<T, N> m;
  for (size_t i = 0; i < N; ++i) m.bit[i] = a.raw[i] == b.raw[i];
  return m;
}
template <typename T, size_t N>
MaskN<T, N> IsFinite(VecN<T, N> v) {
  MaskN<T, N> m;
  for (size_t i = 0; i < N; ++i) m.bit[i] = std::isfinite(v.raw[i]);
  return m;
}
template <typename T, size_t N>
MaskN<T, N> Or(MaskN<T, N> a, MaskN<T, N> b) {
  MaskN<T, N> m;
  for (size_t i = 0; i < N; ++i) m.bit[i] = a.bit[i] || b.bit[i];
  return m;
}
template <typename T, size_t N>
MaskN<T, N> And(MaskN<T, N> a, MaskN<T, N> b) {
  MaskN<T, N> m;
  for (size_t i = 0; i < N; ++i) m.bit[i] = a.bit[i] && b.bit[i];
  return m;
}
template <typename T, size_t N>
bool AllTrue(Simd<T, N>, MaskN<T, N> m) {
  for (size_t i = 0; i < N; ++i) {
    if (!m.bit[i]) return false;
  }
  return true;
}
template <typename T, size_t N>
VecN<T, N> IfThenElse(MaskN<T, N> m, VecN<T, N> yes, VecN<T, N> no) {
  return Lanewise<T, N>([&](size_t i) { return m.bit[i] ? yes.raw[i] : no.raw[i]; });
}
template <typename T, size_t N>
VecN<T, N> IfThenElseZero(MaskN<T, N> m, VecN<T, N> yes) {
  return Lanewise<T, N>([&](size_t i) { return m.bit[i] ? yes.raw[i] : T(0); });
}
template <typename T, size_t N>
VecN<T, N> IfThenZeroElse(MaskN<T, N> m, VecN<T, N> no) {
  return Lanewise<T, N>([&](size_t i) { return m.bit[i] ? T(0) : no.raw[i]; });
}

template <typename T, size_t N>
VecN<T, N> Add(VecN<T, N> a, VecN<T, N> b) {
  return Lanewise<T, N>([&](size_t i) { return a.raw[i] + b.raw[i]; });
}
template <typename T, size_t N>
VecN<T, N> Sub(VecN<T, N> a, VecN<T, N> b) {
  return Lanewise<T, N>([&](size_t i) { return a.raw[i] - b.raw[i]; });
}
template <typename T, size_t N>
VecN<T, N> Mul(VecN<T, N> a, VecN<T, N> b) {
  return Lanewise<T, N>([&](size_t i) { return a.raw[i] * b.raw[i]; });
}
template <typename T, size_t N>
VecN<T, N> Abs(VecN<T, N> a) {
  return Lanewise<T, N>([&](size_t i) { return std::fabs(a.raw[i]); });
}
template <typename T, size_t N>
VecN<T, N> Neg(VecN<T, N> a) {
  return Lanewise<T, N>([&](size_t i) { return -a.raw[i]; });
}
template <typename T, size_t N>
VecN<T, N> Div(VecN<T, N> a, VecN<T, N> b) {
  return Lanewise<T, N>([&](size_t i) { return a.raw[i] / b.raw[i]; });
}
template <typename T, size_t N>
VecN<T, N> Sqrt(VecN<T, N> a) {
  return Lanewise<T, N>([&](size_t i) { return std::sqrt(a.raw[i]); });
}
// One rounding, as the FMA instructions.
template <typename T, size_t N>
VecN<T, N> MulAdd(VecN<T, N> a, VecN<T, N> b, VecN<T, N> c) {
  return Lanewise<T, N>([&](size_t i) { return std::fma(a.raw[i], b.raw[i], c.raw[i]); });
}
template <typename T, size_t N>
VecN<T, N> MulSub(VecN<T, N> a, VecN<T, N> b, VecN<T, N> c) {
  return Lanewise<T, N>([&](size_t i) { return std::fma(a.raw[i], b.raw[i], -c.raw[i]); });
}

template <size_t N>
VecN<double, N> PromoteTo(Simd<double, N>, VecN<float, N> v) {
  return Lanewise<double, N>([&](size_t i) { return static_cast<double>(v.raw[i]); });
}
// IEEE conversion (x86 rounds to nearest and overflows to Inf, as vcvtpd2ps does).
template <size_t N>
VecN<float, N> DemoteTo(Simd<float, N>, VecN<double, N> v) {
  return Lanewise<float, N>([&](size_t i) { return static_cast<float>(v.raw[i]); });
}
template <typename T, size_t N>
VecN<T, N> LowerHalf(Simd<T, N>, VecN<T, 2 * N> v) {
  return Lanewise<T, N>([&](size_t i) { return v.raw[i]; });
}
template <typename T, size_t N>
VecN<T, N> UpperHalf(Simd<T, N>, VecN<T, 2 * N> v) {
  return Lanewise<T, N>([&](size_t i) { return v.raw[N + i]; });
}
template <typename T, size_t N>
VecN<T, N> Combine(Simd<T, N>, VecN<T, N / 2> hi, VecN<T, N / 2> lo) {
  return Lanewise<T, N>([&](size_t i) { return i < N / 2 ? lo.raw[i] : hi.raw[i - N / 2]; });
}
// Pairwise halves, the order of _mm512_reduce_add_pd/ps.
template <typename T, size_t N>
VecN<T, N> SumOfLanes(Simd<T, N> d, VecN<T, N> v) {
  for (size_t width = N / 2; width >= 1; width /= 2) {
    for (size_t i = 0; i < width; ++i) v.raw[i] = v.raw[i] + v.raw[i + width];
  }
  return Set(d, v.raw[0]);
}
template <typename T, size_t N>
T GetLane(VecN<T, N> v) {
  return v.raw[0];
}
template <typename T, size_t N>
void LoadInterleaved2(Simd<T, N>, const T* p, VecN<T, N>& a, VecN<T, N>& b) {
  for (size_t i = 0; i < N; ++i) {
    a.raw[i] = p[2 * i];
    b.raw[i] = p[2 * i + 1];
  }
}
template <typename T, size_t N>
void LoadInterleaved3(Simd<T, N>, const T* p, VecN<T, N>& a, VecN<T, N>& b, VecN<T, N>& c) {
  for (size_t i = 0; i < N; ++i) {
    a.raw[i] = p[3 * i];
    b.raw[i] = p[3 * i + 1];
    c.raw[i] = p[3 * i + 2];
  }
}
template <typename T, size_t N>
void StoreInterleaved3(VecN<T, N> a, VecN<T, N> b, VecN<T, N> c, Simd<T, N>, T* p) {
  for (size_t i = 0; i < N; ++i) {
    p[3 * i] = a.raw[i];
    p[3 * i + 1] = b.raw[i];
    p[3 * i + 2] = c.raw[i];
  }
}

}  // namespace N_WIDE_LANES
}  // namespace hwy

#endif  // SIMDBN_TESTS_WIDE_LANES_HWY_HIGHWAY_H_
