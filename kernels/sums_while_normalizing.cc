// Per-target lockstep of AddRunSums and the affine map (see sums_while_normalizing.h).
#include "kernels/sums_while_normalizing.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/sums_while_normalizing.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/affine-inl.h"   // AffineRun, AffineStep, StreamPeel
#include "kernels/moments-inl.h"  // AddRun, SumsOf

HWY_BEFORE_NAMESPACE();
namespace simdbn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The normalization of one run that AddRun drives: each call normalizes the next chunk of
// 4 * Lanes(dd) floats, as far as the run goes. A class rather than a lambda so that it is
// always inlined into AddRun's loop (GCC left a lambda this size as a call per chunk).
template <class Cfg, class DD>
class ChunkNormalizer {
 public:
  HWY_INLINE ChunkNormalizer(const float* from, float* to, size_t len, size_t done,
                             float center, float scale, float bias)
      : from_(from), to_(to), len_(len), done_(done), center_(center), scale_(scale),
        bias_(bias) {}

  HWY_INLINE void operator()(size_t /* i */) {
    const hn::ScalableTag<float> df;
    constexpr size_t kChunk = 4 * hn::MaxLanes(DD());
    const size_t chunk = 4 * hn::Lanes(DD());
    if (done_ + chunk > len_) return;
    // The values normalized here were read a channel or a group ago and wait in L2 or L3: a
    // line ahead per 16 floats, as AddRun's own stream (NCHW training at 1 thread, old / new
    // build alternating, medians of 5-9 runs: 1.02-1.06x image by image at 28x28, 1.12x at 2
    // threads; 1.08-1.19x at N = 2 and 56x56 in cache; 0.97-1.09x beyond the LLC at 56x56 and
    // 112x112, within noise).
    for (size_t k = 0; k < chunk && done_ + k + kRunAhead < len_; k += 16) {
      hwy::Prefetch(from_ + done_ + k + kRunAhead);
    }
    const auto center = hn::Set(df, center_), scale = hn::Set(df, scale_),
               bias = hn::Set(df, bias_);
    if constexpr (kChunk == 2 * hn::MaxLanes(df)) {
      // Both vectors loaded before either is stored (see WholeVectors).
      const size_t next = done_ + hn::Lanes(df);
      const auto store0 = AffineStep<Cfg>(df, Mem(), from_ + done_, from_ + done_, to_ + done_,
                                          center, scale, bias);
      const auto store1 = AffineStep<Cfg>(df, Mem(), from_ + next, from_ + next, to_ + next,
                                          center, scale, bias);
      store0();
      store1();
    } else {
      WholeVectors(df, Mem(), 0, chunk, [&](auto dv, const auto& memory, size_t at) {
        const size_t i = done_ + at;
        return AffineStep<Cfg>(dv, memory, from_ + i, from_ + i, to_ + i, hn::Set(dv, center_),
                               hn::Set(dv, scale_), hn::Set(dv, bias_));
      });
    }
    done_ += chunk;
  }
  size_t done() const { return done_; }

 private:
  using Mem = std::conditional_t<Cfg::kStream, StreamMemory, PlainMemory>;
  const float* from_;
  float* to_;
  size_t len_, done_;
  float center_, scale_, bias_;
};

// AddRun of the run p (accumulators a) while normalizing the `len` floats at from into to with
// the constants center, scale, bias: the leading elements up to the alignment that streaming
// stores need one by one, then a chunk of y per chunk of the sums, then the rest of y's run.
template <class Cfg, class DD>
HWY_INLINE void AddRunWhileNormalizing(DD dd, const float* HWY_RESTRICT p, size_t len,
                                       hn::Vec<DD> vs, RunAccumulators<DD>& a, size_t readable,
                                       const float* from, float* to, float center, float scale,
                                       float bias) {
  const size_t peel = StreamPeel<Cfg>(to, len);
  AffineRun<Cfg>(from, from, to, peel, center, scale, bias);
  ChunkNormalizer<Cfg, DD> normalize(from, to, len, peel, center, scale, bias);
  AddRun(dd, p, len, vs, a, readable, normalize);
  const size_t done = normalize.done();
  AffineRun<Cfg>(from + done, from + done, to + done, len - done, center, scale, bias);
}

