// Fixed work items over a tensor viewed as `rows` rows of `cols` contiguous elements. The items
// depend only on the shape, never on the thread count: that is what makes reductions over them
// reproducible bit for bit (partials are merged in item order).
//
// An item is either a run of whole rows or, when one row alone is larger than an item, one
// piece of one row.
#ifndef SIMDBN_KERNELS_PARTITION_H_
#define SIMDBN_KERNELS_PARTITION_H_

#include <algorithm>
#include <cstdint>

namespace simdbn {

// About 64 KiB of f32 per item: enough to amortize the per-item overhead, small enough that a
// few hundred items balance well over threads.
inline constexpr int64_t kItemElements = int64_t{1} << 14;

// Reductions over pixels (rows of c channels) with fewer row blocks than kMinRowBlocks also cut
// the columns into pieces of at least kMinPieceWidth (a multiple of every vector length), so
// that threads can share a few wide rows (N = 1 at 7x7 with c = 2048).
inline constexpr int64_t kMinRowBlocks = 4;
inline constexpr int64_t kMinPieceWidth = 256;

// By-pixel tensors of at most kMaxFewPixels pixels (an (N, C) input with a small batch) are done
// a block of kFewPixelsBlock channels at a time, reduction and elementwise step together while
// the block's values are in L1: the general plans move per-channel partial sums, totals and
// periodic constant arrays through memory, which at N = 1 and C = 4096 cost four times
// oneDNN's whole call. Blocks are walked row by row: rows are often a multiple of 4 KiB apart
// (c = 1024-4096), so walking a few channels down the rows would put every row in the same L1
// set (3x slower at N = 16, C = 2048).
inline constexpr int64_t kMaxFewPixels = 16;
inline constexpr int64_t kFewPixelsBlock = 256;
// Training forward takes such blocks up to kMaxFewPixelsTraining pixels (N = 1 at 7x7 and 8x8):
// a block of 256 channels of 64 pixels (64 KiB) is still in L2 for its normalization, where the
// general plan reads x twice from L3. Measured at 1 thread with 49-64 pixels and c = 24-4096:
// 1.02-1.33x (c = 2048 at 7x7: 68 -> 56 us), and 1.13-1.56x at 2 threads; at 98-196 pixels it
// was 0.89-0.94x. Backward keeps 16: at 49-64 pixels its block plan measured 0.48-0.96x.
inline constexpr int64_t kMaxFewPixelsTraining = 64;
// NCHW tensors of at most kMaxNchwFewPixels pixels, in runs (images) of at most
// kMaxNchwFewPixelsRun, take the same plan, a block of channels copied into by-pixel rows and
// back: the NCHW plans pay a loop's start-up and a merge per channel and block, which the
// copies beat up to there (1.04-3.5x at 1 thread, N = 1-12 with 2-16 values per image and
// channel) but not at 32-64 pixels (0.71-0.93x) nor at N = 1 with 20-24 (0.76-0.9x).
inline constexpr int64_t kMaxNchwFewPixels = 24;
inline constexpr int64_t kMaxNchwFewPixelsRun = 16;

// Channels per work item of such a tensor of `pixels` rows: about kItemElements values, a
// whole number of 16 channels.
inline int64_t FewPixelsItemWidth(int64_t pixels) {
  return (std::max<int64_t>(kItemElements / pixels, kMinPieceWidth) + 15) / 16 * 16;
}

struct ColumnPieces {
  int64_t count;  // pieces per row block, 1 when the rows stay whole
  int64_t width;  // columns per piece (the last may be shorter), a multiple of `align`
};

// How to cut `cols` columns read in `row_blocks` row blocks: from the shape alone.
inline ColumnPieces PiecesOf(int64_t cols, int64_t row_blocks, int64_t align) {
  int64_t count = 1;
  if (row_blocks < kMinRowBlocks) {
    const int64_t blocks = std::max<int64_t>(row_blocks, 1);
    count = std::clamp<int64_t>(cols / kMinPieceWidth, 1, (kMinRowBlocks + blocks - 1) / blocks);
    // An even number of items, so that two threads get equal shares: three pieces of one row
    // block (N = 1 at 7x7, c = 768-1023) kept one of two threads idle for a piece's time, and
    // the frozen backward pass at c = 960 took as long on 2 threads as on 1 (4 pieces: 1.2x).
    if (count > 1 && count * blocks % 2 != 0) ++count;
  }
  const int64_t width = ((cols + count - 1) / count + align - 1) / align * align;
  return {(cols + width - 1) / width, width};
}

struct Slice {
  int64_t row_begin, row_end;  // rows [row_begin, row_end)
  int64_t col_begin, col_end;  // within each of them, elements [col_begin, col_end)
};

class Partition {
 public:
  Partition(int64_t rows, int64_t cols, int64_t item_elements = kItemElements)
      : rows_(rows), cols_(cols) {
    if (rows <= 0 || cols <= 0) return;
    if (cols >= item_elements) {
      pieces_per_row_ = (cols + item_elements - 1) / item_elements;
      // Pieces start on 64-byte boundaries relative to the row so that SIMD bodies stay long.
      piece_cols_ = ((cols + pieces_per_row_ - 1) / pieces_per_row_ + 15) / 16 * 16;
      pieces_per_row_ = (cols + piece_cols_ - 1) / piece_cols_;
      size_ = rows * pieces_per_row_;
    } else {
      rows_per_item_ = std::max<int64_t>(1, item_elements / cols);
      size_ = (rows + rows_per_item_ - 1) / rows_per_item_;
    }
  }

  int64_t size() const { return size_; }

  Slice operator[](int64_t item) const {
    if (pieces_per_row_ != 0) {
      const int64_t row = item / pieces_per_row_;
      const int64_t col = item % pieces_per_row_ * piece_cols_;
      return {row, row + 1, col, std::min(cols_, col + piece_cols_)};
    }
    const int64_t row = item * rows_per_item_;
    return {row, std::min(rows_, row + rows_per_item_), 0, cols_};
  }

 private:
  int64_t rows_, cols_;
  int64_t size_ = 0;
  int64_t pieces_per_row_ = 0, piece_cols_ = 0;  // rows split into pieces
  int64_t rows_per_item_ = 0;                    // or whole rows grouped
};

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_PARTITION_H_
