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
  }
  p->stats_doubles = static_cast<size_t>(2 * p->blocks * p->shape.c);
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
  p->items = std::max<int64_t>(1, (p->super_rows + p->rows_per_item - 1) / p->rows_per_item);
  // Shifts, two partial sums per column and item, and the two sums of every channel.
  p->stats_doubles = static_cast<size_t>(p->period_pad * (1 + 2 * p->items) + 2 * c);
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

ShiftedSums BlockSums(const TrainingPlan& p, const float* x, int64_t ch, const Block& block,
                      float shift) {
  const int64_t c = p.shape.c, spatial = p.shape.spatial;
  return RunSums(x + (block.image * c + ch) * spatial + block.col, block.images, c * spatial,
                 block.len, shift);
}

float NchwShift(const TrainingPlan& p, const float* x, int64_t ch) {
  return ShiftFor(x[ch * p.shape.spatial]);
}

void Accumulate(const ShiftedSums& part, ShiftedSums* total) {
  total->s1 += part.s1;
  total->s2 += part.s2;
}

void NchwBatchMoments(const TrainingPlan& p, const float* x, double* partials,
                      simdbn_moments* moments, const simdbn_threading* threading) {
  const int64_t c = p.shape.c;
  // Item b * c + ch: consecutive items walk the tensor in memory order.
  ParallelFor(threading, p.blocks * c, p.shape.bytes, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / c, ch = item % c;
      const ShiftedSums sums = BlockSums(p, x, ch, NchwBlock(p, b), NchwShift(p, x, ch));
      partials[2 * (ch * p.blocks + b)] = sums.s1;
      partials[2 * (ch * p.blocks + b) + 1] = sums.s2;
    }
  });
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
  double* sum1 = partials + 2 * pad * p.items;
  double* sum2 = sum1 + c;
  // Every column of a channel uses that channel's first value, so all partials add up.
  for (int64_t j = 0; j < period; j += c) {
    for (int64_t ch = 0; ch < c; ++ch) shift[j + ch] = ShiftFor(x[ch]);
  }
  std::fill(shift + period, shift + pad, 0.0);

  ParallelFor(threading, p.items, p.shape.bytes, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      double* s1 = partials + 2 * pad * item;
      double* s2 = s1 + pad;
      std::fill(s1, s1 + 2 * pad, 0.0);
      const int64_t row = item * p.rows_per_item;
      const int64_t rows = std::min(p.rows_per_item, p.super_rows - row);
      if (rows > 0) ColumnSums(x + row * period, rows, period, period, shift, s1, s2);
      if (item + 1 == p.items && p.tail_cols > 0) {
        ColumnSums(x + p.super_rows * period, 1, period, p.tail_cols, shift, s1, s2);
      }
    }
  });
  // Item by item, then column by column within a super-row: a fixed order.
  std::fill(sum1, sum1 + 2 * c, 0.0);
  for (int64_t item = 0; item < p.items; ++item) {
    const double* s1 = partials + 2 * pad * item;
    const double* s2 = s1 + pad;
    for (int64_t k = 0; k < period; k += c) AddTo(s1 + k, s2 + k, c, sum1, sum2);
  }
  const double count = static_cast<double>(Pixels(p.shape));
  for (int64_t ch = 0; ch < c; ++ch) {
    moments[ch] =
        MomentsFromSums(count, static_cast<float>(shift[ch]), ShiftedSums{sum1[ch], sum2[ch]});
  }
}

// Per-channel constants in the scratch: center, scale, bias (c each), then for by_pixel their
// periodic forms (PeriodicSize(c) each, see affine.h).
struct Constants {
  float *center, *scale, *bias;
  Constants(const TrainingPlan& p, float* scratch)
      : center(scratch), scale(scratch + p.shape.c), bias(scratch + 2 * p.shape.c) {}
};

