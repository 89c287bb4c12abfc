// bias.c: a bias column coded as classes (see bias.h).
#include "nn/bias.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void column_list(const MetaSchema *s, char *buf, size_t n) {
    buf[0] = '\0';
    for (int j = 0; j < s->n_cols; j++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", j ? ", " : "", s->names[j]);
    if (!s->n_cols) snprintf(buf, n, "none");
}

// bin_edges = a, b, ...: ascending numbers.
static int read_edges(BiasCoding *bc, const char *text, const char *where, DfError *err) {
    char *copy = xstrdup(text), *save = NULL;
    int n = 0, rc = 0;
    for (char *tok = strtok_r(copy, ", ", &save); tok && rc == 0; tok = strtok_r(NULL, ", ", &save)) {
        double v;
        if (df_parse_double(tok, &v) || !isfinite(v)) rc = df_err(err, "%s: '%s' is not a number", where, tok);
        else if (n == BIAS_MAX_CLASSES - 1) rc = df_err(err, "%s: at most %d edges", where, BIAS_MAX_CLASSES - 1);
        else if (n > 0 && v <= bc->edges[n - 1]) rc = df_err(err, "%s: edges must increase (%g after %g)", where, v, bc->edges[n - 1]);
        else bc->edges[n++] = v;
    }
    free(copy);
    if (rc == 0 && n == 0) rc = df_err(err, "%s: no edges", where);
    bc->n_classes = n + 1;
    return rc;
}

int bias_coding_build(BiasCoding *bc, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err) {
    memset(bc, 0, sizeof *bc);
    char where[512], cols[META_MAX_COLS * (META_NAME_LEN + 2)];
    ini_where_key(ini, sec, "bias", where, sizeof where);
    const char *name = ini_str(sec, "bias", NULL);
    if (!name || !*name) return df_err(err, "%s: missing: the metadata column whose influence is removed (bias = site)", where);
    if (strcmp(name, "label") == 0)
        return df_err(err, "%s = label: the bias must be a metadata column, not the class label (removing the label from the "
                           "features would remove what the network is trained to predict)", where);
    if (!schema) return df_err(err, "%s = %s: the data have no metadata columns", where, name);
    int col = meta_column(schema, name);
    if (col < 0) {
        column_list(schema, cols, sizeof cols);
        return df_err(err, "%s = %s: the data have no such column (columns: %s)", where, name, cols);
    }
    if (schema->absent[col]) return df_err(err, "%s = %s: the data being used lack this column", where, name);
    bc->col = col;
    bc->n_cols = schema->n_cols;
    snprintf(bc->name, sizeof bc->name, "%s", name);
    bc->categorical = schema->categorical[col];
    const char *edges = ini_str(sec, "bin_edges", NULL);
    int bins;
    if (ini_int(ini, sec, "bins", 0, 0, BIAS_MAX_CLASSES, &bins, err)) return -1;
    if (bc->categorical) {
        if (bins || edges) {
            ini_where_key(ini, sec, bins ? "bins" : "bin_edges", where, sizeof where);
            return df_err(err, "%s: %s is categorical: its levels are the classes (bins are for continuous columns)", where, name);
        }
        bc->n_classes = schema->n_levels[col];
        memcpy(bc->levels, schema->levels[col], sizeof bc->levels);
        if (bc->n_classes < 2) return df_err(err, "%s = %s: the column has a single level: nothing to remove", where, name);
        return 0;
    }
    if (bins && edges) {
        ini_where_key(ini, sec, "bins", where, sizeof where);
        return df_err(err, "%s: give bins or bin_edges, not both", where);
    }
    if (!bins && !edges)
        return df_err(err, "%s = %s is continuous: give bins = N (quantile bins of the training split) or bin_edges = a, b, ...",
                      where, name);
    if (edges) {
        ini_where_key(ini, sec, "bin_edges", where, sizeof where);
        return read_edges(bc, edges, where, err);
    }
    if (bins < 2) {
        ini_where_key(ini, sec, "bins", where, sizeof where);
        return df_err(err, "%s: at least 2 bins", where);
    }
    bc->quantile_bins = 1;
    bc->n_classes = bins;
    return 0;
}

int bias_coding_prepare(BiasCoding *bc, const double *meta, int n_local, long lo, long n_total, Reducer *red, DfError *err) {
    if (!bc->quantile_bins) return 0;
    double *all = xmalloc((size_t)(n_total ? n_total : 1) * sizeof(double)), *mine = xmalloc((size_t)(n_local + 1) * sizeof(double));
    for (int i = 0; i < n_local; i++) mine[i] = meta[(size_t)i * bc->n_cols + bc->col];
    reduce_gather_f64(red, all, (size_t)n_total, mine, (size_t)lo, (size_t)n_local);
    qsort(all, (size_t)n_total, sizeof(double), df_cmp_double);
    // edge k (k = 1..nb-1) is the value at the k/nb quantile: a sample at or above it is in bin k
    for (int k = 1; k < bc->n_classes; k++) bc->edges[k - 1] = n_total ? all[(size_t)(k * n_total / bc->n_classes)] : 0.0;
    free(all);
    free(mine);
    if (n_total < bc->n_classes) return df_err(err, "[debias] bins = %d: the training split has only %ld samples", bc->n_classes, n_total);
    return 0;
}

int bias_class(const BiasCoding *bc, const double *row) {
    double v = row[bc->col];
    if (bc->categorical) {
        for (int k = 0; k < bc->n_classes; k++)
            if (bc->levels[k] == v) return k;
        return -1;
    }
    int k = 0;
    while (k < bc->n_classes - 1 && v >= bc->edges[k]) k++;
    return k;
}

int bias_gather(int *c, int *y, const BiasCoding *bc, const Batch *b, Reducer *red) {
    int G = b->global_n;
    double *mine = xmalloc(2 * ((size_t)b->n + 1) * sizeof(double)), *all = xmalloc(2 * ((size_t)G + 1) * sizeof(double));
    for (int i = 0; i < b->n; i++) {
        int k = bias_class(bc, b->meta + (size_t)i * b->n_meta);
        if (k < 0) df_die(DF_EXIT_INPUT, "[debias] bias = %s: sample %ld has %g, not one of the column's levels", bc->name,
                          b->first_sample + i, b->meta[(size_t)i * b->n_meta + bc->col]);
        mine[2 * i] = k;
        mine[2 * i + 1] = b->labels ? b->labels[i] : 0;
    }
    reduce_gather_f64(red, all, 2 * (size_t)G, mine, 2 * (size_t)b->offset, 2 * (size_t)b->n);
    unsigned char seen[BIAS_MAX_CLASSES] = { 0 };
    int distinct = 0;
    for (int g = 0; g < G; g++) {
        c[g] = (int)all[2 * g];
        if (y) y[g] = (int)all[2 * g + 1];
        if (!seen[c[g]]) { seen[c[g]] = 1; distinct++; }
    }
    free(mine);
    free(all);
    return distinct;
}
