// feature_file.c: reading FILE:DATASET[:COLUMN] arrays and writing eval features (feature_file.h).
#include "data/feature_file.h"
#include <stdlib.h>
#include <string.h>
#include "data/h5util.h"

static char *dup_n(const char *s, size_t n) {
    char *t = xmalloc(n + 1);
    memcpy(t, s, n);
    t[n] = 0;
    return t;
}

// Splits "FILE:DATASET[:COLUMN]" (the file is everything before the first ':', the column
// everything after the last one when there are two or more). Returns 0 or -1.
static int split_spec(const char *spec, char **file, char **dset, char **col, DfError *err) {
    const char *c1 = strchr(spec, ':');
    if (!c1 || c1 == spec || !c1[1])
        return df_err(err, "'%s': expected FILE:DATASET or FILE:DATASET:COLUMN", spec);
    const char *c2 = strrchr(spec, ':');
    *file = dup_n(spec, (size_t)(c1 - spec));
    if (c2 != c1) {
        *dset = dup_n(c1 + 1, (size_t)(c2 - c1 - 1));
        *col = xstrdup(c2 + 1);
    } else {
        *dset = xstrdup(c1 + 1);
        *col = NULL;
    }
    if (!**dset || (*col && !**col)) {
        free(*file); free(*dset); free(*col);
        return df_err(err, "'%s': expected FILE:DATASET or FILE:DATASET:COLUMN", spec);
    }
    return 0;
}

// Column index of `col` in dataset `ds` with d columns: a number, or a name of its
// `columns` attribute. -1 with err.
static int find_column(hid_t ds, const char *file, const char *dset, const char *col, int d, DfError *err) {
    long k;
    if (df_parse_long(col, &k) == 0) {
        if (k < 0 || k >= d) return df_err(err, "%s: %s has %d column%s; column %ld is out of range", file, dset, d, d == 1 ? "" : "s", k);
        return (int)k;
    }
    if (!h5_attr_exists(ds, "columns"))
        return df_err(err, "%s: %s has no `columns` attribute to look up column '%s' (give a 0-based index)", file, dset, col);
    char *names = h5_attr_read_string(ds, file, "columns", err);
    if (!names) return -1;
    int idx = -1, j = 0;
    for (char *s = names, *save = NULL, *tok; (tok = strtok_r(s, ",", &save)); s = NULL, j++)
        if (strcmp(tok, col) == 0 && idx < 0) idx = j;
    free(names);
    if (idx < 0 || idx >= d) return df_err(err, "%s: %s has no column named '%s'", file, dset, col);
    return idx;
}

// flags (cols): 1 where ds's comma-separated `kinds` attribute says "categorical" (all 0
// without the attribute); -1 with err when it cannot be read.
static int read_categorical(int *flags, hid_t ds, const char *file, int cols, DfError *err) {
    for (int j = 0; j < cols; j++) flags[j] = 0;
    if (!h5_attr_exists(ds, "kinds")) return 0;
    char *kinds = h5_attr_read_string(ds, file, "kinds", err);
    if (!kinds) return -1;
    int j = 0;
    for (char *s = kinds, *save = NULL, *tok; (tok = strtok_r(s, ",", &save)) && j < cols; s = NULL, j++)
        flags[j] = strcmp(tok, "categorical") == 0;
    free(kinds);
    return 0;
}

int features_read_spec(const char *spec, double **x, int *n, int *d, DfError *err) {
    return features_read_spec_kind(spec, x, n, d, NULL, err);
}

