// loss.h: losses on the network output. Forward returns the SUM over the local samples (in
// double) so the trainer can sum over ranks and divide by the global count; backward is
// given that normaliser as `scale` (1 / global count) and accumulates into the gradient.
#ifndef DF_LOSS_H
#define DF_LOSS_H
#include "base/ini.h"
#include "nn/batch.h"
#include "nn/metadata.h"

typedef enum { LOSS_CROSS_ENTROPY, LOSS_BCE_LOGITS, LOSS_MSE } LossKind;
extern const char *const loss_kind_names[];  // "cross_entropy", "bce_logits", "mse", NULL

// logits, probs are (B,K); targets (B) class indices in [0,K). probs = softmax(logits),
// returns sum_i -log probs[i, targets[i]] (computed stably with log-sum-exp).
double softmax_xent_forward(float *probs, const float *logits, const int *targets, int B, int K);
// dlogits += scale * (probs - onehot(targets))
void softmax_xent_backward(float *dlogits, const float *probs, const int *targets, int B, int K, float scale);

// logits, targets are (n) with targets in [0,1]; returns sum of
// max(x,0) - x t + log(1 + exp(-|x|)) (PyTorch's BCEWithLogitsLoss, stable form).
double bce_logits_forward(const float *logits, const float *targets, int n);
// dlogits += scale * (sigmoid(x) - t)
void bce_logits_backward(float *dlogits, const float *logits, const float *targets, int n, float scale);

// pred, targets are (n); returns sum (pred - t)^2
double mse_forward(const float *pred, const float *targets, int n);
// dpred += scale * 2 (pred - t)
void mse_backward(float *dpred, const float *pred, const float *targets, int n, float scale);

// ---- the network's loss, as [loss] chooses it ----------------------------------------------

typedef struct {
    LossKind kind;
    int target_column;  // mse: the metadata column regressed (index into the batch's rows); -1: the label
} LossConfig;

// Parses [loss]: type (cross_entropy, bce_logits, mse) and, for mse, target = a metadata
// column of `schema` (may be NULL when the data have none) or label. -1 with file:line.
int loss_config_parse(LossConfig *lc, const Ini *ini, const MetaSchema *schema, DfError *err);

typedef struct {
    double sum;     // loss summed over the samples
    long correct;   // argmax hits (classification)
    long count;     // samples
} LossStats;

// The loss of the network's outputs for a batch: logits (b->n, K). Adds into st; when
// dlogits is non-NULL, writes the gradient of the summed loss times `scale` there (1 / the
// global batch gives the gradient of the mean). Targets are the batch's labels, or the
// metadata column lc->target_column. scratch: 2 * b->n * K floats.
void loss_batch(const LossConfig *lc, const float *logits, int K, const Batch *b, float *dlogits, float scale, float *scratch,
                LossStats *st);

// Accuracy split by a bias column (metadata column col of the batch's rows): tally[0..5] +=
// samples and argmax hits (K = 1: logit > 0) over all samples, then over the bias-aligned ones
// -- whose column value equals their class index, as colour k is class k's in Biased MNIST --
// then over the bias-conflicting ones.
void accuracy_by_tally(double tally[6], const float *logits, int K, const Batch *b, int col);

// Per-class tallies for balanced accuracy: tally is (max_classes, 2); for each sample of
// class c < max_classes, tally[c][0] += 1 and tally[c][1] += 1 when argmax (K = 1: logit > 0)
// is c. Samples of a class >= max_classes are not counted.
void class_tally(double *tally, int max_classes, const float *logits, int K, const Batch *b);
#endif
