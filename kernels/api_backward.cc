// Entry points of the backward pass: simdbn_backward and simdbn_backward_frozen.
//
// Plans, cheapest first (each depends only on the shape and the arguments given, never on the
// threads, so every plan is reproducible bit for bit):
//   dy only    frozen statistics without dgamma/dbeta: dx = dy * k, one read of dy.
//   few pixels at most kMaxFewPixels pixels: blocks of channels, each reduced and
//              differentiated while in L1 (NCHW through by-pixel copies; with frozen
//              statistics only for runs of at most kMaxFrozenCopiedRun), no per-channel
//              arrays in memory.
//   fused sums frozen statistics with dgamma/dbeta: the sums and dx = dy * k in one pass.
//   channels   NCHW whose channel fits in cache: per channel, sums then dx while still cached.
//   two passes everything else: the sums over x and dy, then dx from x and dy again (oneDNN
//              reads both tensors twice as well: dx needs sums over the whole channel).
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "kernels/affine.h"
#include "kernels/backward.h"
#include "kernels/cache.h"
#include "kernels/partition.h"
#include "kernels/scratch.h"
#include "kernels/status.h"
#include "kernels/threading.h"
#include "kernels/validate.h"
#include "simdbn/simdbn.h"

namespace simdbn {
namespace {

// x and dy of one channel up to this size take the "channels" plan, whose second read comes
// from cache. Measured on Zen 3 (512 KiB L2, 32 MiB L3 per 8 cores), one thread: 800 KiB and
// 3.2 MiB per channel gain 30% and 20% over two passes, 12.8 MiB loses 15%; 2 MiB leaves room
// for several threads' channels in smaller caches too. A constant, not this machine's cache
// size: the plan decides the order of the sums, so the same target gives the same bits on any
// machine (as training forward does).
constexpr size_t kChannelInCacheBytes = size_t{2} << 20;

// NCHW with frozen statistics takes the copies of few pixels only with runs (images) of at most
// this many values; longer runs go faster through the fused pass, which reads no copies: 1.03-
// 1.63x with 2-4 values, 0.96x with 5, 0.57-0.61x with 8 (1 thread, c = 2048-4096).
constexpr int64_t kMaxFrozenCopiedRun = 4;

// dx streams as for several threads even on one: ShouldStream's lower threshold for a single
// thread (kernels/cache.h) measured 0.75-1.56x on backward at 3.8 MiB tensors, no clear gain.
constexpr int kBackwardThreads = kThreadsUnknown;

// Reduction items hold at least this many values per channel they have a slot for, so their
// partial sums (16 bytes per slot) stay below 1/64 of the data they summarize.
constexpr int64_t kReduceValuesPerSlot = 128;

struct Request {
  const char* fn;
  bool frozen;
  TensorShape shape;
  const float* x;
  const float* dy;
  const float* gamma;  // nullable
  const float* mean;
  const float* invstd;
  float* dx;
  float* dgamma;  // nullable
  float* dbeta;   // nullable
  const simdbn_threading* threading;
};

// As validate.cc's, for a message of our own: CheckDisjoint speaks of two outputs.
bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a);
  const uintptr_t b0 = reinterpret_cast<uintptr_t>(b);
  return a_bytes != 0 && b_bytes != 0 && a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

// dx is written while the per-channel inputs are still being read, so they may not share a byte.
simdbn_status CheckApartFromDx(const Request& r, const char* name, const float* p) {
  const size_t channel_bytes = static_cast<size_t>(r.shape.c) * sizeof(float);
  if (!Overlap(p, channel_bytes, r.dx, r.shape.bytes)) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT,
              "%s: %s [%p, +%zu bytes) overlaps dx [%p, +%zu bytes); expected disjoint buffers",
              r.fn, name, static_cast<const void*>(p), channel_bytes,
              static_cast<const void*>(r.dx), r.shape.bytes);
}

