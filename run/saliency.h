// saliency.h: where in the image a trained network's decision comes from -- the gradient of
// one output logit with respect to every input voxel (the network in eval mode, so a
// sample's map does not depend on its batch or rank), as `deconfound saliency` writes it.
//   grad        |d logit / d x|, summed over channels (Simonyan et al. 2014)
//   gradxinput  |sum over channels of x * d logit / d x| (Shrikumar et al. 2017)
//   smoothgrad  the mean of |d logit / d x| over `samples` copies of x with Gaussian noise of
//               sd noise * (max - min of x) added (Smilkov et al. 2017); each sample's noise
//               comes from its own stream (seed, its position), so maps do not depend on the
//               batch or the rank count either
// The logit is the predicted class's, the labelled class's, or a fixed class's; for a
// network with one output (binary, BCE) it is that output.
#ifndef DF_SALIENCY_H
#define DF_SALIENCY_H
#include <stdint.h>
#include "nn/batch.h"
#include "nn/net.h"

typedef enum { SAL_GRAD, SAL_GRADXINPUT, SAL_SMOOTHGRAD } SaliencyMethod;
extern const char *const saliency_method_names[];  // "grad", "gradxinput", "smoothgrad", NULL
#define SAL_TARGET_PRED (-1)
#define SAL_TARGET_LABEL (-2)

typedef struct {
    SaliencyMethod method;
    int target;       // SAL_TARGET_PRED, SAL_TARGET_LABEL, or a class index
    int samples;      // smoothgrad: noisy copies per sample
    double noise;     // smoothgrad: noise sd as a fraction of the sample's value range
    uint64_t seed;
} SaliencyConfig;

// Maps of batch b: maps is (b->n, D, H, W). The network must have its input gradient
// enabled (net_enable_input_grad). Runs forward and backward in eval mode (smoothgrad:
// `samples` times); parameter gradients are left dirty.
void saliency_batch(float *maps, Net *net, const Batch *b, const SaliencyConfig *cfg);
#endif
