// shard.c: the HDF5 shard, format version 1 (see shard.h and docs/formats.md).
#include "data/shard.h"
#include "data/cohort.h"
#include "data/h5util.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const kind_names[] = { "continuous", "categorical" };

// "a,b,c" from k strings (the caller checked that none contains a comma). Caller frees.
static char *join(char *const *items, int k) {
    size_t n = 1;
    for (int j = 0; j < k; j++) n += strlen(items[j]) + 1;
    char *s = xmalloc(n);
    s[0] = '\0';
    for (int j = 0; j < k; j++) {
        if (j) strcat(s, ",");
        strcat(s, items[j]);
    }
    return s;
}

// Splits "a,b,c" into freshly allocated items; "" is zero items. Returns the count, or -1 if
// there are more than max.
static int split(const char *s, char **items, int max) {
    if (*s == '\0') return 0;
    int k = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (k == max) {
            for (int j = 0; j < k; j++) { free(items[j]); items[j] = NULL; }
            return -1;
        }
        items[k] = xmalloc(len + 1);
        memcpy(items[k], s, len);
        items[k][len] = '\0';
        k++;
        if (!comma) return k;
        s = comma + 1;
    }
}

static int check_cohort(const char *path, const Cohort *c, DfError *err) {
    if (c->n <= 0) return df_err(err, "%s: cannot write a shard with %d samples", path, c->n);
    if (c->shape.c <= 0 || c->shape.d <= 0 || c->shape.h <= 0 || c->shape.w <= 0)
        return df_err(err, "%s: bad sample shape (%d,%d,%d,%d)", path, c->shape.c, c->shape.d, c->shape.h, c->shape.w);
    if (c->k < 0 || c->k > META_MAX_COLS)
        return df_err(err, "%s: %d metadata columns (at most %d)", path, c->k, META_MAX_COLS);
    if (!c->labels || (c->k > 0 && !c->meta)) return df_err(err, "%s: cohort has no data", path);
    if (cohort_check_columns(c->columns, c->k, path, err)) return -1;
    for (int j = 0; j < c->k; j++) {
        if (c->kinds[j] != META_CONTINUOUS && c->kinds[j] != META_CATEGORICAL)
            return df_err(err, "%s: metadata column '%s' has a bad kind", path, c->columns[j]);
        for (int l = 0; l < c->n_levels[j]; l++)
            if (!c->levels[j][l] || strpbrk(c->levels[j][l], ",|"))
                return df_err(err, "%s: column '%s': level name '%s' contains ',' or '|'", path, c->columns[j],
                              c->levels[j][l] ? c->levels[j][l] : "(null)");
    }
    for (int l = 0; l < c->n_label_names; l++)
        if (!c->label_names[l] || strpbrk(c->label_names[l], "|"))
            return df_err(err, "%s: class name '%s' contains '|'", path, c->label_names[l] ? c->label_names[l] : "(null)");
    if (c->subjects)
        for (int i = 0; i < c->n; i++)
            if (!c->subjects[i]) return df_err(err, "%s: sample %d has no subject id", path, i);
    return cohort_check_values(c, path, err);
}

// ---- optional datasets: masks (uint8) and subject ids (strings) ---------------------------

// Closes an id if valid; returns 1 when the close failed.
static int close_quiet(hid_t id, herr_t (*fn)(hid_t)) { return id >= 0 && fn(id) < 0; }

static int write_masks(hid_t f, const char *path, const Cohort *c, DfError *err) {
    Shape s = c->shape;
    hsize_t dims[5] = { (hsize_t)c->n, 1, (hsize_t)s.d, (hsize_t)s.h, (hsize_t)s.w };
    hsize_t chunk[5] = { 1, 1, (hsize_t)s.d, (hsize_t)s.h, (hsize_t)s.w };
    hid_t space = H5Screate_simple(5, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
    int rc = -1;
    if (space < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 || H5Pset_chunk(dcpl, 5, chunk) < 0) {
        df_err(err, "%s: masks: cannot set up the dataset", path);
        goto done;
    }
    ds = H5Dcreate2(f, "masks", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) { df_err(err, "%s: masks: cannot create the dataset", path); goto done; }
    errno = 0;  // the reason of a failure (df_write_reason)
    if (H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, c->masks) < 0) {
        df_err(err, "%s: masks: write failed%s", path, df_write_reason(path));
        goto done;
    }
    rc = 0;
done:
    errno = 0;
    if ((close_quiet(ds, H5Dclose) | close_quiet(dcpl, H5Pclose) | close_quiet(space, H5Sclose)) && rc == 0)
        rc = df_err(err, "%s: masks: close failed%s", path, df_write_reason(path));
    return rc;
}

static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) { H5Tclose(t); return -1; }
    return t;
}