template <class Cfg>
HWY_INLINE ShiftedSums SumsWhileNormalizing(const float* HWY_RESTRICT x, size_t runs,
                                            size_t stride, size_t len, float shift,
                                            size_t readable, const RunsToNormalize& o) {
  const hn::ScalableTag<double> dd;
  auto a = ZeroAccumulators(dd);
  for (size_t r = 0; r < runs; ++r) {
    AddRunWhileNormalizing<Cfg>(dd, x + r * stride, len, hn::Set(dd, shift), a,
                                readable - r * stride, o.x + r * stride, o.y + r * stride,
                                o.center, o.scale, o.bias);
  }
  if constexpr (Cfg::kStream) hwy::FlushStream();
  return SumsOf(dd, a);
}

// The normalization of o's rows as one flat run of o.rows * len floats (consecutive rows are
// contiguous), driven chunk by chunk by AddRun like ChunkNormalizer: a vector that straddles
// two rows takes each lane's constants from its own row (len >= Lanes: at most one boundary
// per vector). Only the two ends of the run are written one by one or through a partial vector,
// as AffineNchw writes a slice of whole rows: rows of 196 or 289 floats streamed one by one
// would leave a partial cache line at each row's ends.
template <class Cfg, class DD>
class FlatNormalizer {
 public:
  HWY_INLINE FlatNormalizer(const RowsToNormalize& o, size_t len)
      : o_(o), len_(len), total_(static_cast<size_t>(o.rows) * len) {
    if (total_ == 0) return;
    LoadRow();
    const size_t peel = StreamPeel<Cfg>(o.y, total_);
    // A y that is not even float-aligned (out of contract) never streams: row by row in Finish.
    if (peel >= len_) return;
    pos_ = peel;  // < Lanes <= len: within row 0
    AffineRun<Cfg>(o.x, o.x, o.y, pos_, o.center[0], o.scale[0], o.bias[0]);
    chunks_end_ = total_;
  }

  HWY_INLINE void operator()(size_t /* i */) {
    if (pos_ + kChunk <= chunks_end_) Chunk();
  }

  // The rest of the run.
  HWY_INLINE void Finish() {
    while (pos_ + kChunk <= chunks_end_) Chunk();
    while (pos_ < total_) {
      if (pos_ >= row_end_) NextRow();
      const size_t count = std::min(row_end_, total_) - pos_;
      AffineRun<Cfg>(o_.x + pos_, o_.x + pos_, o_.y + pos_, count, o_.center[row_],
                     o_.scale[row_], o_.bias[row_]);
      pos_ += count;
    }
  }

 private:
  using DF = hn::ScalableTag<float>;
  using V = hn::Vec<DF>;
  using Mem = std::conditional_t<Cfg::kStream, StreamMemory, PlainMemory>;
  static constexpr size_t kChunk = 4 * hn::MaxLanes(DD());  // floats AddRun takes per step

  HWY_INLINE void LoadRow() {
    const DF df;
    center_ = hn::Set(df, o_.center[row_]);
    scale_ = hn::Set(df, o_.scale[row_]);
    bias_ = hn::Set(df, o_.bias[row_]);
  }
  HWY_INLINE void NextRow() {
    ++row_;
    row_end_ += len_;
    LoadRow();
  }

  // The vector at pos (loaded now, stored by the returned function).
  HWY_INLINE auto Step(size_t pos) {
    const DF df;
    if (pos >= row_end_) NextRow();
    V center = center_, scale = scale_, bias = bias_;
    if (pos + hn::Lanes(df) > row_end_) {
      const auto mine = hn::FirstN(df, row_end_ - pos);
      center = hn::IfThenElse(mine, center, hn::Set(df, o_.center[row_ + 1]));
      scale = hn::IfThenElse(mine, scale, hn::Set(df, o_.scale[row_ + 1]));
      bias = hn::IfThenElse(mine, bias, hn::Set(df, o_.bias[row_ + 1]));
    }
    return AffineStep<Cfg>(df, Mem(), o_.x + pos, o_.x + pos, o_.y + pos, center, scale, bias);
  }