// dgamma and dbeta are written after every input has been read: they may alias an input exactly.
simdbn_status CheckChannelOutput(const Request& r, const char* name, const float* out) {
  if (out == nullptr) return SIMDBN_SUCCESS;
  const size_t channel_bytes = static_cast<size_t>(r.shape.c) * sizeof(float);
  const size_t bytes = r.shape.bytes;
  SIMDBN_RETURN_IF_ERROR(CheckDisjoint(r.fn, name, out, channel_bytes, "dx", r.dx, bytes));
  SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(r.fn, "x", r.x, bytes, name, out, channel_bytes));
  SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(r.fn, "dy", r.dy, bytes, name, out, channel_bytes));
  const struct {
    const char* name;
    const float* p;
  } inputs[] = {{"gamma", r.gamma}, {"save_mean", r.mean}, {"save_invstd", r.invstd}};
  for (const auto& in : inputs) {
    SIMDBN_RETURN_IF_ERROR(
        CheckNoPartialOverlap(r.fn, in.name, in.p, channel_bytes, name, out, channel_bytes));
  }
  return SIMDBN_SUCCESS;
}

simdbn_status Validate(const simdbn_tensor_desc* desc, Request* r) {
  const char* fn = r->fn;
  SIMDBN_RETURN_IF_ERROR(CheckDesc(fn, desc, &r->shape));
  if (r->shape.c > std::numeric_limits<int64_t>::max() / kMaxLanes) {
    return Fail(SIMDBN_INVALID_ARGUMENT, "%s: c = %" PRId64 " is too large", fn, r->shape.c);
  }
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "x", r->x));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "dy", r->dy));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "save_mean", r->mean));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "save_invstd", r->invstd));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "dx", r->dx));
  SIMDBN_RETURN_IF_ERROR(CheckThreading(fn, r->threading));
  const size_t bytes = r->shape.bytes;
  SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, "x", r->x, bytes, "dx", r->dx, bytes));
  SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, "dy", r->dy, bytes, "dx", r->dx, bytes));
  SIMDBN_RETURN_IF_ERROR(CheckApartFromDx(*r, "gamma", r->gamma));
  SIMDBN_RETURN_IF_ERROR(CheckApartFromDx(*r, "save_mean", r->mean));
  SIMDBN_RETURN_IF_ERROR(CheckApartFromDx(*r, "save_invstd", r->invstd));
  if (r->dgamma != nullptr && r->dbeta != nullptr) {
    const size_t channel_bytes = static_cast<size_t>(r->shape.c) * sizeof(float);
    SIMDBN_RETURN_IF_ERROR(
        CheckDisjoint(fn, "dgamma", r->dgamma, channel_bytes, "dbeta", r->dbeta, channel_bytes));
  }
  SIMDBN_RETURN_IF_ERROR(CheckChannelOutput(*r, "dgamma", r->dgamma));
  SIMDBN_RETURN_IF_ERROR(CheckChannelOutput(*r, "dbeta", r->dbeta));
  return CheckSupported(fn, r->shape);
}

// The flat-run period of by-pixel reductions: a multiple of c and of every target's vector
// length, at least kMinPeriod; 0 (blocks of channels) when that exceeds kMaxPeriod.
int64_t FlatPeriod(int64_t c) {
  if (c > kMaxPeriod) return 0;
  const int64_t base = std::lcm(c, kMaxLanes);
  if (base > kMaxPeriod) return 0;
  return base * ((kMinPeriod + base - 1) / base);
}

class Backward {
 public:
  explicit Backward(const Request& r)
      : r_(r),
        c_(r.shape.c),
        m_(r.shape.n * r.shape.spatial),
        // With spatial == 1 both layouts are the same (n, c) matrix, best walked by pixel
        // (c == 1 arrives as one NCHW row: OneChannelAsOneRun).
        by_pixel_(r.shape.spatial == 1 || r.shape.layout == SIMDBN_NHWC),
        rows_(by_pixel_ ? m_ : r.shape.n * c_),
        cols_(by_pixel_ ? c_ : r.shape.spatial),
        scratch_(r.fn) {}