// A [n] dataset of variable-length UTF-8 strings.
static int write_strings(hid_t f, const char *path, const char *name, char *const *strings, int n, DfError *err) {
    hsize_t dims[1] = { (hsize_t)n };
    hid_t t = vlen_str_type(), space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
    int rc = -1;
    if (t < 0 || space < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        df_err(err, "%s: %s: cannot set up the dataset", path, name);
        goto done;
    }
    ds = H5Dcreate2(f, name, t, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) { df_err(err, "%s: %s: cannot create the dataset", path, name); goto done; }
    errno = 0;
    if (H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings) < 0) {
        df_err(err, "%s: %s: write failed%s", path, name, df_write_reason(path));
        goto done;
    }
    rc = 0;
done:
    errno = 0;
    if ((close_quiet(ds, H5Dclose) | close_quiet(dcpl, H5Pclose) | close_quiet(space, H5Sclose) | close_quiet(t, H5Tclose)) && rc == 0)
        rc = df_err(err, "%s: %s: close failed%s", path, name, df_write_reason(path));
    return rc;
}

// Reads a [n] string dataset (variable or fixed length) into *out (n new strings).
static int read_strings(hid_t f, const char *path, const char *name, int n, char ***out, DfError *err) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), ftype = -1, space = -1, mtype = -1;
    int rc = -1;
    if (ds < 0) return df_err(err, "%s: %s: cannot open", path, name);
    if ((ftype = H5Dget_type(ds)) < 0 || H5Tget_class(ftype) != H5T_STRING) { df_err(err, "%s: %s: not a string dataset", path, name); goto done; }
    if ((space = H5Dget_space(ds)) < 0 || H5Sget_simple_extent_npoints(space) != n) {
        df_err(err, "%s: %s: does not have one value per sample (%d)", path, name, n);
        goto done;
    }
    htri_t var = H5Tis_variable_str(ftype);
    if (var < 0) { df_err(err, "%s: %s: cannot inspect the string type", path, name); goto done; }
    char **strs = *out = xcalloc((size_t)n, sizeof(char *));
    if (var) {
        char **p = xcalloc((size_t)n, sizeof(char *));
        if ((mtype = vlen_str_type()) < 0 || H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, p) < 0) {
            free(p);
            df_err(err, "%s: %s: read failed", path, name);
            goto done;
        }
        for (int i = 0; i < n; i++) strs[i] = xstrdup(p[i] ? p[i] : "");
        if (H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, p) < 0) { free(p); df_err(err, "%s: %s: cannot free strings", path, name); goto done; }
        free(p);
    } else {
        size_t size = H5Tget_size(ftype);
        if (size == 0 || (mtype = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mtype, size + 1) < 0 ||
            H5Tset_strpad(mtype, H5T_STR_NULLTERM) < 0) {
            df_err(err, "%s: %s: cannot create the string type", path, name);
            goto done;
        }
        char *buf = xcalloc((size_t)n, size + 1);
        if (H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) { free(buf); df_err(err, "%s: %s: read failed", path, name); goto done; }
        for (int i = 0; i < n; i++) {
            char *e = buf + (size_t)i * (size + 1);
            size_t len = strnlen(e, size);
            while (len > 0 && e[len - 1] == ' ') len--;
            strs[i] = xmalloc(len + 1);
            memcpy(strs[i], e, len);
            strs[i][len] = '\0';
        }
        free(buf);
    }
    rc = 0;
done:
    if ((close_quiet(mtype, H5Tclose) | close_quiet(space, H5Sclose) | close_quiet(ftype, H5Tclose) | close_quiet(ds, H5Dclose)) && rc == 0)
        rc = df_err(err, "%s: %s: close failed", path, name);
    return rc;
}

// Splits "a|b|c" into items (count returned).
// Where each sample came from (Cohort.sources ...): /source_path [n] strings, /source_dims
// int32 [n, 3], /source_affine and /affine float64 [n, 4, 4].
static int write_geometry(hid_t f, const char *path, const Cohort *c, DfError *err) {
    hsize_t d3[2] = { (hsize_t)c->n, 3 }, d44[3] = { (hsize_t)c->n, 4, 4 };
    if (write_strings(f, path, "source_path", c->sources, c->n, err) || h5_write_i32(f, path, "source_dims", c->source_dims, 2, d3, err) ||
        h5_write_f64(f, path, "source_affine", c->source_affine, 3, d44, err) || h5_write_f64(f, path, "affine", c->affine, 3, d44, err))
        return -1;
    return 0;
}

