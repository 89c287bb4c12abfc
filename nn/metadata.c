// metadata.c: metadata schema and regression design rows (see metadata.h).
#include "nn/metadata.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void meta_value_name(double v, char buf[META_NAME_LEN]) {
    // the shortest of %.15g / %.17g that reads back as the same double
    snprintf(buf, META_NAME_LEN, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, META_NAME_LEN, "%.17g", v);
}

const char *meta_class_name(const MetaSchema *s, int label, char buf[META_NAME_LEN]) {
    if (s->named_classes && label >= 0 && label < s->n_classes) return s->class_names[label];
    snprintf(buf, META_NAME_LEN, "%d", label);
    return buf;
}

void meta_list_levels(const MetaSchema *s, int col, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    int count = col == META_LABEL ? s->n_classes : s->n_levels[col];
    for (int l = 0; l < count && len + 8 < n; l++) {
        char tmp[META_NAME_LEN];
        const char *name = col == META_LABEL ? meta_class_name(s, l, tmp) : s->level_names[col][l];
        len += (size_t)snprintf(buf + len, n - len, "%s%s", l ? ", " : "", name);
    }
    if (len + 8 >= n && n > 4) snprintf(buf + n - 5, 5, "...");
}

int meta_column(const MetaSchema *s, const char *name) {
    if (strcmp(name, "label") == 0) return META_LABEL;
    for (int j = 0; j < s->n_cols; j++)
        if (strcmp(s->names[j], name) == 0) return j;
    return -3;
}

char *meta_schema_to_text(const MetaSchema *s) {
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
#define EMIT(...)                                                                             \
    do {                                                                                      \
        int w_;                                                                               \
        while ((size_t)(w_ = snprintf(buf + len, cap - len, __VA_ARGS__)) >= cap - len) buf = xrealloc(buf, cap *= 2); \
        len += (size_t)w_;                                                                    \
    } while (0)
    EMIT("deconfound-meta-schema 1\nclasses\t%d\t%d\n", s->n_classes, s->named_classes);
    for (int l = 0; s->named_classes && l < s->n_classes; l++) EMIT("class\t%s\n", s->class_names[l]);
    for (int j = 0; j < s->n_cols; j++) {
        if (!s->categorical[j]) { EMIT("column\t%s\tcontinuous\n", s->names[j]); continue; }
        EMIT("column\t%s\tcategorical\t%d\t%d\n", s->names[j], s->named_levels[j], s->n_levels[j]);
        for (int l = 0; l < s->n_levels[j]; l++) EMIT("level\t%.17g\t%s\n", s->levels[j][l], s->level_names[j][l]);
    }
#undef EMIT
    return buf;
}

// Splits a line at tabs in place: up to max fields, returns the count.
static int tab_fields(char *line, char **f, int max) {
    int n = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = '\0';
        p = t + 1;
    }
    return n;
}

static int copy_name(char *dst, const char *src, int line, const char *origin, DfError *err) {
    if ((size_t)snprintf(dst, META_NAME_LEN, "%s", src) >= META_NAME_LEN || !*src)
        return df_err(err, "%s: line %d: empty or over-long name", origin, line);
    return 0;
}

int meta_schema_from_text(MetaSchema *s, const char *text, const char *origin, DfError *err) {
    memset(s, 0, sizeof *s);
    char *copy = xstrdup(text), *save = NULL, *f[6] = { 0 };
    int line = 0, rc = 0, want_classes = 0, col = -1, want_levels = 0;
    for (char *ln = strtok_r(copy, "\n", &save); ln && !rc; ln = strtok_r(NULL, "\n", &save)) {
        line++;
        int nf = tab_fields(ln, f, 6);
        long a = 0, b = 0, c = 0;
        if (line == 1) {
            if (strcmp(ln, "deconfound-meta-schema 1") != 0) rc = df_err(err, "%s: not a metadata schema (version 1)", origin);
        } else if (!strcmp(f[0], "classes") && nf == 3 && !df_parse_long(f[1], &a) && !df_parse_long(f[2], &b) && a >= 0 &&
                   (b == 0 || (b == 1 && a <= META_MAX_CLASS_NAMES))) {
            s->n_classes = (int)a;
            s->named_classes = (int)b;
            want_classes = b ? (int)a : 0;
        } else if (!strcmp(f[0], "class") && nf == 2 && want_classes > 0) {
            rc = copy_name(s->class_names[s->n_classes - want_classes--], f[1], line, origin, err);
        } else if (!strcmp(f[0], "column") && nf >= 3 && want_levels == 0 && s->n_cols < META_MAX_COLS) {
            col = s->n_cols++;
            rc = copy_name(s->names[col], f[1], line, origin, err);
            s->categorical[col] = !strcmp(f[2], "categorical");
            if (s->categorical[col] && (nf != 5 || df_parse_long(f[3], &b) || df_parse_long(f[4], &c) || b < 0 || b > 1 || c < 1 ||
                                        c > META_MAX_LEVELS))
                rc = df_err(err, "%s: line %d: expected column NAME categorical NAMED LEVELS", origin, line);
            else if (!s->categorical[col] && (nf != 3 || strcmp(f[2], "continuous")))
                rc = df_err(err, "%s: line %d: expected column NAME continuous", origin, line);
            s->named_levels[col] = (int)b;
            want_levels = s->categorical[col] ? (int)c : 0;
        } else if (!strcmp(f[0], "level") && nf == 3 && want_levels > 0) {
            int l = s->n_levels[col]++;
            want_levels--;
            if (df_parse_double(f[1], &s->levels[col][l])) rc = df_err(err, "%s: line %d: bad level value", origin, line);
            else rc = copy_name(s->level_names[col][l], f[2], line, origin, err);
        } else {
            rc = df_err(err, "%s: line %d: unexpected '%.40s'", origin, line, f[0]);
        }
    }
    if (!rc && (line == 0 || want_classes || want_levels)) rc = df_err(err, "%s: the schema ends early", origin);
    free(copy);
    return rc;
}

