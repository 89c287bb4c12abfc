// loss.h: losses on the network output. Forward returns the SUM over the local samples (in
// double) so the trainer can sum over ranks and divide by the global count; backward is
// given that normaliser as `scale` (1 / global count) and accumulates into the gradient.
#ifndef DF_LOSS_H
#define DF_LOSS_H

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
#endif
