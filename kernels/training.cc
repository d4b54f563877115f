#include "kernels/training.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hwy/base.h"  // HWY_RESTRICT
#include "kernels/affine.h"
#include "kernels/cache.h"
#include "kernels/moments.h"
#include "kernels/partition.h"
#include "kernels/sums_while_normalizing.h"
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
  // Run states (kept 64-byte aligned at the front), then a partial mean and m2 per block and
  // channel.
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
  const int64_t most_rows =
      std::max(kNhwcItemElements / p->period, (kMinPixelsPerItem + k - 1) / k);
  int64_t blocks = std::max<int64_t>(1, (p->super_rows + most_rows - 1) / most_rows);
  if (blocks > kBalancedBlocks) blocks = RoundUp(blocks, kBalancedBlocks);
  p->rows_per_item = std::max<int64_t>(1, (p->super_rows + blocks - 1) / blocks);
  p->row_blocks = std::max<int64_t>(1, (p->super_rows + p->rows_per_item - 1) / p->rows_per_item);
  const ColumnPieces pieces = PiecesOf(p->period, p->row_blocks, kColumnPad);
  p->col_pieces = pieces.count;
  p->piece_width = pieces.width;
  p->items = p->row_blocks * p->col_pieces;
  p->blocks_per_chunk = std::max<int64_t>(1, kChunkRows / p->rows_per_item);
  p->chunks = (p->row_blocks + p->blocks_per_chunk - 1) / p->blocks_per_chunk;
  // Per column: a shift per chunk, two partial sums per row block and two of the chunk being
  // merged; per channel: the moments.
  p->stats_doubles =
      static_cast<size_t>(p->period_pad * (p->chunks + 2 * p->row_blocks + 2) + 3 * c);
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

// The value a channel's block means are measured from while they are merged: its first value
// (the shift of its first block).
float ReferenceOf(const TrainingPlan& p, const float* x, int64_t ch) {
  return ShiftFor(x[ch * p.shape.spatial]);
}
double OffsetOf(const TrainingPlan& p, const float* x, int64_t ch, float shift) {
  return static_cast<double>(shift) - static_cast<double>(ReferenceOf(p, x, ch));
}
simdbn_moments Absolute(const simdbn_moments& merged, float reference) {
  return {merged.count, reference + merged.mean, merged.m2};
}

// The sums of block `block` of channel ch about the block's first value, the shift.
struct BlockSums {
  float shift;
  ShiftedSums sums;
};
// (Written in place: a copy of the pair would be loaded as one vector from the separate
// stores that made it, a store-forwarding stall per channel.)
void SumsOfBlock(const TrainingPlan& p, const float* x, int64_t ch, const Block& block,
                 BlockSums* b) {
  const int64_t c = p.shape.c, spatial = p.shape.spatial;
  const int64_t offset = (block.image * c + ch) * spatial + block.col;
  b->shift = ShiftFor(x[offset]);
  b->sums = ShiftedSums();
  AddRunSums(x + offset, block.images, c * spatial, block.len, b->shift,
             p.shape.elements - offset, &b->sums);
}
// SumsOfBlock of channel ch (the same bits) while channel `normalized` of the same block is
// normalized by args, as AffineNchw would normalize it (see sums_while_normalizing.h).
void SumsWhileNormalizing(const TrainingPlan& p, const AffineArgs& args, const float* x,
                          int64_t ch, int64_t normalized, const Block& block, BlockSums* b) {
  const int64_t c = p.shape.c, spatial = p.shape.spatial;
  const int64_t offset = (block.image * c + ch) * spatial + block.col;
  const int64_t row = block.image * c + normalized, other = row * spatial + block.col;
  // Its runs stream as AffineNchw streams the slice of any one of them.
  const Slice slice{row, row + 1, block.col, block.col + block.len};
  b->shift = ShiftFor(x[offset]);
  b->sums = ShiftedSums();
  AddRunSumsWhileNormalizing(
      x + offset, block.images, c * spatial, block.len, b->shift, p.shape.elements - offset,
      &b->sums,
      {args.x + other, args.y + other, args.center[normalized], args.scale[normalized],
       args.bias[normalized], StreamsNchwSlice(args, slice)});
}
simdbn_moments MomentsOfBlock(const TrainingPlan& p, const float* x, int64_t ch,
                              const Block& block, const BlockSums& b) {
  return MomentsFromSums(static_cast<double>(block.images * block.len),
                         OffsetOf(p, x, ch, b.shift), b.sums);
}

