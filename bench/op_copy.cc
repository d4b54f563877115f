// The bandwidth ceiling: a plain copy of the bytes inference moves (read x, write y), split over
// the same number of threads, so each figure can be read as a fraction of what the machine moves.
#include <omp.h>

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bench/bench_util.h"
#include "kernels/cache.h"      // ShouldStream
#include "kernels/threading.h"  // kMinBytesPerThread

namespace simdbn_bench {
namespace {

// Waking a thread for less than kMinBytesPerThread costs more than it saves; without that floor
// the "ceiling" for small tensors would be pool overhead, not bandwidth. The library's own
// floor, so that both use the same threads.
using simdbn::kMinBytesPerThread;

// A copy with non-temporal stores moves 2 bytes per byte copied instead of 3 (no read for
// ownership of y). glibc's memcpy would decide this from sysconf's cache size, which
// some VMs misreport (256 MiB here): it then copies 100 MB tensors at 14 GB/s where streaming
// reaches 23 GB/s, and oneDNN beats the "ceiling".
void StreamCopy(char* dst, const char* src, size_t bytes) {
#if defined(__SSE2__)
  // 64-byte aligned blocks (see ParallelCopy) keep the 16-byte loads and stores aligned.
  size_t i = 0;
  for (; i + 64 <= bytes; i += 64) {
    const __m128i a = _mm_load_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    const __m128i c = _mm_load_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    const __m128i d = _mm_load_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  std::memcpy(dst + i, src + i, bytes - i);
  _mm_sfence();
#else
  std::memcpy(dst, src, bytes);
#endif
}

void ParallelCopy(float* dst, const float* src, size_t bytes, int max_threads, bool stream) {
  const auto copy = stream ? StreamCopy : [](char* d, const char* s, size_t n) {
    std::memcpy(d, s, n);
  };
  char* d = reinterpret_cast<char*>(dst);
  const char* s = reinterpret_cast<const char*>(src);
  const size_t useful = std::max<size_t>(1, 2 * bytes / kMinBytesPerThread);
  const int threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(max_threads), useful));
  if (threads <= 1) {
    copy(d, s, bytes);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    // Contiguous, cache-line aligned blocks: one sequential stream per thread.
    const size_t t = static_cast<size_t>(omp_get_thread_num());
    const size_t nt = static_cast<size_t>(omp_get_num_threads());
    const size_t lines = (bytes + 63) / 64;
    const size_t begin = std::min(bytes, lines * t / nt * 64);
    const size_t end = std::min(bytes, lines * (t + 1) / nt * 64);
    if (begin < end) copy(d + begin, s + begin, end - begin);
  }
}

void RegisterCopy(const Shape& shape, int threads) {
  const std::string name = "Copy/" + shape.Name() + "/threads:" + std::to_string(threads);
  RegisterCase(name, [shape, threads](benchmark::State& state) {
    const size_t elements = shape.Elements();
    const float* x = Buffer(kInput0, elements);
    float* y = Buffer(kOutput0, elements);
    const size_t bytes = elements * sizeof(float);
    // The library's rule for several threads: stream when x and y fill more than half the LLC.
    // Not its lower threshold for one thread: there memcpy (likely rep movsb, which writes whole
    // lines without reading them) copied 8 MB 12% faster than streaming.
    const bool stream = simdbn::ShouldStream(2 * bytes, static_cast<int64_t>(elements),
                                             simdbn::kThreadsUnknown);
    ParallelCopy(y, x, bytes, threads, stream);
    for (auto _ : state) {
      ParallelCopy(y, x, bytes, threads, stream);
      benchmark::ClobberMemory();
    }
    ReportTraffic(state, shape, 2.0);
    SetLabel(state, shape, stream ? "streaming copy" : "memcpy");
  });
}

[[maybe_unused]] const bool kRegistered = AddOp("Copy", RegisterCopy);

}  // namespace
}  // namespace simdbn_bench
