// h5clip.c: HDF5 video clips into the shard layout (see h5clip.h).
#include "data/h5clip.h"
#include "data/h5util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const clip_layout_names[] = { "THWC", "CTHW", NULL };

// Position just past the file part's extension (".h5" / ".hdf5") when followed by ':' or
// the end of the string, else NULL. The first such extension wins, so a dataset path may
// itself contain ".h5".
static const char *file_part_end(const char *ref) {
    static const char *const ext[] = { ".h5", ".hdf5", NULL };
    const char *best = NULL;
    for (int e = 0; ext[e]; e++) {
        size_t m = strlen(ext[e]);
        for (const char *p = strstr(ref, ext[e]); p; p = strstr(p + 1, ext[e]))
            if (p > ref && (p[m] == ':' || p[m] == '\0')) {
                if (!best || p + m < best) best = p + m;
                break;
            }
    }
    return best;
}

int h5clip_is_ref(const char *ref) { return file_part_end(ref) != NULL; }

typedef struct {
    int n;
    char first[512], second[512];
} DsList;

// H5Ovisit callback: counts the datasets, keeping the first two names for messages.
static herr_t list_datasets(hid_t obj, const char *name, const H5O_info_t *info, void *op) {
    (void)obj;
    DsList *l = op;
    if (info->type != H5O_TYPE_DATASET) return 0;
    if (l->n == 0) snprintf(l->first, sizeof l->first, "%s", name);
    else if (l->n == 1) snprintf(l->second, sizeof l->second, "%s", name);
    l->n++;
    return 0;
}

void h5clip_free(H5Clip *clip) {
    free(clip->data);
    clip->data = NULL;
}

// The clip's dataset name: the one given, or a bare file's only dataset.
static int find_clip_dataset(hid_t f, const char *file, char *dset, size_t n, DfError *err) {
    if (dset[0]) {
        // H5Lexists on each component: a missing intermediate group is "missing", not an error stack.
        if (!h5_exists(f, dset)) return df_err(err, "%s: no dataset '%s'", file, dset);
    } else {
        DsList l = { 0 };
        if (H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, list_datasets, &l) < 0)
            return df_err(err, "%s: cannot list the file's objects (damaged file?)", file);
        if (l.n == 0) return df_err(err, "%s: holds no dataset (expected a clip array)", file);
        if (l.n > 1)
            return df_err(err, "%s: holds %d datasets (%s, %s%s): name the clip as %s:DATASET", file, l.n, l.first, l.second,
                          l.n > 2 ? ", ..." : "", file);
        snprintf(dset, n, "%s", l.first);
    }
    H5O_info_t oi;
    if (H5Oget_info_by_name(f, dset, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET)
        return df_err(err, "%s: '%s' is not a dataset", file, dset);
    return 0;
}

