/* simdbn: SIMD batch normalization for CPUs. The C ABI.
 *
 * Semantics (per channel c, over the n * spatial values of that channel):
 *   inference: y = x * scale[c] + bias[c] (+ residual) (then ReLU if SIMDBN_RELU),
 *              with scale/bias from simdbn_fold_inference:
 *              scale = gamma / sqrt(var + eps), bias = beta - mean * scale.
 *   eps (finite, >= 0) is added to the variance inside the square root (PyTorch, ONNX, oneDNN
 *   convention).
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
  int num_threads; /* 0: all cores; 1: the calling thread only; k: at most k; < 0: invalid */
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
 * and rounded once to f32: scale is the correctly rounded value unless the exact one lies within
 * about 2^-51 (relative) of the midpoint between two floats, and bias is within half an ulp plus
 * about 2^-51 |running_mean * scale| (where the two terms cancel). gamma NULL means 1, beta NULL
 * means 0. running_var must be >= 0 (NaN propagates). scale and bias may alias an input
 * exactly. */
simdbn_status simdbn_fold_inference(int64_t c, const float* gamma, const float* beta,
                                    const float* running_mean, const float* running_var,
                                    float eps, float* scale, float* bias);

/* y = x * scale[c] + bias[c] (+ residual) (ReLU if flags & SIMDBN_RELU), in one pass.
 * residual may be NULL; y may equal x or residual. */
simdbn_status simdbn_forward_inference(const simdbn_tensor_desc* desc, const void* x,
                                       const float* scale, const float* bias,
                                       const void* residual /* nullable */, void* y,
                                       unsigned flags, const simdbn_threading* threading);

/* ---- Training forward (details: docs/training.md) ---- */

/* Batch statistics per channel over M = n * spatial values (mean, biased variance M2 / M), then
 * y = (x - mean) * (gamma * invstd) + beta with invstd = 1 / sqrt(var + eps), where mean is
 * the f32 save_mean: the subtraction comes first, so data far from zero keeps its digits.
 * invstd is 1 / sqrt(var32 + eps) in f32, var32 the variance rounded once to f32 (within 3 ulp).
 * The statistics are computed in double: each fixed chunk of at most 32K values of a channel
 * gives its (count, mean, M2) from sums about its own first value, and the chunks are merged
 * by Chan's formula in a fixed order. mean is the double mean rounded to f32: within half an
 * f32 ulp of the exact mean plus the double sums' rounding, which is far below an f32 ulp of
 * max|x| but shows where the mean is tiny next to the values (e.g. 2^-56 for an exact 0 among
 * values of +-2); the variance before its rounding to f32 is within about 5e-15 relative
 * (measured at mean 1e6, std 1; an outlier of 1e5 among 4M standard normal values leaves
 * 3e-11), far below f32 precision.
 * Results are bit-for-bit the same for any threading.
 *
 * running_mean/running_var (nullable, updated in place, PyTorch convention):
 *   running_mean = (1 - momentum) * running_mean + momentum * mean
 *   running_var  = (1 - momentum) * running_var  + momentum * M2 / (M - 1)  (unbiased)
 * running_mean computed in double and rounded once; running_var in f32, the unbiased variance
 * as var32 * fl(M / (M - 1)) (within 6 f32 ulp). ONNX BatchNormalization (training_mode)
 * differs: its momentum weights the old value (ONNX momentum = 1 - PyTorch momentum) and its
 * running_var uses the biased variance M2 / M. oneDNN updates no running statistics.
 * save_mean and save_invstd (c entries) are written for simdbn_backward.
 *
 * Errors (SIMDBN_INVALID_ARGUMENT, nothing written): momentum outside [0, 1] or NaN, and
 * M = n * spatial < 2 (the statistics of an empty batch and the unbiased variance of one value
 * are undefined; PyTorch refuses both too). NaN in a channel makes its statistics and outputs
 * NaN; +-Inf makes its mean +-Inf and its variance NaN. y may equal x. gamma, beta may alias
 * save_mean, save_invstd, running_mean or running_var exactly (each channel's inputs are read
 * before its outputs are written). */