// Partial moments in the scratch: mean and m2 of block b of channel ch (the count follows from
// the plan).
double* PartialOf(const TrainingPlan& p, double* partials, int64_t ch, int64_t b) {
  return partials + 2 * (ch * p.blocks + b);
}
void StorePartial(const simdbn_moments& m, double* partial) {
  partial[0] = m.mean;
  partial[1] = m.m2;
}

// Channels [first, first + count) of block `block` read image by image (AddRowsToStates):
// their run states zeroed and their shifts, each channel's first value in the block.
void StartStates(const TrainingPlan& p, const float* x, const Block& block, int64_t first,
                 int64_t count, float* shift, double* state) {
  const int64_t c = p.shape.c, spatial = p.shape.spatial;
  std::fill(state, state + count * kRunStateDoubles, 0.0);
  for (int64_t i = 0; i < count; ++i) {
    shift[i] = ShiftFor(x[(block.image * c + first + i) * spatial]);
  }
}
// The moments of channel ch's block from its run state: those of MomentsOfBlock.
simdbn_moments MomentsOfState(const TrainingPlan& p, const float* x, int64_t ch,
                              const Block& block, float shift, const double* state) {
  return MomentsOfBlock(p, x, ch, block, BlockSums{shift, SumsOfState(state)});
}

