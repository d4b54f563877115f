#include "kernels/training.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hwy/base.h"  // HWY_RESTRICT
#include "kernels/affine.h"
#include "kernels/cache.h"
#include "kernels/moments.h"
#include "kernels/partition.h"
#include "kernels/threading.h"

namespace simdbn {
namespace {

int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

void PlanNchwBlocks(TrainingPlan* p) {
  const int64_t n = p->shape.n, spatial = p->shape.spatial;
  if (spatial >= kNchwBlockElements) {
    // Pieces of equal size, 16-element aligned within the row (as partition.h cuts rows).
    const int64_t pieces = (spatial + kNchwBlockElements - 1) / kNchwBlockElements;
    p->piece_cols = RoundUp((spatial + pieces - 1) / pieces, 16);
    p->pieces_per_row = (spatial + p->piece_cols - 1) / p->piece_cols;
    p->blocks = n * p->pieces_per_row;
  } else {
    p->block_images = kNchwBlockElements / spatial;
    p->blocks = (n + p->block_images - 1) / p->block_images;
    if (spatial >= kMinStateRow) {
      p->chunk = std::min({(kItemElements + spatial - 1) / spatial, kMaxChunk, p->shape.c});
    }
  }
  // Run states (kept 64-byte aligned at the front), then two partial sums per block and channel.
  const int64_t states = p->chunk != 0 ? p->blocks * p->shape.c * kRunStateDoubles : 0;
  p->stats_doubles = static_cast<size_t>(states + 2 * p->blocks * p->shape.c);
}

void PlanNhwcItems(TrainingPlan* p) {
  const int64_t c = p->shape.c;
  const int64_t pixels = p->shape.n * p->shape.spatial;
  // k pixels per super-row make its length a multiple of 16 when c is small.
  const int64_t k = c < 64 ? 16 / std::gcd(c, int64_t{16}) : 1;
  p->period = k * c;
  p->period_pad = RoundUp(p->period, kColumnPad);
  p->super_rows = pixels / k;
  p->tail_cols = pixels % k * c;
  p->rows_per_item = std::max(kNhwcItemElements / p->period, (kMinPixelsPerItem + k - 1) / k);
  p->row_blocks = std::max<int64_t>(1, (p->super_rows + p->rows_per_item - 1) / p->rows_per_item);
  const ColumnPieces pieces = PiecesOf(p->period, p->row_blocks, kColumnPad);
  p->col_pieces = pieces.count;
  p->piece_width = pieces.width;
  p->items = p->row_blocks * p->col_pieces;
  // Shifts, two partial sums per column and row block, and the two sums of every channel.
  p->stats_doubles = static_cast<size_t>(p->period_pad * (1 + 2 * p->row_blocks) + 2 * c);
}

int64_t Pixels(const TensorShape& s) { return s.n * s.spatial; }

// Block b of every channel (NCHW): `images` runs of `len` elements from column `col`.
struct Block {
  int64_t image, images, col, len;
};

Block NchwBlock(const TrainingPlan& p, int64_t b) {
  if (p.piece_cols != 0) {
    const int64_t col = b % p.pieces_per_row * p.piece_cols;
    return {b / p.pieces_per_row, 1, col, std::min(p.piece_cols, p.shape.spatial - col)};
  }
  const int64_t image = b * p.block_images;
  return {image, std::min(p.block_images, p.shape.n - image), 0, p.shape.spatial};
}

// Adds the sums of block `block` of channel ch to *sums.
void AddBlockSums(const TrainingPlan& p, const float* x, int64_t ch, const Block& block,
                  float shift, ShiftedSums* sums) {
  const int64_t c = p.shape.c, spatial = p.shape.spatial;
  AddRunSums(x + (block.image * c + ch) * spatial + block.col, block.images, c * spatial,
             block.len, shift, sums);
}

float NchwShift(const TrainingPlan& p, const float* x, int64_t ch) {
  return ShiftFor(x[ch * p.shape.spatial]);
}

void Accumulate(const ShiftedSums& part, ShiftedSums* total) {
  total->s1 += part.s1;
  total->s2 += part.s2;
}

// Items of `chunk` channels of one block, image by image: the same sums as AddBlockSums.
void NchwChunkSums(const TrainingPlan& p, const float* x, double* states, double* partials,
                   const simdbn_threading* threading) {
  const int64_t c = p.shape.c, spatial = p.shape.spatial;
  const int64_t chunks = (c + p.chunk - 1) / p.chunk;
  ParallelFor(threading, p.blocks * chunks, p.shape.bytes, [&](int64_t begin, int64_t end) {
    float shift[kMaxChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / chunks, first = item % chunks * p.chunk;
      const int64_t count = std::min(p.chunk, c - first);
      const Block block = NchwBlock(p, b);
      double* state = states + (b * c + first) * kRunStateDoubles;
      std::fill(state, state + count * kRunStateDoubles, 0.0);
      for (int64_t ch = first; ch < first + count; ++ch) shift[ch - first] = NchwShift(p, x, ch);
      for (int64_t image = block.image; image < block.image + block.images; ++image) {
        AddRowsToStates(x + (image * c + first) * spatial, count, spatial, shift, state);
      }
      for (int64_t ch = first; ch < first + count; ++ch) {
        const ShiftedSums sums = SumsOfState(state + (ch - first) * kRunStateDoubles);
        partials[2 * (ch * p.blocks + b)] = sums.s1;
        partials[2 * (ch * p.blocks + b) + 1] = sums.s2;
      }
    }
  });
}

void NchwBatchMoments(const TrainingPlan& p, const float* x, double* stats,
                      simdbn_moments* moments, const simdbn_threading* threading) {
  const int64_t c = p.shape.c;
  double* partials = stats;
  if (p.chunk != 0) {
    partials = stats + p.blocks * c * kRunStateDoubles;
    NchwChunkSums(p, x, stats, partials, threading);
  } else {
    // Item b * c + ch: consecutive items walk the tensor in memory order.
    ParallelFor(threading, p.blocks * c, p.shape.bytes, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / c, ch = item % c;
        ShiftedSums sums;
        AddBlockSums(p, x, ch, NchwBlock(p, b), NchwShift(p, x, ch), &sums);
        partials[2 * (ch * p.blocks + b)] = sums.s1;
        partials[2 * (ch * p.blocks + b) + 1] = sums.s2;
      }
    });
  }
  const double count = static_cast<double>(Pixels(p.shape));
  for (int64_t ch = 0; ch < c; ++ch) {
    ShiftedSums total;  // in block order, as FusedTraining adds them
    for (int64_t b = 0; b < p.blocks; ++b) {
      Accumulate({partials[2 * (ch * p.blocks + b)], partials[2 * (ch * p.blocks + b) + 1]},
                 &total);
    }
    moments[ch] = MomentsFromSums(count, NchwShift(p, x, ch), total);
  }
}

