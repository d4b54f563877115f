// simdbn for C++: the C ABI with shapes, options and exceptions. Header-only, no extra state:
// every call forwards to the C function of the same name (see simdbn.h for the semantics).
#ifndef SIMDBN_SIMDBN_HPP_
#define SIMDBN_SIMDBN_HPP_

#include <cstdint>
#include <stdexcept>
#include <string>

#include "simdbn/simdbn.h"

namespace simdbn {

// Thrown for any status other than SIMDBN_SUCCESS; what() is the library's message.
class Error : public std::runtime_error {
 public:
  Error(simdbn_status status, const char* message)
      : std::runtime_error(message), status_(status) {}
  simdbn_status status() const noexcept { return status_; }

 private:
  simdbn_status status_;
};

inline void ThrowIfError(simdbn_status status) {
  if (status != SIMDBN_SUCCESS) throw Error(status, simdbn_last_error_message());
}

enum class Layout { kNCHW = SIMDBN_NCHW, kNHWC = SIMDBN_NHWC };

struct Shape {
  int64_t n = 0, c = 0, spatial = 1;  // spatial: H*W, D*H*W, L, or 1
  Layout layout = Layout::kNCHW;

  int64_t size() const { return n * c * spatial; }
  simdbn_tensor_desc desc(simdbn_dtype dtype = SIMDBN_F32) const {
    return {n, c, spatial, static_cast<simdbn_layout>(layout), dtype};
  }
};

// Threading for a caller's pool: `pool(n, task)` must run task(begin, end) over sub-ranges that
// cover [0, n) and return when all have run. The pool must outlive the returned value's use.
template <class Pool>
simdbn_threading UsePool(Pool& pool, int num_threads = 0) {
  return {num_threads,
          [](void* pool_ctx, int64_t n, simdbn_task_fn task, void* task_ctx) {
            (*static_cast<Pool*>(pool_ctx))(
                n, [task, task_ctx](int64_t begin, int64_t end) { task(task_ctx, begin, end); });
          },
          &pool};
}
inline simdbn_threading CallingThreadOnly() { return {1, nullptr, nullptr}; }

inline std::string TargetName() { return simdbn_target_name(); }

// scale and bias (c entries each) from running statistics; gamma/beta may be null (1 / 0).
inline void FoldInference(int64_t c, const float* gamma, const float* beta,
                          const float* running_mean, const float* running_var, float eps,
                          float* scale, float* bias) {
  ThrowIfError(
      simdbn_fold_inference(c, gamma, beta, running_mean, running_var, eps, scale, bias));
}

struct InferenceOptions {
  const float* residual = nullptr;  // added after the affine map, before ReLU
  bool relu = false;
  const simdbn_threading* threading = nullptr;  // null: all cores
};

inline void ForwardInference(const Shape& shape, const float* x, const float* scale,
                             const float* bias, float* y, const InferenceOptions& options = {}) {
  const simdbn_tensor_desc desc = shape.desc();
  const unsigned flags = options.relu ? static_cast<unsigned>(SIMDBN_RELU) : 0u;
  ThrowIfError(simdbn_forward_inference(&desc, x, scale, bias, options.residual, y, flags,
                                        options.threading));
}

// ---- Training forward ----

// (count, mean, m2) of one channel; {0, 0, 0} is the empty set.
using Moments = simdbn_moments;

struct TrainingOptions {
  const float* gamma = nullptr;   // null: 1
  const float* beta = nullptr;    // null: 0
  float eps = 1e-5f;
  float momentum = 0.1f;          // PyTorch convention: weight of the batch statistics
  float* running_mean = nullptr;  // updated in place when set
  float* running_var = nullptr;   // updated in place (unbiased batch variance) when set
  const simdbn_threading* threading = nullptr;  // null: all cores
};

// Batch statistics, normalization, running statistics; save_mean/save_invstd: c entries each.
inline void ForwardTraining(const Shape& shape, const float* x, float* y, float* save_mean,
                            float* save_invstd, const TrainingOptions& options = {}) {
  const simdbn_tensor_desc desc = shape.desc();
  ThrowIfError(simdbn_forward_training(&desc, x, options.gamma, options.beta, options.eps,
                                       options.momentum, options.running_mean,
                                       options.running_var, y, save_mean, save_invstd,
                                       options.threading));
}

// moments: c entries, the statistics ForwardTraining would use.
inline void BatchMoments(const Shape& shape, const float* x, Moments* moments,
                         const simdbn_threading* threading = nullptr) {
  const simdbn_tensor_desc desc = shape.desc();
  ThrowIfError(simdbn_batch_moments(&desc, x, moments, threading));
}

// out = a merged with b (Chan's formula), c entries; out may be a or b.
inline void MergeMoments(int64_t c, const Moments* a, const Moments* b, Moments* out) {
  ThrowIfError(simdbn_merge_moments(c, a, b, out));
}

// ForwardTraining with the statistics given by moments (e.g. merged across processes: SyncBN).
inline void ForwardTrainingMoments(const Shape& shape, const float* x, const Moments* moments,
                                   float* y, float* save_mean, float* save_invstd,
                                   const TrainingOptions& options = {}) {
  const simdbn_tensor_desc desc = shape.desc();
  ThrowIfError(simdbn_forward_training_moments(&desc, x, moments, options.gamma, options.beta,
                                               options.eps, options.momentum,
                                               options.running_mean, options.running_var, y,
                                               save_mean, save_invstd, options.threading));
}

// ---- Backward ----

struct BackwardOptions {
  const float* gamma = nullptr;  // null: 1
  float* dgamma = nullptr;       // written when set (c entries)
  float* dbeta = nullptr;        // written when set (c entries)
  bool frozen = false;  // statistics are constants (eval-mode fine-tuning): dx = dy*gamma*invstd
  const simdbn_threading* threading = nullptr;  // null: all cores
};

// dx from dy with the save_mean/save_invstd of ForwardTraining (or, frozen, the running
// statistics as mean and 1 / sqrt(var + eps)). dx may be dy.
inline void Backward(const Shape& shape, const float* x, const float* dy, const float* save_mean,
                     const float* save_invstd, float* dx, const BackwardOptions& options = {}) {
  const simdbn_tensor_desc desc = shape.desc();
  ThrowIfError((options.frozen ? simdbn_backward_frozen : simdbn_backward)(
      &desc, x, dy, options.gamma, save_mean, save_invstd, dx, options.dgamma, options.dbeta,
      options.threading));
}

}  // namespace simdbn

#endif  // SIMDBN_SIMDBN_HPP_