  HWY_INLINE void Chunk() {
    const size_t N = hn::Lanes(DF());
    // Prefetched ahead as in ChunkNormalizer.
    for (size_t k = 0; k < kChunk && pos_ + k + kRunAhead < total_; k += 16) {
      hwy::Prefetch(o_.x + pos_ + k + kRunAhead);
    }
    if constexpr (kChunk == 2 * hn::MaxLanes(DF())) {
      // Both vectors loaded before either is stored (see WholeVectors).
      const auto store0 = Step(pos_);
      const auto store1 = Step(pos_ + N);
      store0();
      store1();
    } else {
      for (size_t at = 0; at < kChunk; at += N) Step(pos_ + at)();
    }
    pos_ += kChunk;
  }

  const RowsToNormalize& o_;
  size_t len_, total_, pos_ = 0, chunks_end_ = 0;
  size_t row_ = 0, row_end_ = len_;
  V center_ = hn::Zero(DF()), scale_ = hn::Zero(DF()), bias_ = hn::Zero(DF());
};

// ShiftedRowsToStates (moments-inl.h), the same bits, while normalizing o's rows.
template <class Cfg>
HWY_INLINE void RowsToStatesWhileNormalizing(const float* HWY_RESTRICT x, size_t rows,
                                             size_t len, const float* HWY_RESTRICT shift,
                                             double* HWY_RESTRICT states,
                                             const RowsToNormalize& o) {
  const hn::ScalableTag<double> dd;
  FlatNormalizer<Cfg, decltype(dd)> normalize(o, len);
  for (size_t r = 0; r < rows; ++r) {
    double* state = states + r * kRunStateDoubles;
    auto a = LoadState(dd, state);
    AddRun(dd, x + r * len, len, hn::Set(dd, shift[r]), a, (rows - r) * len, normalize);
    StoreState(dd, a, state);
  }
  normalize.Finish();
  if constexpr (Cfg::kStream) hwy::FlushStream();
}

void AddRunSumsWhileNormalizingF32(const float* x, int64_t runs, int64_t stride, int64_t len,
                                   float shift, int64_t readable, ShiftedSums* sums,
                                   const RunsToNormalize& other) {
  const auto run = [&](auto cfg) {
    const ShiftedSums part = SumsWhileNormalizing<decltype(cfg)>(
        x, static_cast<size_t>(runs), static_cast<size_t>(stride), static_cast<size_t>(len),
        shift, static_cast<size_t>(readable), other);
    sums->s1 += part.s1;
    sums->s2 += part.s2;
  };
  other.stream ? run(AffineConfig</*kCenter=*/true, false, false, /*kStream=*/true>{})
               : run(AffineConfig</*kCenter=*/true, false, false, /*kStream=*/false>{});
}

void AddRowsToStatesWhileNormalizingF32(const float* x, int64_t rows, int64_t len,
                                        const float* shift, double* states,
                                        const RowsToNormalize& other) {
  const auto run = [&](auto cfg) {
    RowsToStatesWhileNormalizing<decltype(cfg)>(x, static_cast<size_t>(rows),
                                                static_cast<size_t>(len), shift, states, other);
  };
  other.stream ? run(AffineConfig</*kCenter=*/true, false, false, /*kStream=*/true>{})
               : run(AffineConfig</*kCenter=*/true, false, false, /*kStream=*/false>{});
}

}  // namespace HWY_NAMESPACE
}  // namespace simdbn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace simdbn {

HWY_EXPORT(AddRunSumsWhileNormalizingF32);
HWY_EXPORT(AddRowsToStatesWhileNormalizingF32);

void AddRunSumsWhileNormalizing(const float* x, int64_t runs, int64_t stride, int64_t len,
                                float shift, int64_t readable, ShiftedSums* sums,
                                const RunsToNormalize& other) {
  HWY_DYNAMIC_DISPATCH(AddRunSumsWhileNormalizingF32)(x, runs, stride, len, shift, readable,
                                                      sums, other);
}

void AddRowsToStatesWhileNormalizing(const float* x, int64_t rows, int64_t len,
                                     const float* shift, double* states,
                                     const RowsToNormalize& other) {
  HWY_DYNAMIC_DISPATCH(AddRowsToStatesWhileNormalizingF32)(x, rows, len, shift, states, other);
}

}  // namespace simdbn
#endif  // HWY_ONCE
