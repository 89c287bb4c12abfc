// design.h: the regression design of the voxel-wise baselines (residualize, harmonize), built
// as MDN builds its own (nn/metadata.h): the schema from the training shards, categorical
// columns dummy-coded by level name, NAME:splineN columns expanded with knots at the
// training quantiles; held-out shards recoded to the training schema by name, so a level
// training never saw stops the job naming the level and the file.
#ifndef DF_PREP_DESIGN_H
#define DF_PREP_DESIGN_H
#include "data/voxels.h"
#include "nn/metadata.h"

typedef struct {
    MetaSchema *schema;   // the training shards'
    MetaDesign design;    // keep, remove and the intercept (last)
    long n;               // training rows
    double *x;            // [n, k] the training rows' design
} PrepDesign;

// From the training shards' header (every rank computes the same). `what` prefixes
// messages ("residualize"). -1 with err for an unknown column, a spline with too few
// distinct values, or a design that is not of full rank over the training rows (naming the
// column: a constant one, a level no training subject has, one the others determine).
int prep_design_build(PrepDesign *d, const ShardRows *train, const char *keep, const char *remove, const char *what,
                      DfError *err);
void prep_design_free(PrepDesign *d);
// x [rows.n, k]: the design rows of every shard of `rows`, each shard recoded to the
// training schema by name. -1 with "FILE: ..." in err when a shard holds a level or class
// the training shards do not (a site training never saw), or lacks a design column.
int prep_design_rows(double *x, const PrepDesign *d, const ShardRows *rows, DfError *err);
// 0 when the n x k rows (row-major) have full column rank; else -1 with err naming the first
// column (in the order intercept, kept, removed) that the columns before it determine.
int prep_design_check_rank(const MetaDesign *md, const double *x, long n, const char *what, DfError *err);
#endif
