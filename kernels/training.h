// The driver of training forward: statistics over fixed blocks of the tensor merged in a fixed
// order (so every threading gives the same bits), the per-channel outputs, and normalization
// through the affine map with the batch mean as its center.
#ifndef SIMDBN_KERNELS_TRAINING_H_
#define SIMDBN_KERNELS_TRAINING_H_

#include <cstddef>
#include <cstdint>

#include "kernels/finalize.h"
#include "kernels/partition.h"
#include "kernels/validate.h"
#include "simdbn/simdbn.h"

namespace simdbn {

// NCHW: one partial sum per block of about this many elements of a channel (128 KiB).
inline constexpr int64_t kNchwBlockElements = int64_t{1} << 15;
// NCHW blocks of whole images whose rows are at least this long are read image by image
// (their channels' runs are far apart otherwise: 32 runs 1.6 MiB apart read at half the
// bandwidth); shorter rows would spend more on moving the state than on the data.
inline constexpr int64_t kMinStateRow = 256;
inline constexpr int64_t kMaxChunk = 64;
// NHWC: one item of the statistics pass reads at least this many elements (256 KiB), and at
// least kMinPixelsPerItem pixels so that its c partial sums (zeroed, written, then read by the
// merge) stay small next to its data; the row blocks are then made of equal size, and their
// number a multiple of kBalancedBlocks, so that 2 or 4 threads get equal shares. With 32
// pixels per item at c = 2048 those sums were a quarter of the data's bytes: 128 pixels made
// the statistics 1.10x as fast (N=32 at 7x7), and training at c = 960-2048 1.07-1.25x.
inline constexpr int64_t kNhwcItemElements = int64_t{1} << 16;
inline constexpr int64_t kMinPixelsPerItem = 128;
inline constexpr int64_t kBalancedBlocks = 4;
// Statistics are merged by Chan's formula from chunks of a channel's values, each summed about
// its own first value: NCHW blocks (at most kNchwBlockElements values), and NHWC row blocks
// grouped into chunks of at most kChunkRows super-rows (a column's values in a chunk). Wide
// rows make small row blocks (128 pixels at c = 2048): with blocks of 32 pixels, a merge per
// row block and column (three divisions) made training 18-26% slower than summing a chunk's
// blocks first.
inline constexpr int64_t kChunkRows = kNchwBlockElements;
// Channels per work item when the chunks' column sums are merged into moments: a multiple of
// kColumnPad.
inline constexpr int64_t kMergeChannels = 256;
// NCHW channels up to this size are normalized right after their statistics, by the thread that
// computed them, while their data is still in its cache: x is read from memory once. Either
// way the bits are the same (see BatchMoments).
// - Where the output stays in cache, only channels of at most kMaxFusedImages images: a channel
//   of more images is that many short runs far apart, which the prefetchers follow poorly, and
//   reading the tensor twice in memory order was faster (N=32 at 14x14: 0.47 ms against 0.59
//   fused). With the lockstep below, fusing N = 8-32 in cache measured 0.85-1.23x: not taken.
// - Where the output bypasses the cache (kernels/cache.h), any number of images, each run of
//   the next channel summed in lockstep with the normalization of the channel before
//   (sums_while_normalizing.h), but only if the runs are long enough to stream
//   (kMinStreamRun): at 28x28 fusing N = 32-64 measured 0.74-0.98x. Alternating the plans on
//   the same data, medians of 5-7 runs of 7-9 calls, 1 and 2 threads: N = 8-32 at 56x56 and
//   112x112, 9.6-103 MB, 1.09-1.66x (one 0.99x); channels of 3.2 MB (N = 64 at 112x112, N = 16
//   at 224x224) 1.12-1.42x. The channel must still be in the LLC when its normalization reads
//   it, a channel's reading later on every thread: channels of 6.4 MB still gained 1.11-1.40x
//   here (2 threads, 32 MiB), but a server core's share of its LLC is about 1.5-4 MB.
inline constexpr size_t kFusedChannelBytes = size_t{1} << 22;
inline constexpr int64_t kMaxFusedImages = 4;
// Beyond the LLC, channels whose runs are too short to stream alone (kMinStreamRun: 14x14 to
// 28x28) are fused in groups of up to kImageGroupBytes (at least kMinImageGroup channels),
// read image by image: per image the group is one contiguous run, where a channel alone is N
// short runs far apart (fusing those measured 0.74-0.98x, above). The statistics of each group
// are read in lockstep with the normalization of the group before, whose rows of the same
// image are normalized as one run (sums_while_normalizing.h). Against the two-pass plan,
// alternating builds in one session (medians of 5 runs of 7 calls, 1 / 2 threads): N = 32 at
// 28x28, c = 192-512, 1.21-1.52x / 1.31-1.36x; N = 64 at 28x28 1.17 / 1.37x; N = 32 and 64 at
// 14x14 1.30-1.44x / 1.18-1.32x; N = 16 at 24x24 0.96 / 1.30x; N = 32 at 17x17 1.03 / 1.32x.
// Shorter rows lost at 1 thread (each row moves the channel's accumulators through memory):
// 12x12 0.85x, 7x7 0.76x. With rows normalized one by one (the first version), groups of 0.5
// and 1 MiB did worse at N = 64 and 28x28 (two channels per group of 0.5 MiB: 2.4x
// inference), 4 MiB no better.
inline constexpr int64_t kImageGroupBytes = int64_t{1} << 21;
inline constexpr int64_t kMinImageGroup = 4;
inline constexpr int64_t kMinImageRow = 192;
// Fused channels go in groups of up to kMaxGroup channels of about this many bytes in all
// (channels smaller than kFusedGroupBytes / kMaxGroup share one group).
inline constexpr int64_t kFusedGroupBytes = int64_t{1} << 15;
inline constexpr int64_t kMaxGroup = 16;

// How a job is cut into work items. Depends on the shape (and, for fusing, on whether the
// output bypasses the cache), never on the threads.
struct TrainingPlan {
  TensorShape shape;
  bool by_pixel = false;  // NHWC, or spatial == 1: rows are pixels of c channels
  // By pixel with at most kMaxFewPixelsTraining pixels, or NCHW with at most
  // kMaxNchwFewPixels in runs of at most kMaxNchwFewPixelsRun (partition.h): blocks of
  // channels, each one's statistics and normalization in one go (FewPixelsTraining).
  bool few_pixels = false;
  bool fused = false;     // NCHW channels small enough for kFusedChannelBytes
  int64_t group_size = 1;  // fused channels per group
  // Fused groups read image by image (as AddRowsToStates reads them), each group's statistics
  // in lockstep with the normalization of the group before: see FusedImageByImage.
  bool image_by_image = false;

