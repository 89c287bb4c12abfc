// stats.c: mean, sd and the Wilcoxon signed-rank test of paired results (see stats.h); the
// test follows R 4.2's wilcox.test.default (stats/R/wilcox.test.R) and psignrank (nmath/signrank.c).
#include "base/stats.h"
#include <math.h>
#include <stdlib.h>
#include "base/common.h"

double stats_mean(const double *x, int n, int *used) {
    double s = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) { s += x[i]; m++; }
    if (used) *used = m;
    return m ? s / m : NAN;
}

// Two passes (mean, then squares about it): one pass of sum x^2 - n mean^2 cancels badly
// for results like accuracies that differ in the third decimal.
double stats_sd(const double *x, int n) {
    int m;
    double mu = stats_mean(x, n, &m);
    if (m < 2) return NAN;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - mu) * (x[i] - mu);
    return sqrt(ss / (m - 1));
}

static int cmp_double(const void *a, const void *b) {
    double p = *(const double *)a, q = *(const double *)b;
    return (p > q) - (p < q);
}

typedef struct { double v; int i; } ValIdx;
static int cmp_validx(const void *a, const void *b) {
    const ValIdx *p = a, *q = b;
    if (p->v != q->v) return (p->v > q->v) - (p->v < q->v);
    return p->i - q->i;
}

// rank (n) = the 1-based ranks of a (n), tied values sharing their mean rank (R's rank(),
// ties.method "average"). Returns sum over groups of equal values of t^3 - t (t the group
// size): 0 exactly when there are no ties, else the tie term of the variance.
static double average_ranks(double *rank, const double *a, int n) {
    ValIdx *s = xmalloc((size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) { s[i].v = a[i]; s[i].i = i; }
    qsort(s, (size_t)n, sizeof *s, cmp_validx);
    double ties = 0;
    for (int lo = 0, hi; lo < n; lo = hi) {
        for (hi = lo + 1; hi < n && s[hi].v == s[lo].v; hi++) {}
        double t = hi - lo, r = 0.5 * (lo + 1 + hi);  // mean of lo+1 .. hi
        for (int k = lo; k < hi; k++) rank[s[k].i] = r;
        ties += t * t * t - t;
    }
    free(s);
    return ties;
}

// P(V <= v) for n pairs under the null without ties: V is the rank sum of a random subset of
// {1..n}. c[k] counts the subsets with sum k, built one rank at a time (c'(k) = c(k) + c(k - j));
// the counts stay below 2^n < 2^53 for n < 50, so they and their sum are exact doubles and
// the only rounding is the final scaling by 2^-n (exact too). R sums c[k] 2^-n term by term.
static double signrank_cdf(double v, int n) {
    int top = n * (n + 1) / 2;
    if (v < 0) return 0;
    if (v >= top) return 1;
    double *c = xcalloc((size_t)top + 1, sizeof(double));
    c[0] = 1;
    for (int j = 1; j <= n; j++)
        for (int k = j * (j + 1) / 2; k >= j; k--) c[k] += c[k - j];
    double s = 0;
    for (int k = 0; k <= (int)v; k++) s += c[k];  // v is whole: without ties every rank is
    free(c);
    return ldexp(s, -n);
}

// The two-sided p-value of V for n pairs: exactly (no ties, no zeros, n < 50), or from the
// normal approximation with R's tie term and continuity correction. n >= 1.
static double signrank_p(double v, int n, double ties, int exact) {
    double mid = n * (n + 1) / 4.0;
    if (exact) {
        // The null distribution is symmetric about mid: the upper tail P(V' >= v) is
        // P(V' <= n(n+1)/2 - v), which R's psignrank(v - 1, lower.tail = FALSE) equals.
        double tail = v > mid ? signrank_cdf(n * (n + 1) / 2.0 - v, n) : signrank_cdf(v, n);
        return fmin(2 * tail, 1);
    }
    double z = v - mid;
    double sigma = sqrt(n * (n + 1.0) * (2.0 * n + 1) / 24 - ties / 48);
    double corr = z > 0 ? 0.5 : z < 0 ? -0.5 : 0;  // R: sign(z) * 0.5
    z = (z - corr) / sigma;
    // 2 min(Phi(z), 1 - Phi(z)) = erfc(|z| / sqrt 2), without 1 - Phi's cancellation
    return erfc(fabs(z) / sqrt(2.0));
}

void stats_wilcoxon_signed_rank(WilcoxonResult *out, const double *x, const double *y, int n) {
    double *d = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    int m = 0, zeros = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        double di = x[i] - y[i];
        if (di == 0) zeros++;
        else d[m++] = di;
    }
    out->n = m;
    out->n_zero = zeros;
    out->v = 0;
    out->p = NAN;  // R: z = 0 / 0 when every difference is zero
    out->exact = 0;
    out->median_diff = NAN;
    if (m == 0) { free(d); return; }
    double *a = xmalloc((size_t)m * sizeof(double)), *rank = xmalloc((size_t)m * sizeof(double));
    for (int i = 0; i < m; i++) a[i] = fabs(d[i]);
    double ties = average_ranks(rank, a, m);
    for (int i = 0; i < m; i++)
        if (d[i] > 0) out->v += rank[i];
    // R takes the exact distribution only when nothing was dropped as zero, too (its
    // `exact && !TIES && !ZEROES`): zeros send it to the normal approximation.
    out->exact = m < 50 && ties == 0 && zeros == 0;
    out->p = signrank_p(out->v, m, ties, out->exact);
    qsort(d, (size_t)m, sizeof(double), cmp_double);
    out->median_diff = m % 2 ? d[m / 2] : 0.5 * (d[m / 2 - 1] + d[m / 2]);
    free(a); free(rank); free(d);
}
