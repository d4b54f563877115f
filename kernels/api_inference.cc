// Entry points of inference: simdbn_fold_inference and simdbn_forward_inference.
#include <cinttypes>
#include <cmath>

#include "kernels/affine.h"
#include "kernels/cache.h"
#include "kernels/partition.h"
#include "kernels/scratch.h"
#include "kernels/status.h"
#include "kernels/threading.h"
#include "kernels/validate.h"
#include "simdbn/simdbn.h"

namespace simdbn {
namespace {

simdbn_status ValidateFold(int64_t c, const float* gamma, const float* beta, const float* mean,
                           const float* var, float eps, const float* scale, const float* bias) {
  const char* fn = "simdbn_fold_inference";
  SIMDBN_RETURN_IF_ERROR(CheckChannelArrays(fn, c));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "running_mean", mean));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "running_var", var));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "scale", scale));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "bias", bias));
  SIMDBN_RETURN_IF_ERROR(CheckEps(fn, eps));
  const size_t bytes = static_cast<size_t>(c) * sizeof(float);
  SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, "scale", scale, bytes, "bias", bias, bytes));
  const struct {
    const char* name;
    const float* p;
  } inputs[] = {{"gamma", gamma}, {"beta", beta}, {"running_mean", mean}, {"running_var", var}};
  for (const auto& in : inputs) {
    SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, in.name, in.p, bytes, "scale", scale, bytes));
    SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, in.name, in.p, bytes, "bias", bias, bytes));
  }
  for (int64_t i = 0; i < c; ++i) {
    if (var[i] < 0.0f) {
      return Fail(SIMDBN_INVALID_ARGUMENT,
                  "%s: running_var[%" PRId64 "] = %.9g; expected a variance >= 0", fn, i,
                  static_cast<double>(var[i]));
    }
  }
  return SIMDBN_SUCCESS;
}

simdbn_status ValidateForward(const simdbn_tensor_desc* desc, const void* x, const float* scale,
                              const float* bias, const void* residual, const void* y,
                              unsigned flags, const simdbn_threading* threading,
                              TensorShape* shape) {
  const char* fn = "simdbn_forward_inference";
  SIMDBN_RETURN_IF_ERROR(CheckDesc(fn, desc, shape));
  SIMDBN_RETURN_IF_ERROR(CheckChannelArrays(fn, shape->c));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "x", x));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "scale", scale));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "bias", bias));
  SIMDBN_RETURN_IF_ERROR(CheckNotNull(fn, "y", y));
  SIMDBN_RETURN_IF_ERROR(CheckThreading(fn, threading));
  if ((flags & ~static_cast<unsigned>(SIMDBN_RELU)) != 0) {
    return Fail(SIMDBN_INVALID_ARGUMENT, "%s: flags = 0x%x; expected 0 or SIMDBN_RELU (0x%x)", fn,
                flags, static_cast<unsigned>(SIMDBN_RELU));
  }
  const size_t bytes = shape->bytes;
  const size_t channel_bytes = static_cast<size_t>(shape->c) * sizeof(float);
  SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, "x", x, bytes, "y", y, bytes));
  if (residual != nullptr) {
    SIMDBN_RETURN_IF_ERROR(CheckNoPartialOverlap(fn, "residual", residual, bytes, "y", y, bytes));
  }
  SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, "scale", scale, channel_bytes, "y", y, bytes));
  SIMDBN_RETURN_IF_ERROR(CheckDisjoint(fn, "bias", bias, channel_bytes, "y", y, bytes));
  return CheckSupported(fn, *shape);
}

}  // namespace
}  // namespace simdbn

using simdbn::AffineArgs;
using simdbn::Fail;

extern "C" simdbn_status simdbn_fold_inference(int64_t c, const float* gamma, const float* beta,
                                               const float* running_mean,
                                               const float* running_var, float eps, float* scale,
                                               float* bias) {
  SIMDBN_RETURN_IF_ERROR(
      simdbn::ValidateFold(c, gamma, beta, running_mean, running_var, eps, scale, bias));
  for (int64_t i = 0; i < c; ++i) {
    // Every input of channel i is read before its outputs are written: exact aliasing is safe.
    const double g = gamma != nullptr ? gamma[i] : 1.0;
    const double b = beta != nullptr ? beta[i] : 0.0;
    const double s = g / std::sqrt(static_cast<double>(running_var[i]) + eps);
    const double m = running_mean[i];
    scale[i] = static_cast<float>(s);
    bias[i] = static_cast<float>(b - m * s);
  }
  return SIMDBN_SUCCESS;
}

extern "C" simdbn_status simdbn_forward_inference(const simdbn_tensor_desc* desc, const void* x,
                                                  const float* scale, const float* bias,
                                                  const void* residual, void* y, unsigned flags,
                                                  const simdbn_threading* threading) {
  simdbn::TensorShape shape;
  SIMDBN_RETURN_IF_ERROR(
      simdbn::ValidateForward(desc, x, scale, bias, residual, y, flags, threading, &shape));
  if (shape.elements == 0) return SIMDBN_SUCCESS;
  shape = simdbn::OneChannelAsOneRun(shape);

  // With spatial == 1 both layouts are the same (n, c) matrix, best walked a row at a time.
  const bool by_pixel = shape.layout == SIMDBN_NHWC || shape.spatial == 1;
  AffineArgs args{};
  args.x = static_cast<const float*>(x);
  args.residual = static_cast<const float*>(residual);
  args.y = static_cast<float*>(y);
  args.scale = scale;
  args.bias = bias;
  args.c = shape.c;
  args.cols = by_pixel ? shape.c : shape.spatial;
  args.relu = (flags & SIMDBN_RELU) != 0;
  const size_t traffic = shape.bytes * (residual != nullptr ? 3 : 2);
  // The partition's slices are runs of whole rows, or pieces of at least kItemElements / 2.
  args.stream = simdbn::ShouldStream(traffic, shape.elements, simdbn::MaxThreads(threading));

  simdbn::Scratch scratch("simdbn_forward_inference");
  if (by_pixel) {
    const size_t size = static_cast<size_t>(simdbn::PeriodicSize(shape.c));
    float* periodic = nullptr;
    SIMDBN_RETURN_IF_ERROR(scratch.Get(2 * size, &periodic));
    simdbn::MakePeriodic(scale, shape.c, periodic);
    simdbn::MakePeriodic(bias, shape.c, periodic + size);
    args.scale = periodic;
    args.bias = periodic + size;
    args.period = simdbn::PeriodOf(shape.c);
  }

  const int64_t rows = by_pixel ? shape.n * shape.spatial : shape.n * shape.c;
  const simdbn::Partition partition(rows, args.cols);
  simdbn::ParallelFor(threading, partition.size(), traffic, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      by_pixel ? simdbn::AffineNhwc(args, partition[item])
               : simdbn::AffineNchw(args, partition[item]);
    }
  });
  return SIMDBN_SUCCESS;
}
