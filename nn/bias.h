// bias.h: the bias a debiasing loss removes (the [debias] section's `bias` key), coded as a
// class per sample: a categorical metadata column's level index as it is; a continuous one
// cut into bins, either at given edges (`bin_edges = 40, 60`) or at the quantiles of the
// training split (`bins = 4`: four bins of about equal counts, the same at any rank count).
// The class label itself is refused: a loss that removed it from the features would remove
// what the network is trained to predict.
#ifndef DF_BIAS_H
#define DF_BIAS_H
#include "base/ini.h"
#include "base/reduce.h"
#include "nn/batch.h"
#include "nn/metadata.h"

#define BIAS_MAX_CLASSES 64

typedef struct {
    int col;                        // schema column
    int n_cols;                     // columns of a metadata row (the schema's)
    char name[META_NAME_LEN];
    int categorical;
    int n_classes;
    double levels[META_MAX_LEVELS]; // categorical: class k is the schema's level k
    int quantile_bins;              // continuous: bins from the training split's quantiles (0: edges given)
    double edges[BIAS_MAX_CLASSES]; // continuous: class k holds edges[k-1] <= v < edges[k] (n_classes - 1 edges)
} BiasCoding;

// Reads `bias`, `bins` and `bin_edges` from the section. -1 with file:line and the problem: no
// such column (naming the data's columns), the label column, a continuous column without
// bins, bins on a categorical column, unsorted edges.
int bias_coding_build(BiasCoding *bc, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err);
// Quantile bins: the edges from the whole training split's values of the column (this rank
// holds rows [lo, lo + n_local) of n_total). Collective; a no-op for other codings.
int bias_coding_prepare(BiasCoding *bc, const double *meta, int n_local, long lo, long n_total, Reducer *red, DfError *err);
// The class of one metadata row; -1 for a categorical value that is not a level.
int bias_class(const BiasCoding *bc, const double *row);
// The bias class and the label of every sample of the global batch, in global order
// (c, y: b->global_n each), gathered from every rank (collective, exact). y may be NULL. Returns
// the number of distinct bias classes in the global batch. Dies naming the sample when a row
// has no class (only possible for data not recoded to the network's schema).
int bias_gather(int *c, int *y, const BiasCoding *bc, const Batch *b, Reducer *red);
#endif