static int read_geometry(hid_t f, const char *path, Cohort *c, DfError *err) {
    size_t n = (size_t)c->n;
    c->source_dims = xmalloc(n * 3 * sizeof(int32_t));
    c->source_affine = xmalloc(n * 16 * sizeof(double));
    c->affine = xmalloc(n * 16 * sizeof(double));
    if (read_strings(f, path, "source_path", c->n, &c->sources, err) || h5_read_i32(f, path, "source_dims", c->source_dims, n * 3, err) ||
        h5_read_f64(f, path, "source_affine", c->source_affine, n * 16, err) || h5_read_f64(f, path, "affine", c->affine, n * 16, err))
        return -1;
    return 0;
}

static char **split_bar(const char *s, int *n) {
    *n = 0;
    if (!*s) return NULL;
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == '|';
    char **out = xcalloc((size_t)cap, sizeof(char *));
    const char *p = s;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        out[*n] = xmalloc(len + 1);
        memcpy(out[*n], p, len);
        out[*n][len] = '\0';
        (*n)++;
        if (!bar) break;
        p = bar + 1;
    }
    return out;
}

static char *join_bar(char *const *items, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(items[i]) + 1;
    char *s = xmalloc(len);
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, "|");
        strcat(s, items[i]);
    }
    return s;
}

// The datasets and attributes of one shard into an open file.
static int write_contents(hid_t f, const char *path, const Cohort *c, DfError *err) {
    Shape s = c->shape;
    hsize_t idims[5] = { (hsize_t)c->n, (hsize_t)s.c, (hsize_t)s.d, (hsize_t)s.h, (hsize_t)s.w };
    // One sample per chunk: a data loader reads random samples, and a chunk is the unit
    // HDF5 reads. No compression: MRI floats barely compress and decoding would be the
    // bottleneck of every epoch.
    hsize_t chunk[5] = { 1, (hsize_t)s.c, (hsize_t)s.d, (hsize_t)s.h, (hsize_t)s.w };
    hsize_t ldims[1] = { (hsize_t)c->n };
    hsize_t mdims[2] = { (hsize_t)c->n, (hsize_t)c->k };
    if (h5_write_format(f, path, SHARD_FORMAT, SHARD_VERSION, err) != 0) return -1;
    if ((c->images ? h5_write_f32_chunked(f, path, "images", c->images, 5, idims, chunk, err)
                   : h5_create_f32_unwritten(f, path, "images", 5, idims, chunk, err)) != 0)
        return -1;
    if (h5_write_i32(f, path, "labels", c->labels, 1, ldims, err) != 0) return -1;
    if (h5_write_f64(f, path, "meta", c->meta, 2, mdims, err) != 0) return -1;

    hid_t meta = H5Dopen2(f, "meta", H5P_DEFAULT);
    if (meta < 0) return df_err(err, "%s: meta: cannot reopen", path);
    const char *kinds[META_MAX_COLS];
    for (int j = 0; j < c->k; j++) kinds[j] = kind_names[c->kinds[j]];
    char *cols = join(c->columns, c->k), *kstr = join((char *const *)kinds, c->k);
    int rc = h5_attr_write_string(meta, path, "columns", cols, err);
    if (rc == 0) rc = h5_attr_write_string(meta, path, "kinds", kstr, err);
    free(cols);
    free(kstr);
    int any_levels = 0;
    for (int j = 0; j < c->k; j++) any_levels |= c->n_levels[j] > 0;
    if (rc == 0 && any_levels) {
        char *per[META_MAX_COLS];
        for (int j = 0; j < c->k; j++) per[j] = join_bar(c->levels[j], c->n_levels[j]);
        char *lv = join(per, c->k);
        rc = h5_attr_write_string(meta, path, "levels", lv, err);
        free(lv);
        for (int j = 0; j < c->k; j++) free(per[j]);
    }
    if (H5Dclose(meta) < 0 && rc == 0) rc = df_err(err, "%s: meta: close failed", path);
    if (rc == 0 && c->n_label_names > 0) {
        hid_t lab = H5Dopen2(f, "labels", H5P_DEFAULT);
        if (lab < 0) return df_err(err, "%s: labels: cannot reopen", path);
        char *names = join_bar(c->label_names, c->n_label_names);
        rc = h5_attr_write_string(lab, path, "names", names, err);
        free(names);
        if (H5Dclose(lab) < 0 && rc == 0) rc = df_err(err, "%s: labels: close failed", path);
    }
    if (rc == 0 && c->masks) rc = write_masks(f, path, c, err);
    if (rc == 0 && c->subjects) rc = write_strings(f, path, "subject", c->subjects, c->n, err);
    if (rc == 0 && c->affine) rc = write_geometry(f, path, c, err);
    if (rc == 0 && c->source) rc = h5_attr_write_string(f, path, "source", c->source, err);
    if (rc == 0 && c->preprocessing) rc = h5_attr_write_string(f, path, "preprocessing", c->preprocessing, err);
    return rc;
}