  simdbn_status Run() {
    if (m_ == 0) return WriteChannelOutputs();  // empty sums: dgamma = dbeta = 0
    const bool sums = !r_.frozen || r_.dgamma != nullptr || r_.dbeta != nullptr;
    if (m_ <= kMaxFewPixels && sums &&
        (by_pixel_ || !r_.frozen || r_.shape.spatial <= kMaxFrozenCopiedRun)) {
      return FewPixels();
    }
    if (r_.frozen) return sums ? FusedSums() : DyOnly();
    const size_t channel_bytes = static_cast<size_t>(m_) * 2 * sizeof(float);
    if (!by_pixel_ && channel_bytes <= kChannelInCacheBytes) return Channels();
    return TwoPasses();
  }

 private:
  double Gamma(int64_t ch) const { return r_.gamma != nullptr ? r_.gamma[ch] : 1.0; }
  BackwardTensors Tensors() const { return {r_.x, r_.dy, r_.dx, r_.gamma, r_.mean, r_.invstd}; }

  // Frozen statistics with dgamma or dbeta: dx = dy * k needs no sums, so the pass that computes
  // them writes it too.
  simdbn_status FusedSums() {
    SIMDBN_RETURN_IF_ERROR(AllocateReduction());
    const int64_t period = by_pixel_ ? FlatPeriod(c_) : 0;
    const size_t k_count = static_cast<size_t>(period != 0 ? period : c_);
    SIMDBN_RETURN_IF_ERROR(scratch_.Get(k_count * (period != 0 ? 2 : 1), &constants_));
    float* k = constants_;
    for (int64_t ch = 0; ch < c_; ++ch) k[ch] = static_cast<float>(Gamma(ch) * r_.invstd[ch]);
    const float* mean = r_.mean;
    if (period != 0) {
      float* periodic = k + k_count;
      std::copy(r_.mean, r_.mean + c_, periodic);
      Repeat(k, period);
      Repeat(periodic, period);
      mean = periodic;
    }
    Reduce(mean, k, period, /*tensors_moved=*/3);
    return WriteChannelOutputs();
  }

  // Frozen statistics, no dgamma or dbeta: dx = dy * k and nothing else, x is never read.
  simdbn_status DyOnly() {
    const size_t count = static_cast<size_t>(by_pixel_ ? PeriodicSize(c_) : c_);
    SIMDBN_RETURN_IF_ERROR(scratch_.Get(count, &constants_));
    float* k = constants_;
    for (int64_t ch = 0; ch < c_; ++ch) k[ch] = static_cast<float>(Gamma(ch) * r_.invstd[ch]);
    if (by_pixel_) Repeat(k, PeriodicSize(c_));
    DxArgs args{};
    args.x = r_.x;
    args.dy = r_.dy;
    args.dx = r_.dx;
    args.dy_scale = k;
    args.dy_only = true;
    Differentiate(&args, /*tensors_moved=*/2);
    return SIMDBN_SUCCESS;
  }

  // Few pixels: items of channels, each reduced and differentiated in one go.
  simdbn_status FewPixels() {
    const FewPixelsArgs args{Tensors(), r_.dgamma, r_.dbeta, m_,
                             c_,        r_.frozen, by_pixel_ ? 0 : r_.shape.spatial};
    ParallelForChannels(r_.threading, c_, FewPixelsItemWidth(m_), 3 * r_.shape.bytes,
                        [&](int64_t begin, int64_t end) { BackwardFewPixels(args, begin, end); });
    return SIMDBN_SUCCESS;
  }

  // NCHW, channels small enough for the cache: one item per channel.
  simdbn_status Channels() {
    SIMDBN_RETURN_IF_ERROR(scratch_.Get(static_cast<size_t>(c_), &totals_));
    ChannelArgs args{};
    args.t = Tensors();
    args.n = r_.shape.n;
    args.c = c_;
    args.spatial = r_.shape.spatial;
    args.stream = ShouldStream(3 * r_.shape.bytes, r_.shape.spatial, kBackwardThreads);
    ParallelFor(r_.threading, c_, 3 * r_.shape.bytes, [&](int64_t begin, int64_t end) {
      for (int64_t ch = begin; ch < end; ++ch) BackwardChannel(args, ch, &totals_[ch]);
    });
    return WriteChannelOutputs();
  }

