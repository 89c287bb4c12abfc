// metadata.h: per-sample metadata as layers that regress it out (MDN) see it. A schema lists
// the columns the network was trained with: names, kinds and, for categorical ones, their
// levels (the coded values the data hold, sorted, each with its name); and the class
// labels, with names when the data named them. A design spec picks columns and codes them
// as a regression design row: continuous columns as they are, categorical ones as dummies
// with the first level dropped.
//
// The schema is the network's, not the data's: it is built from the training data, stored
// in the checkpoint, and data evaluated later are recoded to it by level and class NAME
// (data/cohort.h), so a held-out set with a subset of the sites, or sites numbered
// differently, gives every sample the design row it had in training.
#ifndef DF_METADATA_H
#define DF_METADATA_H
#include "base/common.h"

#define META_MAX_COLS 32         // metadata columns (the shard format's limit)
#define META_MAX_LEVELS 64       // levels of one categorical column
#define META_NAME_LEN 64         // column, level and class names, with the NUL
#define META_MAX_CLASS_NAMES 256 // named classes (unnamed classes are not limited)
#define META_LABEL (-1)          // "column" index of the class label

typedef struct MetaSchema {
    int n_cols;
    char names[META_MAX_COLS][META_NAME_LEN];
    int categorical[META_MAX_COLS];
    int n_levels[META_MAX_COLS];                                 // categorical: distinct values
    double levels[META_MAX_COLS][META_MAX_LEVELS];               // their coded values, ascending
    char level_names[META_MAX_COLS][META_MAX_LEVELS][META_NAME_LEN];  // and names
    int named_levels[META_MAX_COLS];  // 1: names given by the data (values index them), 0: the values written out
    // Set on a schema that data were mapped to (data/cohort.h) when the data lack the column:
    // a layer that uses it refuses to build, naming the column.
    unsigned char absent[META_MAX_COLS];
    int n_classes;                                   // label values 0..n_classes-1
    int named_classes;                               // 1: class_names[0..n_classes) hold names
    char class_names[META_MAX_CLASS_NAMES][META_NAME_LEN];
} MetaSchema;

// The name of an unnamed level or class: the value written out exactly ("2", "0.5"), so
// the same number always has the same name.
void meta_value_name(double v, char buf[META_NAME_LEN]);
// Name of class `label` ("AD", or "1" for unnamed classes).
const char *meta_class_name(const MetaSchema *s, int label, char buf[META_NAME_LEN]);
// "0, 1, 2": the levels of column `col` (or the classes for META_LABEL), for messages.
void meta_list_levels(const MetaSchema *s, int col, char *buf, size_t n);
// Column index by name, META_LABEL for "label", -3 when absent.
int meta_column(const MetaSchema *s, const char *name);
// The schema as text, one item per line, fields separated by tabs (names hold neither):
//   deconfound-meta-schema 1
//   classes <n> <named 0|1>         then, when named, n lines: class <name>
//   column <name> continuous
//   column <name> categorical <named 0|1> <n levels>   then n lines: level <value> <name>
// Checkpoints store it; `deconfound info` prints it. Caller frees.
char *meta_schema_to_text(const MetaSchema *s);
// Parses meta_schema_to_text's output; -1 with "<origin>: line N: ..." in err.
int meta_schema_from_text(MetaSchema *s, const char *text, const char *origin, DfError *err);
// 1 when two schemas code every column, level and class the same way (the absent flags
// aside); otherwise 0 with the first difference in `why`.
int meta_schema_equal(const MetaSchema *a, const MetaSchema *b, char *why, size_t n);
#define MDN_MAX_COLS 64
#define META_SPLINE_MAX_DF 8     // age:splineN, N = 2..8
typedef struct {
    int k;                          // design columns (including the intercept, last)
    int source[MDN_MAX_COLS];       // schema column, META_LABEL, or -2 for the intercept
    double level[MDN_MAX_COLS];     // categorical: the value this dummy indicates
    int is_dummy[MDN_MAX_COLS];
    // A continuous column written "age:spline4" is expanded into a natural cubic spline basis
    // of 4 columns (the linear term first), with knots at the training values' quantiles
    // 0, 1/4, ..., 1 (meta_spline_knots). For such a column spline_df > 0 and basis is the
    // basis function's index (0 .. df-1); the knots are the design's once set.
    int spline_df[MDN_MAX_COLS];
    int basis[MDN_MAX_COLS];
    double knots[MDN_MAX_COLS][META_SPLINE_MAX_DF + 1];
    // A continuous column written "age|site" is one column per level of the grouping column
    // (a categorical column or the label), age inside that group and 0 outside: a slope of its
    // own in each group. For such a column has_by is 1, by the grouping column (META_LABEL for
    // the label) and by_level the group's level value (the class index for the label).
    unsigned char has_by[MDN_MAX_COLS];
    int by[MDN_MAX_COLS];
    double by_level[MDN_MAX_COLS];
    unsigned char removed[MDN_MAX_COLS];  // 1 for confounder columns and the intercept
    char names[MDN_MAX_COLS][META_NAME_LEN + 72];  // "age", "site=2", "site=B", "label=1", "intercept"
} MetaDesign;

// keep / remove: comma-separated column names ("label" is the class label; a continuous
// column may be written NAME:splineN, or NAME|GROUP for a slope per level of a categorical
// column or the label). Returns -1 with "<what>: ..." in err for an unknown or repeated
// column, one the data lack, a spline of a categorical column, or a grouping that is not
// continuous by categorical.
int meta_design_build(MetaDesign *d, const MetaSchema *s, const char *keep, const char *remove, const char *what, DfError *err);
// "keep label; remove age, site=B, site=C, intercept": the design columns by name, which a
// checkpoint records so that a model is never applied with another design.
void meta_design_describe(const MetaDesign *d, char *buf, size_t n);
// Spline groups: the number of NAME:splineN columns of the design; group g's schema column
// and df through its first design column, meta_design_spline_column(d, g).
int meta_design_splines(const MetaDesign *d);
int meta_design_spline_column(const MetaDesign *d, int g);
// Sets the knots (df + 1 values, ascending) of spline group g on each of its design columns.
void meta_design_set_knots(MetaDesign *d, int g, const double *knots);
// knots[0..df] = the type-7 quantiles (R's default, which splines::ns uses) at 0, 1/df, ...,
// 1 of the n values `sorted` (ascending). -1 when two of them coincide (too few distinct
// values for df), 0 otherwise.
int meta_spline_knots(double *knots, int df, const double *sorted, long n);
// Basis function j (0 .. df-1) at x of the natural cubic spline with knots[0..df]: with
// u = (x - knots[0]) / (knots[df] - knots[0]) and t the knots scaled alike, N_0 = u and
// N_j = D_{j-1}(u) - D_{df-1}(u), D_i(u) = ((u - t_i)+^3 - (u - t_df)+^3) / (t_df - t_i)
// (Hastie, Tibshirani & Friedman, ESL eq. 5.4-5.5): cubic between knots, linear beyond the
// boundary knots, twice continuously differentiable. Scaling to [0, 1] keeps X^T X well
// conditioned whatever the column's units.
double meta_spline_basis(double x, const double *knots, int df, int j);
// x (k) = the design row of a sample with raw metadata `row` (schema->n_cols) and `label`.
// -1 when a categorical value is not one of the schema's levels.
int meta_design_row(const MetaDesign *d, const MetaSchema *s, const double *row, int label, double *x);
#endif
