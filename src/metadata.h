// metadata.h: per-sample metadata as layers that regress it out (MDN) see it. A schema lists
// the cohort's columns with their kinds and, for categorical ones, their levels (sorted
// values); a design spec picks columns and codes them as a regression design row:
// continuous columns as they are, categorical ones as dummies with the first level dropped.
#ifndef DF_METADATA_H
#define DF_METADATA_H
#include "common.h"
#include "shard.h"

#define META_MAX_LEVELS 64
#define META_LABEL (-1)  // "column" index of the class label

typedef struct MetaSchema {
    int n_cols;
    char names[SHARD_MAX_META][64];
    int categorical[SHARD_MAX_META];
    int n_levels[SHARD_MAX_META];                   // categorical: distinct values
    double levels[SHARD_MAX_META][META_MAX_LEVELS];  // sorted ascending
    int n_classes;                                   // label levels 0..n_classes-1
} MetaSchema;

// From the whole cohort (so every level of every split is known). -1 with err when a
// categorical column has more than META_MAX_LEVELS levels.
int meta_schema_build(MetaSchema *s, const Cohort *c, DfError *err);

#define MDN_MAX_COLS 64
typedef struct {
    int k;                          // design columns (including the intercept, last)
    int source[MDN_MAX_COLS];       // schema column, META_LABEL, or -2 for the intercept
    double level[MDN_MAX_COLS];     // categorical: the value this dummy indicates
    int is_dummy[MDN_MAX_COLS];
    unsigned char removed[MDN_MAX_COLS];  // 1 for confounder columns and the intercept
    char names[MDN_MAX_COLS][72];   // "age", "site=2", "label=1", "intercept"
} MetaDesign;

// keep / remove: comma-separated column names ("label" is the class label). Returns -1
// with "<what>: ..." in err for an unknown or repeated column.
int meta_design_build(MetaDesign *d, const MetaSchema *s, const char *keep, const char *remove, const char *what, DfError *err);
// x (k) = the design row of a sample with raw metadata `row` (schema->n_cols) and `label`.
// -1 when a categorical value is not one of the schema's levels.
int meta_design_row(const MetaDesign *d, const MetaSchema *s, const double *row, int label, double *x);
#endif