int shard_create_unwritten(const char *path, const Cohort *c, const char *derived, DfError *err) {
    if (c->images) return df_err(err, "%s: internal: images given to shard_create_unwritten", path);
    if (check_cohort(path, c, err) != 0) return -1;
    h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return df_err(err, "%s: cannot create: %s", path, strerror(errno));
    int rc = write_contents(f, path, c, err);
    if (rc == 0 && derived) rc = h5_attr_write_string(f, path, "derived_by", derived, err);
    return h5_close_created(f, path, rc == 0, err);
}

int shard_write(const char *path, const Cohort *c, DfError *err) {
    if (!c->images) return df_err(err, "%s: cohort has no images", path);
    if (check_cohort(path, c, err) != 0) return -1;
    char *tmp;
    hid_t f = h5_create_atomic(path, &tmp, err);
    if (f < 0) return -1;
    int ok = write_contents(f, path, c, err) == 0;
    int rc = h5_finish_atomic(f, tmp, path, ok, err);
    free(tmp);
    return rc;
}

// Reads everything but (when !with_images) the images. On failure c is left empty.
// The datasets' shapes: images [N,C,D,H,W], labels [N], meta [N,k]; sets c->n, shape, k.
static int read_dims(hid_t f, const char *path, Cohort *c, DfError *err) {
    hsize_t idims[5], ldims[1], mdims[2];
    int nd = h5_dims(f, path, "images", idims, 5, err);
    if (nd < 0) return -1;
    if (nd != 5) return df_err(err, "%s: images: has %d dimensions, expected 5 (N,C,D,H,W)", path, nd);
    for (int i = 0; i < 5; i++)
        if (idims[i] == 0 || idims[i] > INT_MAX)
            return df_err(err, "%s: images: bad shape [%llu,%llu,%llu,%llu,%llu]", path, (unsigned long long)idims[0],
                          (unsigned long long)idims[1], (unsigned long long)idims[2], (unsigned long long)idims[3],
                          (unsigned long long)idims[4]);
    if ((nd = h5_dims(f, path, "labels", ldims, 1, err)) < 0) return -1;
    if (nd != 1 || ldims[0] != idims[0])
        return df_err(err, "%s: labels: has %s%llu entries but images has %llu samples", path, nd != 1 ? "not 1-D, " : "",
                      (unsigned long long)(nd == 1 ? ldims[0] : 0), (unsigned long long)idims[0]);
    if ((nd = h5_dims(f, path, "meta", mdims, 2, err)) < 0) return -1;
    if (nd != 2 || mdims[0] != idims[0])
        return df_err(err, "%s: meta: has %s%llu rows but images has %llu samples", path, nd != 2 ? "not 2-D, " : "",
                      (unsigned long long)(nd == 2 ? mdims[0] : 0), (unsigned long long)idims[0]);
    if (mdims[1] > META_MAX_COLS)
        return df_err(err, "%s: meta: %llu columns (at most %d)", path, (unsigned long long)mdims[1], META_MAX_COLS);
    c->n = (int)idims[0];
    c->shape = (Shape){ (int)idims[1], (int)idims[2], (int)idims[3], (int)idims[4] };
    c->k = (int)mdims[1];
    return 0;
}

// /meta's attributes: column names, kinds and (optional) level names.
static int read_meta_attrs(hid_t meta, const char *path, Cohort *c, DfError *err) {
    char *cols = NULL, *kstr = NULL, *kinds[META_MAX_COLS] = { 0 }, *lv = NULL, *per[META_MAX_COLS] = { 0 };
    int rc = -1, nk = 0, np = 0, k = c->k;
    if (!(cols = h5_attr_read_string(meta, path, "columns", err)) || !(kstr = h5_attr_read_string(meta, path, "kinds", err))) goto done;
    int ncol = split(cols, c->columns, META_MAX_COLS);
    if (ncol != k) {
        df_err(err, "%s: meta: attribute columns names %d columns but the data has %d", path, ncol < 0 ? META_MAX_COLS + 1 : ncol, k);
        goto done;
    }
    // Columns are found by name (the design, the bias, strata, the model's schema): an empty or
    // repeated name would make one of them unreachable, or the wrong one found.
    if (cohort_check_columns(c->columns, k, path, err)) goto done;
    if ((nk = split(kstr, kinds, META_MAX_COLS)) != k) {
        df_err(err, "%s: meta: attribute kinds names %d kinds but the data has %d columns", path, nk < 0 ? META_MAX_COLS + 1 : nk, k);
        if (nk < 0) nk = 0;
        goto done;
    }
    for (int j = 0; j < k; j++) {
        if (strcmp(kinds[j], "continuous") == 0) c->kinds[j] = META_CONTINUOUS;
        else if (strcmp(kinds[j], "categorical") == 0) c->kinds[j] = META_CATEGORICAL;
        else {
            df_err(err, "%s: meta: column '%s' has kind '%s' (expected continuous or categorical)", path, c->columns[j], kinds[j]);
            goto done;
        }
    }
    if (h5_attr_exists(meta, "levels")) {
        if (!(lv = h5_attr_read_string(meta, path, "levels", err))) goto done;
        if ((np = split(lv, per, META_MAX_COLS)) != k && !(k == 1 && np == 0)) {
            df_err(err, "%s: meta: attribute levels has %d entries for %d columns", path, np, k);
            goto done;
        }
        for (int j = 0; j < np; j++) c->levels[j] = split_bar(per[j], &c->n_levels[j]);
    }
    rc = 0;
done:
    for (int j = 0; j < nk; j++) free(kinds[j]);
    for (int j = 0; j < (np > 0 ? np : 0); j++) free(per[j]);
    free(cols);
    free(kstr);
    free(lv);
    return rc;
}

