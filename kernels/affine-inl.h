// Per-target loops of the per-channel affine map (see affine.h). Shared by inference and the
// normalization step of training.

// Per-target include guard, as Highway's own -inl.h headers do.
#if defined(SIMDBN_KERNELS_AFFINE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SIMDBN_KERNELS_AFFINE_INL_H_
#undef SIMDBN_KERNELS_AFFINE_INL_H_
#else
#define SIMDBN_KERNELS_AFFINE_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/affine.h"
#include "kernels/cache.h"  // kMinStreamRun

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

static_assert(HWY_MAX_BYTES / sizeof(float) <= static_cast<size_t>(kMaxLanes),
              "periodic constants are padded for at most kMaxLanes lanes");

template <bool kCenter_, bool kResidual_, bool kRelu_, bool kStream_>
struct AffineConfig {
  static constexpr bool kCenter = kCenter_, kResidual = kResidual_, kRelu = kRelu_,
                        kStream = kStream_;
};

// Calls f(AffineConfig<...>{}) with the compile-time configuration that matches args.
template <class F>
HWY_INLINE void WithAffineConfig(const AffineArgs& a, const F& f) {
  const auto relu_stream = [&](auto center, auto residual) {
    constexpr bool kC = decltype(center)::value, kR = decltype(residual)::value;
    if (a.relu) {
      a.stream ? f(AffineConfig<kC, kR, true, true>{}) : f(AffineConfig<kC, kR, true, false>{});
    } else {
      a.stream ? f(AffineConfig<kC, kR, false, true>{}) : f(AffineConfig<kC, kR, false, false>{});
    }
  };
  using T = std::true_type;
  using F_ = std::false_type;
  if (a.center != nullptr) {
    a.residual != nullptr ? relu_stream(T{}, T{}) : relu_stream(T{}, F_{});
  } else {
    a.residual != nullptr ? relu_stream(F_{}, T{}) : relu_stream(F_{}, F_{});
  }
}

// How one vector is read and written: plain, non-temporal, or masked (the tail on targets whose
// masked memory operations never touch the masked-off lanes).
struct PlainMemory {
  template <class D>
  HWY_INLINE hn::Vec<D> Load(D d, const float* p) const { return hn::LoadU(d, p); }
  // A value computed from loaded lanes, with the masked-off lanes zeroed (here: all kept).
  template <class D>
  HWY_INLINE hn::Vec<D> Keep(D /* d */, hn::Vec<D> v) const { return v; }
  template <class D>
  HWY_INLINE void Store(hn::Vec<D> v, D d, float* p) const { hn::StoreU(v, d, p); }
};
struct StreamMemory : PlainMemory {
  template <class D>
  HWY_INLINE void Store(hn::Vec<D> v, D d, float* p) const { hn::Stream(v, d, p); }
};
template <class D>
struct MaskedMemory {
  hn::Mask<D> mask;
  HWY_INLINE hn::Vec<D> Load(D d, const float* p) const { return hn::MaskedLoad(mask, d, p); }
  HWY_INLINE hn::Vec<D> Keep(D /* d */, hn::Vec<D> v) const { return hn::IfThenElseZero(mask, v); }
  HWY_INLINE void Store(hn::Vec<D> v, D d, float* p) const { hn::BlendedStore(v, mask, d, p); }
};

// One vector in two steps: the loads now, and the returned function computes and stores. The
// walks below load a group of vectors before storing any (see WholeVectors).
// No HWY_RESTRICT: y may be x or r (in place); each lane is loaded before it is stored.
template <class Cfg, class D, class Mem, class V = hn::Vec<D>>
HWY_INLINE auto AffineStep(D d, const Mem& mem, const float* x, const float* r, float* y, V m,
                           V s, V b) {
  const V in = mem.Load(d, x);
  const V residual = Cfg::kResidual ? mem.Load(d, r) : in;
  return [=]() {
    V v = in;
    if constexpr (Cfg::kCenter) v = hn::Sub(v, m);
    v = hn::MulAdd(v, s, b);
    if constexpr (Cfg::kResidual) v = hn::Add(v, residual);
    // A compare keeps NaN (NaN < 0 is false) where Max(v, 0) would depend on operand order.
    if constexpr (Cfg::kRelu) v = hn::IfThenZeroElse(hn::Lt(v, hn::Zero(d)), v);
    mem.Store(v, d, y);
  };
}