int features_read_spec_kind(const char *spec, double **x, int *n, int *d, int **categorical, DfError *err) {
    char *file = NULL, *dset = NULL, *col = NULL;
    *x = NULL;
    if (categorical) *categorical = NULL;
    if (split_spec(spec, &file, &dset, &col, err)) return -1;
    int rc = -1;
    hid_t f = -1, ds = -1, sp = -1, ty = -1;
    double *buf = NULL;
    int *flags = NULL;
    if ((f = h5_open_read(file, err)) < 0) goto done;
    if (!h5_exists(f, dset)) { df_err(err, "%s: no dataset '%s'", file, dset); goto done; }
    if ((ds = H5Dopen2(f, dset, H5P_DEFAULT)) < 0) { df_err(err, "%s: '%s' is not a dataset", file, dset); goto done; }
    if ((ty = H5Dget_type(ds)) < 0 || (sp = H5Dget_space(ds)) < 0) { df_err(err, "%s: %s: cannot read its type", file, dset); goto done; }
    H5T_class_t cls = H5Tget_class(ty);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) { df_err(err, "%s: %s is not numeric (integer or float)", file, dset); goto done; }
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK];
    if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        df_err(err, "%s: %s has %d dimensions; expected [N] or [N, D]", file, dset, nd);
        goto done;
    }
    if (dims[0] < 1 || dims[0] > (1u << 30) || (nd == 2 && (dims[1] < 1 || dims[0] * dims[1] > ((hsize_t)1 << 34)))) {
        df_err(err, "%s: %s has shape [%llu%s] (empty or too large)", file, dset, (unsigned long long)dims[0], nd == 2 ? ", ..." : "");
        goto done;
    }
    int rows = (int)dims[0], cols = nd == 2 ? (int)dims[1] : 1, pick = -1;
    if (col) {
        if (nd != 2) { df_err(err, "%s: %s is 1-D; a column can only be picked from a 2-D dataset", file, dset); goto done; }
        if ((pick = find_column(ds, file, dset, col, cols, err)) < 0) goto done;
    }
    flags = xmalloc((size_t)cols * sizeof(int));
    if (nd == 2 && read_categorical(flags, ds, file, cols, err)) goto done;
    if (nd == 1) flags[0] = 0;
    buf = xmalloc((size_t)rows * cols * sizeof(double));
    if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        df_err(err, "%s: %s: read failed", file, dset);
        goto done;
    }
    if (pick >= 0) {
        for (int i = 0; i < rows; i++) buf[i] = buf[(size_t)i * cols + pick];
        flags[0] = flags[pick];
        cols = 1;
    }
    *x = buf;
    buf = NULL;
    if (categorical) { *categorical = flags; flags = NULL; }
    *n = rows;
    *d = cols;
    rc = 0;
done:
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    if (f >= 0) H5Fclose(f);
    free(buf); free(flags); free(file); free(dset); free(col);
    return rc;
}

static int write_contents(hid_t f, const char *path, const FeaturesFile *ff, DfError *err) {
    if (h5_write_format(f, path, FEATURES_FORMAT, FEATURES_VERSION, err)) return -1;
    if (h5_attr_write_string(f, path, "checkpoint", ff->checkpoint ? ff->checkpoint : "", err)) return -1;
    size_t len = 1;
    for (int l = 0; l < ff->n_layers; l++) len += strlen(ff->names[l]) + 1;
    char *layers = xcalloc(len, 1);
    for (int l = 0; l < ff->n_layers; l++) {
        if (l) strcat(layers, ",");
        strcat(layers, ff->names[l]);
    }
    int rc = h5_attr_write_string(f, path, "layers", layers, err);
    free(layers);
    if (rc) return -1;
    for (int l = 0; l < ff->n_layers; l++) {
        char name[128];
        snprintf(name, sizeof name, "features/%s", ff->names[l]);
        hsize_t dims[2] = { (hsize_t)ff->n, (hsize_t)ff->dims[l] };
        if (h5_write_f32(f, path, name, ff->feats[l], 2, dims, err)) return -1;
    }
    hsize_t dl[1] = { (hsize_t)ff->n }, dm[2] = { (hsize_t)ff->n, (hsize_t)ff->k };
    if (h5_write_i32(f, path, "labels", ff->labels, 1, dl, err)) return -1;
    if (h5_write_f64(f, path, "meta", ff->meta, 2, dm, err)) return -1;
    hid_t meta = H5Dopen2(f, "meta", H5P_DEFAULT);
    if (meta < 0) return df_err(err, "%s: meta: cannot reopen", path);
    rc = h5_attr_write_string(meta, path, "columns", ff->columns ? ff->columns : "", err);
    if (!rc) rc = h5_attr_write_string(meta, path, "kinds", ff->kinds ? ff->kinds : "", err);
    if (H5Dclose(meta) < 0 && !rc) rc = df_err(err, "%s: meta: close failed", path);
    return rc;
}

int features_write(const char *path, const FeaturesFile *ff, DfError *err) {
    char *tmp;
    hid_t f = h5_create_atomic(path, &tmp, err);
    if (f < 0) return -1;
    int ok = write_contents(f, path, ff, err) == 0;
    int rc = h5_finish_atomic(f, tmp, path, ok, err);
    free(tmp);
    return rc;
}