void FinalizeChannel(const ChannelParams& p, int64_t ch, const simdbn_moments& m,
                     const Constants& k) {
  // Every input of channel ch is read before any of its outputs is written: exact aliasing of
  // gamma/beta with an output is safe.
  const double gamma = p.gamma != nullptr ? p.gamma[ch] : 1.0;
  const double beta = p.beta != nullptr ? p.beta[ch] : 0.0;
  const double running_mean = p.running_mean != nullptr ? p.running_mean[ch] : 0.0;
  const double running_var = p.running_var != nullptr ? p.running_var[ch] : 0.0;
  const double momentum = p.momentum;
  const double invstd = 1.0 / std::sqrt(m.m2 / m.count + static_cast<double>(p.eps));
  const float mean = static_cast<float>(m.mean);
  if (p.running_mean != nullptr) {
    p.running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean + momentum * m.mean);
  }
  if (p.running_var != nullptr) {
    const double unbiased = m.m2 / (m.count - 1.0);
    p.running_var[ch] = static_cast<float>((1.0 - momentum) * running_var + momentum * unbiased);
  }
  p.save_mean[ch] = mean;
  p.save_invstd[ch] = static_cast<float>(invstd);
  // The map subtracts the f32 mean the backward pass will see, then one FMA.
  k.center[ch] = mean;
  k.scale[ch] = static_cast<float>(gamma * invstd);
  k.bias[ch] = static_cast<float>(beta);
}

AffineArgs NormalizeArgs(const TrainingPlan& p, const float* x, const Constants& k, float* y) {
  AffineArgs args{};
  args.x = x;
  args.y = y;
  args.center = k.center;
  args.scale = k.scale;
  args.bias = k.bias;
  args.c = p.shape.c;
  args.cols = p.by_pixel ? p.shape.c : p.shape.spatial;
  args.stream = ShouldStream(2 * p.shape.bytes, p.by_pixel ? p.shape.elements : p.shape.spatial);
  return args;
}

}  // namespace

TrainingPlan PlanTraining(const TensorShape& shape) {
  TrainingPlan p;
  p.shape = shape;
  // With spatial == 1 both layouts are the same (n, c) matrix, best walked a pixel at a time.
  p.by_pixel = shape.layout == SIMDBN_NHWC || shape.spatial == 1;
  const int64_t c = shape.c;
  p.constant_floats = static_cast<size_t>(3 * c + (p.by_pixel ? 3 * PeriodicSize(c) : 0));
  if (Pixels(shape) == 0) return p;
  if (p.by_pixel) {
    PlanNhwcItems(&p);
  } else {
    PlanNchwBlocks(&p);
    p.fused = static_cast<size_t>(Pixels(shape)) * sizeof(float) <= kFusedChannelBytes;
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
  const Constants k(plan, constants);
  for (int64_t ch = 0; ch < s.c; ++ch) FinalizeChannel(params, ch, moments[ch], k);
  if (s.elements == 0) return;

  AffineArgs args = NormalizeArgs(plan, x, k, y);
  if (plan.by_pixel) {
    float* periodic = constants + 3 * s.c;
    const int64_t stride = PeriodicSize(s.c);
    MakePeriodic(k.center, s.c, periodic);
    MakePeriodic(k.scale, s.c, periodic + stride);
    MakePeriodic(k.bias, s.c, periodic + 2 * stride);
    args.center = periodic;
    args.scale = periodic + stride;
    args.bias = periodic + 2 * stride;
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
  const Constants k(plan, constants);
  const AffineArgs args = NormalizeArgs(plan, x, k, y);
  const double count = static_cast<double>(Pixels(s));
  ParallelFor(threading, s.c, 2 * s.bytes, [&](int64_t begin, int64_t end) {
    // Software pipelining: the statistics of the next channel are read from memory while this
    // channel is normalized from cache, block by block, so that one core keeps both its reads
    // and its writes in flight. Each channel's blocks are still summed in block order.
    float shift = NchwShift(plan, x, begin);
    ShiftedSums sums;
    for (int64_t b = 0; b < plan.blocks; ++b) {
      Accumulate(BlockSums(plan, x, begin, NchwBlock(plan, b), shift), &sums);
    }
    for (int64_t ch = begin; ch < end; ++ch) {
      FinalizeChannel(params, ch, MomentsFromSums(count, shift, sums), k);
      const bool has_next = ch + 1 < end;
      shift = has_next ? NchwShift(plan, x, ch + 1) : 0.0f;
      sums = ShiftedSums();
      for (int64_t b = 0; b < plan.blocks; ++b) {
        const Block block = NchwBlock(plan, b);
        if (has_next) Accumulate(BlockSums(plan, x, ch + 1, block, shift), &sums);
        for (int64_t image = block.image; image < block.image + block.images; ++image) {
          const int64_t row = image * s.c + ch;
          AffineNchw(args, Slice{row, row + 1, block.col, block.col + block.len});
        }
      }
    }
  });
}

}  // namespace simdbn
