// design.c: the voxel-wise baselines' regression design (see design.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "prep/design.h"

// Knots of every NAME:splineN column at the training values' quantiles (as MDN's prepare).
static int fit_knots(PrepDesign *d, const Cohort *h, const char *what, DfError *err) {
    double *vals = xmalloc(sizeof(double) * (size_t)(h->n + 1));
    int rc = 0;
    for (int g = 0; g < meta_design_splines(&d->design) && !rc; g++) {
        int c = meta_design_spline_column(&d->design, g), col = d->design.source[c], df = d->design.spline_df[c];
        for (long i = 0; i < h->n; i++) vals[i] = h->meta[(size_t)i * h->k + col];
        qsort(vals, (size_t)h->n, sizeof(double), df_cmp_double);
        double knots[META_SPLINE_MAX_DF + 1];
        if (meta_spline_knots(knots, df, vals, h->n))
            rc = df_err(err, "%s: %s:spline%d needs %d distinct quantiles of '%s' over the %d training subjects, and "
                        "some coincide: use a smaller N or the column itself", what, d->schema->names[col], df, df + 1,
                        d->schema->names[col], h->n);
        else meta_design_set_knots(&d->design, g, knots);
    }
    free(vals);
    return rc;
}

int prep_design_build(PrepDesign *d, const ShardRows *train, const char *keep, const char *remove, const char *what,
                      DfError *err) {
    memset(d, 0, sizeof *d);
    const Cohort *h = &train->header;
    d->schema = xcalloc(1, sizeof *d->schema);  // large (level names): not on the stack
    d->n = h->n;
    char msg[sizeof err->msg];
    if (meta_schema_build(d->schema, h, err) != 0) goto fail;
    snprintf(msg, sizeof msg, "%s --remove/--keep", what);
    if (meta_design_build(&d->design, d->schema, keep ? keep : "", remove, msg, err) != 0) goto fail;
    if (fit_knots(d, h, what, err) != 0) goto fail;
    int k = d->design.k;
    d->x = xmalloc(sizeof(double) * (size_t)d->n * (size_t)k);
    for (long i = 0; i < d->n; i++)
        if (meta_design_row(&d->design, d->schema, h->meta + (size_t)i * h->k, h->labels[i], d->x + (size_t)i * k)) {
            df_err(err, "%s: training row %ld: a value outside the schema (internal)", what, i);
            goto fail;
        }
    if (prep_design_check_rank(&d->design, d->x, d->n, what, err) != 0) goto fail;
    return 0;
fail:
    prep_design_free(d);
    return -1;
}

void prep_design_free(PrepDesign *d) {
    free(d->schema);
    free(d->x);
    memset(d, 0, sizeof *d);
}

// One shard's rows, recoded to the training schema by name.
static int shard_rows_design(double *x, const PrepDesign *d, const char *path, long n_expect, DfError *err) {
    Cohort h;
    if (shard_read_header(path, &h, err) != 0) return -1;
    MetaSchema *mapped = xmalloc(sizeof *mapped);
    int rc = cohort_map_to_schema(&h, d->schema, mapped, path, err);
    for (int c = 0; rc == 0 && c < d->design.k; c++) {
        int src = d->design.source[c], by = d->design.has_by[c] ? d->design.by[c] : -1;  // age|site: site too
        int gone = src >= 0 && mapped->absent[src] ? src : by >= 0 && mapped->absent[by] ? by : -1;
        if (gone >= 0) rc = df_err(err, "%s: has no column '%s', which the design uses", path, d->schema->names[gone]);
    }
    if (rc == 0 && h.n != n_expect) rc = df_err(err, "%s: changed while being read", path);
    for (long i = 0; rc == 0 && i < h.n; i++)
        if (meta_design_row(&d->design, mapped, h.meta + (size_t)i * h.k, h.labels[i], x + (size_t)i * d->design.k))
            rc = df_err(err, "%s: sample %ld: a value outside the training schema", path, i);
    free(mapped);
    cohort_free(&h);
    return rc;
}

int prep_design_rows(double *x, const PrepDesign *d, const ShardRows *rows, DfError *err) {
    for (int s = 0; s < rows->n_shards; s++)
        if (shard_rows_design(x + (size_t)rows->first[s] * d->design.k, d, rows->paths[s], rows->first[s + 1] - rows->first[s],
                              err))
            return -1;
    return 0;
}

// Why column c (values x[i * k + c]) is not independent of those before it.
static int rank_error(const MetaDesign *md, const double *x, long n, int c, const char *what, DfError *err) {
    int k = md->k, constant = 1;
    for (long i = 1; i < n && constant; i++) constant = x[(size_t)i * k + c] == x[c];
    if (constant && md->is_dummy[c] && x[c] == 0.0)
        return df_err(err, "%s: design column '%s': no training subject has this level, so its effect cannot be "
                      "estimated (drop the level's subjects or the column)", what, md->names[c]);
    if (constant)
        return df_err(err, "%s: design column '%s' is constant over the %ld training subjects, so it cannot be told "
                      "from the intercept (drop it)", what, md->names[c], n);
    return df_err(err, "%s: design column '%s' is a linear combination of the columns before it (intercept, kept, "
                  "removed) over the training subjects: the design is rank deficient (drop it)", what, md->names[c]);
}

// Gram-Schmidt, twice per column (stable to rounding for the few columns of a design), in the
// order intercept, kept, removed: the column named is the one that adds nothing new.
int prep_design_check_rank(const MetaDesign *md, const double *x, long n, const char *what, DfError *err) {
    int k = md->k, order[MDN_MAX_COLS], m = 0;
    for (int c = 0; c < k; c++) if (md->source[c] == -2) order[m++] = c;
    for (int c = 0; c < k; c++) if (!md->removed[c]) order[m++] = c;
    for (int c = 0; c < k; c++) if (md->removed[c] && md->source[c] != -2) order[m++] = c;
    double *q = xmalloc(sizeof(double) * (size_t)n * (size_t)k), *v = xmalloc(sizeof(double) * (size_t)n);
    int rc = 0;
    for (int t = 0; t < m && !rc; t++) {
        int c = order[t];
        double norm0 = 0;
        for (long i = 0; i < n; i++) v[i] = x[(size_t)i * k + c], norm0 += v[i] * v[i];
        for (int pass = 0; pass < 2; pass++)
            for (int u = 0; u < t; u++) {
                double dot = 0, *qu = q + (size_t)u * n;
                for (long i = 0; i < n; i++) dot += qu[i] * v[i];
                for (long i = 0; i < n; i++) v[i] -= dot * qu[i];
            }
        double norm = 0;
        for (long i = 0; i < n; i++) norm += v[i] * v[i];
        // Relative to the column's own size: 1e-10 of it left means 20 of 16 digits cancelled.
        if (!(norm > 1e-20 * norm0) || norm0 == 0) { rc = rank_error(md, x, n, c, what, err); break; }
        double inv = 1.0 / sqrt(norm), *qt = q + (size_t)t * n;
        for (long i = 0; i < n; i++) qt[i] = v[i] * inv;
    }
    free(q);
    free(v);
    return rc;
}