int meta_schema_equal(const MetaSchema *a, const MetaSchema *b, char *why, size_t n) {
    if (a->n_cols != b->n_cols) return snprintf(why, n, "%d metadata columns vs %d", a->n_cols, b->n_cols), 0;
    for (int j = 0; j < a->n_cols; j++) {
        if (strcmp(a->names[j], b->names[j]) || a->categorical[j] != b->categorical[j])
            return snprintf(why, n, "column %d is %s '%s' vs %s '%s'", j + 1, a->categorical[j] ? "categorical" : "continuous",
                            a->names[j], b->categorical[j] ? "categorical" : "continuous", b->names[j]), 0;
        if (a->n_levels[j] != b->n_levels[j])
            return snprintf(why, n, "column '%s' has %d levels vs %d", a->names[j], a->n_levels[j], b->n_levels[j]), 0;
        for (int l = 0; l < a->n_levels[j]; l++)
            if (a->levels[j][l] != b->levels[j][l] || strcmp(a->level_names[j][l], b->level_names[j][l]))
                return snprintf(why, n, "column '%s': level %d is '%s' vs '%s'", a->names[j], l + 1, a->level_names[j][l],
                                b->level_names[j][l]), 0;
    }
    if (a->n_classes != b->n_classes) return snprintf(why, n, "%d classes vs %d", a->n_classes, b->n_classes), 0;
    for (int l = 0; l < a->n_classes; l++) {
        char x[META_NAME_LEN], y[META_NAME_LEN];
        if (strcmp(meta_class_name(a, l, x), meta_class_name(b, l, y)))
            return snprintf(why, n, "class %d is '%s' vs '%s'", l, x, y), 0;
    }
    return 1;
}

static char *trim(char *p) {
    while (*p == ' ' || *p == '\t') p++;
    char *e = p + strlen(p);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    return p;
}

// Appends the design columns of one metadata column: one for a continuous column, df for
// its spline (df > 0), one dummy per level but the first for a categorical one.
static int add_column(MetaDesign *d, const MetaSchema *s, int col, int df, int removed, const char *what, DfError *err) {
    for (int c = 0; c < d->k; c++)
        if (d->source[c] == col)
            return df_err(err, "%s: column '%s' is named twice", what, col == META_LABEL ? "label" : s->names[col]);
    int categorical = col == META_LABEL ? s->n_classes > 2 : s->categorical[col];
    int n_levels = col == META_LABEL ? s->n_classes : s->n_levels[col];
    const char *name = col == META_LABEL ? "label" : s->names[col];
    if (df && (col == META_LABEL || categorical))
        return df_err(err, "%s: '%s:spline%d': a spline expands a continuous column, and '%s' is %s", what, name, df, name,
                      col == META_LABEL ? "the class label" : "categorical");
    // One level gets no dummy at all: the column would silently explain nothing.
    if (col != META_LABEL && categorical && n_levels < 2)
        return df_err(err, "%s: column '%s' has one level ('%s') in the data the design is built from, so it "
                      "explains nothing (drop it)", what, name, n_levels ? s->level_names[col][0] : "");
    int first = categorical ? 1 : 0, last = categorical ? n_levels - 1 : df ? df - 1 : 0;  // drop the first level
    for (int l = first; l <= last; l++) {
        if (d->k >= MDN_MAX_COLS - 1) return df_err(err, "%s: more than %d design columns", what, MDN_MAX_COLS - 1);
        int c = d->k++;
        d->source[c] = col;
        d->removed[c] = (unsigned char)removed;
        d->is_dummy[c] = categorical;
        d->spline_df[c] = df;
        d->basis[c] = df ? l : 0;
        if (categorical) {
            d->level[c] = col == META_LABEL ? (double)l : s->levels[col][l];
            char tmp[META_NAME_LEN];
            snprintf(d->names[c], sizeof d->names[c], "%s=%s", name,
                     col == META_LABEL ? meta_class_name(s, l, tmp) : s->level_names[col][l]);
        } else if (df) {
            snprintf(d->names[c], sizeof d->names[c], "%s:spline%d.%d", name, df, l + 1);
        } else {
            snprintf(d->names[c], sizeof d->names[c], "%s", name);
        }
    }
    return 0;
}

