// Entry points of training forward: simdbn_forward_training, simdbn_batch_moments,
// simdbn_merge_moments and simdbn_forward_training_moments.
#include <cinttypes>
#include <cmath>
#include <limits>
#include <utility>

#include "kernels/affine.h"
#include "kernels/moments.h"
#include "kernels/scratch.h"
#include "kernels/status.h"
#include "kernels/training.h"
#include "kernels/validate.h"
#include "simdbn/simdbn.h"

namespace simdbn {
namespace {

simdbn_status CheckMomentum(const char* fn, float momentum) {
  if (momentum >= 0.0f && momentum <= 1.0f) return SIMDBN_SUCCESS;
  return Fail(SIMDBN_INVALID_ARGUMENT, "%s: momentum = %.9g; expected a value in [0, 1]", fn,
              static_cast<double>(momentum));
}

struct Named {
  const char* name;
  const void* p;
};

// The buffers of a training call, with the rules between them: the outputs share no byte; y may
// be x exactly; a per-channel input (gamma, beta) may be a per-channel output exactly; nothing
// per-channel may live inside x or y (x is read by every work item while another writes its
// channel's outputs).
simdbn_status CheckTrainingBuffers(const char* fn, const TensorShape& shape, const void* x,
                                   const void* y, const Named* inputs, size_t num_inputs,
                                   const Named* outputs, size_t num_outputs) {
  const size_t bytes = shape.bytes;
  const size_t channel_bytes = static_cast<size_t>(shape.c) * sizeof(float);
  SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, "x", x, bytes, "y", y, bytes));
  for (size_t i = 0; i < num_outputs; ++i) {
    const Named& out = outputs[i];
    if (out.p == nullptr) continue;
    SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, out.name, out.p, channel_bytes, "y", y, bytes));
    SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, out.name, out.p, channel_bytes, "x", x, bytes));
    for (size_t j = i + 1; j < num_outputs; ++j) {
      if (outputs[j].p == nullptr) continue;
      SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, out.name, out.p, channel_bytes, outputs[j].name,
                                           outputs[j].p, channel_bytes));
    }
  }
  for (size_t i = 0; i < num_inputs; ++i) {
    const Named& in = inputs[i];
    if (in.p == nullptr) continue;
    SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, in.name, in.p, channel_bytes, "y", y, bytes));
    for (size_t j = 0; j < num_outputs; ++j) {
      if (outputs[j].p == nullptr) continue;
      SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, in.name, in.p, channel_bytes,
                                                   outputs[j].name, outputs[j].p,
                                                   channel_bytes));
    }
  }
  return SIMDBN_SUCCESS;
}

