// figures.h: the validation figures of an epoch beyond loss and accuracy -- balanced
// accuracy, ROC AUC (binary tasks) and accuracy per group of every categorical confounder
// with the worst group. Each rank records its samples' predictions at their positions in
// the split; one sum over ranks assembles the whole table (exact: the others add zeros), and
// every figure is then computed from all samples at once (nn/metrics.h), so it is the same
// at any rank count.
#ifndef DF_FIGURES_H
#define DF_FIGURES_H
#include "nn/batch.h"
#include "nn/metadata.h"

#define FIG_MAX_GROUPS 64
#define FIG_GROUP_NAME (2 * META_NAME_LEN)

// The groups: every level of every categorical column of the schema, column by column
// ("site=A", "site=B", "sex=F", ...), as many as fit in FIG_MAX_GROUPS.
typedef struct {
    int n;
    char name[FIG_MAX_GROUPS][FIG_GROUP_NAME];
    int col[FIG_MAX_GROUPS];       // schema column (= batch metadata column)
    double level[FIG_MAX_GROUPS];  // coded value
} GroupSet;
void groups_from_schema(GroupSet *g, const MetaSchema *s);

typedef struct {
    double bal_acc;                     // NAN for a regression run
    double auc;                         // NAN unless the task is binary and both classes occur
    double group_acc[FIG_MAX_GROUPS];   // NAN for a group with no validation sample
    int group_n[FIG_MAX_GROUPS];
    int worst;                          // index of the worst group, -1 when none
} Figures;

// A split's predictions being recorded: (n, 4) rows of label, predicted class, score for
// the positive class (binary tasks), recorded flag, at each sample's position in the split.
typedef struct {
    int n, K;
    double *rows;
} FigureRecorder;
void figures_recorder_init(FigureRecorder *r, int n_split, int K);
void figures_recorder_free(FigureRecorder *r);
// Records the samples of one batch from the network's output logits (b->n, K).
void figures_record(FigureRecorder *r, const float *logits, const Batch *b);
// The same rows for the groups: the batch's metadata, so groups need no other lookup.
// meta_rows is (n_split, k) and filled alongside.
void figures_record_meta(double *meta_rows, int k, const Batch *b, int n_split);
// After the rows (and meta_rows) were summed over ranks: every figure. K == 1 is a binary
// task with one logit; K == 2 scores by the logit difference.
void figures_compute(Figures *f, const FigureRecorder *r, const double *meta_rows, int k, const GroupSet *g);
#endif
