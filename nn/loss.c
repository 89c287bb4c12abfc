// loss.c: cross-entropy on softmax, binary cross-entropy on logits, squared error (see loss.h).
// Forward returns the sum over the local samples in double; backward takes the normaliser.
#include "nn/loss.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

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

// ---- the network's loss --------------------------------------------------------------------

int loss_config_parse(LossConfig *lc, const Ini *cini, const MetaSchema *schema, DfError *err) {
    Ini *ini = (Ini *)cini;
    IniSection *l = ini_section(ini, "loss");
    int kind = 0;
    if (l && ini_choice(ini, l, "type", "cross_entropy", loss_kind_names, &kind, err)) return -1;
    lc->kind = (LossKind)kind;
    lc->target_column = -1;
    const char *target = l ? ini_str(l, "target", "label") : "label";
    if (strcmp(target, "label") == 0) return 0;
    char where[640];
    ini_where_key(ini, l, "target", where, sizeof where);
    if (lc->kind != LOSS_MSE) return df_err(err, "%s = %s: only the mse loss regresses a metadata column", where, target);
    int col = schema ? meta_column(schema, target) : -3;
    if (col < 0) return df_err(err, "%s = %s: the data have no such column", where, target);
    lc->target_column = col;
    return 0;
}

void loss_batch(const LossConfig *lc, const float *logits, int K, const Batch *b, float *dlogits, float scale, float *scratch,
                LossStats *st) {
    int B = b->n;
    float *probs = scratch, *targets = scratch + (size_t)B * K;
    for (int i = 0; i < B && lc->kind != LOSS_CROSS_ENTROPY; i++)
        for (int k = 0; k < K; k++)
            targets[i * K + k] = lc->target_column >= 0 ? (float)b->meta[(size_t)i * b->n_meta + lc->target_column]
                                                        : (float)b->labels[i];
    double sum = 0.0;
    long correct = 0;
    switch (lc->kind) {
    case LOSS_CROSS_ENTROPY:
        sum = softmax_xent_forward(probs, logits, b->labels, B, K);
        if (dlogits) {
            memset(dlogits, 0, sizeof(float) * (size_t)B * K);
            softmax_xent_backward(dlogits, probs, b->labels, B, K, scale);
        }
        for (int i = 0; i < B; i++) {
            int best = 0;
            for (int k = 1; k < K; k++) if (logits[i * K + k] > logits[i * K + best]) best = k;
            correct += best == b->labels[i];
        }
        break;
    case LOSS_BCE_LOGITS:
        sum = bce_logits_forward(logits, targets, B * K) / K;
        if (dlogits) {
            memset(dlogits, 0, sizeof(float) * (size_t)B * K);
            bce_logits_backward(dlogits, logits, targets, B * K, scale / (float)K);
        }
        for (int i = 0; i < B; i++) correct += (logits[i * K] > 0.0f) == (targets[i * K] > 0.5f);
        break;
    case LOSS_MSE:
        sum = mse_forward(logits, targets, B * K) / K;
        if (dlogits) {
            memset(dlogits, 0, sizeof(float) * (size_t)B * K);
            mse_backward(dlogits, logits, targets, B * K, scale / (float)K);
        }
        break;
    }
    st->sum += sum;
    st->correct += correct;
    st->count += B;
}

void accuracy_by_tally(double tally[6], const float *logits, int K, const Batch *b, int col) {
    for (int i = 0; i < b->n; i++) {
        const float *o = logits + (size_t)i * K;
        int pred = 0;
        if (K == 1) pred = o[0] > 0.0f;
        else
            for (int k = 1; k < K; k++) if (o[k] > o[pred]) pred = k;
        int hit = pred == b->labels[i], group = b->meta[(size_t)i * b->n_meta + col] == (double)b->labels[i] ? 2 : 4;
        tally[0] += 1;
        tally[1] += hit;
        tally[group] += 1;
        tally[group + 1] += hit;
    }
}

void class_tally(double *tally, int max_classes, const float *logits, int K, const Batch *b) {
    for (int i = 0; i < b->n; i++) {
        const float *o = logits + (size_t)i * K;
        int pred = 0, c = b->labels[i];
        if (K == 1) pred = o[0] > 0.0f;
        else
            for (int k = 1; k < K; k++) if (o[k] > o[pred]) pred = k;
        if (c < 0 || c >= max_classes) continue;
        tally[2 * c] += 1;
        tally[2 * c + 1] += pred == c;
    }
}