// Labels, metadata values, and the labels' optional class names.
static int read_labels_meta(hid_t f, const char *path, Cohort *c, DfError *err) {
    c->labels = xcalloc((size_t)c->n, sizeof(int32_t));
    c->meta = xcalloc((size_t)c->n * (size_t)c->k, sizeof(double));
    if (h5_read_i32(f, path, "labels", c->labels, (size_t)c->n, err) != 0 ||
        h5_read_f64(f, path, "meta", c->meta, (size_t)c->n * (size_t)c->k, err) != 0)
        return -1;
    hid_t lab = H5Dopen2(f, "labels", H5P_DEFAULT);
    if (lab < 0) return df_err(err, "%s: labels: cannot open", path);
    char *names = NULL;
    int bad = 0;
    if (h5_attr_exists(lab, "names")) bad = !(names = h5_attr_read_string(lab, path, "names", err));
    if (H5Dclose(lab) < 0 && !bad) bad = df_err(err, "%s: labels: close failed", path) != 0;
    if (!bad && names) c->label_names = split_bar(names, &c->n_label_names);
    free(names);
    return bad ? -1 : 0;
}

// The optional masks: their shape must match the images'; read when with_images.
static int read_masks_part(hid_t f, const char *path, Cohort *c, int with_images, DfError *err) {
    if (!h5_exists(f, "masks")) return 0;
    hsize_t md[5];
    Shape s = c->shape;
    int mnd = h5_dims(f, path, "masks", md, 5, err);
    if (mnd < 0) return -1;
    if (mnd != 5 || md[0] != (hsize_t)c->n || md[1] != 1 || md[2] != (hsize_t)s.d || md[3] != (hsize_t)s.h || md[4] != (hsize_t)s.w)
        return df_err(err, "%s: masks: shape does not match images [N,1,D,H,W] = [%d,1,%d,%d,%d]", path, c->n, s.d, s.h, s.w);
    c->has_masks = 1;
    if (!with_images) return 0;
    c->masks = xmalloc((size_t)c->n * shape_spatial(s));
    return shard_read_masks(path, 0, c->n, c->masks, err);
}

// Every sample's voxels finite: a pass over what was just read, cheap beside the read.
static int check_images(const Cohort *c, const char *path, DfError *err) {
    size_t per = shape_numel(c->shape);
    char who[META_NAME_LEN + 64];
    for (int i = 0; i < c->n; i++)
        if (df_first_nonfinite(c->images + (size_t)i * per, per) >= 0) {
            cohort_sample_name(who, sizeof who, i, c->subjects ? c->subjects[i] : NULL);
            return cohort_check_image(c->images + (size_t)i * per, c->shape, path, who, err);
        }
    return 0;
}

