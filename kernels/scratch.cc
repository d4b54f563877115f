#include "kernels/scratch.h"

#include <new>

namespace simdbn {
namespace {

constexpr size_t kAlign = 64;  // a cache line, and the widest vector

void* AllocateAligned(size_t bytes) {
  return ::operator new(bytes, std::align_val_t{kAlign}, std::nothrow);
}
void FreeAligned(void* p) { ::operator delete(p, std::align_val_t{kAlign}); }

}  // namespace

struct Arena {
  void* block = nullptr;
  size_t capacity = 0;
  bool busy = false;
  ~Arena() { FreeAligned(block); }
};

namespace {
thread_local Arena tls_arena;
}  // namespace

Scratch::Scratch(const char* fn) : fn_(fn), arena_(tls_arena.busy ? nullptr : &tls_arena) {
  if (arena_ != nullptr) arena_->busy = true;
}

Scratch::~Scratch() {
  for (size_t i = 0; i < num_own_; ++i) FreeAligned(own_[i]);
  if (arena_ == nullptr) return;
  // Next time everything fits in one block.
  if (total_ > arena_->capacity && total_ <= kKeepBytes) {
    void* bigger = AllocateAligned(total_);
    if (bigger != nullptr) {
      FreeAligned(arena_->block);
      arena_->block = bigger;
      arena_->capacity = total_;
    }
  }
  arena_->busy = false;
}

void* Scratch::Bytes(size_t bytes) {
  if (bytes > std::numeric_limits<size_t>::max() - kAlign) return nullptr;
  const size_t rounded = bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = nullptr;
  if (arena_ != nullptr && rounded <= arena_->capacity - used_) {
    p = static_cast<char*>(arena_->block) + used_;
    used_ += rounded;
  } else {
    if (num_own_ == kMaxPieces) return nullptr;
    p = AllocateAligned(rounded);
    if (p == nullptr) return nullptr;
    own_[num_own_++] = p;
  }
  total_ += rounded;  // cannot overflow: every piece counted was handed out
  return p;
}

simdbn_status Scratch::OutOfMemory(size_t count, size_t size) const {
  return Fail(SIMDBN_OUT_OF_MEMORY, "%s: cannot allocate %zu elements of %zu bytes of scratch",
              fn_, count, size);
}

}  // namespace simdbn
