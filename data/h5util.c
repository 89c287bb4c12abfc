// h5util.c: checked HDF5 calls (see h5util.h). Every function closes every identifier it
// opened on every path, so a failing read or write never leaks an hid; messages are
// "path: object: problem" with the file path the caller passed.
#define _GNU_SOURCE  // fallocate(2)
#include "data/h5util.h"
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void h5_quiet(void) {
    // We report errors ourselves; HDF5's stack dumps would only confuse users.
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

// Closes any kind of identifier; a negative id ("never opened") is skipped.
static herr_t close_id(hid_t id) {
    if (id < 0) return 0;
    switch (H5Iget_type(id)) {
    case H5I_FILE: return H5Fclose(id);
    case H5I_GROUP: return H5Gclose(id);
    case H5I_DATASET: return H5Dclose(id);
    case H5I_DATASPACE: return H5Sclose(id);
    case H5I_DATATYPE: return H5Tclose(id);
    case H5I_ATTR: return H5Aclose(id);
    case H5I_GENPROP_LST: return H5Pclose(id);
    default: return -1;
    }
}

// Closes n ids (all of them, whatever happens) and returns rc -- or -1 with
// "path: name: close failed: reason" when rc was a success (>= 0) and a close failed:
// closing a dataset or attribute can flush cached data, so a failure there is a failed write.
static int close_ids(int rc, const char *path, const char *name, DfError *err, int n, ...) {
    va_list ap;
    va_start(ap, n);
    int failed = 0;
    errno = 0;
    for (int i = 0; i < n; i++) failed |= close_id(va_arg(ap, hid_t)) < 0;
    va_end(ap);
    if (failed && rc >= 0) rc = df_err(err, "%s: %s: close failed%s", path, name, df_write_reason(path));
    return rc;
}

int h5_exists(hid_t loc, const char *name) {
    // H5Lexists fails (rather than returning 0) when an intermediate group is missing, so
    // walk the path one component at a time.
    size_t n = strlen(name);
    if (n == 0) return 0;
    char *buf = xstrdup(name);
    int found = 1;
    for (size_t i = 1; i <= n && found; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char save = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
        if (e <= 0) found = 0;
        buf[i] = save;
    }
    free(buf);
    return found;
}

int h5_attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

// ---- dataset writes ----------------------------------------------------------------------

static int write_ds(hid_t loc, const char *path, const char *name, hid_t memtype, hid_t filetype,
                    const void *data, int ndim, const hsize_t *dims, const hsize_t *chunk, DfError *err) {
    hid_t space = -1, lcpl = -1, dcpl = -1, ds = -1;
    int rc = -1;
    if (ndim < 0 || ndim > H5S_MAX_RANK) { df_err(err, "%s: %s: bad rank %d", path, name, ndim); goto done; }
    if (h5_exists(loc, name)) { df_err(err, "%s: %s: already exists", path, name); goto done; }
    space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    if (space < 0) { df_err(err, "%s: %s: cannot create the dataspace", path, name); goto done; }
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        df_err(err, "%s: %s: cannot set up link creation", path, name);
        goto done;
    }
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    // No modification times in object headers: the same data must give the same bytes.
    if (dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        df_err(err, "%s: %s: cannot create a property list", path, name);
        goto done;
    }
    if (chunk && H5Pset_chunk(dcpl, ndim, chunk) < 0) {
        df_err(err, "%s: %s: cannot set chunking", path, name);
        goto done;
    }
    // No data: every chunk allocated now and never filled, so other writers can put the
    // values at the chunks' file offsets (h5_create_f32_unwritten).
    if (!data && (H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)) {
        df_err(err, "%s: %s: cannot set the allocation", path, name);
        goto done;
    }
    ds = H5Dcreate2(loc, name, filetype, space, lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0) { df_err(err, "%s: %s: cannot create the dataset", path, name); goto done; }
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    if (npoints < 0) { df_err(err, "%s: %s: cannot size the dataspace", path, name); goto done; }
    // A zero-sized dataset has nothing to write (and H5Dwrite rejects a NULL buffer).
    errno = 0;
    if (npoints > 0 && data && H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        df_err(err, "%s: %s: write failed%s", path, name, df_write_reason(path));
        goto done;
    }
    rc = 0;
done:
    return close_ids(rc, path, name, err, 4, ds, dcpl, lcpl, space);
}