// The clip's geometry (C, T, H, W in `layout`) and element type, checked.
static int clip_geometry(hid_t space, hid_t type, const char *file, const char *dset, ClipLayout layout, H5Clip *clip, DfError *err) {
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    if (rank < 0 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) return df_err(err, "%s: %s: cannot read the shape", file, dset);
    const char *lname = clip_layout_names[layout];
    if (rank != 4) {
        char shape[256] = "";
        for (int i = 0; i < rank && i < 8; i++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", i ? "x" : "", (unsigned long long)dims[i]);
        return df_err(err, "%s: %s: a %d-D array (%s); a clip must be 4-D %s (--clip-layout %s)", file, dset, rank, rank ? shape : "scalar",
                      layout == CLIP_THWC ? "(T,H,W,C)" : "(C,T,H,W)", lname);
    }
    hsize_t T, H, W, C;
    if (layout == CLIP_THWC) { T = dims[0]; H = dims[1]; W = dims[2]; C = dims[3]; }
    else { C = dims[0]; T = dims[1]; H = dims[2]; W = dims[3]; }
    if (C < 1 || C > 4)
        return df_err(err, "%s: %s: %llux%llux%llux%llu read as %s gives %llu colour planes (1 to 4 expected; is the layout %s?)", file,
                      dset, (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                      (unsigned long long)dims[3], lname, (unsigned long long)C, layout == CLIP_THWC ? "CTHW" : "THWC");
    if (T < 1 || H < 1 || W < 1 || T > 65536 || H > 4096 || W > 4096 || T * H * W * C > ((hsize_t)1 << 31))
        return df_err(err, "%s: %s: clip of %llu frames of %llux%llu: empty or too large", file, dset, (unsigned long long)T,
                      (unsigned long long)H, (unsigned long long)W);
    H5T_class_t cls = H5Tget_class(type);
    size_t tsize = H5Tget_size(type);
    int is_u8 = cls == H5T_INTEGER && tsize == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    int is_float = cls == H5T_FLOAT && (tsize == 4 || tsize == 8);
    if (!is_u8 && !is_float)
        return df_err(err, "%s: %s: element type (%s, %zu bytes) is not supported (uint8, float32 or float64)", file, dset,
                      cls == H5T_INTEGER ? (H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned integer" : "signed integer")
                      : cls == H5T_FLOAT ? "float" : "not a number type", tsize);
    clip->C = (int)C; clip->T = (int)T; clip->H = (int)H; clip->W = (int)W;
    clip->is_uint8 = is_u8;
    return 0;
}

// The clip's values as float32 (C, T, H, W); uint8 divided by 255 unless raw_uint8.
static int clip_data(hid_t d, const char *file, const char *dset, ClipLayout layout, int raw_uint8, H5Clip *clip, DfError *err) {
    size_t C = (size_t)clip->C, T = (size_t)clip->T, plane = (size_t)clip->H * clip->W, n = C * T * plane;
    float *raw = df_alloc_floats(n);
    // HDF5 converts uint8 / float64 / big-endian to native float32 exactly (uint8 and
    // float32 are exact; float64 rounds as a cast would).
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        free(raw);
        return df_err(err, "%s: %s: cannot read the data (truncated or damaged file?)", file, dset);
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(raw[i])) {
            free(raw);
            return df_err(err, "%s: %s: element %zu is NaN or infinite", file, dset, i);
        }
    // x / 255 (not x * (1/255), which differs in the last bit): the value numpy's
    // `clip / 255.0` gives, rounded to float32.
    float div = clip->is_uint8 && !raw_uint8 ? 255.0f : 1.0f;
    if (layout == CLIP_CTHW) {
        clip->data = raw;
        if (div != 1.0f) for (size_t i = 0; i < n; i++) raw[i] /= div;
        return 0;
    }
    // (T, H, W, C) -> (C, T, H, W): de-interleave the colour of every pixel.
    float *out = df_alloc_floats(n);
    for (size_t t = 0; t < T; t++)
        for (size_t p = 0; p < plane; p++)
            for (size_t c = 0; c < C; c++) out[(c * T + t) * plane + p] = raw[(t * plane + p) * C + c] / div;
    free(raw);
    clip->data = out;
    return 0;
}

// Opens the clip's file and dataset (with its shape and type): the parts of FILE.h5:DATASET,
// or a bare file's only dataset. On failure everything opened is closed and *f < 0.
typedef struct {
    char file[4096], dset[1024];
    hid_t f, d, space, type;
} ClipFile;

static void clip_close(ClipFile *c) {
    if (c->type >= 0) H5Tclose(c->type);
    if (c->space >= 0) H5Sclose(c->space);
    if (c->d >= 0) H5Dclose(c->d);
    if (c->f >= 0) H5Fclose(c->f);
    c->f = c->d = c->space = c->type = -1;
}

static int clip_open(const char *ref, ClipFile *c, DfError *err) {
    c->f = c->d = c->space = c->type = -1;
    c->dset[0] = '\0';
    const char *end = file_part_end(ref);
    if (!end) return df_err(err, "%s: not an HDF5 clip reference (FILE.h5 or FILE.h5:DATASET)", ref);
    size_t flen = (size_t)(end - ref);
    if (flen >= sizeof c->file) return df_err(err, "%s: path too long", ref);
    memcpy(c->file, ref, flen);
    c->file[flen] = '\0';
    if (*end == ':') {
        snprintf(c->dset, sizeof c->dset, "%s", end + 1);
        if (!c->dset[0]) return df_err(err, "%s: empty dataset name after ':' (FILE.h5:DATASET)", ref);
    }
    if ((c->f = h5_open_read(c->file, err)) < 0) return -1;
    if (find_clip_dataset(c->f, c->file, c->dset, sizeof c->dset, err)) { clip_close(c); return -1; }
    if ((c->d = H5Dopen2(c->f, c->dset, H5P_DEFAULT)) < 0) {
        df_err(err, "%s: %s: cannot open the dataset", c->file, c->dset);
        clip_close(c);
        return -1;
    }
    if ((c->space = H5Dget_space(c->d)) < 0 || (c->type = H5Dget_type(c->d)) < 0) {
        df_err(err, "%s: %s: cannot read the dataset's shape or type", c->file, c->dset);
        clip_close(c);
        return -1;
    }
    return 0;
}

int h5clip_read(const char *ref, ClipLayout layout, int raw_uint8, int with_data, H5Clip *clip, DfError *err) {
    memset(clip, 0, sizeof *clip);
    ClipFile c;
    if (clip_open(ref, &c, err)) return -1;
    int rc = clip_geometry(c.space, c.type, c.file, c.dset, layout, clip, err);
    if (rc == 0 && with_data) rc = clip_data(c.d, c.file, c.dset, layout, raw_uint8, clip, err);
    clip_close(&c);
    return rc;
}

// ---- masks ---------------------------------------------------------------------------------

// The mask's geometry: (T, H, W), or one plane in the clip's layout.
static int mask_geometry(const ClipFile *c, ClipLayout layout, H5Clip *mask, DfError *err) {
    int rank = H5Sget_simple_extent_ndims(c->space);
    hsize_t dims[H5S_MAX_RANK];
    if (rank < 0 || H5Sget_simple_extent_dims(c->space, dims, NULL) < 0)
        return df_err(err, "%s: %s: cannot read the shape", c->file, c->dset);
    hsize_t *thw = rank == 3 ? dims : rank == 4 && layout == CLIP_THWC && dims[3] == 1 ? dims
                                   : rank == 4 && layout == CLIP_CTHW && dims[0] == 1 ? dims + 1 : NULL;
    if (!thw)
        return df_err(err, "%s: %s: a mask must be (T,H,W) or one plane %s, not a %d-D array%s", c->file, c->dset,
                      layout == CLIP_THWC ? "(T,H,W,1)" : "(1,T,H,W)", rank, rank == 4 ? " of several planes" : "");
    if (thw[0] < 1 || thw[1] < 1 || thw[2] < 1 || thw[0] * thw[1] * thw[2] > ((hsize_t)1 << 31))
        return df_err(err, "%s: %s: mask empty or too large", c->file, c->dset);
    H5T_class_t cls = H5Tget_class(c->type);
    int ok = cls == H5T_INTEGER || cls == H5T_FLOAT;
    if (cls == H5T_ENUM) {  // h5py's bool: an enum {FALSE, TRUE} over int8
        hid_t base = H5Tget_super(c->type);
        ok = base >= 0 && H5Tget_class(base) == H5T_INTEGER && H5Tget_size(base) <= 8;
        if (base >= 0) H5Tclose(base);
    }
    if (!ok) return df_err(err, "%s: %s: a mask's elements must be integers, booleans or floats", c->file, c->dset);
    mask->C = 1; mask->T = (int)thw[0]; mask->H = (int)thw[1]; mask->W = (int)thw[2];
    mask->is_uint8 = 0;
    return 0;
}

// The mask's values, nonzero -> 1.0f, as (1, T, H, W). Integers and floats are read
// converted by HDF5; an enum (bool) as its own bytes, read as the integer it is built on.
static int mask_data(const ClipFile *c, H5Clip *mask, DfError *err) {
    size_t n = (size_t)mask->T * mask->H * mask->W;
    double *v = xmalloc(n * sizeof(double));
    herr_t st;
    if (H5Tget_class(c->type) == H5T_ENUM) {
        // the enum in memory's byte order (HDF5 converts enum to enum by member); a value is
        // foreground when any of its bytes is nonzero
        hid_t mem = H5Tget_native_type(c->type, H5T_DIR_ASCEND), base = mem >= 0 ? H5Tget_super(mem) : -1;
        size_t size = base >= 0 ? H5Tget_size(base) : 1;
        unsigned char *raw = xmalloc(n * size);
        st = base >= 0 ? H5Dread(c->d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : -1;
        for (size_t i = 0; st >= 0 && i < n; i++) {
            int nonzero = 0;
            for (size_t k = 0; k < size; k++) nonzero |= raw[i * size + k];
            v[i] = nonzero ? 1.0 : 0.0;
        }
        if (base >= 0) H5Tclose(base);
        if (mem >= 0) H5Tclose(mem);
        free(raw);
    } else st = H5Dread(c->d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    if (st < 0) { free(v); return df_err(err, "%s: %s: cannot read the mask (truncated or damaged file?)", c->file, c->dset); }
    mask->data = df_alloc_floats(n);
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) {
            free(v);
            h5clip_free(mask);
            return df_err(err, "%s: %s: mask element %zu is NaN", c->file, c->dset, i);
        }
        mask->data[i] = v[i] != 0.0 ? 1.0f : 0.0f;
    }
    free(v);
    return 0;
}

int h5clip_read_mask(const char *ref, ClipLayout layout, int with_data, H5Clip *mask, DfError *err) {
    memset(mask, 0, sizeof *mask);
    ClipFile c;
    if (clip_open(ref, &c, err)) return -1;
    int rc = mask_geometry(&c, layout, mask, err);
    if (rc == 0 && with_data) rc = mask_data(&c, mask, err);
    clip_close(&c);
    return rc;
}