// sum1[i] += s1[i], sum2[i] += s2[i] for i < c: disjoint arrays, so the loop vectorizes.
void AddTo(const double* HWY_RESTRICT s1, const double* HWY_RESTRICT s2, int64_t c,
           double* HWY_RESTRICT sum1, double* HWY_RESTRICT sum2) {
  for (int64_t i = 0; i < c; ++i) {
    sum1[i] += s1[i];
    sum2[i] += s2[i];
  }
}

void NhwcBatchMoments(const TrainingPlan& p, const float* x, double* stats,
                      simdbn_moments* moments, const simdbn_threading* threading) {
  const int64_t c = p.shape.c, period = p.period, pad = p.period_pad;
  double* shift = stats;
  double* partials = shift + pad;
  double* sum1 = partials + 2 * pad * p.row_blocks;
  double* sum2 = sum1 + c;
  // Every column of a channel uses that channel's first value, so all partials add up.
  for (int64_t j = 0; j < period; j += c) {
    for (int64_t ch = 0; ch < c; ++ch) shift[j + ch] = ShiftFor(x[ch]);
  }
  std::fill(shift + period, shift + pad, 0.0);

  // The column sums run in double (exact shifted values), which costs about twice a copy's
  // time per byte: count the traffic that way when deciding how many threads pay off.
  ParallelFor(threading, p.items, 2 * p.shape.bytes, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / p.col_pieces;
      const int64_t col = item % p.col_pieces * p.piece_width;
      const int64_t width = std::min(p.piece_width, period - col);
      // A column's sum does not depend on which piece it is in: the same bits for any cut.
      double* s1 = partials + 2 * pad * block + col;
      double* s2 = s1 + pad;
      const int64_t zeroed = std::min(RoundUp(width, kColumnPad), pad - col);
      std::fill(s1, s1 + zeroed, 0.0);
      std::fill(s2, s2 + zeroed, 0.0);
      const int64_t row = block * p.rows_per_item;
      const int64_t rows = std::min(p.rows_per_item, p.super_rows - row);
      if (rows > 0) ColumnSums(x + row * period + col, rows, period, width, shift + col, s1, s2);
      const int64_t tail = std::min(width, p.tail_cols - col);
      if (block + 1 == p.row_blocks && tail > 0) {
        ColumnSums(x + p.super_rows * period + col, 1, period, tail, shift + col, s1, s2);
      }
    }
  });
  // Row block by row block, then column by column within a super-row: a fixed order.
  std::fill(sum1, sum1 + 2 * c, 0.0);
  for (int64_t block = 0; block < p.row_blocks; ++block) {
    const double* s1 = partials + 2 * pad * block;
    const double* s2 = s1 + pad;
    for (int64_t k = 0; k < period; k += c) AddTo(s1 + k, s2 + k, c, sum1, sum2);
  }
  MomentsOfSums(c, static_cast<double>(Pixels(p.shape)), shift, sum1, sum2, moments);
}