simdbn_status simdbn_forward_training(const simdbn_tensor_desc* desc, const void* x,
                                      const float* gamma, const float* beta, /* nullable: 1 / 0 */
                                      float eps, float momentum,
                                      float* running_mean, float* running_var, /* nullable */
                                      void* y, float* save_mean, float* save_invstd,
                                      const simdbn_threading* threading);

/* Mergeable moments of one channel: count values with mean `mean` and sum of squared
 * deviations from the mean `m2` (the biased variance is m2 / count, the unbiased one
 * m2 / (count - 1)). count is a double so that it merges without overflow; it is exact up to
 * 2^53 values. {0, 0, 0} is the moments of no values and the identity of the merge. */
typedef struct simdbn_moments {
  double count;
  double mean;
  double m2;
} simdbn_moments;

/* moments[c] = the per-channel moments of x (n * spatial values each), computed exactly as
 * simdbn_forward_training computes its statistics: simdbn_forward_training_moments with these
 * moments gives the same bits as simdbn_forward_training, NaN results aside (NaN in both, but
 * a NaN's sign and payload depend on which operation made it: with NaN and +-Inf in one
 * channel they can differ). n * spatial == 0 gives {0, 0, 0}. */
simdbn_status simdbn_batch_moments(const simdbn_tensor_desc* desc, const void* x,
                                   simdbn_moments* moments, const simdbn_threading* threading);

/* out[i] = moments of the union of the values behind a[i] and b[i] (Chan et al.):
 *   count = ca + cb, delta = mean_b - mean_a, mean = mean_a + delta * cb / count,
 *   m2 = m2_a + m2_b + delta^2 * ca * cb / count,  in double.
 * A side with count 0 yields the other side unchanged. Where delta is not finite (an infinite
 * mean), mean = mean_a * ca / count + mean_b * cb / count: Inf stays Inf, +Inf with -Inf is NaN.
 * Merging is exact up to rounding but not associative in the last bits: to get the same
 * statistics on every process (SyncBN), merge all partial moments in one agreed order (e.g. by
 * rank). out may equal a or b. Counts must be finite and >= 0, m2 >= 0 (NaN propagates). */
simdbn_status simdbn_merge_moments(int64_t c, const simdbn_moments* a, const simdbn_moments* b,
                                   simdbn_moments* out);

/* simdbn_forward_training with the statistics taken from moments[c] instead of from x: e.g.
 * the merged moments of every process's batch (SyncBN), or exact whole-dataset statistics.
 * Running statistics and save_mean/save_invstd are updated from moments exactly as
 * simdbn_forward_training does. Every moments[i].count must be finite and > 1 and m2 >= 0 (or
 * NaN); x may be empty (n * spatial == 0: only the per-channel outputs are written). */
simdbn_status simdbn_forward_training_moments(const simdbn_tensor_desc* desc, const void* x,
                                              const simdbn_moments* moments,
                                              const float* gamma, const float* beta,
                                              float eps, float momentum,
                                              float* running_mean, float* running_var,
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

/* The same with frozen statistics (fine-tuning with BN in eval mode; oneDNN's use_global_stats):
 * the statistics are constants, so dx = dy * gamma * invstd; dgamma and dbeta as above.
 * Pass the running statistics: save_mean = running_mean,
 * save_invstd = 1 / sqrt(running_var + eps) (computed by the caller, e.g. in double).
 * When dgamma and dbeta are both NULL only dy is read (x must still be a valid pointer). */
simdbn_status simdbn_backward_frozen(const simdbn_tensor_desc* desc, const void* x,
                                     const void* dy, const float* gamma, const float* save_mean,
                                     const float* save_invstd, void* dx, float* dgamma,
                                     float* dbeta, const simdbn_threading* threading);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SIMDBN_SIMDBN_H_ */
