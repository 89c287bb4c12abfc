// metrics.c: balanced accuracy, ROC AUC and accuracy per group of a classifier's predictions
// (see metrics.h); the first two as scikit-learn defines them.
#include "nn/metrics.h"
#include <math.h>
#include <stdlib.h>
#include "base/common.h"

// One pass into the tallies, so the array form and the tally form cannot disagree. A label
// outside [0, K) breaks the contract; it is skipped rather than written out of bounds.
double metric_balanced_accuracy(const int *label, const int *pred, int n, int K) {
    if (n <= 0 || K <= 0) return NAN;
    double *tally = xcalloc((size_t)K * 2, sizeof(double));
    for (int i = 0; i < n; i++) {
        int k = label[i];
        if (k < 0 || k >= K) continue;
        tally[2 * k] += 1;
        tally[2 * k + 1] += pred[i] == k;
    }
    double ba = metric_balanced_accuracy_tally(tally, K);
    free(tally);
    return ba;
}

// A class with no samples has no recall and is left out of the mean (scikit-learn drops it
// with a warning, "y_pred contains classes not in y_true"), not counted as 0.
double metric_balanced_accuracy_tally(const double *tally, int K) {
    double sum = 0;
    int classes = 0;
    for (int k = 0; k < K; k++)
        if (tally[2 * k] > 0) { sum += tally[2 * k + 1] / tally[2 * k]; classes++; }
    return classes ? sum / classes : NAN;
}

typedef struct { double s; int pos; } Scored;
static int cmp_scored(const void *a, const void *b) {
    double p = ((const Scored *)a)->s, q = ((const Scored *)b)->s;
    return (p > q) - (p < q);
}

// The Mann-Whitney U of the positives over the negatives, divided by n_pos n_neg: after a
// sort, each group of equal scores adds (its positives) x (negatives below it + half its own
// negatives). This is the average-rank formula (R_pos - n_pos (n_pos + 1) / 2) without the
// ranks: U is a sum of halves, exact in double up to 2^52, where rank sums near n^2 would
// lose the last digits. A NaN score has no place in the order (scikit-learn refuses it): NAN.
double metric_roc_auc(const double *score, const int *positive, int n) {
    if (n <= 0) return NAN;
    Scored *a = xmalloc((size_t)n * sizeof *a);
    double n_pos = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(score[i])) { free(a); return NAN; }
        a[i].s = score[i];
        a[i].pos = positive[i] != 0;
        n_pos += a[i].pos;
    }
    double n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) { free(a); return NAN; }
    qsort(a, (size_t)n, sizeof *a, cmp_scored);
    double u = 0, neg_below = 0;
    for (int lo = 0, hi; lo < n; lo = hi) {
        double p = 0, q = 0;
        for (hi = lo; hi < n && a[hi].s == a[lo].s; hi++) {
            if (a[hi].pos) p++;
            else q++;
        }
        u += p * (neg_below + 0.5 * q);
        neg_below += q;
    }
    free(a);
    return u / (n_pos * n_neg);
}

int metric_group_accuracy(double *acc, int *count, const int *group, const int *hit, int n, int n_groups) {
    for (int g = 0; g < n_groups; g++) { acc[g] = 0; count[g] = 0; }
    for (int i = 0; i < n; i++) {
        int g = group[i];
        if (g < 0 || g >= n_groups) continue;
        count[g]++;
        acc[g] += hit[i] != 0;
    }
    int worst = -1;
    for (int g = 0; g < n_groups; g++) {
        if (count[g] == 0) { acc[g] = NAN; continue; }
        acc[g] /= count[g];
        if (worst < 0 || acc[g] < acc[worst]) worst = g;  // strict: ties keep the lower index
    }
    return worst;
}