// Non-temporal stores need aligned addresses: how many leading elements to do one by one.
template <class Cfg>
HWY_INLINE size_t StreamPeel(const float* y, size_t count) {
  if constexpr (!Cfg::kStream) {
    return 0;
  } else {
    const hn::ScalableTag<float> d;
    const size_t vector_bytes = hn::Lanes(d) * sizeof(float);
    const size_t misalign = reinterpret_cast<uintptr_t>(y) % vector_bytes;
    // A y that is not even float-aligned never becomes vector-aligned: do it all one by one.
    if (misalign % sizeof(float) != 0) return count;
    const size_t peel = misalign == 0 ? 0 : (vector_bytes - misalign) / sizeof(float);
    return peel < count ? peel : count;
  }
}

// Whole vectors from element i while they end by `end`; returns where they stopped.
// step(d, memory, i) loads the vector at offset i and returns the function that stores it. Four
// vectors per iteration, all loaded before any is stored: a load whose address agrees in its
// low 12 bits with an earlier store still in flight waits for that store (4K aliasing), which
// with y 32 bytes ahead of x (mod 4 KiB) cost a copy-like loop 30% of its bandwidth beyond the
// LLC; loading the group first avoided it and was 6% faster at other offsets too.
template <class D, class Mem, class Step>
HWY_INLINE size_t WholeVectors(D d, const Mem& mem, size_t i, size_t end, const Step& step) {
  const size_t N = hn::Lanes(d);
  for (; i + 4 * N <= end; i += 4 * N) {
    const auto store0 = step(d, mem, i);
    const auto store1 = step(d, mem, i + N);
    const auto store2 = step(d, mem, i + 2 * N);
    const auto store3 = step(d, mem, i + 3 * N);
    store0();
    store1();
    store2();
    store3();
  }
  for (; i + N <= end; i += N) step(d, mem, i)();
  return i;
}

// Walks `count` elements of one channel: one by one up to the alignment that streaming stores
// need, whole vectors, then the tail. step(dv, memory, i) loads the vector (or single lane) at
// offset i and returns the function that stores it (see WholeVectors); `out` is the output the
// alignment is for. Cfg needs kStream.
template <class Cfg, class Step>
HWY_INLINE void RunWalk(const float* out, size_t count, const Step& step) {
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 1> d1;
  using Mem = std::conditional_t<Cfg::kStream, StreamMemory, PlainMemory>;
  const PlainMemory plain;
  size_t i = 0;
  for (const size_t peel = StreamPeel<Cfg>(out, count); i < peel; ++i) step(d1, plain, i)();
  i = WholeVectors(d, Mem(), i, count, step);
  if (i == count) return;
#if !HWY_MEM_OPS_MIGHT_FAULT
  step(d, MaskedMemory<decltype(d)>{hn::FirstN(d, count - i)}, i)();
#else
  for (; i < count; ++i) step(d1, plain, i)();
#endif
}

// One channel's contiguous run: the channel constants are broadcast.
template <class Cfg>
HWY_INLINE void AffineRun(const float* x, const float* r, float* y, size_t count, float center,
                          float scale, float bias) {
  RunWalk<Cfg>(y, count, [&](auto dv, const auto& memory, size_t i) {
    return AffineStep<Cfg>(dv, memory, x + i, r + i, y + i, hn::Set(dv, center),
                           hn::Set(dv, scale), hn::Set(dv, bias));
  });
}

