// mi.h: MI, "Learning Unbiased Representations via Mutual Information Backpropagation"
// (Ragonesi, Volpi, Cavazza, Murino, 2021), as a loss term on a bottleneck layer
// (../shared/DESIGN.md 3.3). A statistics network T(c, z) -- an MLP on [one-hot bias class,
// features], three hidden layers of `estimator_hidden` units with leaky ReLU (slope 0.2, as
// TensorFlow's leaky_relu in the reference), one output -- gives the Donsker-Varadhan bound of
// the mutual information between the features z and the bias c over the GLOBAL batch:
//   I = (1/B) sum_i T(c_i, z_i) - log (1/B) sum_i exp T(c_pi(i), z_i)
// with pi a permutation of the global batch drawn from (run seed, draw number) -- the same at
// any rank count. T is fitted to maximise I (its adversary step, `fit`); the network is
// trained to minimise it by the alternating schedule of nn/term.h: after each cross-entropy
// step, a step on I whose gradient, tensor by tensor, is capped at the cross-entropy
// gradient's norm, by a second optimiser at lr x lambda (the reference's Adam(lr * lmb)).
//
// Where this differs from the reference (TensorFlow, rugrag/learn-unbiased) and why:
//   - the estimator's steps after each training step use the features of the batch just
//     trained on (from the MI step's forward), `estimator_steps` times with fresh
//     permutations; the reference runs them on its epoch's first 40 batches, each through the
//     encoder again -- 40 extra forward passes per step;
//   - a global batch whose samples all share one bias class contributes 0 (and no estimator
//     step): the bound is then identically <= 0 and says nothing about the bias.
#ifndef DF_MI_H
#define DF_MI_H
#include <stdint.h>
#include "base/rng.h"
#include "nn/bias.h"

#define MI_LEAK 0.2

typedef struct {
    int n_bias;  // bias classes (one-hot width)
    int d;       // features per sample
    int h;       // hidden units per layer
} MiNet;

// Parameters, flat: W1 (h, n_bias + d), b1 (h), W2 (h, h), b2 (h), W3 (h, h), b3 (h), W4 (1, h), b4 (1).
size_t mi_net_n_params(const MiNet *m);
// Glorot-uniform weights and zero biases (TF-slim's fully_connected defaults, as the reference).
void mi_net_init(float *p, const MiNet *m, Rng *rng);
// out (n) = T(c_i, z_i); pre (n, 3h): the hidden layers' pre-activations, kept for backward.
// z is (n, d) float; everything inside is double.
void mi_net_forward(double *out, double *pre, const float *p, const MiNet *m, const int *c, const float *z, int n);
// From dout (n) = dL/dT_i: dp (n_params) += dL/dp unless NULL, dz (n, d) += dL/dz_i unless NULL.
void mi_net_backward(double *dp, double *dz, const double *dout, const double *pre, const float *p, const MiNet *m, const int *c,
                     const float *z, int n);
// The Donsker-Varadhan bound of a global batch from T on the joint pairs tj (B) and on the
// permuted pairs tm (B) (log-sum-exp taken stably); dtj, dtm (B) = dI/dt.
double mi_dv_bound(double *dtj, double *dtm, const double *tj, const double *tm, int B);
// perm (B): permutation number `draw` of the run with this seed.
void mi_permutation(int *perm, int B, uint64_t seed, int64_t draw);
#endif