// Reads everything but (when !with_images) the images and masks. On failure c is left empty.
static int read_shard(const char *path, Cohort *c, int with_images, DfError *err) {
    memset(c, 0, sizeof *c);
    hid_t f = h5_open_read(path, err), meta = -1;
    if (f < 0) return -1;
    int rc = -1;
    if (h5_check_format(f, path, SHARD_FORMAT, SHARD_VERSION, err) != 0 || read_dims(f, path, c, err)) goto done;
    if ((meta = H5Dopen2(f, "meta", H5P_DEFAULT)) < 0) { df_err(err, "%s: meta: cannot open", path); goto done; }
    if (read_meta_attrs(meta, path, c, err) || read_labels_meta(f, path, c, err)) goto done;
    if (h5_exists(f, "subject") && read_strings(f, path, "subject", c->n, &c->subjects, err) != 0) goto done;
    if (h5_exists(f, "affine") && read_geometry(f, path, c, err) != 0) goto done;
    if (h5_attr_exists(f, "derived_by") && !(c->derived_by = h5_attr_read_string(f, path, "derived_by", err))) goto done;
    if (h5_attr_exists(f, "source") && !(c->source = h5_attr_read_string(f, path, "source", err))) goto done;
    if (h5_attr_exists(f, "preprocessing") && !(c->preprocessing = h5_attr_read_string(f, path, "preprocessing", err))) goto done;
    if (read_masks_part(f, path, c, with_images, err) || cohort_check_values(c, path, err) != 0) goto done;
    if (with_images) {
        size_t count = (size_t)c->n * shape_numel(c->shape);
        c->images = df_alloc_floats(count);
        if (h5_read_f32(f, path, "images", c->images, count, err) != 0) goto done;
        if (check_images(c, path, err)) goto done;
    }
    rc = 0;
done:
    if (meta >= 0 && H5Dclose(meta) < 0 && rc == 0) rc = df_err(err, "%s: meta: close failed", path);
    if (H5Fclose(f) < 0 && rc == 0) rc = df_err(err, "%s: closing failed", path);
    if (rc != 0) cohort_free(c);
    return rc;
}

int shard_read(const char *path, Cohort *c, DfError *err) { return read_shard(path, c, 1, err); }

int shard_read_header(const char *path, Cohort *c, DfError *err) { return read_shard(path, c, 0, err); }

int shard_read_images(const char *path, int start, int count, float *images, DfError *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = -1;
    if (start < 0 || count < 0) { df_err(err, "%s: bad sample range [%d, %d)", path, start, start + count); goto done; }
    if (h5_check_format(f, path, SHARD_FORMAT, SHARD_VERSION, err) != 0) goto done;
    rc = h5_read_f32_rows(f, path, "images", (hsize_t)start, (hsize_t)count, images, err);
done:
    if (H5Fclose(f) < 0 && rc == 0) rc = df_err(err, "%s: closing failed", path);
    return rc;
}

int shard_read_masks(const char *path, int start, int count, uint8_t *masks, DfError *err) {
    hid_t f = h5_open_read(path, err), ds = -1, fspace = -1, mspace = -1, type = -1;
    if (f < 0) return -1;
    int rc = -1;
    hsize_t dims[5], off[5] = { 0 }, cnt[5];
    if (h5_check_format(f, path, SHARD_FORMAT, SHARD_VERSION, err) != 0) goto done;
    if (!h5_exists(f, "masks")) { df_err(err, "%s: has no masks", path); goto done; }
    if ((ds = H5Dopen2(f, "masks", H5P_DEFAULT)) < 0) { df_err(err, "%s: masks: cannot open", path); goto done; }
    if ((type = H5Dget_type(ds)) < 0 || H5Tget_class(type) != H5T_INTEGER) { df_err(err, "%s: masks: not integer data", path); goto done; }
    if ((fspace = H5Dget_space(ds)) < 0 || H5Sget_simple_extent_dims(fspace, dims, NULL) != 5) {
        df_err(err, "%s: masks: expected 5 dimensions", path);
        goto done;
    }
    if (start < 0 || count < 0 || (hsize_t)start + (hsize_t)count > dims[0]) {
        df_err(err, "%s: masks: samples [%d, %d) outside [0, %llu)", path, start, start + count, (unsigned long long)dims[0]);
        goto done;
    }
    if (count == 0) { rc = 0; goto done; }
    for (int i = 0; i < 5; i++) cnt[i] = dims[i];
    off[0] = (hsize_t)start;
    cnt[0] = (hsize_t)count;
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 || (mspace = H5Screate_simple(5, cnt, NULL)) < 0) {
        df_err(err, "%s: masks: cannot select samples", path);
        goto done;
    }
    if (H5Dread(ds, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, masks) < 0) { df_err(err, "%s: masks: read failed", path); goto done; }
    rc = 0;
done:
    if ((close_quiet(mspace, H5Sclose) | close_quiet(fspace, H5Sclose) | close_quiet(type, H5Tclose) | close_quiet(ds, H5Dclose)) && rc == 0)
        rc = df_err(err, "%s: masks: close failed", path);
    if (H5Fclose(f) < 0 && rc == 0) rc = df_err(err, "%s: closing failed", path);
    return rc;
}

void shard_layout_free(ShardLayout *l) {
    free(l->image_off);
    free(l->mask_off);
    memset(l, 0, sizeof *l);
}

