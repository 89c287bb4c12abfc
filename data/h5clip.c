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

int h5clip_read(const char *ref, ClipLayout layout, int raw_uint8, int with_data, H5Clip *clip, DfError *err) {
    memset(clip, 0, sizeof *clip);
    const char *end = file_part_end(ref);
    if (!end) return df_err(err, "%s: not an HDF5 clip reference (FILE.h5 or FILE.h5:DATASET)", ref);
    char file[4096], dset[1024] = "";
    size_t flen = (size_t)(end - ref);
    if (flen >= sizeof file) return df_err(err, "%s: path too long", ref);
    memcpy(file, ref, flen);
    file[flen] = '\0';
    if (*end == ':') {
        snprintf(dset, sizeof dset, "%s", end + 1);
        if (!dset[0]) return df_err(err, "%s: empty dataset name after ':' (FILE.h5:DATASET)", ref);
    }
    hid_t f = h5_open_read(file, err);
    if (f < 0) return -1;
    int rc = -1;
    hid_t d = -1, space = -1, type = -1;
    if (find_clip_dataset(f, file, dset, sizeof dset, err)) goto done;
    if ((d = H5Dopen2(f, dset, H5P_DEFAULT)) < 0) { df_err(err, "%s: %s: cannot open the dataset", file, dset); goto done; }
    if ((space = H5Dget_space(d)) < 0 || (type = H5Dget_type(d)) < 0) {
        df_err(err, "%s: %s: cannot read the dataset's shape or type", file, dset);
        goto done;
    }
    if (clip_geometry(space, type, file, dset, layout, clip, err)) goto done;
    if (with_data && clip_data(d, file, dset, layout, raw_uint8, clip, err)) goto done;
    rc = 0;
done:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    return rc;
}