// The checks both training entry points share; `moments` is NULL for simdbn_forward_training.
simdbn_status ValidateTraining(const char* fn, const simdbn_tensor_desc* desc, const void* x,
                               const simdbn_moments* moments, bool with_moments,
                               const float* gamma, const float* beta, float eps,
                               float momentum, const float* running_mean,
                               const float* running_var, const void* y, const float* save_mean,
                               const float* save_invstd, const simdbn_threading* threading,
                               TensorShape* shape) {
  SIMDBN_RETURN_IF_ERROR(CheckDesc(fn, desc, shape));
  SIMDBN_RETURN_IF_ERROR(CheckChannelArrays(fn, shape->c));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "x", x));
  if (with_moments) SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "moments", moments));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "y", y));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "save_mean", save_mean));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "save_invstd", save_invstd));
  SIMDBN_RETURN_IF_ERROR(CheckEps(fn, eps));
  SIMDBN_RETURN_IF_ERROR(CheckMomentum(fn, momentum));
  SIMDBN_RETURN_IF_ERROR(CheckThreading(fn, threading));
  const int64_t count = shape->n * shape->spatial;
  if (!with_moments && count < 2) {
    return Fail(SIMDBN_INVALID_ARGUMENT,
                "%s: n * spatial = %" PRId64 " * %" PRId64 " = %" PRId64
                " values per channel; expected at least 2 (the batch statistics of no values "
                "and the unbiased variance of one value are undefined)",
                fn, shape->n, shape->spatial, count);
  }
  const Named inputs[] = {{"gamma", gamma}, {"beta", beta}};
  const Named outputs[] = {{"save_mean", save_mean},
                           {"save_invstd", save_invstd},
                           {"running_mean", running_mean},
                           {"running_var", running_var}};
  SIMDBN_RETURN_IF_ERROR(CheckTrainingBuffers(fn, *shape, x, y, inputs, 2, outputs, 4));
  if (with_moments) {
    const size_t moment_bytes = static_cast<size_t>(shape->c) * sizeof(simdbn_moments);
    SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, "moments", moments, moment_bytes, "y", y,
                                         shape->bytes));
    for (const Named& out : outputs) {
      if (out.p == nullptr) continue;
      SIMDBN_RETURN_IF_ERROR(
          CheckDisjoint(fn, "moments", moments, moment_bytes, out.name, out.p,
                        static_cast<size_t>(shape->c) * sizeof(float)));
    }
    for (int64_t i = 0; i < shape->c; ++i) {
      const simdbn_moments& m = moments[i];
      if (!(m.count > 1.0) || !std::isfinite(m.count)) {
        return Fail(SIMDBN_INVALID_ARGUMENT,
                    "%s: moments[%" PRId64 "].count = %.17g; expected a finite count > 1 (the "
                    "unbiased variance of one value is undefined)",
                    fn, i, m.count);
      }
      if (m.m2 < 0.0) {
        return Fail(SIMDBN_INVALID_ARGUMENT,
                    "%s: moments[%" PRId64 "].m2 = %.17g; expected a sum of squares >= 0", fn, i,
                    m.m2);
      }
    }
  }
  return CheckSupported(fn, *shape);
}

}  // namespace
}  // namespace simdbn

using simdbn::ChannelParams;
using simdbn::Fail;
using simdbn::TensorShape;
using simdbn::TrainingPlan;

extern "C" simdbn_status simdbn_forward_training(const simdbn_tensor_desc* desc, const void* x,
                                                 const float* gamma, const float* beta,
                                                 float eps, float momentum, float* running_mean,
                                                 float* running_var, void* y, float* save_mean,
                                                 float* save_invstd,
                                                 const simdbn_threading* threading) {
  const char* fn = "simdbn_forward_training";
  TensorShape shape;
  SIMDBN_RETURN_IF_ERROR(simdbn::ValidateTraining(fn, desc, x, nullptr, false, gamma, beta, eps,
                                                  momentum, running_mean, running_var, y,
                                                  save_mean, save_invstd, threading, &shape));
  const TrainingPlan plan = simdbn::PlanTraining(shape);
  simdbn::Scratch scratch(fn);
  float* constants = nullptr;
  double* stats = nullptr;
  simdbn_moments* moments = nullptr;
  if (!plan.few_pixels) SIMDBN_RETURN_IF_ERROR(scratch.Get(plan.constant_floats, &constants));
  if (!plan.fused && !plan.few_pixels) {
    SIMDBN_RETURN_IF_ERROR(scratch.Get(plan.stats_doubles, &stats));
    SIMDBN_RETURN_IF_ERROR(scratch.Get(static_cast<size_t>(shape.c), &moments));
  }
  if (plan.image_by_image) {
    SIMDBN_RETURN_IF_ERROR(
        scratch.Get(static_cast<size_t>(shape.c * simdbn::kRunStateDoubles), &stats));
  }
  const ChannelParams params{gamma,       beta,      eps,         momentum,
                             running_mean, running_var, save_mean, save_invstd};
  const float* xf = static_cast<const float*>(x);
  float* yf = static_cast<float*>(y);
  if (plan.image_by_image) {
    simdbn::FusedImageByImage(plan, xf, params, constants, stats, yf, threading);
  } else if (plan.fused) {
    simdbn::FusedTraining(plan, xf, params, constants, yf, threading);
  } else if (plan.few_pixels) {
    simdbn::TrainFewPixels(plan, xf, params, yf, threading);
  } else {
    simdbn::BatchMoments(plan, xf, stats, moments, threading);
    simdbn::TrainWithMoments(plan, xf, moments, params, constants, yf, threading);
  }
  return SIMDBN_SUCCESS;
}