int h5_write_f32(hid_t loc, const char *path, const char *name, const float *data, int ndim, const hsize_t *dims, DfError *err) {
    return write_ds(loc, path, name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data, ndim, dims, NULL, err);
}
int h5_write_f32_chunked(hid_t loc, const char *path, const char *name, const float *data, int ndim,
                         const hsize_t *dims, const hsize_t *chunk, DfError *err) {
    return write_ds(loc, path, name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data, ndim, dims, chunk, err);
}
int h5_create_f32_unwritten(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                            const hsize_t *chunk, DfError *err) {
    return write_ds(loc, path, name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, NULL, ndim, dims, chunk, err);
}
int h5_write_f64(hid_t loc, const char *path, const char *name, const double *data, int ndim, const hsize_t *dims, DfError *err) {
    return write_ds(loc, path, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, data, ndim, dims, NULL, err);
}
int h5_write_i32(hid_t loc, const char *path, const char *name, const int32_t *data, int ndim, const hsize_t *dims, DfError *err) {
    return write_ds(loc, path, name, H5T_NATIVE_INT32, H5T_STD_I32LE, data, ndim, dims, NULL, err);
}
int h5_write_u64(hid_t loc, const char *path, const char *name, const uint64_t *data, int ndim, const hsize_t *dims, DfError *err) {
    return write_ds(loc, path, name, H5T_NATIVE_UINT64, H5T_STD_U64LE, data, ndim, dims, NULL, err);
}

// Scalar variable-length UTF-8 string type (what h5py writes for a str). Caller closes.
static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) { H5Tclose(t); return -1; }
    return t;
}

int h5_write_string(hid_t loc, const char *path, const char *name, const char *text, DfError *err) {
    hid_t t = vlen_utf8();
    if (t < 0) return df_err(err, "%s: %s: cannot create the string type", path, name);
    const char *p = text ? text : "";
    int rc = write_ds(loc, path, name, t, t, &p, 0, NULL, NULL, err);
    return close_ids(rc, path, name, err, 1, t);
}

// ---- dataset reads -----------------------------------------------------------------------

static hid_t open_ds(hid_t loc, const char *path, const char *name, DfError *err) {
    if (!h5_exists(loc, name)) { df_err(err, "%s: %s: missing", path, name); return -1; }
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) df_err(err, "%s: %s: cannot open as a dataset", path, name);
    return ds;
}

static const char *class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    default: return "non-numeric";
    }
}

static int read_ds(hid_t loc, const char *path, const char *name, hid_t memtype, H5T_class_t want,
                   void *data, size_t count, DfError *err) {
    hid_t ds = -1, type = -1, space = -1;
    int rc = -1;
    if ((ds = open_ds(loc, path, name, err)) < 0) goto done;
    if ((type = H5Dget_type(ds)) < 0) { df_err(err, "%s: %s: cannot read the datatype", path, name); goto done; }
    H5T_class_t cls = H5Tget_class(type);
    // HDF5 would silently convert between integers and floats; a class mismatch here is
    // always a file written by something else, so say so.
    if (cls != want) {
        df_err(err, "%s: %s: holds %s data, expected %s", path, name, class_name(cls), class_name(want));
        goto done;
    }
    if ((space = H5Dget_space(ds)) < 0) { df_err(err, "%s: %s: cannot read the dataspace", path, name); goto done; }
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    if (npoints < 0) { df_err(err, "%s: %s: cannot size the dataspace", path, name); goto done; }
    if ((size_t)npoints != count) {
        df_err(err, "%s: %s: has %lld elements, expected %zu", path, name, (long long)npoints, count);
        goto done;
    }
    if (count > 0 && H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        df_err(err, "%s: %s: read failed", path, name);
        goto done;
    }
    rc = 0;
done:
    return close_ids(rc, path, name, err, 3, space, type, ds);
}