// Walks `count` elements whose channel wraps at `period`, starting at channel c0: one by one
// up to the alignment that streaming stores need, then four vectors per iteration, loaded before
// any is stored as in WholeVectors (their channels ch + k * N may run past the period, into the
// periodic form's extra vectors: one wrap per iteration), then the tail. step(dv, memory, i, ch)
// loads the vector (or single lane) at offset i whose first lane has channel ch and returns the
// function that stores it; `out` is the output the alignment is for. Cfg needs kStream.
template <class Cfg, class Step>
HWY_INLINE void PeriodicWalk(const float* out, size_t count, size_t period, size_t c0,
                             const Step& step) {
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 1> d1;
  const size_t N = hn::Lanes(d);
  using Mem = std::conditional_t<Cfg::kStream, StreamMemory, PlainMemory>;
  const Mem mem;
  const PlainMemory plain;
  const auto wrap = [period](size_t channel) {
    return channel >= period ? channel - period : channel;
  };

  size_t ch = c0;
  size_t i = 0;
  const size_t peel = StreamPeel<Cfg>(out, count);
  for (; i < peel; ++i, ch = wrap(ch + 1)) step(d1, plain, i, ch)();
  for (; i + 4 * N <= count; i += 4 * N, ch = wrap(ch + 4 * N)) {
    const auto store0 = step(d, mem, i, ch);
    const auto store1 = step(d, mem, i + N, ch + N);
    const auto store2 = step(d, mem, i + 2 * N, ch + 2 * N);
    const auto store3 = step(d, mem, i + 3 * N, ch + 3 * N);
    store0();
    store1();
    store2();
    store3();
  }
  for (; i + N <= count; i += N, ch = wrap(ch + N)) step(d, mem, i, ch)();
  if (i == count) return;
#if !HWY_MEM_OPS_MIGHT_FAULT
  step(d, MaskedMemory<decltype(d)>{hn::FirstN(d, count - i)}, i, ch)();
#else
  for (; i < count; ++i, ch = wrap(ch + 1)) step(d1, plain, i, ch)();
#endif
}

// A run over whole or partial pixels of an NHWC tensor: x[i] has channel (c0 + i) % c, and the
// constants are periodic with `period` (see affine.h), so every vector loads its constants in
// one go.
template <class Cfg>
HWY_INLINE void AffinePeriodicRun(const float* x, const float* r, float* y, size_t count,
                                  const float* center, const float* scale, const float* bias,
                                  size_t period, size_t c0) {
  const auto step = [&](auto dv, const auto& memory, size_t at, size_t ch) {
    const auto m = Cfg::kCenter ? hn::LoadU(dv, center + ch) : hn::Zero(dv);
    return AffineStep<Cfg>(dv, memory, x + at, r + at, y + at, m, hn::LoadU(dv, scale + ch),
                           hn::LoadU(dv, bias + ch));
  };
  PeriodicWalk<Cfg>(y, count, period, c0, step);
}

// Without a residual the kernels still advance a residual pointer; x stands in for it (never
// read) because arithmetic on a null pointer is undefined.
template <class Cfg>
HWY_INLINE const float* ResidualAt(const AffineArgs& a, int64_t offset) {
  return (Cfg::kResidual ? a.residual : a.x) + offset;
}