  // The general case: the sums, then dx.
  simdbn_status TwoPasses() {
    SIMDBN_RETURN_IF_ERROR(AllocateReduction());
    const int64_t period = by_pixel_ ? FlatPeriod(c_) : 0;
    // x_scale, dy_scale, dy_mean (and mean by pixel) for dx, then the reduction's periodic mean.
    const size_t per_array = static_cast<size_t>(by_pixel_ ? PeriodicSize(c_) : c_);
    const size_t arrays = by_pixel_ ? 4 : 3;
    SIMDBN_RETURN_IF_ERROR(
        scratch_.Get(arrays * per_array + static_cast<size_t>(period), &constants_));
    const float* reduce_mean = r_.mean;
    if (period != 0) {
      float* periodic = constants_ + arrays * per_array;
      std::copy(r_.mean, r_.mean + c_, periodic);
      Repeat(periodic, period);
      reduce_mean = periodic;
    }
    Reduce(reduce_mean, nullptr, period, /*tensors_moved=*/2);

    // Arrays of c first; by pixel they are then repeated in place into the periodic form.
    float* x_scale = constants_;
    float* dy_scale = x_scale + per_array;
    float* dy_mean = dy_scale + per_array;
    // x_prescale only for data far from the usual scales (DxConstantsFor), so that ordinary data
    // keeps the kernel without it: until a channel needs it, every channel's is 1.
    float* x_prescale = nullptr;
    const double m = static_cast<double>(m_);
    const bool all_normal =
        ComputeDxConstants({totals_, r_.gamma, r_.invstd, m, c_, x_scale, dy_scale, dy_mean});
    for (int64_t ch = 0; ch < c_ && !all_normal; ++ch) {
      if (std::isnormal(x_scale[ch])) continue;  // no x_prescale (DxConstantsFor)
      const DxConstants k = DxConstantsFor(totals_[ch], Gamma(ch), r_.invstd[ch], m, false);
      if (k.x_prescale == 1.0f) continue;
      if (x_prescale == nullptr) {
        SIMDBN_RETURN_IF_ERROR(scratch_.Get(per_array, &x_prescale));
        std::fill(x_prescale, x_prescale + c_, 1.0f);
      }
      x_prescale[ch] = k.x_prescale;
      x_scale[ch] = k.x_scale;
    }
    DxArgs args{};
    args.x = r_.x;
    args.dy = r_.dy;
    args.dx = r_.dx;
    args.mean = r_.mean;
    args.x_scale = x_scale;
    args.dy_scale = dy_scale;
    args.dy_mean = dy_mean;
    args.x_prescale = x_prescale;
    if (by_pixel_) {
      float* mean = dy_mean + per_array;
      MakePeriodic(r_.mean, c_, mean);
      for (float* p : {x_scale, dy_scale, dy_mean}) Repeat(p, PeriodicSize(c_));
      if (x_prescale != nullptr) Repeat(x_prescale, PeriodicSize(c_));
      args.mean = mean;
    }
    Differentiate(&args, /*tensors_moved=*/3);
    return WriteChannelOutputs();
  }

  // p[c, size) = p[0, c) repeated, e.g. the periodic form of affine.h (size PeriodicSize(c)).
  void Repeat(float* p, int64_t size) const {
    for (int64_t i = c_, j = 0; i < size; ++i, j = j + 1 == c_ ? 0 : j + 1) p[i] = p[j];
  }