// NAME|GROUP: continuous column col with a slope of its own in each level of grouping column
// g (the label or a categorical column), one design column per level, none dropped (together
// they span col itself, so col may not be in the design beside them).
static int add_grouped(MetaDesign *d, const MetaSchema *s, int col, int g, int removed, const char *what, DfError *err) {
    const char *name = col == META_LABEL ? "label" : s->names[col], *gname = g == META_LABEL ? "label" : s->names[g];
    if (col == META_LABEL || s->categorical[col] || (g != META_LABEL && !s->categorical[g]))
        return df_err(err, "%s: '%s|%s': NAME|GROUP gives a continuous column a slope per level of a categorical one "
                      "(or the label), and '%s' is %s", what, name, gname, col == META_LABEL || s->categorical[col] ? name : gname,
                      col == META_LABEL ? "the class label" : s->categorical[col] ? "categorical" : "continuous");
    // The removed columns are subtracted in evaluation too, where the label is what the network
    // is to predict: a removed column built from it would hand the label to the features (it
    // did, measured: validation accuracy rose from 86 to 94 % while age stayed in the features).
    if (g == META_LABEL && removed)
        return df_err(err, "%s: '%s|label' cannot be removed: the removed part is subtracted in evaluation too, where the "
                      "label is unknown (keep it instead: keep = label, %s|label)", what, name, name);
    int n_levels = g == META_LABEL ? s->n_classes : s->n_levels[g];
    if (n_levels < 2)
        return df_err(err, "%s: '%s|%s': '%s' has one level in the data the design is built from", what, name, gname, gname);
    for (int c = 0; c < d->k; c++)
        if (d->source[c] == col)
            return df_err(err, "%s: column '%s' is named twice (NAME|GROUP already holds NAME)", what, name);
    for (int l = 0; l < n_levels; l++) {
        if (d->k >= MDN_MAX_COLS - 1) return df_err(err, "%s: more than %d design columns", what, MDN_MAX_COLS - 1);
        int c = d->k++;
        d->source[c] = col;
        d->removed[c] = (unsigned char)removed;
        d->has_by[c] = 1;
        d->by[c] = g;
        d->by_level[c] = g == META_LABEL ? (double)l : s->levels[g][l];
        char tmp[META_NAME_LEN];
        snprintf(d->names[c], sizeof d->names[c], "%s|%s=%s", name, gname,
                 g == META_LABEL ? meta_class_name(s, l, tmp) : s->level_names[g][l]);
    }
    return 0;
}

// "age:spline4" -> 4 (the name cut at the colon); 0 for a plain name; -1 for another suffix.
static int spline_suffix(char *name) {
    char *colon = strchr(name, ':');
    if (!colon) return 0;
    *colon = '\0';
    const char *p = colon + 1;
    if (strncmp(p, "spline", 6) != 0 || p[6] < '2' || p[6] > '0' + META_SPLINE_MAX_DF || p[7]) return -1;
    return p[6] - '0';
}