// Items of `chunk` channels of one block, image by image: the same moments as MomentsOfBlock.
void NchwMomentsImageByImage(const TrainingPlan& p, const float* x, double* states,
                             double* partials, const simdbn_threading* threading) {
  const int64_t c = p.shape.c, spatial = p.shape.spatial;
  const int64_t chunks = (c + p.chunk - 1) / p.chunk;
  ParallelFor(threading, p.blocks * chunks, p.shape.bytes, [&](int64_t begin, int64_t end) {
    float shift[kMaxChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / chunks, first = item % chunks * p.chunk;
      const int64_t count = std::min(p.chunk, c - first);
      const Block block = NchwBlock(p, b);
      const float* rows = x + (block.image * c + first) * spatial;
      double* state = states + (b * c + first) * kRunStateDoubles;
      StartStates(p, x, block, first, count, shift, state);
      for (int64_t image = 0; image < block.images; ++image) {
        AddRowsToStates(rows + image * c * spatial, count, spatial, shift, state);
      }
      for (int64_t i = 0; i < count; ++i) {
        StorePartial(MomentsOfState(p, x, first + i, block, shift[i],
                                    state + i * kRunStateDoubles),
                     PartialOf(p, partials, first + i, b));
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
    NchwMomentsImageByImage(p, x, stats, partials, threading);
  } else {
    // Item b * c + ch: consecutive items walk the tensor in memory order.
    ParallelFor(threading, p.blocks * c, p.shape.bytes, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / c, ch = item % c;
        const Block block = NchwBlock(p, b);
        BlockSums sums;
        SumsOfBlock(p, x, ch, block, &sums);
        StorePartial(MomentsOfBlock(p, x, ch, block, sums), PartialOf(p, partials, ch, b));
      }
    });
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    simdbn_moments total{0.0, 0.0, 0.0};  // in block order, as FusedTraining merges them
    for (int64_t b = 0; b < p.blocks; ++b) {
      const Block block = NchwBlock(p, b);
      const double* partial = PartialOf(p, partials, ch, b);
      total = MergeMoments(
          total, {static_cast<double>(block.images * block.len), partial[0], partial[1]});
    }
    moments[ch] = Absolute(total, ReferenceOf(p, x, ch));
  }
}

// Super-rows [first, end) of chunk k, and how many tail columns hold one more value.
struct ChunkRows {
  int64_t first, end, extra;
};
ChunkRows RowsOfChunk(const TrainingPlan& p, int64_t k) {
  const int64_t rows_per_chunk = p.blocks_per_chunk * p.rows_per_item;
  const int64_t first = std::min(k * rows_per_chunk, p.super_rows);
  return {first, std::min(first + rows_per_chunk, p.super_rows),
          k + 1 == p.chunks ? p.tail_cols : 0};
}

// sum1[i] += s1[i], sum2[i] += s2[i] for i < n: disjoint arrays, so the loop vectorizes.
void AddTo(const double* HWY_RESTRICT s1, const double* HWY_RESTRICT s2, int64_t n,
           double* HWY_RESTRICT sum1, double* HWY_RESTRICT sum2) {
  for (int64_t i = 0; i < n; ++i) {
    sum1[i] += s1[i];
    sum2[i] += s2[i];
  }
}

void NhwcBatchMoments(const TrainingPlan& p, const float* x, double* stats,
                      simdbn_moments* moments, const simdbn_threading* threading) {
  const int64_t c = p.shape.c, period = p.period, pad = p.period_pad;
  double* shifts = stats;                         // per chunk
  double* partials = shifts + pad * p.chunks;     // per row block: s1, then s2
  double* sum1 = partials + 2 * pad * p.row_blocks;  // the chunk being merged
  double* sum2 = sum1 + pad;
  // Each channel's first value: the shifts of the first c columns of the first chunk.
  const double* reference = shifts;
  double* total_count = sum2 + pad;
  double* total_mean = total_count + c;
  double* total_m2 = total_mean + c;
  // Each column of a chunk is shifted by its first value in the chunk: the chunk's first
  // super-row, or the pixels of the tail when it has none.
  for (int64_t k = 0; k < p.chunks; ++k) {
    const ChunkRows rows = RowsOfChunk(p, k);
    const float* first = x + rows.first * period;
    const int64_t known = rows.end > rows.first ? period : rows.extra;
    ShiftsOf(first, known, pad, shifts + k * pad);
  }

  // The column sums run in double (exact shifted values), which costs about twice a copy's
  // time per byte: count the traffic that way when deciding how many threads pay off.
  ParallelFor(threading, p.items, 2 * p.shape.bytes, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / p.col_pieces;
      const int64_t col = item % p.col_pieces * p.piece_width;
      const int64_t width = std::min(p.piece_width, period - col);
      const double* shift = shifts + block / p.blocks_per_chunk * pad + col;
      // A column's sums do not depend on which piece it is in: the same bits for any cut.
      double* s1 = partials + 2 * pad * block + col;
      double* s2 = s1 + pad;
      const int64_t zeroed = std::min(RoundUp(width, kColumnPad), pad - col);
      std::fill(s1, s1 + zeroed, 0.0);
      std::fill(s2, s2 + zeroed, 0.0);
      const int64_t row = block * p.rows_per_item;
      const int64_t rows = std::min(p.rows_per_item, p.super_rows - row);
      if (rows > 0) ColumnSums(x + row * period + col, rows, period, width, shift, s1, s2);
      const int64_t tail = std::min(width, p.tail_cols - col);
      if (block + 1 == p.row_blocks && tail > 0) {
        ColumnSums(x + p.super_rows * period + col, 1, period, tail, shift, s1, s2);
      }
    }
  });
  // Chunk by chunk: its row blocks' sums in order, then its moments merged column by column
  // within a super-row. A fixed order per channel, whichever thread merges it: channels are
  // independent, so threads take ranges of them (at 7x7 and c = 2048 a single thread's merge was
  // about a tenth of the statistics' time by perf; split, they took 4-6% less at 2 threads).
  const size_t merged_bytes = static_cast<size_t>(2 * pad * p.row_blocks) * sizeof(double);
  ParallelForChannels(threading, c, kMergeChannels, merged_bytes, [&](int64_t c0, int64_t c1) {
    const int64_t width = c1 - c0;
    for (int64_t k = 0; k < p.chunks; ++k) {
      const ChunkRows rows = RowsOfChunk(p, k);
      const int64_t last = std::min(p.row_blocks, (k + 1) * p.blocks_per_chunk);
      for (int64_t j = c0; j < period; j += c) {
        std::fill(sum1 + j, sum1 + j + width, 0.0);
        std::fill(sum2 + j, sum2 + j + width, 0.0);
        for (int64_t block = k * p.blocks_per_chunk; block < last; ++block) {
          const double* s1 = partials + 2 * pad * block + j;
          AddTo(s1, s1 + pad, width, sum1 + j, sum2 + j);
        }
        MergeColumnSums(k == 0 && j == c0, width, static_cast<double>(rows.end - rows.first),
                        std::clamp<int64_t>(rows.extra - j, 0, width), shifts + k * pad + j,
                        sum1 + j, sum2 + j, reference + c0, total_count + c0, total_mean + c0,
                        total_m2 + c0);
      }
    }
  });
  InterleaveMoments(c, reference, total_count, total_mean, total_m2, moments);
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
                         float* y, int64_t run_elements, const simdbn_threading* threading) {
  AffineArgs args{};
  args.x = x;
  args.y = y;
  args.center = k.center;
  args.scale = k.scale;
  args.bias = k.bias;
  args.c = p.shape.c;
  args.cols = p.by_pixel ? p.shape.c : p.shape.spatial;
  args.stream = ShouldStream(2 * p.shape.bytes, run_elements, MaxThreads(threading));
  return args;
}