  // Items of the reductions and where their partial sums go.
  simdbn_status AllocateReduction() {
    const int64_t elements = r_.shape.elements;
    // At least kReduceValuesPerSlot values per channel slot (without overflow for huge c).
    const int64_t per_item = c_ > elements / kReduceValuesPerSlot
                                 ? elements
                                 : std::max(kItemElements, kReduceValuesPerSlot * c_);
    partition_ = Partition(rows_, cols_, per_item);
    if (by_pixel_) {
      slot_per_channel_ = true;
      slots_per_item_ = c_;
      pieces_ = PiecesOf(c_, partition_.size(), kMaxLanes);
    } else {
      // The first item has the most rows: whole rows by row, or (more rows than channels)
      // by channel. A piece of a row is one row.
      const Slice first = partition_[0];
      const int64_t rows = first.row_end - first.row_begin;
      slot_per_channel_ = rows > c_;
      slots_per_item_ = slot_per_channel_ ? c_ : rows;
    }
    SIMDBN_RETURN_IF_ERROR(scratch_.Get(static_cast<size_t>(c_), &totals_));
    return scratch_.Get(static_cast<size_t>(ReduceItems() * 2 * slots_per_item_), &slots_);
  }

  int64_t ReduceItems() const { return partition_.size() * pieces_.count; }

  // By pixel, item = row block * pieces + piece: the piece's channels of the block's pixels.
  Slice ReduceSlice(int64_t item) const {
    if (!by_pixel_) return partition_[item];
    Slice slice = partition_[item / pieces_.count];
    slice.col_begin = item % pieces_.count * pieces_.width;
    slice.col_end = std::min(c_, slice.col_begin + pieces_.width);
    return slice;
  }

  // Sums of every channel into totals_: per-item partials, then added in item order.
  void Reduce(const float* mean, const float* dy_scale, int64_t period, size_t tensors_moved) {
    ReduceArgs args{};
    args.x = r_.x;
    args.dy = r_.dy;
    args.dx = dy_scale != nullptr ? r_.dx : nullptr;
    args.mean = mean;
    args.dy_scale = dy_scale;
    args.c = c_;
    args.cols = cols_;
    args.period = period;
    args.slot_per_channel = slot_per_channel_;
    const int64_t num_slots = slots_per_item_;
    const auto item_slots = [&](int64_t item) {
      double* dy = slots_ + item * 2 * num_slots;
      return Slots{dy, dy + num_slots};
    };
    ParallelFor(r_.threading, ReduceItems(), tensors_moved * r_.shape.bytes,
                [&](int64_t begin, int64_t end) {
                  for (int64_t item = begin; item < end; ++item) {
                    by_pixel_ ? ReducePixels(args, ReduceSlice(item), item_slots(item))
                              : ReduceRows(args, ReduceSlice(item), num_slots, item_slots(item));
                  }
                });
    std::fill(totals_, totals_ + c_, ChannelSums{0.0, 0.0});
    for (int64_t item = 0; item < ReduceItems(); ++item) {
      const Slice slice = ReduceSlice(item);
      const Slots in = item_slots(item);
      if (slot_per_channel_) {
        // By pixel, an item has slots for its piece's channels only.
        const int64_t first = by_pixel_ ? slice.col_begin : 0;
        const int64_t last = by_pixel_ ? slice.col_end : c_;
        for (int64_t ch = first; ch < last; ++ch) {
          totals_[ch].dy += in.dy[ch];
          totals_[ch].dy_xmean += in.dy_xmean[ch];
        }
        continue;
      }
      const int64_t rows = slice.row_end - slice.row_begin;
      int64_t ch = slice.row_begin % c_;  // of slot s
      for (int64_t s = 0; s < rows; ++s, ch = ch + 1 == c_ ? 0 : ch + 1) {
        totals_[ch].dy += in.dy[s];
        totals_[ch].dy_xmean += in.dy_xmean[s];
      }
    }
  }

