#include "kernels/threading.h"

#include <omp.h>

#include <algorithm>

namespace simdbn {

void RunItems(const simdbn_threading* threading, int64_t num_items, size_t traffic_bytes,
              simdbn_task_fn task, void* task_ctx) {
  if (num_items <= 0) return;
  const int requested = threading == nullptr ? 0 : threading->num_threads;
  const int64_t useful =
      std::min<int64_t>(num_items, static_cast<int64_t>(traffic_bytes / kMinBytesPerThread));
  if (requested == 1 || useful <= 1) {
    task(task_ctx, 0, num_items);
    return;
  }
  if (threading != nullptr && threading->parallel_for != nullptr) {
    threading->parallel_for(threading->pool_ctx, num_items, task, task_ctx);
    return;
  }
  const int available = requested == 0 ? omp_get_max_threads() : requested;
  const int threads = static_cast<int>(std::min<int64_t>(available, useful));
  if (threads <= 1) {
    task(task_ctx, 0, num_items);
    return;
  }
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