// Whole consecutive rows [row_begin, row_end) of an NCHW tensor, rows of at least one vector,
// with streaming stores: walked as one flat run whose vectors are aligned to y rather than to
// each row, so that every line of y is written whole by non-temporal stores (a line shared by
// two rows and written half by ordinary stores costs a read of the line and a flush of a
// half-full write-combining buffer: rows of 196 floats ran at 40% of a copy). A vector that
// straddles two rows takes each lane's constants from its own row's channel.
template <class Cfg>
HWY_INLINE void AffineRowsFlat(const AffineArgs& a, int64_t row_begin, int64_t row_end) {
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 1> d1;
  const size_t N = hn::Lanes(d);
  const size_t cols = static_cast<size_t>(a.cols), c = static_cast<size_t>(a.c);
  const int64_t offset = row_begin * a.cols;
  const float* x = a.x + offset;
  const float* r = ResidualAt<Cfg>(a, offset);
  float* y = a.y + offset;
  const size_t total = static_cast<size_t>(row_end - row_begin) * cols;
  const auto center = [&](size_t ch) { return Cfg::kCenter ? a.center[ch] : 0.0f; };
  const StreamMemory stream;
  const PlainMemory plain;

  size_t ch = static_cast<size_t>(row_begin % a.c);
  size_t row_stop = cols;  // where the row of ch ends, relative to x
  size_t i = 0;
  // One element at a time from i to `end`, moving to the next row's channel where one ends.
  const auto singles = [&](size_t end) {
    for (; i < end; ++i) {
      if (i == row_stop) {
        ch = ch + 1 == c ? 0 : ch + 1;
        row_stop += cols;
      }
      AffineStep<Cfg>(d1, plain, x + i, r + i, y + i, hn::Set(d1, center(ch)),
                      hn::Set(d1, a.scale[ch]), hn::Set(d1, a.bias[ch]))();
    }
  };
  // Up to vector alignment: fewer than N <= cols, within the first row (or all of it, one by
  // one, when y is not even float-aligned).
  singles(StreamPeel<Cfg>(y, total));
  while (i + N <= total) {
    if (i == row_stop) {
      ch = ch + 1 == c ? 0 : ch + 1;
      row_stop += cols;
    }
    const auto m = hn::Set(d, center(ch)), s = hn::Set(d, a.scale[ch]), b = hn::Set(d, a.bias[ch]);
    i = WholeVectors(d, stream, i, row_stop, [&](auto dv, const auto& memory, size_t at) {
      return AffineStep<Cfg>(dv, memory, x + at, r + at, y + at, m, s, b);
    });
    if (i == row_stop || i + N > total) continue;  // next row, or the tail
    // Lanes before row_stop belong to ch, the others (fewer than cols) to the next channel.
    const size_t next = ch + 1 == c ? 0 : ch + 1;
    const auto mine = hn::FirstN(d, row_stop - i);
    AffineStep<Cfg>(d, stream, x + i, r + i, y + i,
                    hn::IfThenElse(mine, m, hn::Set(d, center(next))),
                    hn::IfThenElse(mine, s, hn::Set(d, a.scale[next])),
                    hn::IfThenElse(mine, b, hn::Set(d, a.bias[next])))();
    i += N;
    ch = next;
    row_stop += cols;
  }
  singles(total);
}

// The two layouts over one partition slice (see partition.h).
HWY_INLINE void AffineNchwSlice(const AffineArgs& args, const Slice& slice) {
  const size_t count = static_cast<size_t>(slice.col_end - slice.col_begin);
  const bool flat = FlatNchwSlice(args, slice);
  AffineArgs a = args;
  a.stream = StreamsNchwSlice(args, slice);
  WithAffineConfig(a, [&](auto cfg) {
    using Cfg = decltype(cfg);
    if constexpr (Cfg::kStream) {
      if (flat) {
        AffineRowsFlat<Cfg>(a, slice.row_begin, slice.row_end);
        hwy::FlushStream();
        return;
      }
    }
    // The channel advances with the row; one division per slice, not per row.
    int64_t ch = slice.row_begin % a.c;
    for (int64_t row = slice.row_begin; row < slice.row_end; ++row) {
      const int64_t offset = row * a.cols + slice.col_begin;
      AffineRun<Cfg>(a.x + offset, ResidualAt<Cfg>(a, offset), a.y + offset, count,
                     Cfg::kCenter ? a.center[ch] : 0.0f, a.scale[ch], a.bias[ch]);
      ch = ch + 1 == a.c ? 0 : ch + 1;
    }
    if constexpr (Cfg::kStream) hwy::FlushStream();
  });
}

HWY_INLINE void AffineNhwcSlice(const AffineArgs& a, const Slice& slice) {
  WithAffineConfig(a, [&](auto cfg) {
    using Cfg = decltype(cfg);
    // Whole pixels are one flat run starting at channel 0; a piece of a pixel starts mid-way.
    const int64_t offset = slice.row_begin * a.cols + slice.col_begin;
    const int64_t count =
        (slice.row_end - slice.row_begin - 1) * a.cols + slice.col_end - slice.col_begin;
    AffinePeriodicRun<Cfg>(a.x + offset, ResidualAt<Cfg>(a, offset), a.y + offset,
                           static_cast<size_t>(count), a.center, a.scale, a.bias,
                           static_cast<size_t>(a.period), static_cast<size_t>(slice.col_begin));
    if constexpr (Cfg::kStream) hwy::FlushStream();
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#endif  // SIMDBN_KERNELS_AFFINE_INL_H_
