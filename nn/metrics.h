// metrics.h: the figures a results section reports about a classifier, as plain functions
// of per-sample arrays (the run gathers its samples' predictions first, so every figure is
// the same at any rank count): balanced accuracy, ROC AUC (scikit-learn's definition, ties
// included), and accuracy per group of a categorical confounder with the worst group.
// A figure that does not exist for the data given (no samples, one class only, an empty
// group) is NAN, never 0.
#ifndef DF_METRICS_H
#define DF_METRICS_H

// Balanced accuracy (scikit-learn's balanced_accuracy_score, adjusted = False): the mean over
// the classes that occur in `label` of the fraction of that class predicted right.
// label, pred are (n) in [0, K). NAN when n == 0.
double metric_balanced_accuracy(const int *label, const int *pred, int n, int K);

// The same from per-class tallies: tally is (K, 2): [k][0] samples of class k, [k][1] of
// them predicted right (what a training loop can sum over ranks step by step).
double metric_balanced_accuracy_tally(const double *tally, int K);

// Area under the ROC curve of `score` for telling positive[i] != 0 from positive[i] == 0
// (scikit-learn's roc_auc_score): the probability that a random positive scores above a
// random negative, a tie counting one half. O(n log n). NAN when either class is absent
// (or a score is NaN: it has no place in the order; scikit-learn refuses it).
double metric_roc_auc(const double *score, const int *positive, int n);

// Accuracy within each group: group[i] in [0, n_groups) (or < 0: in no group), hit[i] 1
// when sample i was predicted right. acc[g] is NAN and count[g] 0 for an empty group.
// Returns the worst (lowest-accuracy) non-empty group, or -1 when every group is empty;
// ties go to the lower index.
int metric_group_accuracy(double *acc, int *count, const int *group, const int *hit, int n, int n_groups);
#endif