FewPixelsRows RowsOf(const TrainingPlan& plan, const float* x) {
  return {x, Pixels(plan.shape), plan.shape.c, plan.by_pixel ? 0 : plan.shape.spatial};
}

// Calls f(begin, end) over the channel ranges of plan.few_pixels' work items.
template <class F>
void ForFewPixelsItems(const TrainingPlan& plan, const simdbn_threading* threading, const F& f) {
  ParallelForChannels(threading, plan.shape.c, FewPixelsItemWidth(Pixels(plan.shape)),
                      2 * plan.shape.bytes, f);
}

}  // namespace

TrainingPlan PlanTraining(const TensorShape& shape) {
  TrainingPlan p;
  p.shape = OneChannelAsOneRun(shape);
  // With spatial == 1 both layouts are the same (n, c) matrix, best walked a pixel at a time.
  p.by_pixel = p.shape.layout == SIMDBN_NHWC || p.shape.spatial == 1;
  p.constant_floats = static_cast<size_t>(3 * ConstantStride(p));
  if (Pixels(p.shape) == 0) return p;
  if (p.by_pixel ? Pixels(p.shape) <= kMaxFewPixelsTraining
                 : Pixels(p.shape) <= kMaxNchwFewPixels &&
                       p.shape.spatial <= kMaxNchwFewPixelsRun) {
    p.few_pixels = true;
  } else if (p.by_pixel) {
    PlanNhwcItems(&p);
  } else {
    PlanNchwBlocks(&p);
    const TensorShape& s = p.shape;
    const int64_t channel_bytes = Pixels(s) * static_cast<int64_t>(sizeof(float));
    p.group_size = std::clamp<int64_t>(kFusedGroupBytes / channel_bytes, 1, kMaxGroup);
    // The affine map is called per image and group: group_size consecutive rows. The plan
    // decides bits, so it is the same for any threads (judged as for several).
    const bool cached = !ShouldStream(2 * s.bytes, s.elements, kThreadsUnknown);
    p.fused = static_cast<size_t>(channel_bytes) <= kFusedChannelBytes &&
              (cached ? s.n <= kMaxFusedImages
                      : ShouldStream(2 * s.bytes, p.group_size * s.spatial, kThreadsUnknown));
    if (!p.fused && !cached && p.piece_cols == 0 && s.spatial >= kMinImageRow) {
      const int64_t group = std::min<int64_t>(kMaxChunk, kImageGroupBytes / channel_bytes);
      if (group >= kMinImageGroup &&
          ShouldStream(2 * s.bytes, group * s.spatial, kThreadsUnknown)) {
        p.fused = true;
        p.image_by_image = true;
        p.group_size = group;
      }
    }
  }
  return p;
}

