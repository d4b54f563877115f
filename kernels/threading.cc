#include "kernels/threading.h"

#include <omp.h>

#include <algorithm>

namespace simdbn {

int MaxThreads(const simdbn_threading* threading) {
  const int requested = threading == nullptr ? 0 : threading->num_threads;
  if (requested == 1) return 1;
  if (threading != nullptr && threading->parallel_for != nullptr) return 0;
  return requested == 0 ? omp_get_max_threads() : requested;
}

void RunItems(const simdbn_threading* threading, int64_t num_items, size_t traffic_bytes,
              simdbn_task_fn task, void* task_ctx) {
  if (num_items <= 0) return;
  const int max_threads = MaxThreads(threading);
  const int64_t useful =
      std::min<int64_t>(num_items, static_cast<int64_t>(traffic_bytes / kMinBytesPerThread));
  if (max_threads == 1 || useful <= 1) {
    task(task_ctx, 0, num_items);
    return;
  }
  if (max_threads == 0) {
    threading->parallel_for(threading->pool_ctx, num_items, task, task_ctx);
    return;
  }
  const int threads = static_cast<int>(std::min<int64_t>(max_threads, useful));
#pragma omp parallel num_threads(threads)
  {
    // Contiguous blocks keep each thread's memory streams sequential.
    const int64_t t = omp_get_thread_num();
    const int64_t nt = omp_get_num_threads();
    const int64_t begin = num_items * t / nt;
    const int64_t end = num_items * (t + 1) / nt;
    if (begin < end) task(task_ctx, begin, end);
  }
}

}  // namespace simdbn