int h5_read_f32(hid_t loc, const char *path, const char *name, float *data, size_t count, DfError *err) {
    return read_ds(loc, path, name, H5T_NATIVE_FLOAT, H5T_FLOAT, data, count, err);
}
int h5_read_f64(hid_t loc, const char *path, const char *name, double *data, size_t count, DfError *err) {
    return read_ds(loc, path, name, H5T_NATIVE_DOUBLE, H5T_FLOAT, data, count, err);
}
int h5_read_i32(hid_t loc, const char *path, const char *name, int32_t *data, size_t count, DfError *err) {
    return read_ds(loc, path, name, H5T_NATIVE_INT32, H5T_INTEGER, data, count, err);
}
int h5_read_u64(hid_t loc, const char *path, const char *name, uint64_t *data, size_t count, DfError *err) {
    return read_ds(loc, path, name, H5T_NATIVE_UINT64, H5T_INTEGER, data, count, err);
}

int h5_read_f32_rows(hid_t loc, const char *path, const char *name, hsize_t start, hsize_t count,
                     float *data, DfError *err) {
    hid_t ds = -1, type = -1, fspace = -1, mspace = -1;
    int rc = -1;
    hsize_t dims[H5S_MAX_RANK], off[H5S_MAX_RANK] = {0}, cnt[H5S_MAX_RANK];
    if ((ds = open_ds(loc, path, name, err)) < 0) goto done;
    if ((type = H5Dget_type(ds)) < 0) { df_err(err, "%s: %s: cannot read the datatype", path, name); goto done; }
    if (H5Tget_class(type) != H5T_FLOAT) {
        df_err(err, "%s: %s: holds %s data, expected float", path, name, class_name(H5Tget_class(type)));
        goto done;
    }
    if ((fspace = H5Dget_space(ds)) < 0) { df_err(err, "%s: %s: cannot read the dataspace", path, name); goto done; }
    int nd = H5Sget_simple_extent_dims(fspace, dims, NULL);
    if (nd < 1) { df_err(err, "%s: %s: expected at least one dimension", path, name); goto done; }
    if (start > dims[0] || count > dims[0] - start) {
        df_err(err, "%s: %s: rows [%llu, %llu) outside [0, %llu)", path, name, (unsigned long long)start,
               (unsigned long long)(start + count), (unsigned long long)dims[0]);
        goto done;
    }
    if (count == 0) { rc = 0; goto done; }
    for (int i = 0; i < nd; i++) cnt[i] = dims[i];
    off[0] = start;
    cnt[0] = count;
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0) {
        df_err(err, "%s: %s: cannot select rows", path, name);
        goto done;
    }
    if ((mspace = H5Screate_simple(nd, cnt, NULL)) < 0) {
        df_err(err, "%s: %s: cannot create the memory dataspace", path, name);
        goto done;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, data) < 0) {
        df_err(err, "%s: %s: read failed", path, name);
        goto done;
    }
    rc = 0;
done:
    return close_ids(rc, path, name, err, 4, mspace, fspace, type, ds);
}

int h5_dims(hid_t loc, const char *path, const char *name, hsize_t *dims, int max, DfError *err) {
    hid_t ds = -1, space = -1;
    int rc = -1;
    hsize_t all[H5S_MAX_RANK];
    if ((ds = open_ds(loc, path, name, err)) < 0) goto done;
    if ((space = H5Dget_space(ds)) < 0) { df_err(err, "%s: %s: cannot read the dataspace", path, name); goto done; }
    int nd = H5Sget_simple_extent_dims(space, all, NULL);
    if (nd < 0) { df_err(err, "%s: %s: cannot read the shape", path, name); goto done; }
    for (int i = 0; i < nd && i < max; i++) dims[i] = all[i];
    rc = nd;
done:
    return close_ids(rc, path, name, err, 2, space, ds);
}

// ---- strings (datasets and attributes share the reading logic) --------------------------