// Per-channel constants in the scratch: center, scale, bias, each of c floats (NCHW) or of
// PeriodicSize(c) floats to hold its periodic form (by_pixel, see affine.h).
int64_t ConstantStride(const TrainingPlan& p) {
  return p.by_pixel ? PeriodicSize(p.shape.c) : p.shape.c;
}
ChannelConstants ConstantsIn(const TrainingPlan& p, float* scratch) {
  const int64_t stride = ConstantStride(p);
  return {scratch, scratch + stride, scratch + 2 * stride};
}

// run_elements: how many consecutive outputs one call of the affine map writes at least.
AffineArgs NormalizeArgs(const TrainingPlan& p, const float* x, const ChannelConstants& k,
                         float* y, int64_t run_elements) {
  AffineArgs args{};
  args.x = x;
  args.y = y;
  args.center = k.center;
  args.scale = k.scale;
  args.bias = k.bias;
  args.c = p.shape.c;
  args.cols = p.by_pixel ? p.shape.c : p.shape.spatial;
  args.stream = ShouldStream(2 * p.shape.bytes, run_elements);
  return args;
}

}  // namespace

TrainingPlan PlanTraining(const TensorShape& shape) {
  TrainingPlan p;
  p.shape = OneChannelAsOneRun(shape);
  // With spatial == 1 both layouts are the same (n, c) matrix, best walked a pixel at a time.
  p.by_pixel = p.shape.layout == SIMDBN_NHWC || p.shape.spatial == 1;
  p.constant_floats = static_cast<size_t>(3 * ConstantStride(p));
  if (Pixels(p.shape) == 0) return p;
  if (p.by_pixel) {
    PlanNhwcItems(&p);
  } else {
    PlanNchwBlocks(&p);
    const TensorShape& s = p.shape;
    const int64_t channel_bytes = Pixels(s) * static_cast<int64_t>(sizeof(float));
    p.group_size = std::clamp<int64_t>(kFusedGroupBytes / channel_bytes, 1, kMaxGroup);
    // The affine map is called per image and group: group_size consecutive rows.
    const bool cached = !ShouldStream(2 * s.bytes, s.elements);
    p.fused = static_cast<size_t>(channel_bytes) <= kFusedChannelBytes &&
              s.n <= kMaxFusedImages &&
              (cached || ShouldStream(2 * s.bytes, p.group_size * s.spatial));
  }
  return p;
}