static int add_list(MetaDesign *d, const MetaSchema *s, const char *list, int removed, const char *what, DfError *err) {
    if (!list || !*list) return 0;
    char *copy = xstrdup(list), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        char *name = trim(tok), suffix[64];
        if (!*name) continue;
        char *bar = strchr(name, '|');
        if (bar) {  // NAME|GROUP
            *bar = '\0';
            char *group = trim(bar + 1);
            name = trim(name);
            int col = meta_column(s, name), g = meta_column(s, group);
            const char *missing = col == -3 ? name : g == -3 ? group : NULL;
            if (!missing && col >= 0 && s->absent[col]) missing = name;
            if (!missing && g >= 0 && s->absent[g]) missing = group;
            rc = missing ? df_err(err, "%s: the data have no column '%s' (in '%s|%s')", what, missing, name, group)
                         : add_grouped(d, s, col, g, removed, what, err);
            continue;
        }
        const char *colon = strchr(name, ':');
        snprintf(suffix, sizeof suffix, "%s", colon ? colon : "");
        int df = spline_suffix(name);
        name = trim(name);  // "age :spline4"
        int col = meta_column(s, name);
        if (df < 0) {
            rc = df_err(err, "%s: '%s%s': the only expansion of a column is NAME:splineN, a natural cubic spline of N = 2..%d "
                        "columns (e.g. age:spline4)", what, name, suffix, META_SPLINE_MAX_DF);
        } else if (col == -3) {
            char avail[1024] = "label";
            for (int j = 0; j < s->n_cols; j++) {
                strncat(avail, ", ", sizeof avail - strlen(avail) - 1);
                strncat(avail, s->names[j], sizeof avail - strlen(avail) - 1);
            }
            rc = df_err(err, "%s: the data have no column '%s' (columns: %s)", what, name, avail);
        } else if (col >= 0 && s->absent[col]) {
            rc = df_err(err, "%s: the data have no column '%s', which this layer %s", what, name, removed ? "removes" : "keeps");
        } else {
            rc = add_column(d, s, col, df, removed, what, err);
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

void meta_design_describe(const MetaDesign *d, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        int first = 1;
        len += (size_t)snprintf(buf + len, len < n ? n - len : 0, "%s", pass ? "; remove" : "keep");
        for (int c = 0; c < d->k && len < n; c++)
            if (d->removed[c] == pass) {
                len += (size_t)snprintf(buf + len, n - len, "%s%s", first ? " " : ", ", d->names[c]);
                first = 0;
            }
        if (len >= n) break;
    }
}

int meta_design_splines(const MetaDesign *d) {
    int g = 0;
    for (int c = 0; c < d->k; c++) g += d->spline_df[c] && d->basis[c] == 0;
    return g;
}

int meta_design_spline_column(const MetaDesign *d, int g) {
    for (int c = 0; c < d->k; c++)
        if (d->spline_df[c] && d->basis[c] == 0 && g-- == 0) return c;
    return -1;
}

void meta_design_set_knots(MetaDesign *d, int g, const double *knots) {
    int first = meta_design_spline_column(d, g);
    DF_ASSERT(first >= 0);
    for (int c = first; c < d->k && d->source[c] == d->source[first]; c++)
        memcpy(d->knots[c], knots, (size_t)(d->spline_df[first] + 1) * sizeof(double));
}

int meta_spline_knots(double *knots, int df, const double *sorted, long n) {
    if (n < 1) return -1;
    for (int j = 0; j <= df; j++) {  // type 7: h = (n - 1) p, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h])
        double h = (double)(n - 1) * j / df;
        long lo = (long)floor(h);
        knots[j] = lo + 1 < n ? sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]) : sorted[n - 1];
        if (j > 0 && !(knots[j] > knots[j - 1])) return -1;
    }
    return 0;
}

// ((u - t_i)+^3 - (u - t_df)+^3) / (t_df - t_i), t_df = 1
static double spline_d(double u, double ti) {
    double a = u > ti ? (u - ti) * (u - ti) * (u - ti) : 0.0, b = u > 1.0 ? (u - 1.0) * (u - 1.0) * (u - 1.0) : 0.0;
    return (a - b) / (1.0 - ti);
}

double meta_spline_basis(double x, const double *knots, int df, int j) {
    double lo = knots[0], span = knots[df] - knots[0], u = (x - lo) / span;
    if (j == 0) return u;
    return spline_d(u, (knots[j - 1] - lo) / span) - spline_d(u, (knots[df - 1] - lo) / span);
}

int meta_design_row(const MetaDesign *d, const MetaSchema *s, const double *row, int label, double *x) {
    for (int c = 0; c < d->k; c++) {
        // a label outside 0..n_classes-1 would silently code as the reference class
        if (d->source[c] == META_LABEL && (label < 0 || label >= s->n_classes)) return -1;
        int col = d->source[c];
        double v = col == -2 ? 1.0 : col == META_LABEL ? (double)label : row[col];
        if (d->has_by[c]) {  // NAME|GROUP: the value inside the column's group, 0 outside
            int g = d->by[c];
            double gv = g == META_LABEL ? (double)label : row[g];
            int known = 0;
            if (g == META_LABEL) known = label >= 0 && label < s->n_classes;
            else for (int l = 0; l < s->n_levels[g]; l++) known |= s->levels[g][l] == gv;
            if (!known) return -1;
            x[c] = gv == d->by_level[c] ? v : 0.0;
        } else if (d->is_dummy[c]) {
            // the value must be a known level (level 0 is the dropped reference)
            if (col != META_LABEL) {
                int known = 0;
                for (int l = 0; l < s->n_levels[col]; l++) known |= s->levels[col][l] == v;
                if (!known) return -1;
            }
            x[c] = v == d->level[c] ? 1.0 : 0.0;
        } else {
            x[c] = d->spline_df[c] ? meta_spline_basis(v, d->knots[c], d->spline_df[c], d->basis[c]) : v;
        }
    }
    return 0;
}
