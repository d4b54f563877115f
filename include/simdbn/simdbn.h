/* simdbn: SIMD batch normalization for CPUs. The C ABI.
 *
 * Semantics (per channel c, over the n * spatial values of that channel):
 *   inference: y = x * scale[c] + bias[c] (+ residual) (then ReLU if SIMDBN_RELU),
 *              with scale/bias from simdbn_fold_inference:
 *              scale = gamma / sqrt(var + eps), bias = beta - mean * scale.
 *   eps is added to the variance inside the square root (PyTorch, ONNX, oneDNN convention).
 *
 * Memory: NCHW stores x[(i * c + ch) * spatial + s]; NHWC stores x[(i * spatial + s) * c + ch].
 * spatial is H*W, D*H*W, L, or 1 for an (N, C) input. Element counts n * c * spatial must fit
 * in int64_t bytes. Pointers need only the element type's natural alignment.
 *
 * Outputs may alias an input exactly (in place); partial overlap is rejected.
 * NaN and Inf propagate (ReLU keeps NaN).
 *
 * Errors: every function validates its arguments and returns a status; on failure nothing
 * is written to any output and simdbn_last_error_message() says which argument was wrong.
 */
#ifndef SIMDBN_SIMDBN_H_
#define SIMDBN_SIMDBN_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum simdbn_status {
  SIMDBN_SUCCESS = 0,
  SIMDBN_INVALID_ARGUMENT = 1,
  SIMDBN_UNSUPPORTED = 2,
  SIMDBN_OUT_OF_MEMORY = 3
} simdbn_status;

typedef enum simdbn_layout { SIMDBN_NCHW = 0, SIMDBN_NHWC = 1 } simdbn_layout;
typedef enum simdbn_dtype { SIMDBN_F32 = 0, SIMDBN_BF16 = 1, SIMDBN_F16 = 2 } simdbn_dtype;

enum { SIMDBN_RELU = 1u }; /* flags */

typedef struct simdbn_tensor_desc {
  int64_t n, c, spatial; /* spatial: H*W, D*H*W, L, or 1 */
  simdbn_layout layout;
  simdbn_dtype dtype;
} simdbn_tensor_desc;

/* Runs task(task_ctx, begin, end) over sub-ranges that cover [0, n) exactly once. */
typedef void (*simdbn_task_fn)(void* task_ctx, int64_t begin, int64_t end);

typedef struct simdbn_threading {
  int num_threads; /* 0: all cores; 1: the calling thread only; k: at most k */
  /* Optional: run task over a partition of [0, n) on the caller's pool and return when all of
     it has run. NULL: the built-in pool. When set, simdbn starts no threads of its own. */
  void (*parallel_for)(void* pool_ctx, int64_t n, simdbn_task_fn task, void* task_ctx);
  void* pool_ctx;
} simdbn_threading; /* a NULL simdbn_threading* means {0, NULL, NULL} */

const char* simdbn_status_string(simdbn_status status);
/* This thread's last failure message, "" if none; a later success does not clear it. */
const char* simdbn_last_error_message(void);
/* The SIMD target the dispatcher picks on this CPU, e.g. "AVX2" or "AVX3". */
const char* simdbn_target_name(void);

/* scale = gamma / sqrt(running_var + eps), bias = beta - running_mean * scale, computed in double
 * and rounded once. gamma NULL means 1, beta NULL means 0. running_var must be >= 0 (NaN
 * propagates). scale and bias may alias an input exactly. */
simdbn_status simdbn_fold_inference(int64_t c, const float* gamma, const float* beta,
                                    const float* running_mean, const float* running_var,
                                    float eps, float* scale, float* bias);

/* y = x * scale[c] + bias[c] (+ residual) (ReLU if flags & SIMDBN_RELU), in one pass.
 * residual may be NULL; y may equal x or residual. */
simdbn_status simdbn_forward_inference(const simdbn_tensor_desc* desc, const void* x,
                                       const float* scale, const float* bias,
                                       const void* residual /* nullable */, void* y,
                                       unsigned flags, const simdbn_threading* threading);

/* ---- Training forward (see the training section of the README) ---- */

/* Batch statistics per channel over n * spatial values (mean, biased variance), then
 * y = (x - mean) * (gamma * invstd) + beta with invstd = 1 / sqrt(var + eps).
 * running_mean/running_var (nullable, updated in place, PyTorch convention):
 *   running = (1 - momentum) * running + momentum * batch, with the unbiased variance.
 * save_mean and save_invstd (c entries) are written for simdbn_backward. */
simdbn_status simdbn_forward_training(const simdbn_tensor_desc* desc, const void* x,
                                      const float* gamma, const float* beta, /* nullable: 1 / 0 */
                                      float eps, float momentum,
                                      float* running_mean, float* running_var, /* nullable */
                                      void* y, float* save_mean, float* save_invstd,
                                      const simdbn_threading* threading);

/* ---- Backward ---- */

/* dbeta = sum(dy), dgamma = sum(dy * (x - mean) * invstd),
 * dx = gamma * invstd * (dy - dbeta / M - (x - mean) * invstd * dgamma / M), M = n * spatial.
 * dgamma/dbeta nullable; gamma NULL means 1; dx may equal dy. */
simdbn_status simdbn_backward(const simdbn_tensor_desc* desc, const void* x, const void* dy,
                              const float* gamma, const float* save_mean, const float* save_invstd,
                              void* dx, float* dgamma, float* dbeta,
                              const simdbn_threading* threading);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SIMDBN_SIMDBN_H_ */
