// cohort.c: a cohort's metadata by name (see cohort.h).
#include "data/cohort.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- the cohort ----------------------------------------------------------------------------

void cohort_alloc(Cohort *c, int n, Shape shape, int k) {
    DF_ASSERT(n >= 0 && k >= 0 && k <= META_MAX_COLS);
    memset(c, 0, sizeof *c);
    c->n = n;
    c->shape = shape;
    c->k = k;
    c->images = df_alloc_floats((size_t)n * shape_numel(shape));
    c->labels = xcalloc((size_t)n, sizeof(int32_t));
    c->meta = xcalloc((size_t)n * (size_t)k, sizeof(double));
}

static void free_strings(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void cohort_free(Cohort *c) {
    free(c->images);
    free(c->labels);
    free(c->meta);
    free(c->masks);
    free_strings(c->subjects, c->n);
    free(c->derived_by);
    free_strings(c->sources, c->n);
    free(c->source_dims);
    free(c->source_affine);
    free(c->affine);
    free(c->source);
    free(c->preprocessing);
    free_strings(c->label_names, c->n_label_names);
    for (int j = 0; j < META_MAX_COLS; j++) {
        free(c->columns[j]);
        free_strings(c->levels[j], c->n_levels[j]);
    }
    memset(c, 0, sizeof *c);
}

void cohort_alloc_masks(Cohort *c) {
    free(c->masks);
    c->masks = xcalloc((size_t)c->n * shape_spatial(c->shape), 1);
    c->has_masks = 1;
}

int cohort_column(const Cohort *c, const char *name) {
    for (int j = 0; j < c->k; j++)
        if (c->columns[j] && strcmp(c->columns[j], name) == 0) return j;
    return -1;
}

// ---- names ---------------------------------------------------------------------------------

static int is_number(const char *s) { double v; return df_parse_double(s, &v) == 0; }
static int cmp_num_str(const void *a, const void *b) {
    double x = strtod(*(char *const *)a, NULL), y = strtod(*(char *const *)b, NULL);
    return (x > y) - (x < y);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void cohort_sort_names(char **names, int n) {
    int numeric = 1;
    for (int i = 0; i < n; i++) numeric &= is_number(names[i]);
    qsort(names, (size_t)n, sizeof(char *), numeric ? cmp_num_str : cmp_str);
}

// Writes the name into buf and returns its full length: a name of META_NAME_LEN characters
// or more does not fit, and must not match anything by its truncated prefix.
static size_t level_name(const Cohort *c, int col, double v, char buf[META_NAME_LEN]) {
    if (c->n_levels[col] > 0 && v >= 0 && v < c->n_levels[col] && v == floor(v))
        return (size_t)snprintf(buf, META_NAME_LEN, "%s", c->levels[col][(int)v]);
    meta_value_name(v, buf);
    return strlen(buf);
}

static size_t class_name(const Cohort *c, int label, char buf[META_NAME_LEN]) {
    if (c->n_label_names > 0 && label >= 0 && label < c->n_label_names)
        return (size_t)snprintf(buf, META_NAME_LEN, "%s", c->label_names[label]);
    return (size_t)snprintf(buf, META_NAME_LEN, "%d", label);
}

void cohort_level_name(const Cohort *c, int col, double v, char buf[META_NAME_LEN]) { level_name(c, col, v, buf); }
void cohort_class_name(const Cohort *c, int label, char buf[META_NAME_LEN]) { class_name(c, label, buf); }

// ---- checks --------------------------------------------------------------------------------

#define MAX_CLASS 1000000  // a label beyond this is not a class index but a broken file
#define MAX_CODE 1000000   // nor is such a categorical value a level number: codes index levels

void cohort_sample_name(char *buf, size_t n, int index, const char *subject) {
    if (subject) snprintf(buf, n, "sample %d (subject %s)", index, subject);
    else snprintf(buf, n, "sample %d", index);
}

static const char *subject_of(const Cohort *c, int i) { return c->subjects ? c->subjects[i] : NULL; }

int cohort_check_columns(char *const *columns, int k, const char *path, DfError *err) {
    for (int j = 0; j < k; j++) {
        if (!columns[j] || !columns[j][0])
            return df_err(err, "%s: meta: column %d has an empty name (metadata columns are found by name)", path, j + 1);
        if (strchr(columns[j], ','))
            return df_err(err, "%s: meta: column name '%s' contains a comma", path, columns[j]);
        for (int i = 0; i < j; i++)
            if (strcmp(columns[i], columns[j]) == 0)
                return df_err(err, "%s: meta: column name '%s' is given twice (columns %d and %d): names must be unique", path,
                              columns[j], i + 1, j + 1);
    }
    return 0;
}

// Sample i's value of metadata column j: 0, or -1 naming the file, sample and column. A
// categorical value indexes the column's level names when it has them; without names it is
// the level itself, still a small whole number, since bias groups, strata and figures count
// by it.
static int check_meta(const Cohort *c, int i, int j, const char *path, DfError *err) {
    double v = c->meta[(size_t)i * c->k + j];
    int named = c->n_levels[j] > 0, cat = c->kinds[j] == META_CATEGORICAL;
    int limit = named ? c->n_levels[j] : MAX_CODE;
    if (isfinite(v) && (!cat || (v == floor(v) && v >= 0 && v < limit))) return 0;
    char who[META_NAME_LEN + 64];
    cohort_sample_name(who, sizeof who, i, subject_of(c, i));
    if (!isfinite(v))
        return df_err(err, "%s: %s, meta column '%s': %s; metadata must be finite numbers (no missing values)", path, who,
                      c->columns[j], isnan(v) ? "NaN" : "infinite");
    if (named)
        return df_err(err, "%s: %s, meta column '%s': %.15g is not a level number of the column (an integer 0..%d indexing its %d "
                      "level names)", path, who, c->columns[j], v, limit - 1, limit);
    return df_err(err, "%s: %s, meta column '%s': %.15g is not a level number (categorical values are whole numbers 0, 1, 2, ... "
                  "below %d)", path, who, c->columns[j], v, MAX_CODE);
}

static int check_label(const Cohort *c, int i, const char *path, DfError *err) {
    int y = c->labels[i], named = c->n_label_names;
    if (y >= 0 && y <= MAX_CLASS && (!named || y < named)) return 0;
    char who[META_NAME_LEN + 64];
    cohort_sample_name(who, sizeof who, i, subject_of(c, i));
    if (y < 0 || y > MAX_CLASS) return df_err(err, "%s: %s: label %d is not a class index (0, 1, ...)", path, who, y);
    return df_err(err, "%s: %s: label %d, but the labels name only %d classes (0..%d)", path, who, y, named, named - 1);
}

int cohort_check_values(const Cohort *c, const char *path, DfError *err) {
    for (int i = 0; i < c->n; i++) {
        for (int j = 0; j < c->k; j++)
            if (check_meta(c, i, j, path, err)) return -1;
        if (check_label(c, i, path, err)) return -1;
    }
    return 0;
}

int cohort_check_image(const float *x, Shape s, const char *path, const char *who, DfError *err) {
    long k = df_first_nonfinite(x, shape_numel(s));
    if (k < 0) return 0;
    long V = (long)shape_spatial(s), r = k % V;
    int w = (int)(r % s.w), h = (int)(r / s.w % s.h), d = (int)(r / ((long)s.w * s.h));
    return df_err(err, "%s: %s, images: channel %ld voxel (d %d, h %d, w %d) is %s; images must hold finite numbers, "
                  "inside a mask or not", path, who, k / V, d, h, w, isnan(x[k]) ? "NaN" : "infinite");
}

// ---- combining shards ----------------------------------------------------------------------

static char **dup_names(char *const *names, int n) {
    char **out = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    for (int i = 0; i < n; i++) out[i] = xstrdup(names[i]);
    return out;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int find_name(char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

// Replaces the name list *a (n_a names) by the sorted union of *a and b; remap_a / remap_b
// (n_a and n_b entries) get each old index's new one.
static void merge_names(char ***a, int *n_a, char *const *b, int n_b, int *remap_a, int *remap_b) {
    char **u = xcalloc((size_t)(*n_a + n_b + 1), sizeof(char *));
    int n = 0;
    for (int i = 0; i < *n_a; i++) u[n++] = xstrdup((*a)[i]);
    for (int i = 0; i < n_b; i++)
        if (find_name(u, n, b[i]) < 0) u[n++] = xstrdup(b[i]);
    cohort_sort_names(u, n);
    for (int i = 0; i < *n_a; i++) remap_a[i] = find_name(u, n, (*a)[i]);
    for (int i = 0; i < n_b; i++) remap_b[i] = find_name(u, n, b[i]);
    free_names(*a, *n_a);
    *a = u;
    *n_a = n;
}

// Column j (or the labels, j < 0) of the combined cohort, whose first `have` rows are the
// earlier shards' and the rest h's: merges the names and renumbers both sides.
static int combine_names(Cohort *all, int have, const Cohort *h, int j, const char *first_path, const char *path,
                         DfError *err) {
    char ***a = j < 0 ? &all->label_names : &all->levels[j];
    int *n_a = j < 0 ? &all->n_label_names : &all->n_levels[j];
    char *const *b = j < 0 ? h->label_names : h->levels[j];
    int n_b = j < 0 ? h->n_label_names : h->n_levels[j];
    const char *what = j < 0 ? "the class labels" : all->columns[j];
    if (*n_a == 0 && n_b == 0) return 0;  // plain numbers on both sides: the numbers are the names
    if (*n_a == 0 || n_b == 0)
        return df_err(err, "%s: %s%s%s are %s, but in %s they are %s: shards combined must both name them or both not "
                      "(pack them together, or with the same manifest columns)", path, j < 0 ? "" : "the levels of column '",
                      what, j < 0 ? "" : "'", n_b ? "named" : "plain numbers", first_path, *n_a ? "named" : "plain numbers");
    int *ra = xmalloc(sizeof(int) * (size_t)*n_a), *rb = xmalloc(sizeof(int) * (size_t)n_b);
    merge_names(a, n_a, b, n_b, ra, rb);
    for (int i = 0; i < all->n; i++) {
        int *lab = &all->labels[i];
        double *v = j < 0 ? NULL : &all->meta[(size_t)i * all->k + j];
        int old = j < 0 ? *lab : (int)*v, now = i < have ? ra[old] : rb[old];
        if (j < 0) *lab = now;
        else *v = now;
    }
    free(ra);
    free(rb);
    return 0;
}

// The first shard: its columns and name lists.
static void copy_columns(Cohort *all, const Cohort *h) {
    all->shape = h->shape;
    all->k = h->k;
    for (int j = 0; j < h->k; j++) {
        all->columns[j] = xstrdup(h->columns[j]);
        all->kinds[j] = h->kinds[j];
        all->n_levels[j] = h->n_levels[j];
        if (h->n_levels[j]) all->levels[j] = dup_names(h->levels[j], h->n_levels[j]);
    }
    all->has_masks = h->has_masks;
    if (h->n_label_names) {
        all->n_label_names = h->n_label_names;
        all->label_names = dup_names(h->label_names, h->n_label_names);
    }
}

static int check_same_columns(const Cohort *all, const Cohort *h, const char *first_path, const char *path, DfError *err) {
    Shape a = all->shape, b = h->shape;
    if (a.c != b.c || a.d != b.d || a.h != b.h || a.w != b.w)
        return df_err(err, "%s: samples of shape (%d,%d,%d,%d), but those of %s are (%d,%d,%d,%d)", path, b.c, b.d, b.h, b.w,
                      first_path, a.c, a.d, a.h, a.w);
    if (h->k != all->k) return df_err(err, "%s: %d metadata columns, but %s has %d", path, h->k, first_path, all->k);
    for (int j = 0; j < all->k; j++)
        if (strcmp(h->columns[j], all->columns[j]) || h->kinds[j] != all->kinds[j])
            return df_err(err, "%s: metadata column %d is '%s' (%s), but in %s it is '%s' (%s): same names and kinds needed",
                          path, j + 1, h->columns[j], h->kinds[j] == META_CATEGORICAL ? "categorical" : "continuous", first_path,
                          all->columns[j], all->kinds[j] == META_CATEGORICAL ? "categorical" : "continuous");
    if (h->has_masks != all->has_masks)
        return df_err(err, "%s: %s masks, unlike %s", path, h->has_masks ? "has" : "has no", first_path);
    return 0;
}

int cohort_append(Cohort *all, const char *first_path, const Cohort *h, const char *path, DfError *err) {
    int have = all->n;
    if (have == 0 && all->k == 0 && !all->labels) copy_columns(all, h);
    else if (check_same_columns(all, h, first_path, path, err)) return -1;
    int n = have + h->n, k = all->k;
    all->labels = xrealloc(all->labels, sizeof(int32_t) * (size_t)(n ? n : 1));
    memcpy(all->labels + have, h->labels, sizeof(int32_t) * (size_t)h->n);
    all->meta = xrealloc(all->meta, sizeof(double) * (size_t)(n ? n : 1) * (size_t)(k ? k : 1));
    memcpy(all->meta + (size_t)have * k, h->meta, sizeof(double) * (size_t)h->n * (size_t)k);
    // Subject ids: kept when every shard has them; otherwise "#index" makes each unique.
    all->subjects = xrealloc(all->subjects, sizeof(char *) * (size_t)(n ? n : 1));
    for (int i = 0; i < h->n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "#%d", have + i);
        all->subjects[have + i] = xstrdup(h->subjects ? h->subjects[i] : buf);
    }
    all->n = n;
    if (have == 0) return 0;
    for (int j = -1; j < k; j++)
        if ((j < 0 || all->kinds[j] == META_CATEGORICAL) && combine_names(all, have, h, j, first_path, path, err)) return -1;
    return 0;
}

// ---- the network's schema ------------------------------------------------------------------

// A name the schema can hold: shorter than META_NAME_LEN (len is its full length), without
// the tab or line break its text form (meta_schema_to_text) separates fields with.
static int bad_name(const char *what, const char *name, size_t len, DfError *err) {
    if (len >= META_NAME_LEN) return df_err(err, "%s '%.40s...' is longer than %d characters", what, name, META_NAME_LEN - 1);
    if (strpbrk(name, "\t\r\n")) return df_err(err, "%s '%s' holds a tab or line break", what, name);
    return 0;
}

// Column j's distinct values, sorted, with their names.
static int schema_levels(MetaSchema *s, const Cohort *c, int j, double *tmp, DfError *err) {
    for (int i = 0; i < c->n; i++) tmp[i] = c->meta[(size_t)i * c->k + j];
    qsort(tmp, (size_t)c->n, sizeof(double), df_cmp_double);
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        if (i > 0 && tmp[i] == tmp[i - 1]) continue;
        if (n == META_MAX_LEVELS)
            return df_err(err, "categorical column '%s' has more than %d levels", c->columns[j], META_MAX_LEVELS);
        s->levels[j][n] = tmp[i];
        size_t len = level_name(c, j, tmp[i], s->level_names[j][n]);
        char what[META_NAME_LEN + 48];
        snprintf(what, sizeof what, "column '%s': the level name", c->columns[j]);
        if (bad_name(what, s->level_names[j][n], len, err)) return -1;
        n++;
    }
    s->n_levels[j] = n;
    return 0;
}

int meta_schema_build(MetaSchema *s, const Cohort *c, DfError *err) {
    memset(s, 0, sizeof *s);
    if (c->k > META_MAX_COLS) return df_err(err, "%d metadata columns (at most %d)", c->k, META_MAX_COLS);
    s->n_cols = c->k;
    double *tmp = xmalloc((size_t)(c->n ? c->n : 1) * sizeof(double));
    int rc = 0;
    for (int j = 0; j < c->k && !rc; j++) {
        rc = bad_name("the column name", c->columns[j], (size_t)snprintf(s->names[j], META_NAME_LEN, "%s", c->columns[j]), err);
        s->categorical[j] = c->kinds[j] == META_CATEGORICAL;
        s->named_levels[j] = c->n_levels[j] > 0;
        if (!rc && s->categorical[j]) rc = schema_levels(s, c, j, tmp, err);
    }
    free(tmp);
    if (rc) return -1;
    for (int i = 0; i < c->n; i++) s->n_classes = DF_MAX(s->n_classes, c->labels[i] + 1);
    s->named_classes = c->n_label_names > 0;
    if (s->named_classes && s->n_classes > META_MAX_CLASS_NAMES)
        return df_err(err, "%d named classes (at most %d)", s->n_classes, META_MAX_CLASS_NAMES);
    for (int l = 0; s->named_classes && l < s->n_classes; l++)
        if (bad_name("the class name", c->label_names[l], class_name(c, l, s->class_names[l]), err)) return -1;
    return 0;
}

// ---- recoding evaluated data to a trained network's schema ---------------------------------

// The model's value for data value v of model column j (data column dj), or an error.
static int map_level(const Cohort *c, int dj, double v, const MetaSchema *m, int j, int sample, const char *origin, double *out,
                     DfError *err) {
    char name[META_NAME_LEN];
    if (level_name(c, dj, v, name) < META_NAME_LEN)
        for (int l = 0; l < m->n_levels[j]; l++)
            if (strcmp(m->level_names[j][l], name) == 0) { *out = m->levels[j][l]; return 0; }
    char known[512];
    meta_list_levels(m, j, known, sizeof known);
    return df_err(err, "%s: column '%s' has level '%s' (sample %d), which the model was never trained on (its levels: %s)",
                  origin, m->names[j], name, sample, known);
}

static int map_class(const Cohort *c, int y, const MetaSchema *m, int sample, const char *origin, int *out, DfError *err) {
    char name[META_NAME_LEN], tmp[META_NAME_LEN];
    if (class_name(c, y, name) < META_NAME_LEN)
        for (int l = 0; l < m->n_classes; l++)
            if (strcmp(meta_class_name(m, l, tmp), name) == 0) { *out = l; return 0; }
    char known[512];
    meta_list_levels(m, META_LABEL, known, sizeof known);
    return df_err(err, "%s: class '%s' (sample %d) is not one the model was trained on (its classes: %s)", origin, name, sample,
                  known);
}

// The names list of model column j for the recoded cohort: value -> name (the model's
// values of a named column index its training data's list; unseen entries stay "").
static char **model_level_list(const MetaSchema *m, int j, int *n) {
    int size = 0;
    for (int l = 0; l < m->n_levels[j]; l++) size = DF_MAX(size, (int)m->levels[j][l] + 1);
    char **list = xcalloc((size_t)(size ? size : 1), sizeof(char *));
    for (int i = 0; i < size; i++) list[i] = xstrdup("");
    for (int l = 0; l < m->n_levels[j]; l++) {
        free(list[(int)m->levels[j][l]]);
        list[(int)m->levels[j][l]] = xstrdup(m->level_names[j][l]);
    }
    *n = size;
    return list;
}

int cohort_map_to_schema(Cohort *c, const MetaSchema *model, MetaSchema *mapped, const char *origin, DfError *err) {
    *mapped = *model;
    memset(mapped->absent, 0, sizeof mapped->absent);
    int src[META_MAX_COLS], k = model->n_cols, used[META_MAX_COLS] = { 0 };
    for (int j = 0; j < model->n_cols; j++) {
        int dj = cohort_column(c, model->names[j]);
        src[j] = dj;
        if (dj < 0) { mapped->absent[j] = 1; continue; }
        used[dj] = 1;
        if ((c->kinds[dj] == META_CATEGORICAL) != model->categorical[j])
            return df_err(err, "%s: column '%s' is %s, but the model was trained on it as %s", origin, model->names[j],
                          c->kinds[dj] == META_CATEGORICAL ? "categorical" : "continuous",
                          model->categorical[j] ? "categorical" : "continuous");
    }
    for (int dj = 0; dj < c->k; dj++)  // the data's own further columns follow the model's
        if (!used[dj]) {
            if (k == META_MAX_COLS) return df_err(err, "%s: more than %d metadata columns with the model's", origin, META_MAX_COLS);
            src[k++] = dj;
        }
    double *meta = xmalloc(sizeof(double) * (size_t)(c->n ? c->n : 1) * (size_t)(k ? k : 1));
    int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)(c->n ? c->n : 1));
    int rc = 0;
    for (int i = 0; i < c->n && !rc; i++) {
        for (int j = 0; j < k && !rc; j++) {
            double *out = &meta[(size_t)i * k + j], v = src[j] < 0 ? NAN : c->meta[(size_t)i * c->k + src[j]];
            *out = v;
            if (j < model->n_cols && src[j] >= 0 && model->categorical[j]) rc = map_level(c, src[j], v, model, j, i, origin, out, err);
        }
        int y = 0;
        if (!rc) rc = map_class(c, c->labels[i], model, i, origin, &y, err);
        labels[i] = y;
    }
    if (rc) { free(meta); free(labels); return -1; }
    // The cohort now speaks the model's coding: its columns, level lists and class names.
    char *columns[META_MAX_COLS];
    MetaKind kinds[META_MAX_COLS];
    int n_levels[META_MAX_COLS] = { 0 };
    char **levels[META_MAX_COLS] = { 0 };
    for (int j = 0; j < k; j++) {
        int dj = src[j];
        if (j < model->n_cols) {
            columns[j] = xstrdup(model->names[j]);
            kinds[j] = model->categorical[j] ? META_CATEGORICAL : META_CONTINUOUS;
            if (model->categorical[j] && model->named_levels[j]) levels[j] = model_level_list(model, j, &n_levels[j]);
        } else {
            columns[j] = xstrdup(c->columns[dj]);
            kinds[j] = c->kinds[dj];
            n_levels[j] = c->n_levels[dj];
            levels[j] = c->n_levels[dj] ? dup_names(c->levels[dj], c->n_levels[dj]) : NULL;
        }
    }
    for (int j = 0; j < c->k; j++) { free(c->columns[j]); free_names(c->levels[j], c->n_levels[j]); }
    free_names(c->label_names, c->n_label_names);
    c->label_names = NULL;
    c->n_label_names = 0;
    for (int j = 0; j < k; j++) {
        c->columns[j] = columns[j];
        c->kinds[j] = kinds[j];
        c->n_levels[j] = n_levels[j];
        c->levels[j] = levels[j];
    }
    for (int j = k; j < META_MAX_COLS; j++) { c->columns[j] = NULL; c->n_levels[j] = 0; c->levels[j] = NULL; }
    if (model->named_classes) {
        c->n_label_names = model->n_classes;
        c->label_names = xcalloc((size_t)model->n_classes, sizeof(char *));
        for (int l = 0; l < model->n_classes; l++) c->label_names[l] = xstrdup(model->class_names[l]);
    }
    free(c->meta);
    free(c->labels);
    c->meta = meta;
    c->labels = labels;
    c->k = k;
    return 0;
}