// Offsets of the n samples of dataset `name` if it is raw-readable: element type `want`
// exactly (byte order included), no filters, chunks of one sample or contiguous storage.
// Returns 0, 1 (not raw-readable) or -1.
static int raw_offsets(hid_t f, const char *path, const char *name, hid_t want, int n, size_t per, int64_t *off, DfError *err) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), type = -1, dcpl = -1, space = -1;
    int rc = -1;
    if (ds < 0) return df_err(err, "%s: %s: cannot open", path, name);
    if ((type = H5Dget_type(ds)) < 0 || (dcpl = H5Dget_create_plist(ds)) < 0 || (space = H5Dget_space(ds)) < 0) {
        df_err(err, "%s: %s: cannot inspect the dataset", path, name);
        goto done;
    }
    htri_t same = H5Tequal(type, want);
    if (same < 0) { df_err(err, "%s: %s: cannot compare types", path, name); goto done; }
    int nfilters = H5Pget_nfilters(dcpl);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    hsize_t dims[5];
    int nd = H5Sget_simple_extent_dims(space, dims, NULL);
    if (!same || nfilters != 0 || nd != 5) { rc = 1; goto done; }
    if (layout == H5D_CONTIGUOUS) {
        haddr_t a = H5Dget_offset(ds);
        if (a == HADDR_UNDEF) { rc = 1; goto done; }  // never written
        for (int i = 0; i < n; i++) off[i] = (int64_t)a + (int64_t)i * (int64_t)per;
        rc = 0;
        goto done;
    }
    if (layout != H5D_CHUNKED) { rc = 1; goto done; }
    hsize_t chunk[5];
    if (H5Pget_chunk(dcpl, 5, chunk) != 5) { df_err(err, "%s: %s: cannot read the chunking", path, name); goto done; }
    if (chunk[0] != 1 || chunk[1] != dims[1] || chunk[2] != dims[2] || chunk[3] != dims[3] || chunk[4] != dims[4]) { rc = 1; goto done; }
    for (int i = 0; i < n; i++) {
        hsize_t coord[5] = { (hsize_t)i, 0, 0, 0, 0 };
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(ds, coord, &mask, &addr, &size) < 0) {
            df_err(err, "%s: %s: cannot locate sample %d", path, name, i);
            goto done;
        }
        if (addr == HADDR_UNDEF) { rc = 1; goto done; }  // unwritten chunk: let HDF5 read (fill value)
        // Without filters a written chunk is stored as its bytes exactly. Any other size is a
        // damaged index: reading through HDF5 would allocate that size first (up to 4 GB from a
        // few-KB file; found by fuzzing), so it is an error, not a fallback to HDF5.
        if (size != per) {
            df_err(err, "%s: %s: sample %d is stored as %llu bytes, not %zu (damaged file?)", path, name, i,
                   (unsigned long long)size, per);
            goto done;
        }
        off[i] = (int64_t)addr;
    }
    rc = 0;
done:
    if ((close_quiet(space, H5Sclose) | close_quiet(dcpl, H5Pclose) | close_quiet(type, H5Tclose) | close_quiet(ds, H5Dclose)) && rc >= 0)
        rc = df_err(err, "%s: %s: close failed", path, name);
    return rc;
}

int shard_layout(const char *path, ShardLayout *l, DfError *err) {
    memset(l, 0, sizeof *l);
    Cohort c;
    if (shard_read_header(path, &c, err) != 0) return -1;
    hid_t f = h5_open_read(path, err);
    if (f < 0) { cohort_free(&c); return -1; }
    l->n = c.n;
    l->image_bytes = shape_numel(c.shape) * sizeof(float);
    l->mask_bytes = shape_spatial(c.shape);
    l->image_off = xmalloc(sizeof(int64_t) * (size_t)c.n);
    int rc = raw_offsets(f, path, "images", H5T_IEEE_F32LE, c.n, l->image_bytes, l->image_off, err);
    if (rc == 0 && c.has_masks) {
        l->mask_off = xmalloc(sizeof(int64_t) * (size_t)c.n);
        rc = raw_offsets(f, path, "masks", H5T_STD_U8LE, c.n, l->mask_bytes, l->mask_off, err);
    }
    if (H5Fclose(f) < 0 && rc >= 0) rc = df_err(err, "%s: closing failed", path);
    if (rc != 0) shard_layout_free(l);
    cohort_free(&c);
    return rc;
}

// ---- source lists ---------------------------------------------------------------------------

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int ends_with_h5(const char *s) {
    size_t n = strlen(s);
    return n >= 3 && strcmp(s + n - 3, ".h5") == 0;
}

// One shard of a source list: its path, the list item it came from (1-based) and whether
// that item was a directory, and the file's identity.
typedef struct {
    char *path;
    int item, from_dir;
    dev_t dev;
    ino_t ino;
} Listed;

static void add_listed(Listed **v, int *n, int *cap, char *path, int item, int from_dir, const struct stat *st) {
    if (*n == *cap) { *cap = *cap ? 2 * *cap : 16; *v = xrealloc(*v, sizeof(Listed) * (size_t)*cap); }
    (*v)[(*n)++] = (Listed){ path, item, from_dir, st->st_dev, st->st_ino };
}