void BatchMoments(const TrainingPlan& plan, const float* x, double* stats,
                  simdbn_moments* moments, const simdbn_threading* threading) {
  if (plan.few_pixels) {
    const FewPixelsRows rows = RowsOf(plan, x);
    ForFewPixelsItems(plan, threading, [&](int64_t begin, int64_t end) {
      FewPixelsMoments(rows, begin, end, moments);
    });
    return;
  }
  plan.by_pixel ? NhwcBatchMoments(plan, x, stats, moments, threading)
                : NchwBatchMoments(plan, x, stats, moments, threading);
}

void TrainFewPixels(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                    float* y, const simdbn_threading* threading) {
  const FewPixelsRows rows = RowsOf(plan, x);
  ForFewPixelsItems(plan, threading, [&](int64_t begin, int64_t end) {
    FewPixelsTraining(rows, begin, end, params, y);
  });
}

void TrainWithMoments(const TrainingPlan& plan, const float* x, const simdbn_moments* moments,
                      const ChannelParams& params, float* constants, float* y,
                      const simdbn_threading* threading) {
  const TensorShape& s = plan.shape;
  const ChannelConstants k = ConstantsIn(plan, constants);
  FinalizeChannels(params, 0, s.c, moments, /*uniform_count=*/0.0, k);
  if (s.elements == 0) return;

  // Partition slices: whole rows, or pieces of rows of at least kItemElements / 2.
  AffineArgs args = NormalizeArgs(plan, x, k, y, s.elements, threading);
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

// A fused group's merged moments (about each channel's reference) made absolute, then every
// per-channel output and constant of channels [first, last).
void FinishGroup(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                 int64_t first, int64_t last, simdbn_moments* moments,
                 const ChannelConstants& k) {
  for (int64_t ch = first; ch < last; ++ch) {
    moments[ch - first] = Absolute(moments[ch - first], ReferenceOf(plan, x, ch));
  }
  FinalizeChannels(params, first, last, moments, static_cast<double>(Pixels(plan.shape)), k);
}

void FusedImageByImage(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                       float* constants, double* states, float* y,
                       const simdbn_threading* threading) {
  const TensorShape& s = plan.shape;
  const int64_t c = s.c, spatial = s.spatial;
  const ChannelConstants k = ConstantsIn(plan, constants);
  const AffineArgs args = NormalizeArgs(plan, x, k, y, plan.group_size * spatial, threading);
  // Whole rows: streamed as AffineNchw streams a slice of them.
  const bool stream = StreamsNchwSlice(args, Slice{0, 1, 0, spatial});
  ParallelFor(threading, c, 2 * s.bytes, [&](int64_t begin, int64_t end) {
    simdbn_moments moments[kMaxChunk];
    float shift[kMaxChunk];
    // The statistics of channels [first, last) (may be none), image by image as
    // NchwMomentsImageByImage reads them, while channels [other, other_end) of the same image
    // are normalized.
    const auto read = [&](int64_t first, int64_t last, int64_t other, int64_t other_end) {
      const int64_t count = last - first;
      std::fill(moments, moments + count, simdbn_moments{0.0, 0.0, 0.0});
      double* state = states + first * kRunStateDoubles;
      for (int64_t b = 0; b < plan.blocks; ++b) {
        const Block block = NchwBlock(plan, b);
        StartStates(plan, x, block, first, count, shift, state);
        for (int64_t image = block.image; image < block.image + block.images; ++image) {
          const int64_t at = (image * c + other) * spatial;
          AddRowsToStatesWhileNormalizing(
              x + (image * c + first) * spatial, count, spatial, shift, state,
              {x + at, y + at, k.center + other, k.scale + other, k.bias + other,
               other_end - other, stream});
        }
        for (int64_t i = 0; i < count; ++i) {
          moments[i] = MergeMoments(moments[i], MomentsOfState(plan, x, first + i, block, shift[i],
                                                               state + i * kRunStateDoubles));
        }
      }
      if (count > 0) FinishGroup(plan, x, params, first, last, moments, k);
    };
    int64_t first = begin, last = std::min(end, begin + plan.group_size);
    read(first, last, 0, 0);
    while (first < end) {
      const int64_t next_last = std::min(end, last + plan.group_size);
      read(last, next_last, first, last);
      first = last;
      last = next_last;
    }
  });
}

void FusedTraining(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                   float* constants, float* y, const simdbn_threading* threading) {
  const TensorShape& s = plan.shape;
  const ChannelConstants k = ConstantsIn(plan, constants);
  const int64_t group_size = plan.group_size;
  const AffineArgs args = NormalizeArgs(plan, x, k, y, group_size * s.spatial, threading);
  ParallelFor(threading, s.c, 2 * s.bytes, [&](int64_t begin, int64_t end) {
    // Channels go in groups, so that the per-channel step and the normalization calls are
    // vectorized and batched across the group. Software pipelining: the statistics of the next
    // group are read from memory while this group is normalized from cache, block by block, so
    // that one core keeps both its reads and its writes in flight; groups of one channel (the
    // large channels, as beyond the LLC) interleave the two every few vectors, which keeps
    // them in flight at the same time (sums_while_normalizing.h). Each channel's blocks are
    // still merged in block order: neither the grouping nor the interleaving changes any bit.
    simdbn_moments moments[kMaxGroup];
    BlockSums sums[kMaxGroup];
    const auto start_group = [&](int64_t first, int64_t last) {
      std::fill(moments, moments + (last - first), simdbn_moments{0.0, 0.0, 0.0});
    };
    const auto accumulate = [&](int64_t first, int64_t last, const Block& block) {
      // All the sums first: a division waiting for each channel's sums as they end would
      // stall the loop (measured 17% of a call at c = 512, 4 x 7 x 7).
      for (int64_t ch = first; ch < last; ++ch) {
        SumsOfBlock(plan, x, ch, block, &sums[ch - first]);
      }
      for (int64_t ch = first; ch < last; ++ch) {
        moments[ch - first] = MergeMoments(moments[ch - first],
                                           MomentsOfBlock(plan, x, ch, block, sums[ch - first]));
      }
    };
    int64_t first = begin, last = std::min(end, begin + group_size);
    start_group(first, last);
    for (int64_t b = 0; b < plan.blocks; ++b) accumulate(first, last, NchwBlock(plan, b));
    while (first < end) {
      FinishGroup(plan, x, params, first, last, moments, k);
      const int64_t next_first = last, next_last = std::min(end, last + group_size);
      start_group(next_first, next_last);
      for (int64_t b = 0; b < plan.blocks; ++b) {
        const Block block = NchwBlock(plan, b);
        if (group_size == 1 && next_first < next_last) {
          SumsWhileNormalizing(plan, args, x, next_first, first, block, &sums[0]);
          moments[0] = MergeMoments(moments[0],
                                    MomentsOfBlock(plan, x, next_first, block, sums[0]));
          continue;
        }
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