void BatchMoments(const TrainingPlan& plan, const float* x, double* stats,
                  simdbn_moments* moments, const simdbn_threading* threading) {
  plan.by_pixel ? NhwcBatchMoments(plan, x, stats, moments, threading)
                : NchwBatchMoments(plan, x, stats, moments, threading);
}

void TrainWithMoments(const TrainingPlan& plan, const float* x, const simdbn_moments* moments,
                      const ChannelParams& params, float* constants, float* y,
                      const simdbn_threading* threading) {
  const TensorShape& s = plan.shape;
  const ChannelConstants k = ConstantsIn(plan, constants);
  FinalizeChannels(params, 0, s.c, moments, k);
  if (s.elements == 0) return;

  // Partition slices: whole rows, or pieces of rows of at least kItemElements / 2.
  AffineArgs args = NormalizeArgs(plan, x, k, y, s.elements);
  if (plan.by_pixel) {
    for (float* values : {k.center, k.scale, k.bias}) ExtendPeriodic(values, s.c);
    args.period = PeriodOf(s.c);
  }
  const int64_t rows = plan.by_pixel ? Pixels(s) : s.n * s.c;
  const Partition partition(rows, args.cols);
  ParallelFor(threading, partition.size(), 2 * s.bytes, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      plan.by_pixel ? AffineNhwc(args, partition[item]) : AffineNchw(args, partition[item]);
    }
  });
}

void FusedTraining(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                   float* constants, float* y, const simdbn_threading* threading) {
  const TensorShape& s = plan.shape;
  const ChannelConstants k = ConstantsIn(plan, constants);
  const double count = static_cast<double>(Pixels(s));
  const int64_t group_size = plan.group_size;
  const AffineArgs args = NormalizeArgs(plan, x, k, y, group_size * s.spatial);
  ParallelFor(threading, s.c, 2 * s.bytes, [&](int64_t begin, int64_t end) {
    // Channels go in groups, so that the per-channel step and the normalization calls are
    // vectorized and batched across the group. Software pipelining: the statistics of the next
    // group are read from memory while this group is normalized from cache, block by block, so
    // that one core keeps both its reads and its writes in flight. Each channel's blocks are
    // still summed in block order: the grouping does not change any bit.
    float shift[kMaxGroup];
    ShiftedSums sums[kMaxGroup];
    simdbn_moments moments[kMaxGroup];
    const auto start_group = [&](int64_t first, int64_t last) {
      for (int64_t ch = first; ch < last; ++ch) {
        shift[ch - first] = NchwShift(plan, x, ch);
        sums[ch - first] = ShiftedSums();
      }
    };
    const auto accumulate = [&](int64_t first, int64_t last, const Block& block) {
      for (int64_t ch = first; ch < last; ++ch) {
        AddBlockSums(plan, x, ch, block, shift[ch - first], &sums[ch - first]);
      }
    };
    int64_t first = begin, last = std::min(end, begin + group_size);
    start_group(first, last);
    for (int64_t b = 0; b < plan.blocks; ++b) accumulate(first, last, NchwBlock(plan, b));
    while (first < end) {
      for (int64_t ch = first; ch < last; ++ch) {
        moments[ch - first] = MomentsFromSums(count, shift[ch - first], sums[ch - first]);
      }
      FinalizeChannels(params, first, last, moments, k);
      const int64_t next_first = last, next_last = std::min(end, last + group_size);
      start_group(next_first, next_last);
      for (int64_t b = 0; b < plan.blocks; ++b) {
        const Block block = NchwBlock(plan, b);
        accumulate(next_first, next_last, block);
        // The group's rows of one image are consecutive: one call normalizes them all.
        for (int64_t image = block.image; image < block.image + block.images; ++image) {
          AffineNchw(args, Slice{image * s.c + first, image * s.c + last, block.col,
                                 block.col + block.len});
        }
      }
      first = next_first;
      last = next_last;
    }
  });
}

}  // namespace simdbn
