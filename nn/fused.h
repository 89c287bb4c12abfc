// fused.h: BatchNorm3d -> ReLU -> MaxPool3d as one kernel, forward and backward.
//
// Why: in a BR-Net block the three layers after a convolution are memory-bound passes over the
// block's largest tensor (16 channels x 32x64x64 x 16 samples = 134 MB). Run one by one they
// read and write it about ten times per step and keep three copies of it (BatchNorm's output,
// ReLU's output and their gradients). Fused, the forward reads the convolution's output twice
// (statistics, then normalise + ReLU + pool one (sample, channel) plane at a time: on AVX-512
// 16 windows at a time straight from the input, elsewhere through a per-thread scratch plane
// that stays in cache) and writes only the pooled output; the
// backward needs no full pass for its statistics (the gradient is non-zero only at the
// pooling's argmax positions, and the forward keeps the input's values there, so the sums
// stream over P values per plane instead of gathering them from S) and one streaming pass for
// the input gradient. Neither the normalised nor the ReLU output is ever stored.
//
// The network uses it on its own (nn/net.c) wherever a [batchnorm3d] is followed by [relu]
// and [maxpool3d] and nothing reads the two middle outputs; the layers keep their parameters,
// state and checkpoint names. The unfused layers are the reference: the *_ref functions
// below run them one after another, and tests compare.
#ifndef DF_FUSED_H
#define DF_FUSED_H
#include <stddef.h>
#include <stdint.h>
#include "base/reduce.h"
#include "nn/pool3d.h"

// Per-thread scratch (floats) the fused kernels need: one input plane.
size_t bn_relu_maxpool_workspace_floats(const Pool3dGeom *g);

// out, argmax, inmax are (B,C,OD,OH,OW), inp is (B,C,D,H,W) with C, D, H, W, the pooling from
// g; weight, bias, running_mean, running_var, mean, rstd are (C). inmax[i] = inp at argmax[i]
// (the backward's input: one more pooled-size tensor, 1/8 of inp for a 2x2x2 pooling).
// training: batch statistics over the global batch (one reduce_sum_f64 call, as
// batchnorm3d_forward_train), saved in mean, rstd, and the running statistics updated;
// otherwise the running statistics (mean and rstd untouched). workspace holds `threads`
// slices of bn_relu_maxpool_workspace_floats(g).
// Equals batchnorm3d_forward_{train,eval} -> relu_forward -> maxpool3d_forward exactly (the
// same float operations in the same order).
void bn_relu_maxpool_forward(float *out, int32_t *argmax, float *inmax, float *mean, float *rstd,
                             float *running_mean, float *running_var, const float *inp, const float *weight,
                             const float *bias, int B, const Pool3dGeom *g, float eps, float momentum, int training,
                             Reducer *red, float *workspace, int threads);

// dinp (or NULL) += dL/dinp, dweight += dL/dweight, dbias += dL/dbias (this rank's share) from
// dout (B,C,OD,OH,OW) and the forward's argmax and inmax. training: the batch-statistics
// backward with the forward's mean and rstd (one reduce_sum_f64 call when dinp is non-NULL, as
// batchnorm3d_backward); otherwise the fixed affine map of the running statistics
// (running_mean, running_var, eps). Equals the three layers' backward to rounding (the
// per-channel sums are added in another order). accumulate = 0 writes dinp = dL/dinp instead
// of adding: the network, which would otherwise clear the largest gradient of the block
// first, passes 0 (a pass over 134 MB less in a BR-Net first block). dinp may be inp itself
// (with accumulate = 0): the input is then replaced by its gradient, which is how the network
// keeps one buffer, not two, for a block's largest tensor.
void bn_relu_maxpool_backward(float *dinp, float *dweight, float *dbias, const float *dout, const int32_t *argmax,
                              const float *inmax, const float *inp, const float *mean, const float *rstd,
                              const float *running_mean, const float *running_var, const float *weight,
                              const float *bias, int B, const Pool3dGeom *g, float eps, int training, Reducer *red,
                              int accumulate, int threads);

// The references: the unfused layers' plain functions one after another (intermediates
// allocated here). Same contracts; for tests.
void bn_relu_maxpool_forward_ref(float *out, int32_t *argmax, float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *inp, const float *weight, const float *bias,
                                 int B, const Pool3dGeom *g, float eps, float momentum, int training, Reducer *red);
void bn_relu_maxpool_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const int32_t *argmax, const float *inp, const float *mean, const float *rstd,
                                  const float *running_mean, const float *running_var, const float *weight,
                                  const float *bias, int B, const Pool3dGeom *g, float eps, int training,
                                  Reducer *red);
#endif
