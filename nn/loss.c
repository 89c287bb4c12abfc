// loss.c: cross-entropy on softmax, binary cross-entropy on logits, squared error (see loss.h).
// Forward returns the sum over the local samples in double; backward takes the normaliser.
#include "nn/loss.h"
#include <math.h>
#include <stddef.h>

const char *const loss_kind_names[] = { "cross_entropy", "bce_logits", "mse", NULL };

double softmax_xent_forward(float *probs, const float *logits, const int *targets, int B, int K) {
    // logits, probs are (B,K); targets (B)
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        // log-sum-exp around the max: exp never overflows and the largest term is exp(0) = 1
        double mx = z[0];
        for (int k = 1; k < K; k++) if (z[k] > mx) mx = z[k];
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
        double lse = mx + log(s);
        for (int k = 0; k < K; k++) p[k] = (float)(exp((double)z[k] - mx) / s);
        total += lse - (double)z[targets[b]];
    }
    return total;
}

void softmax_xent_backward(float *dlogits, const float *probs, const int *targets, int B, int K, float scale) {
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) d[k] += scale * (p[k] - (k == targets[b] ? 1.0f : 0.0f));
    }
}

double bce_logits_forward(const float *logits, const float *targets, int n) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        double x = logits[i], t = targets[i];
        // max(x,0) - x t + log(1 + exp(-|x|)): exp's argument is <= 0, log1p keeps precision
        total += (x > 0.0 ? x : 0.0) - x * t + log1p(exp(-fabs(x)));
    }
    return total;
}

void bce_logits_backward(float *dlogits, const float *logits, const float *targets, int n, float scale) {
    for (int i = 0; i < n; i++) {
        double x = logits[i];
        // sigmoid without overflow on either side
        double sig = x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
        dlogits[i] += scale * (float)(sig - (double)targets[i]);
    }
}

double mse_forward(const float *pred, const float *targets, int n) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)targets[i];
        total += d * d;
    }
    return total;
}

void mse_backward(float *dpred, const float *pred, const float *targets, int n, float scale) {
    for (int i = 0; i < n; i++) dpred[i] += scale * 2.0f * (pred[i] - targets[i]);
}