  // NCHW statistics: each channel is `blocks` blocks, each either `block_images` whole rows
  // (piece_cols == 0) or one piece of `piece_cols` elements of one row.
  int64_t blocks = 0, block_images = 0, piece_cols = 0, pieces_per_row = 0;
  // Blocks of whole images with rows of at least kMinStateRow are read in memory order:
  // items of `chunk` channels of one block, image by image (see AddRowsToStates).
  int64_t chunk = 0;  // 0: one item per channel and block instead

  // NHWC statistics: "super-rows" of `period` = k * c elements (k pixels, so that short
  // channel counts still fill whole vectors), `rows_per_item` of them per row block; the last
  // row block also takes the `tail_cols` elements of the pixels that make no whole super-row.
  // Few wide rows (N = 1 at 7x7 and c = 2048) are also cut into `col_pieces` pieces of
  // `piece_width` columns, so that threads can share them: item = block * col_pieces + piece.
  int64_t period = 0, period_pad = 0, super_rows = 0, tail_cols = 0, rows_per_item = 0,
          row_blocks = 0, col_pieces = 1, piece_width = 0, items = 0;
  // Row blocks whose sums share one shift per column and merge as one chunk.
  int64_t blocks_per_chunk = 1, chunks = 0;

  size_t stats_doubles = 0;    // scratch of BatchMoments
  size_t constant_floats = 0;  // scratch of the normalization (per-channel constants)
};

TrainingPlan PlanTraining(const TensorShape& shape);

// moments[c] of a non-empty tensor. stats: plan.stats_doubles entries. The same bits as the
// statistics of FusedTraining, for any threading.
void BatchMoments(const TrainingPlan& plan, const float* x, double* stats, simdbn_moments* moments,
                  const simdbn_threading* threading);

// Writes every per-channel output from moments[c] (count > 1 each), then normalizes x into y
// (if the tensor is not empty). constants: plan.constant_floats entries.
void TrainWithMoments(const TrainingPlan& plan, const float* x, const simdbn_moments* moments,
                      const ChannelParams& params, float* constants, float* y,
                      const simdbn_threading* threading);

// The rows of a tensor of few pixels: by pixel (spatial == 0), pixel p of channel ch at
// x[p * c + ch]; or NCHW, pixel p = i * spatial + j at x[(i * c + ch) * spatial + j], which
// the kernels copy a block of channels at a time into by-pixel rows.
struct FewPixelsRows {
  const float* x;
  int64_t pixels, c;
  int64_t spatial = 0;
};
// moments[ch] for ch in [begin, end): each channel's values are one chunk (see moments.h).
void FewPixelsMoments(const FewPixelsRows& rows, int64_t begin, int64_t end,
                      simdbn_moments* moments);
// Training forward of channels [begin, end), a block of channels at a time: the moments as
// FewPixelsMoments, FinalizeChannels, then y as TrainWithMoments normalizes it (the same bits
// as those two calls). y may be x.
void FewPixelsTraining(const FewPixelsRows& rows, int64_t begin, int64_t end,
                       const ChannelParams& params, float* y);

// The whole of training forward for plan.few_pixels (non-empty).
void TrainFewPixels(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                    float* y, const simdbn_threading* threading);

// FusedTraining of plan.image_by_image: groups of channels read image by image, the
// statistics of each in lockstep with the normalization of the group before (the same bits).
// states: c * kRunStateDoubles doubles, 64-byte aligned.
void FusedImageByImage(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                       float* constants, double* states, float* y,
                       const simdbn_threading* threading);

// Statistics and normalization of each channel in one work item (plan.fused, non-empty).
void FusedTraining(const TrainingPlan& plan, const float* x, const ChannelParams& params,
                   float* constants, float* y, const simdbn_threading* threading);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_TRAINING_H_