  void Differentiate(DxArgs* args, size_t tensors_moved) {
    args->c = c_;
    args->cols = cols_;
    args->stream =
        ShouldStream(tensors_moved * r_.shape.bytes, by_pixel_ ? r_.shape.elements : cols_,
                     kBackwardThreads);
    const Partition partition(rows_, cols_);
    // Backwards through each range: after the reductions the end of the tensor is still in the
    // last-level cache, so the first part of this pass reads it from there (dx is elementwise:
    // the order changes no result).
    ParallelFor(r_.threading, partition.size(), tensors_moved * r_.shape.bytes,
                [&](int64_t begin, int64_t end) {
                  for (int64_t item = end - 1; item >= begin; --item) {
                    by_pixel_ ? DxPixels(*args, partition[item]) : DxRows(*args, partition[item]);
                  }
                });
  }

  // Last, after every input has been read: dgamma and dbeta may alias one.
  // With no values (m == 0) both are empty sums: 0.
  simdbn_status WriteChannelOutputs() {
    if (r_.dgamma == nullptr && r_.dbeta == nullptr) return SIMDBN_SUCCESS;
    for (int64_t ch = 0; ch < c_; ++ch) {
      const ChannelSums s = totals_ == nullptr ? ChannelSums{0.0, 0.0} : totals_[ch];
      const double dgamma = totals_ == nullptr ? 0.0 : s.dy_xmean * r_.invstd[ch];
      if (r_.dgamma != nullptr) r_.dgamma[ch] = static_cast<float>(dgamma);
      if (r_.dbeta != nullptr) r_.dbeta[ch] = static_cast<float>(s.dy);
    }
    return SIMDBN_SUCCESS;
  }

  const Request& r_;
  const int64_t c_, m_;
  const bool by_pixel_;
  const int64_t rows_, cols_;
  Partition partition_{0, 0};
  ColumnPieces pieces_{1, 0};  // by pixel: the columns of each row block
  bool slot_per_channel_ = false;
  int64_t slots_per_item_ = 0;
  Scratch scratch_;
  ChannelSums* totals_ = nullptr;  // per channel, in the end the sums of everything
  double* slots_ = nullptr;        // per item: Slots of slots_per_item_ each
  float* constants_ = nullptr;     // per-channel arrays for the kernels
};

simdbn_status BackwardEntry(const char* fn, bool frozen, const simdbn_tensor_desc* desc,
                            const void* x, const void* dy, const float* gamma,
                            const float* save_mean, const float* save_invstd, void* dx,
                            float* dgamma, float* dbeta, const simdbn_threading* threading) {
  Request r{};
  r.fn = fn;
  r.frozen = frozen;
  r.x = static_cast<const float*>(x);
  r.dy = static_cast<const float*>(dy);
  r.gamma = gamma;
  r.mean = save_mean;
  r.invstd = save_invstd;
  r.dx = static_cast<float*>(dx);
  r.dgamma = dgamma;
  r.dbeta = dbeta;
  r.threading = threading;
  SIMDBN_RETURN_IF_ERROR(Validate(desc, &r));
  r.shape = OneChannelAsOneRun(r.shape);
  return Backward(r).Run();
}

}  // namespace
}  // namespace simdbn

extern "C" simdbn_status simdbn_backward(const simdbn_tensor_desc* desc, const void* x,
                                         const void* dy, const float* gamma, const float* save_mean,
                                         const float* save_invstd, void* dx, float* dgamma,
                                         float* dbeta, const simdbn_threading* threading) {
  return simdbn::BackwardEntry("simdbn_backward", false, desc, x, dy, gamma, save_mean, save_invstd,
                               dx, dgamma, dbeta, threading);
}

extern "C" simdbn_status simdbn_backward_frozen(const simdbn_tensor_desc* desc, const void* x,
                                                const void* dy, const float* gamma,
                                                const float* save_mean, const float* save_invstd,
                                                void* dx, float* dgamma, float* dbeta,
                                                const simdbn_threading* threading) {
  return simdbn::BackwardEntry("simdbn_backward_frozen", true, desc, x, dy, gamma, save_mean,
                               save_invstd, dx, dgamma, dbeta, threading);
}
