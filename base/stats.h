// stats.h: the small statistics `deconfound compare` reports over repeated runs (folds or
// seeds): mean, standard deviation, and the Wilcoxon signed-rank test of paired results,
// computed as R's wilcox.test(x, y, paired = TRUE) computes them.
#ifndef DF_STATS_H
#define DF_STATS_H

// Mean of the finite values of x (n); NAN when there are none. *used gets their count.
double stats_mean(const double *x, int n, int *used);
// Sample standard deviation (n - 1 in the denominator) of the finite values; NAN below 2.
double stats_sd(const double *x, int n);

typedef struct {
    int n;          // pairs used: both finite and a non-zero difference (R drops zeros)
    int n_zero;     // pairs dropped because x == y
    double v;       // R's V: the sum of the ranks of |x - y| over pairs with x > y
    double p;       // two-sided p-value; NAN when n == 0
    int exact;      // 1: the exact null distribution (n < 50, no ties among |x - y| and no
                    // zero dropped: R takes the normal approximation whenever it dropped one),
                    // 0: the normal approximation with continuity and tie corrections
    double median_diff;  // median of x - y over the pairs used (NAN when n == 0)
} WilcoxonResult;

// Wilcoxon signed-rank test of x (n) against y (n), paired by index; a pair with a
// non-finite value is skipped (R skips NA and NaN but ranks an infinite difference). Matches
// R's wilcox.test(x, y, paired = TRUE, exact = NULL, correct = TRUE) in V and p.
void stats_wilcoxon_signed_rank(WilcoxonResult *out, const double *x, const double *y, int n);
#endif
