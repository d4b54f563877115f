// Scratch memory of one API call, carved from a buffer that the calling thread keeps between
// calls. Allocating it afresh per call cost more than the kernel on small tensors: a few
// hundred KiB freed at the top of the heap go back to the OS, and the next call pays a page
// fault per 4 KiB to get them again (measured: N=1, C=2048, 7x7 NHWC training 5x slower).
#ifndef SIMDBN_KERNELS_SCRATCH_H_
#define SIMDBN_KERNELS_SCRATCH_H_

#include <cstddef>
#include <limits>
#include <type_traits>

#include "kernels/status.h"
#include "simdbn/simdbn.h"

namespace simdbn {

class Scratch {
 public:
  // A thread keeps at most this much between calls; larger scratch is freed after the call
  // (its tensors are large enough that the page faults do not show).
  static constexpr size_t kKeepBytes = size_t{4} << 20;

  explicit Scratch(const char* fn);  // fn names the API function in messages
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // `count` uninitialized T, 64-byte aligned, valid until this Scratch is destroyed; or
  // SIMDBN_OUT_OF_MEMORY with a message.
  template <class T>
  simdbn_status Get(size_t count, T** out) {
    static_assert(std::is_trivial_v<T>, "scratch is raw memory");
    if (count > std::numeric_limits<size_t>::max() / sizeof(T)) {
      return OutOfMemory(count, sizeof(T));
    }
    void* p = Bytes(count * sizeof(T));
    if (p == nullptr) return OutOfMemory(count, sizeof(T));
    *out = static_cast<T*>(p);
    return SIMDBN_SUCCESS;
  }

 private:
  static constexpr size_t kMaxPieces = 8;

  void* Bytes(size_t bytes);
  simdbn_status OutOfMemory(size_t count, size_t size) const;

  const char* fn_;
  struct Arena* arena_;  // this thread's; null while an outer call on this thread holds it
  size_t used_ = 0;      // bytes of the arena handed out
  size_t total_ = 0;     // bytes handed out, arena or not
  void* own_[kMaxPieces] = {};  // pieces that did not fit in the arena
  size_t num_own_ = 0;
};

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_SCRATCH_H_
