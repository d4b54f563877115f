// The backward pass of batch normalization (docs/backward.md), per channel over M = n * spatial:
//   dbeta = sum(dy), dgamma = sum(dy * (x - mean)) * invstd,
//   dx = k * (dy - dy_mean) + x_scale * (x - mean), with k = gamma * invstd, dy_mean = sum(dy) / M
//   and x_scale = -k * invstd^2 * sum(dy * (x - mean)) / M (frozen statistics: dx = k * dy).
// dy - dy_mean is formed first: where it cancels (M = 1, constant dy) it is exact, where
// k * dy + bias would leave the rounding error of k * dy.
//
// Work is split as everywhere else (partition.h): the reductions write one ChannelSums per
// "slot" of each item, and the driver adds them up in item order, so results do not depend on
// the thread count.
#ifndef SIMDBN_KERNELS_BACKWARD_H_
#define SIMDBN_KERNELS_BACKWARD_H_

#include <cmath>
#include <cstdint>

#include "kernels/affine.h"
#include "kernels/partition.h"

namespace simdbn {

// f32 lanes add at most this many terms before their sum moves into double, so the f32 part of
// the rounding error is bounded by a constant (about kChunkTerms u of the terms' magnitudes),
// however many values a channel has.
inline constexpr int64_t kChunkTerms = 16;

// By-pixel reductions accumulate into per-position f32 arrays on the stack: either one period of
// the flat run (a multiple of both c and the vector length) or blocks of channels of one pixel.
inline constexpr int64_t kMaxPeriod = 2048;
// A period at least this long means each accumulator vector is revisited only after 16 others,
// so store-to-load forwarding never sits on the critical path.
inline constexpr int64_t kMinPeriod = 16 * kMaxLanes;

// The two sums every variant needs, per channel, in double.
struct ChannelSums {
  double dy;        // sum(dy)
  double dy_xmean;  // sum(dy * (x - mean))
};

struct ReduceArgs {
  const float* x;
  const float* dy;
  // Frozen statistics only (dy_scale non-null): dx = dy * dy_scale is written in the same pass.
  float* dx;
  // Per-channel values. Rows: c entries. Pixels: `period` entries with p[i] = value[i % c] when
  // period != 0, else c entries.
  const float* mean;
  const float* dy_scale;  // nullable
  int64_t c;
  int64_t cols;    // row length of the partition: NCHW spatial, by-pixel c
  int64_t period;  // pixels: the flat-run period (see kMaxPeriod), 0 for channel blocks
  // Rows: where row r of an item goes. By channel: slot r % c; otherwise slot r - row_begin.
  // Pixels: always by channel.
  bool slot_per_channel;
};

// An item's partial sums, one per slot: sum(dy) in dy[slot], sum(dy * (x - mean)) in
// dy_xmean[slot]. Two arrays rather than ChannelSums so that a vector of slots is one load.
struct Slots {
  double* dy;
  double* dy_xmean;
};

// Sums of one item into its `num_slots` slots (by pixel: c, of which it zeroes and fills those
// of channels [slice.col_begin, slice.col_end)); the item zeroes them first.
void ReduceRows(const ReduceArgs& args, const Slice& slice, int64_t num_slots, const Slots& slots);
void ReducePixels(const ReduceArgs& args, const Slice& slice, const Slots& slots);

struct DxArgs {
  const float* x;
  const float* dy;
  float* dx;
  // Per-channel constants. Rows: c entries each. Pixels: the periodic form of affine.h
  // (MakePeriodic, PeriodicSize(c) entries).
  const float* mean;
  const float* x_scale;
  const float* dy_scale;  // k
  const float* dy_mean;
  const float* x_prescale;  // null: every channel's is 1 (DxConstants)
  int64_t c;
  int64_t cols;
  bool dy_only;  // dx = dy * dy_scale: frozen statistics (x, mean, x_scale, dy_mean unused)
  bool stream;
};

void DxRows(const DxArgs& args, const Slice& slice);
void DxPixels(const DxArgs& args, const Slice& slice);

// The tensors and per-channel inputs of a backward call, for the plans that reduce and
// differentiate in one work item.
struct BackwardTensors {
  const float* x;
  const float* dy;
  float* dx;
  const float* gamma;  // nullable: 1
  const float* mean;
  const float* invstd;
};

// NCHW with a channel small enough to stay in cache: one item is one whole channel, reduced and
// then differentiated while its data is still cached, so x and dy come from memory only once.
struct ChannelArgs {
  BackwardTensors t;
  int64_t n, c, spatial;
  bool stream;
};

void BackwardChannel(const ChannelArgs& args, int64_t channel, ChannelSums* sums);

struct DxConstants {
  float x_scale, dy_scale, dy_mean;
  // dx = (dy - dy_mean) * dy_scale + ((x - mean) * x_prescale) * x_scale; 1 almost always.
  float x_prescale;
};

// dx's constants from the sums: computed in double and rounded once each.
//
// x_scale is about k * invstd * dy: for invstd above about 1e19 or below about 1e-19 it leaves
// the f32 range although (x - mean) * x_scale, about dx, does not. Such a channel's x - mean is
// first multiplied by a power of two near invstd (exact while the normalized value is a normal
// f32) and x_scale divided by it in double (exact), so dx rounds as often as on ordinary data.
inline DxConstants DxConstantsFor(const ChannelSums& sums, double gamma, double invstd, double m,
                                  bool frozen) {
  const double k = gamma * invstd;
  if (frozen) return {0.0f, static_cast<float>(k), 0.0f, 1.0f};
  const double x_scale = -k * invstd * invstd * sums.dy_xmean / m;
  DxConstants out{static_cast<float>(x_scale), static_cast<float>(k),
                  static_cast<float>(sums.dy / m), 1.0f};
  if (x_scale != 0.0 && std::isfinite(x_scale) && !std::isnormal(out.x_scale) &&
      std::isnormal(static_cast<float>(invstd))) {
    out.x_prescale = std::ldexp(1.0f, std::ilogb(invstd));
    out.x_scale = static_cast<float>(x_scale / out.x_prescale);
  }
  return out;
}

// x_scale, dy_scale and dy_mean of DxConstantsFor(sums[ch], gamma (1 if null), invstd[ch], m,
// false) for every ch < c, the same bits. x_prescale is left to the caller: false means some
// x_scale is not a normal f32, and for those DxConstantsFor decides.
struct DxConstantsArgs {
  const ChannelSums* sums;
  const float* gamma;  // nullable
  const float* invstd;
  double m;
  int64_t c;
  float* x_scale;
  float* dy_scale;
  float* dy_mean;
};
bool ComputeDxConstants(const DxConstantsArgs& args);

// Tensors of at most kMaxFewPixels pixels (partition.h): per block of channels, the sums over
// the pixels in double, dx's constants (DxConstantsFor's operations), dx, then dgamma and
// dbeta, while the block's values are in L1. NCHW blocks go through by-pixel copies
// (pixel_rows.h).
struct FewPixelsArgs {
  BackwardTensors t;
  float* dgamma;  // nullable
  float* dbeta;   // nullable
  int64_t pixels, c;
  bool frozen;  // dx = dy * gamma * invstd
  int64_t spatial = 0;  // 0: by pixel; else NCHW
};
// Channels [begin, end).
void BackwardFewPixels(const FewPixelsArgs& args, int64_t begin, int64_t end);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_BACKWARD_H_