// Shard paths of one source item: the file itself, or a directory's *.h5 files (sorted).
static int list_item(const char *item, int k, Listed **v, int *n, int *cap, DfError *err) {
    struct stat st;
    if (stat(item, &st) != 0) return df_err(err, "%s: cannot open: %s", item, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        add_listed(v, n, cap, xstrdup(item), k, 0, &st);
        return 0;
    }
    DIR *d = opendir(item);
    if (!d) return df_err(err, "%s: cannot list: %s", item, strerror(errno));
    char **names = NULL;
    int m = 0, mcap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !ends_with_h5(e->d_name)) continue;  // skips .tmp files
        if (m == mcap) { mcap = mcap ? 2 * mcap : 16; names = xrealloc(names, sizeof(char *) * (size_t)mcap); }
        size_t len = strlen(item) + strlen(e->d_name) + 2;
        names[m] = xmalloc(len);
        snprintf(names[m++], len, "%s/%s", item, e->d_name);
    }
    closedir(d);
    if (m == 0) rc = df_err(err, "%s: directory holds no .h5 shards", item);
    qsort(names, (size_t)m, sizeof(char *), cmp_str);
    for (int i = 0; i < m; i++) {
        if (rc == 0 && stat(names[i], &st) != 0) rc = df_err(err, "%s: cannot open: %s", names[i], strerror(errno));
        if (rc == 0) add_listed(v, n, cap, names[i], k, 1, &st);
        else free(names[i]);
    }
    free(names);
    return rc;
}

static int cmp_identity(const void *a, const void *b) {
    const Listed *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);  // then list order (qsort is not stable)
}

// 0, or -1 naming the first file (in list order) that is a file listed before: by device and
// inode, so another spelling of the path, a symbolic or hard link, or a directory holding a
// file also named on its own are all caught. The list is the same on every rank, and so is
// the answer. Its samples would be read twice, and could land in training and validation both.
static int check_once(const char *source, const Listed *v, int n, DfError *err) {
    if (n < 2) return 0;
    Listed *s = xmalloc(sizeof(Listed) * (size_t)n);
    for (int i = 0; i < n; i++) { s[i] = v[i]; s[i].item = i; }  // item: position in the list, for now
    qsort(s, (size_t)n, sizeof(Listed), cmp_identity);
    int second = -1, first = -1;  // the earliest repeat, and the first listing of its file
    for (int i = 1; i < n; i++)
        if (s[i].dev == s[i - 1].dev && s[i].ino == s[i - 1].ino && (second < 0 || s[i].item < second)) {
            int a = i - 1;
            while (a > 0 && s[a - 1].dev == s[i].dev && s[a - 1].ino == s[i].ino) a--;
            second = s[i].item;
            first = s[a].item;
        }
    free(s);
    if (second < 0) return 0;
    const Listed *a = &v[first], *b = &v[second];
    char from_a[64] = "", from_b[64] = "";
    if (a->from_dir) snprintf(from_a, sizeof from_a, ", from a directory");
    if (b->from_dir) snprintf(from_b, sizeof from_b, ", from a directory");
    return df_err(err, "%s: this shard is listed twice in '%s' (item %d%s, and as '%s' in item %d%s): each shard may be named "
                  "once, or its samples are read twice and can land in both training and validation",
                  a->path, source, a->item, from_a, b->path, b->item, from_b);
}

int shard_list_source(const char *source, char ***paths, int *n, DfError *err) {
    Listed *v = NULL;
    int m = 0, cap = 0, rc = 0, k = 0;
    *paths = NULL;
    *n = 0;
    // Items between commas, spaces around them trimmed; an empty one (",," or a comma at
    // an end) is an error rather than skipped: it is likely a path lost in editing.
    for (const char *p = source; rc == 0;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) p++, len--;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        k++;
        if (len == 0 && (comma || k > 1))
            rc = df_err(err, "'%s': item %d of the list of shards is empty (two commas in a row, or one at an end?)", source, k);
        else if (len == 0)
            rc = df_err(err, "no shards named (an empty list: expected shard files or directories, comma-separated)");
        else {
            char *item = xmalloc(len + 1);
            memcpy(item, p, len);
            item[len] = '\0';
            rc = list_item(item, k, &v, &m, &cap, err);
            free(item);
        }
        if (!comma) break;
        p = comma + 1;
    }
    if (rc == 0) rc = check_once(source, v, m, err);
    if (rc == 0) {
        *paths = xmalloc(sizeof(char *) * (size_t)m);
        for (int i = 0; i < m; i++) (*paths)[i] = v[i].path;
        *n = m;
    } else
        for (int i = 0; i < m; i++) free(v[i].path);
    free(v);
    return rc;
}
