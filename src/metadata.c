// metadata.c: metadata schema and regression design rows (see metadata.h).
#include "metadata.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int meta_schema_build(MetaSchema *s, const Cohort *c, DfError *err) {
    memset(s, 0, sizeof *s);
    s->n_cols = c->k;
    double *tmp = xmalloc((size_t)(c->n ? c->n : 1) * sizeof(double));
    for (int j = 0; j < c->k; j++) {
        snprintf(s->names[j], sizeof s->names[j], "%s", c->columns[j]);
        s->categorical[j] = c->kinds[j] == META_CATEGORICAL;
        if (!s->categorical[j]) continue;
        for (int i = 0; i < c->n; i++) tmp[i] = c->meta[(size_t)i * c->k + j];
        qsort(tmp, (size_t)c->n, sizeof(double), cmp_double);
        int n = 0;
        for (int i = 0; i < c->n; i++) {
            if (i > 0 && tmp[i] == tmp[i - 1]) continue;
            if (n == META_MAX_LEVELS) {
                free(tmp);
                return df_err(err, "categorical column '%s' has more than %d levels", c->columns[j], META_MAX_LEVELS);
            }
            s->levels[j][n++] = tmp[i];
        }
        s->n_levels[j] = n;
    }
    free(tmp);
    for (int i = 0; i < c->n; i++) s->n_classes = DF_MAX(s->n_classes, c->labels[i] + 1);
    return 0;
}

static int find_column(const MetaSchema *s, const char *name) {
    if (strcmp(name, "label") == 0) return META_LABEL;
    for (int j = 0; j < s->n_cols; j++)
        if (strcmp(s->names[j], name) == 0) return j;
    return -3;
}

static char *trim(char *p) {
    while (*p == ' ' || *p == '\t') p++;
    char *e = p + strlen(p);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    return p;
}

// Appends the design columns of one metadata column (several for a categorical one).
static int add_column(MetaDesign *d, const MetaSchema *s, int col, int removed, const char *what, DfError *err) {
    for (int c = 0; c < d->k; c++)
        if (d->source[c] == col)
            return df_err(err, "%s: column '%s' is named twice", what, col == META_LABEL ? "label" : s->names[col]);
    int categorical = col == META_LABEL ? s->n_classes > 2 : s->categorical[col];
    int n_levels = col == META_LABEL ? s->n_classes : s->n_levels[col];
    const char *name = col == META_LABEL ? "label" : s->names[col];
    int first = categorical ? 1 : 0, last = categorical ? n_levels - 1 : 0;  // drop the first level
    for (int l = first; l <= last; l++) {
        if (d->k >= MDN_MAX_COLS - 1) return df_err(err, "%s: more than %d design columns", what, MDN_MAX_COLS - 1);
        int c = d->k++;
        d->source[c] = col;
        d->removed[c] = (unsigned char)removed;
        d->is_dummy[c] = categorical;
        if (categorical) {
            d->level[c] = col == META_LABEL ? (double)l : s->levels[col][l];
            snprintf(d->names[c], sizeof d->names[c], "%s=%g", name, d->level[c]);
        } else {
            snprintf(d->names[c], sizeof d->names[c], "%s", name);
        }
    }
    return 0;
}

static int add_list(MetaDesign *d, const MetaSchema *s, const char *list, int removed, const char *what, DfError *err) {
    if (!list || !*list) return 0;
    char *copy = xstrdup(list), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        char *name = trim(tok);
        if (!*name) continue;
        int col = find_column(s, name);
        if (col == -3) {
            char avail[1024] = "label";
            for (int j = 0; j < s->n_cols; j++) {
                strncat(avail, ", ", sizeof avail - strlen(avail) - 1);
                strncat(avail, s->names[j], sizeof avail - strlen(avail) - 1);
            }
            rc = df_err(err, "%s: the data have no column '%s' (columns: %s)", what, name, avail);
        } else {
            rc = add_column(d, s, col, removed, what, err);
        }
    }
    free(copy);
    return rc;
}

int meta_design_build(MetaDesign *d, const MetaSchema *s, const char *keep, const char *remove, const char *what, DfError *err) {
    memset(d, 0, sizeof *d);
    if (add_list(d, s, keep, 0, what, err) || add_list(d, s, remove, 1, what, err)) return -1;
    int c = d->k++;
    d->source[c] = -2;
    d->removed[c] = 1;
    snprintf(d->names[c], sizeof d->names[c], "intercept");
    return 0;
}

int meta_design_row(const MetaDesign *d, const MetaSchema *s, const double *row, int label, double *x) {
    for (int c = 0; c < d->k; c++) {
        // a label outside 0..n_classes-1 would silently code as the reference class
        if (d->source[c] == META_LABEL && (label < 0 || label >= s->n_classes)) return -1;
        int col = d->source[c];
        double v = col == -2 ? 1.0 : col == META_LABEL ? (double)label : row[col];
        if (d->is_dummy[c]) {
            // the value must be a known level (level 0 is the dropped reference)
            if (col != META_LABEL) {
                int known = 0;
                for (int l = 0; l < s->n_levels[col]; l++) known |= s->levels[col][l] == v;
                if (!known) return -1;
            }
            x[c] = v == d->level[c] ? 1.0 : 0.0;
        } else {
            x[c] = v;
        }
    }
    return 0;
}