// Reads a scalar (or one-element) string held by a dataset (is_attr = 0) or attribute.
// Accepts variable-length and fixed-length strings (null- or space-padded), any charset.
static char *read_string_obj(hid_t obj, int is_attr, const char *path, const char *name, DfError *err) {
    hid_t ftype = -1, space = -1, mtype = -1;
    char *out = NULL;
    ftype = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
    if (ftype < 0) { df_err(err, "%s: %s: cannot read the datatype", path, name); goto done; }
    if (H5Tget_class(ftype) != H5T_STRING) {
        df_err(err, "%s: %s: holds %s data, expected a string", path, name, class_name(H5Tget_class(ftype)));
        goto done;
    }
    space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
    if (space < 0) { df_err(err, "%s: %s: cannot read the dataspace", path, name); goto done; }
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    if (npoints != 1) { df_err(err, "%s: %s: expected one string, found %lld", path, name, (long long)npoints); goto done; }
    H5T_cset_t cset = H5Tget_cset(ftype);
    htri_t var = H5Tis_variable_str(ftype);
    if (cset < 0 || var < 0) { df_err(err, "%s: %s: cannot inspect the string type", path, name); goto done; }
    if ((mtype = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mtype, cset) < 0) {
        df_err(err, "%s: %s: cannot create the string type", path, name);
        goto done;
    }
    if (var) {
        char *p = NULL;
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0) { df_err(err, "%s: %s: cannot create the string type", path, name); goto done; }
        herr_t r = is_attr ? H5Aread(obj, mtype, &p) : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p);
        if (r < 0) { df_err(err, "%s: %s: read failed", path, name); goto done; }
        out = xstrdup(p ? p : "");
        // The library allocated p; hand it back through the library's allocator.
        if (p && H5free_memory(p) < 0) { free(out); out = NULL; df_err(err, "%s: %s: cannot free the string", path, name); }
    } else {
        size_t size = H5Tget_size(ftype);
        if (size == 0) { df_err(err, "%s: %s: cannot size the string type", path, name); goto done; }
        // One extra byte and NULLTERM padding: the conversion always terminates the string.
        if (H5Tset_size(mtype, size + 1) < 0 || H5Tset_strpad(mtype, H5T_STR_NULLTERM) < 0) {
            df_err(err, "%s: %s: cannot create the string type", path, name);
            goto done;
        }
        char *buf = xcalloc(size + 2, 1);
        herr_t r = is_attr ? H5Aread(obj, mtype, buf) : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (r < 0) { free(buf); df_err(err, "%s: %s: read failed", path, name); goto done; }
        buf[size] = '\0';
        // Space-padded strings (Fortran style) keep their padding in the conversion.
        if (H5Tget_strpad(ftype) == H5T_STR_SPACEPAD) {
            size_t n = strlen(buf);
            while (n > 0 && buf[n - 1] == ' ') buf[--n] = '\0';
        }
        out = buf;
    }
done:
    if (close_ids(out ? 0 : -1, path, name, err, 3, mtype, space, ftype) < 0 && out) {
        free(out);
        out = NULL;
    }
    return out;
}

char *h5_read_string(hid_t loc, const char *path, const char *name, DfError *err) {
    hid_t ds = open_ds(loc, path, name, err);
    if (ds < 0) return NULL;
    char *s = read_string_obj(ds, 0, path, name, err);
    if (close_ids(s ? 0 : -1, path, name, err, 1, ds) < 0 && s) {
        free(s);
        s = NULL;
    }
    return s;
}

// ---- attributes --------------------------------------------------------------------------

