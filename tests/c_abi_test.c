/* The public header compiles as C, and a C caller gets the documented results. */
#include <math.h>
#include <stdio.h>

#include "simdbn/simdbn.h"

int main(void) {
  const float gamma[2] = {2.0f, 1.0f}, beta[2] = {1.0f, 0.0f};
  const float mean[2] = {1.0f, -1.0f}, var[2] = {3.0f, 0.0f};
  float scale[2], bias[2];
  if (simdbn_fold_inference(2, gamma, beta, mean, var, 1.0f, scale, bias) != SIMDBN_SUCCESS) {
    fprintf(stderr, "fold failed: %s\n", simdbn_last_error_message());
    return 1;
  }
  /* NHWC, n = 1, spatial = 3: channels alternate. */
  const simdbn_tensor_desc desc = {1, 2, 3, SIMDBN_NHWC, SIMDBN_F32};
  const float x[6] = {1, 0, 3, -1, -1, 2};
  float y[6];
  if (simdbn_forward_inference(&desc, x, scale, bias, NULL, y, SIMDBN_RELU, NULL) !=
      SIMDBN_SUCCESS) {
    fprintf(stderr, "forward failed: %s\n", simdbn_last_error_message());
    return 1;
  }
  /* channel 0: 2 * (x - 1) / 2 + 1 = x; channel 1: (x + 1) / 1, then ReLU. */
  const float want[6] = {1, 1, 3, 0, 0, 3};
  for (int i = 0; i < 6; ++i) {
    if (fabsf(y[i] - want[i]) > 1e-6f) {
      fprintf(stderr, "y[%d] = %g, want %g\n", i, y[i], want[i]);
      return 1;
    }
  }
  if (simdbn_forward_inference(NULL, x, scale, bias, NULL, y, 0, NULL) !=
          SIMDBN_INVALID_ARGUMENT ||
      simdbn_last_error_message()[0] == '\0') {
    fprintf(stderr, "a NULL desc was not reported\n");
    return 1;
  }
  printf("C ABI ok on %s\n", simdbn_target_name());
  return 0;
}
