// shard.c: the HDF5 shard, format version 1 (see shard.h and docs/formats.md).
#include "shard.h"
#include "h5util.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = { "continuous", "categorical" };

void cohort_alloc(Cohort *c, int n, Shape shape, int k) {
    DF_ASSERT(n >= 0 && k >= 0 && k <= SHARD_MAX_META);
    memset(c, 0, sizeof *c);
    c->n = n;
    c->shape = shape;
    c->k = k;
    c->images = df_alloc_floats((size_t)n * shape_numel(shape));
    c->labels = xcalloc((size_t)n, sizeof(int32_t));
    c->meta = xcalloc((size_t)n * (size_t)k, sizeof(double));
}

void cohort_free(Cohort *c) {
    free(c->images);
    free(c->labels);
    free(c->meta);
    for (int j = 0; j < SHARD_MAX_META; j++) free(c->columns[j]);
    memset(c, 0, sizeof *c);
}

int cohort_column(const Cohort *c, const char *name) {
    for (int j = 0; j < c->k; j++)
        if (c->columns[j] && strcmp(c->columns[j], name) == 0) return j;
    return -1;
}

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
    if (c->k < 0 || c->k > SHARD_MAX_META)
        return df_err(err, "%s: %d metadata columns (at most %d)", path, c->k, SHARD_MAX_META);
    if (!c->images || !c->labels || (c->k > 0 && !c->meta)) return df_err(err, "%s: cohort has no data", path);
    for (int j = 0; j < c->k; j++) {
        if (!c->columns[j] || !c->columns[j][0]) return df_err(err, "%s: metadata column %d has no name", path, j);
        if (strchr(c->columns[j], ','))
            return df_err(err, "%s: metadata column name '%s' contains a comma", path, c->columns[j]);
        for (int i = 0; i < j; i++)
            if (strcmp(c->columns[i], c->columns[j]) == 0)
                return df_err(err, "%s: metadata column '%s' appears twice", path, c->columns[j]);
        if (c->kinds[j] != META_CONTINUOUS && c->kinds[j] != META_CATEGORICAL)
            return df_err(err, "%s: metadata column '%s' has a bad kind", path, c->columns[j]);
    }
    return 0;
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
    if (h5_write_f32_chunked(f, path, "images", c->images, 5, idims, chunk, err) != 0) return -1;
    if (h5_write_i32(f, path, "labels", c->labels, 1, ldims, err) != 0) return -1;
    if (h5_write_f64(f, path, "meta", c->meta, 2, mdims, err) != 0) return -1;

    hid_t meta = H5Dopen2(f, "meta", H5P_DEFAULT);
    if (meta < 0) return df_err(err, "%s: meta: cannot reopen", path);
    const char *kinds[SHARD_MAX_META];
    for (int j = 0; j < c->k; j++) kinds[j] = kind_names[c->kinds[j]];
    char *cols = join(c->columns, c->k), *kstr = join((char *const *)kinds, c->k);
    int rc = h5_attr_write_string(meta, path, "columns", cols, err);
    if (rc == 0) rc = h5_attr_write_string(meta, path, "kinds", kstr, err);
    free(cols);
    free(kstr);
    if (H5Dclose(meta) < 0 && rc == 0) rc = df_err(err, "%s: meta: close failed", path);
    return rc;
}

int shard_write(const char *path, const Cohort *c, DfError *err) {
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
static int read_shard(const char *path, Cohort *c, int with_images, DfError *err) {
    memset(c, 0, sizeof *c);
    hid_t f = h5_open_read(path, err), meta = -1;
    if (f < 0) return -1;
    char *cols = NULL, *kstr = NULL, *kinds[SHARD_MAX_META] = { 0 };
    int rc = -1, nk = 0;
    hsize_t idims[5], ldims[1], mdims[2];

    if (h5_check_format(f, path, SHARD_FORMAT, SHARD_VERSION, err) != 0) goto done;
    int nd = h5_dims(f, path, "images", idims, 5, err);
    if (nd < 0) goto done;
    if (nd != 5) { df_err(err, "%s: images: has %d dimensions, expected 5 (N,C,D,H,W)", path, nd); goto done; }
    for (int i = 0; i < 5; i++)
        if (idims[i] == 0 || idims[i] > INT_MAX) {
            df_err(err, "%s: images: bad shape [%llu,%llu,%llu,%llu,%llu]", path, (unsigned long long)idims[0],
                   (unsigned long long)idims[1], (unsigned long long)idims[2], (unsigned long long)idims[3],
                   (unsigned long long)idims[4]);
            goto done;
        }
    nd = h5_dims(f, path, "labels", ldims, 1, err);
    if (nd < 0) goto done;
    if (nd != 1 || ldims[0] != idims[0]) {
        df_err(err, "%s: labels: has %s%llu entries but images has %llu samples", path, nd != 1 ? "not 1-D, " : "",
               (unsigned long long)(nd == 1 ? ldims[0] : 0), (unsigned long long)idims[0]);
        goto done;
    }
    nd = h5_dims(f, path, "meta", mdims, 2, err);
    if (nd < 0) goto done;
    if (nd != 2 || mdims[0] != idims[0]) {
        df_err(err, "%s: meta: has %s%llu rows but images has %llu samples", path, nd != 2 ? "not 2-D, " : "",
               (unsigned long long)(nd == 2 ? mdims[0] : 0), (unsigned long long)idims[0]);
        goto done;
    }
    if (mdims[1] > SHARD_MAX_META) {
        df_err(err, "%s: meta: %llu columns (at most %d)", path, (unsigned long long)mdims[1], SHARD_MAX_META);
        goto done;
    }

    if ((meta = H5Dopen2(f, "meta", H5P_DEFAULT)) < 0) { df_err(err, "%s: meta: cannot open", path); goto done; }
    if (!(cols = h5_attr_read_string(meta, path, "columns", err))) goto done;
    if (!(kstr = h5_attr_read_string(meta, path, "kinds", err))) goto done;

    int k = (int)mdims[1];
    Shape s = { (int)idims[1], (int)idims[2], (int)idims[3], (int)idims[4] };
    int n = (int)idims[0];
    c->n = n;
    c->shape = s;
    c->k = k;
    int ncol = split(cols, c->columns, SHARD_MAX_META);
    if (ncol != k) {
        df_err(err, "%s: meta: attribute columns names %d columns but the data has %d", path, ncol < 0 ? SHARD_MAX_META + 1 : ncol, k);
        goto done;
    }
    nk = split(kstr, kinds, SHARD_MAX_META);
    if (nk != k) {
        df_err(err, "%s: meta: attribute kinds names %d kinds but the data has %d columns", path, nk < 0 ? SHARD_MAX_META + 1 : nk, k);
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

    c->labels = xcalloc((size_t)n, sizeof(int32_t));
    c->meta = xcalloc((size_t)n * (size_t)k, sizeof(double));
    if (h5_read_i32(f, path, "labels", c->labels, (size_t)n, err) != 0) goto done;
    if (h5_read_f64(f, path, "meta", c->meta, (size_t)n * (size_t)k, err) != 0) goto done;
    if (with_images) {
        c->images = df_alloc_floats((size_t)n * shape_numel(s));
        if (h5_read_f32(f, path, "images", c->images, (size_t)n * shape_numel(s), err) != 0) goto done;
    }
    rc = 0;
done:
    for (int j = 0; j < nk; j++) free(kinds[j]);
    free(cols);
    free(kstr);
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