// Creates (replacing any existing one) a scalar attribute and writes v of memtype.
static int write_attr(hid_t obj, const char *path, const char *name, hid_t filetype, hid_t memtype,
                      const void *v, DfError *err) {
    hid_t space = -1, attr = -1;
    int rc = -1;
    htri_t e = H5Aexists(obj, name);
    if (e < 0) { df_err(err, "%s: attribute %s: cannot check for it", path, name); goto done; }
    if (e > 0 && H5Adelete(obj, name) < 0) { df_err(err, "%s: attribute %s: cannot replace it", path, name); goto done; }
    if ((space = H5Screate(H5S_SCALAR)) < 0) { df_err(err, "%s: attribute %s: cannot create the dataspace", path, name); goto done; }
    if ((attr = H5Acreate2(obj, name, filetype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        df_err(err, "%s: attribute %s: cannot create it", path, name);
        goto done;
    }
    errno = 0;
    if (H5Awrite(attr, memtype, v) < 0) { df_err(err, "%s: attribute %s: write failed%s", path, name, df_write_reason(path)); goto done; }
    rc = 0;
done:
    return close_ids(rc, path, name, err, 2, attr, space);
}

static hid_t open_attr(hid_t obj, const char *path, const char *name, DfError *err) {
    htri_t e = H5Aexists(obj, name);
    if (e < 0) { df_err(err, "%s: attribute %s: cannot check for it", path, name); return -1; }
    if (e == 0) { df_err(err, "%s: attribute %s: missing", path, name); return -1; }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) df_err(err, "%s: attribute %s: cannot open it", path, name);
    return a;
}

int h5_attr_write_i64(hid_t obj, const char *path, const char *name, int64_t v, DfError *err) {
    return write_attr(obj, path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, err);
}

int h5_attr_read_i64(hid_t obj, const char *path, const char *name, int64_t *v, DfError *err) {
    hid_t attr = -1, type = -1, space = -1;
    int rc = -1;
    if ((attr = open_attr(obj, path, name, err)) < 0) goto done;
    if ((type = H5Aget_type(attr)) < 0) { df_err(err, "%s: attribute %s: cannot read the datatype", path, name); goto done; }
    if (H5Tget_class(type) != H5T_INTEGER) {
        df_err(err, "%s: attribute %s: holds %s data, expected an integer", path, name, class_name(H5Tget_class(type)));
        goto done;
    }
    if ((space = H5Aget_space(attr)) < 0) { df_err(err, "%s: attribute %s: cannot read the dataspace", path, name); goto done; }
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    if (npoints != 1) { df_err(err, "%s: attribute %s: expected one value, found %lld", path, name, (long long)npoints); goto done; }
    if (H5Aread(attr, H5T_NATIVE_INT64, v) < 0) { df_err(err, "%s: attribute %s: read failed", path, name); goto done; }
    rc = 0;
done:
    return close_ids(rc, path, name, err, 3, space, type, attr);
}

int h5_attr_write_string(hid_t obj, const char *path, const char *name, const char *v, DfError *err) {
    hid_t t = vlen_utf8();
    if (t < 0) return df_err(err, "%s: attribute %s: cannot create the string type", path, name);
    const char *p = v ? v : "";
    int rc = write_attr(obj, path, name, t, t, &p, err);
    return close_ids(rc, path, name, err, 1, t);
}

char *h5_attr_read_string(hid_t obj, const char *path, const char *name, DfError *err) {
    hid_t attr = open_attr(obj, path, name, err);
    if (attr < 0) return NULL;
    char what[300];
    snprintf(what, sizeof what, "attribute %s", name);
    char *s = read_string_obj(attr, 1, path, what, err);
    if (close_ids(s ? 0 : -1, path, what, err, 1, attr) < 0 && s) {
        free(s);
        s = NULL;
    }
    return s;
}

// ---- files -------------------------------------------------------------------------------

hid_t h5_open_read(const char *path, DfError *err) {
    h5_quiet();
    // Check plain accessibility first so a missing file says so instead of "not HDF5".
    struct stat st;
    if (stat(path, &st) != 0) { df_err(err, "%s: cannot open: %s", path, strerror(errno)); return -1; }
    if (S_ISDIR(st.st_mode)) { df_err(err, "%s: cannot open: is a directory", path); return -1; }
    int fd = open(path, O_RDONLY);
    if (fd < 0) { df_err(err, "%s: cannot open: %s", path, strerror(errno)); return -1; }
    close(fd);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) { df_err(err, "%s: not an HDF5 file", path); return -1; }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) df_err(err, "%s: cannot open as HDF5 (damaged file, or locked by a writer?)", path);
    return f;
}

