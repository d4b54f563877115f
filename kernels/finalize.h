// The per-channel step of training forward: from a channel's moments to its saved statistics,
// its running statistics and the constants of its normalization. Vectorized over channels
// because with small channels (N = 1 at 7x7) a scalar step, a chain of three divisions and a
// square root per channel, cost as much as reading the tensor.
#ifndef SIMDBN_KERNELS_FINALIZE_H_
#define SIMDBN_KERNELS_FINALIZE_H_

#include <cstdint>

#include "simdbn/simdbn.h"

namespace simdbn {

// What the per-channel step reads and writes besides the moments (indexed by channel).
struct ChannelParams {
  const float* gamma;  // nullable: 1
  const float* beta;   // nullable: 0
  float eps, momentum;
  float* running_mean;  // nullable
  float* running_var;   // nullable
  float* save_mean;
  float* save_invstd;
};

// The normalization y = (x - center) * scale + bias of each channel.
struct ChannelConstants {
  float* center;
  float* scale;
  float* bias;
};

// For channels [begin, end), whose moments are moments[0, end - begin) (count > 1 each):
// every output of `params` and `constants`. The mean, the variance and the running mean in
// double, each rounded once to f32; var + eps, invstd = 1 / sqrt(var + eps), the unbiased
// variance, the running variance and the constants in f32 from those (finalize-inl.h says
// why). For the same moments, the same bits on every target. uniform_count: the count of every
// channel when the caller knows they are all the same (faster, the same bits), else 0. Inputs
// of a channel are read before its outputs are written, so gamma or beta may be exactly an
// output array.
void FinalizeChannels(const ChannelParams& params, int64_t begin, int64_t end,
                      const simdbn_moments* moments, double uniform_count,
                      const ChannelConstants& constants);

}  // namespace simdbn

#endif  // SIMDBN_KERNELS_FINALIZE_H_