extern "C" simdbn_status simdbn_forward_training_moments(
    const simdbn_tensor_desc* desc, const void* x, const simdbn_moments* moments,
    const float* gamma, const float* beta, float eps, float momentum, float* running_mean,
    float* running_var, void* y, float* save_mean, float* save_invstd,
    const simdbn_threading* threading) {
  const char* fn = "simdbn_forward_training_moments";
  TensorShape shape;
  SIMDBN_RETURN_IF_ERROR(simdbn::ValidateTraining(fn, desc, x, moments, true, gamma, beta, eps,
                                                  momentum, running_mean, running_var, y,
                                                  save_mean, save_invstd, threading, &shape));
  const TrainingPlan plan = simdbn::PlanTraining(shape);
  simdbn::Scratch scratch(fn);
  float* constants = nullptr;
  SIMDBN_RETURN_IF_ERROR(scratch.Get(plan.constant_floats, &constants));
  const ChannelParams params{gamma,       beta,      eps,         momentum,
                             running_mean, running_var, save_mean, save_invstd};
  simdbn::TrainWithMoments(plan, static_cast<const float*>(x), moments, params, constants,
                           static_cast<float*>(y), threading);
  return SIMDBN_SUCCESS;
}

extern "C" simdbn_status simdbn_batch_moments(const simdbn_tensor_desc* desc, const void* x,
                                              simdbn_moments* moments,
                                              const simdbn_threading* threading) {
  const char* fn = "simdbn_batch_moments";
  TensorShape shape;
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckDesc(fn, desc, &shape));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckChannelArrays(fn, shape.c));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckNotNull(fn, "x", x));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckNotNull(fn, "moments", moments));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckThreading(fn, threading));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckDisjoint(
      fn, "moments", moments, static_cast<size_t>(shape.c) * sizeof(simdbn_moments), "x", x,
      shape.bytes));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckSupported(fn, shape));
  if (shape.elements == 0) {
    for (int64_t i = 0; i < shape.c; ++i) moments[i] = simdbn_moments{0.0, 0.0, 0.0};
    return SIMDBN_SUCCESS;
  }
  const TrainingPlan plan = simdbn::PlanTraining(shape);
  simdbn::Scratch scratch(fn);
  double* stats = nullptr;
  SIMDBN_RETURN_IF_ERROR(scratch.Get(plan.stats_doubles, &stats));
  simdbn::BatchMoments(plan, static_cast<const float*>(x), stats, moments, threading);
  return SIMDBN_SUCCESS;
}

extern "C" simdbn_status simdbn_merge_moments(int64_t c, const simdbn_moments* a,
                                              const simdbn_moments* b, simdbn_moments* out) {
  const char* fn = "simdbn_merge_moments";
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckChannels(fn, c));
  if (c > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(sizeof(simdbn_moments))) {
    return Fail(SIMDBN_INVALID_ARGUMENT, "%s: c = %" PRId64 " is too large", fn, c);
  }
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckNotNull(fn, "a", a));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckNotNull(fn, "b", b));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckNotNull(fn, "out", out));
  const size_t bytes = static_cast<size_t>(c) * sizeof(simdbn_moments);
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckNoPartialOverlap(fn, "a", a, bytes, "out", out, bytes));
  SIMDBN_RETURN_IF_ERROR(simdbn::CheckNoPartialOverlap(fn, "b", b, bytes, "out", out, bytes));
  for (const auto& [name, m] : {std::make_pair("a", a), std::make_pair("b", b)}) {
    for (int64_t i = 0; i < c; ++i) {
      if (!(m[i].count >= 0.0) || !std::isfinite(m[i].count)) {
        return Fail(SIMDBN_INVALID_ARGUMENT,
                    "%s: %s[%" PRId64 "].count = %.17g; expected a finite count >= 0", fn, name, i,
                    m[i].count);
      }
      if (m[i].m2 < 0.0) {
        return Fail(SIMDBN_INVALID_ARGUMENT,
                    "%s: %s[%" PRId64 "].m2 = %.17g; expected a sum of squares >= 0", fn, name, i,
                    m[i].m2);
      }
    }
  }
  for (int64_t i = 0; i < c; ++i) out[i] = simdbn::MergeMoments(a[i], b[i]);
  return SIMDBN_SUCCESS;
}
