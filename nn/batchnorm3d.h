// batchnorm3d.h: batch normalisation over (B, S) per channel, S = D*H*W (S = 1 gives
// BatchNorm1d on feature vectors). In training the mean and variance are over the GLOBAL
// batch: local sums go through reduce_sum_f64 (identity on one rank), so every rank
// normalises with the same statistics (synchronised BatchNorm).
#ifndef DF_BATCHNORM3D_H
#define DF_BATCHNORM3D_H
#include <stddef.h>
#include "base/reduce.h"

// out, inp are (B,C,S); weight, bias (C); mean, rstd (C) are saved for backward
// (rstd = 1/sqrt(var + eps), var biased); running_mean/var (C) are updated as PyTorch does:
// r = (1 - momentum) r + momentum x, with the unbiased variance for running_var.
void batchnorm3d_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                               float *running_var, const float *inp, const float *weight,
                               const float *bias, int B, int C, size_t S, float eps,
                               float momentum, Reducer *red);
// The statistics half of batchnorm3d_forward_train: mean, rstd and the running statistics
// (one reduce_sum_f64 call), for kernels that apply them themselves (nn/fused.c).
void batchnorm3d_stats_train(float *mean, float *rstd, float *running_mean, float *running_var,
                             const float *inp, int B, int C, size_t S, float eps, float momentum,
                             Reducer *red);
// Uses the running statistics.
void batchnorm3d_forward_eval(float *out, const float *inp, const float *weight, const float *bias,
                              const float *running_mean, const float *running_var, int B, int C,
                              size_t S, float eps);
// dinp += ..., dweight += ..., dbias += ... (the parameter gradients are this rank's share:
// the trainer sums them over ranks; the two per-channel sums dinp needs are reduced here).
void batchnorm3d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *mean, const float *rstd,
                          const float *weight, int B, int C, size_t S, Reducer *red);
// The backward of the eval-mode forward (a fixed per-channel affine map of the running
// statistics): no batch terms, no reduction. dinp may be NULL.
void batchnorm3d_backward_eval(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *running_mean,
                               const float *running_var, const float *weight, int B, int C,
                               size_t S, float eps);

// The layer's own struct (Layer.impl of a [batchnorm3d]), for the network's fused kernels.
typedef struct {
    float eps, momentum;
    float *mean, *rstd;  // (C) batch statistics of the last training forward
    int trained;         // the last forward used batch statistics (selects the backward)
} BatchNormImpl;
#endif