hid_t h5_create_atomic(const char *path, char **tmp, DfError *err) {
    h5_quiet();
    *tmp = df_temp_name(path);
    errno = 0;
    hid_t f = H5Fcreate(*tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        int e = errno;
        df_err(err, "%s: cannot create the temporary file %s%s%s", path, *tmp, e ? ": " : "", e ? strerror(e) : "");
        unlink(*tmp);  // HDF5 may have created it before failing
        free(*tmp);
        *tmp = NULL;
    }
    return f;
}

int h5_close_file(hid_t file, const char *path, DfError *err) {
    errno = 0;
    if (H5Fclose(file) < 0) return df_err(err, "%s: closing failed%s", path, df_write_reason(path));
    return 0;
}

// Makes sure every byte of the file's address space has its disk blocks, so the metadata
// HDF5 writes on closing cannot meet a full disk (see close_created). Where the file system
// cannot reserve blocks (EOPNOTSUPP) that is no failure: the close then finds out.
static int reserve_blocks(hid_t file, const char *tmp) {
    hsize_t size = 0;
    if (H5Fget_filesize(file, &size) < 0 || size == 0) return 0;
    int fd = open(tmp, O_WRONLY);
    if (fd < 0) return 0;
    int e = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0 ? 0 : errno;
    close(fd);
    if (e == EOPNOTSUPP || e == ENOSYS) e = 0;
    errno = e;
    return e ? -1 : 0;
}

// Closes a file this program created at `tmp` and, when !ok or the close fails, removes it.
// HDF5 1.10 does not survive an H5Fclose (or H5Fflush) that fails -- a disk full while it
// writes its metadata: the file stays registered half closed and the library's shutdown (at
// exit, or in MPI_Finalize) crashes on it. So a failed file is emptied before closing, which
// frees its blocks for the metadata HDF5 still writes; a good one gets its blocks reserved
// first, and is emptied the same way when that fails.
static int close_created(hid_t file, const char *tmp, const char *path, int ok, DfError *err) {
    errno = 0;
    if (ok && reserve_blocks(file, tmp) != 0) {
        df_err(err, "%s: write failed%s", path, df_write_reason(tmp));
        ok = 0;
    }
    // (if it cannot be emptied there is nothing else to free: the close decides)
    if (!ok && truncate(tmp, 0) != 0) ok = 0;
    errno = 0;
    if (H5Fclose(file) < 0) {
        if (ok) df_err(err, "%s: closing failed%s", path, df_write_reason(tmp));
        ok = 0;
    }
    if (!ok) unlink(tmp);
    return ok ? 0 : -1;
}

int h5_close_created(hid_t file, const char *path, int ok, DfError *err) {
    return close_created(file, path, path, ok, err);
}

int h5_finish_atomic(hid_t file, const char *tmp, const char *path, int ok, DfError *err) {
    if (close_created(file, tmp, path, ok, err) != 0) return -1;
    // Flush to disk before the rename so a crash leaves either the old file or the new one.
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        df_err(err, "%s: cannot sync %s: %s", path, tmp, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        df_err(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int h5_write_format(hid_t file, const char *path, const char *format, int64_t version, DfError *err) {
    if (h5_attr_write_string(file, path, "format", format, err) != 0) return -1;
    return h5_attr_write_i64(file, path, "version", version, err);
}

int h5_check_format(hid_t file, const char *path, const char *format, int64_t version, DfError *err) {
    if (!h5_attr_exists(file, "format"))
        return df_err(err, "%s: not a %s file (no 'format' attribute on the root group)", path, format);
    char *f = h5_attr_read_string(file, path, "format", err);
    if (!f) return -1;
    if (strcmp(f, format) != 0) {
        df_err(err, "%s: format is '%s', expected '%s'", path, f, format);
        free(f);
        return -1;
    }
    free(f);
    int64_t v;
    if (!h5_attr_exists(file, "version"))
        return df_err(err, "%s: %s file without a 'version' attribute", path, format);
    if (h5_attr_read_i64(file, path, "version", &v, err) != 0) return -1;
    if (v != version)
        return df_err(err, "%s: %s version %lld is not supported (this build reads version %lld)", path, format,
                      (long long)v, (long long)version);
    return 0;
}
