// damage.c: makes the bad files the shell tests feed the program (tests/cli_bad_input.sh),
// without Python: one value of a shard written by the program itself is overwritten in place
// through the HDF5 C API, or a small NIfTI with a NaN voxel is written with the project's
// own writer. Built by `make check`, never installed, not a test itself.
//
//   damage SHARD meta SAMPLE COLUMN VALUE   /meta[SAMPLE, COLUMN] = VALUE (nan, inf, 7.5, 1e12 ...)
//   damage SHARD label SAMPLE VALUE         /labels[SAMPLE] = VALUE (an int32)
//   damage SHARD voxel SAMPLE INDEX VALUE   /images[SAMPLE] at C-order offset INDEX of (C,D,H,W) = VALUE
//   damage SHARD columns TEXT               /meta's `columns` attribute = TEXT ("age,age")
//   damage FILE.nii nifti INDEX             a 4x4x4 float32 NIfTI-1 ramp with voxel INDEX NaN (-1: none, all: every one)
//   damage FILE.nii affine X0 X1 X2 X3 Y0 .. Z3   the ramp with this voxel-to-world affine (rows
//                                           1-3; nan, 0 rows ...) as sform and qform; pixdim
//                                           the column lengths (1 where 0 or not finite)
//   damage FILE.nii voxoffset N VERSION     the ramp as NIfTI-VERSION (1 or 2), its header's
//                                           vox_offset then set to N (the data stay at 352/544)
//   damage SHARD grid SAMPLE ROW COL VALUE  /affine[SAMPLE, ROW, COL] = VALUE (the packed grid's place)
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/h5util.h"
#include "data/nifti.h"

static int die(const char *what, const char *path) {
    fprintf(stderr, "damage: %s: %s\n", path, what);
    return 1;
}

static int number(const char *s, double *v) {
    char *end;
    *v = strtod(s, &end);
    return *s && !*end ? 0 : -1;
}

// Writes one element at `start` (rank coordinates) of dataset `name` from `value` (memory
// type `mtype`).
static int write_one(hid_t f, const char *path, const char *name, const hsize_t *start, hid_t mtype, const void *value) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), fs = -1, ms = -1;
    hsize_t one[5] = { 1, 1, 1, 1, 1 }, count = 1;
    int rc = 1;
    if (ds < 0 || (fs = H5Dget_space(ds)) < 0) goto done;
    int rank = H5Sget_simple_extent_ndims(fs);
    if (rank < 1 || rank > 5 || (ms = H5Screate_simple(1, &count, NULL)) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, one, NULL) < 0 || H5Sselect_valid(fs) <= 0 ||
        H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, value) < 0)
        goto done;
    rc = 0;
done:
    if (ms >= 0 && H5Sclose(ms) < 0) rc = 1;
    if (fs >= 0 && H5Sclose(fs) < 0) rc = 1;
    if (ds >= 0 && H5Dclose(ds) < 0) rc = 1;
    return rc ? die("cannot write the element (no such dataset, or out of range?)", path) : 0;
}

// The (C, D, H, W) coordinates of C-order offset k in sample n of /images.
static int voxel_start(hid_t f, const char *path, long n, long k, hsize_t start[5]) {
    hsize_t dims[5];
    DfError err;
    if (h5_dims(f, path, "images", dims, 5, &err) != 5) return die("images is not 5-D", path);
    start[0] = (hsize_t)n;
    for (int a = 4; a >= 1; a--) {
        start[a] = (hsize_t)k % dims[a];
        k /= (long)dims[a];
    }
    return 0;
}

static int edit_shard(const char *path, int argc, char **argv) {
    const char *what = argv[2];
    double v = 0;
    hsize_t start[5] = { 0 };
    int rc = 1;
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return die("cannot open for writing", path);
    if (!strcmp(what, "meta") && argc == 6 && !number(argv[5], &v)) {
        start[0] = strtoul(argv[3], NULL, 10);
        start[1] = strtoul(argv[4], NULL, 10);
        rc = write_one(f, path, "meta", start, H5T_NATIVE_DOUBLE, &v);
    } else if (!strcmp(what, "label") && argc == 5 && !number(argv[4], &v)) {
        int32_t y = (int32_t)v;
        start[0] = strtoul(argv[3], NULL, 10);
        rc = write_one(f, path, "labels", start, H5T_NATIVE_INT32, &y);
    } else if (!strcmp(what, "voxel") && argc == 6 && !number(argv[5], &v)) {
        float x = (float)v;
        rc = voxel_start(f, path, atol(argv[3]), atol(argv[4]), start) || write_one(f, path, "images", start, H5T_NATIVE_FLOAT, &x);
    } else if (!strcmp(what, "columns") && argc == 4) {
        DfError err;
        hid_t m = H5Dopen2(f, "meta", H5P_DEFAULT);
        rc = m < 0 || h5_attr_write_string(m, path, "columns", argv[3], &err) != 0;
        if (m >= 0 && H5Dclose(m) < 0) rc = 1;
        if (rc) die("cannot rewrite /meta's columns", path);
    } else {
        die("bad arguments (see tests/damage.c)", what);
    }
    if (H5Fclose(f) < 0) rc = die("closing failed", path);
    return rc;
}

// The 4x4x4 float32 ramp, voxel `index` NaN (-1: none, -2: all), NIfTI-`version`, with
// `affine` (12 values, or NULL: 1 mm voxels).
static int nifti_ramp(const char *path, long index, int version, const double *affine) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = index == -2 ? NAN : (float)i;
    if (index < -2 || index >= 64) return die("the index must be -1..63 or all", path);
    if (index >= 0) x[index] = NAN;
    NiiWriteSpec sp = { .version = version, .datatype = NII_DT_FLOAT32, .dims = { 3, 4, 4, 4, 1, 1, 1, 1 } };
    double A[16] = { 0 };
    if (affine) {
        memcpy(A, affine, 12 * sizeof(double));
        A[15] = 1;
        sp.affine = A;
        for (int c = 0; c < 3; c++) {
            double len = sqrt(A[c] * A[c] + A[4 + c] * A[4 + c] + A[8 + c] * A[8 + c]);
            sp.pixdim[c + 1] = isfinite(len) && len > 0 ? len : 1;
        }
    }
    DfError err;
    if (nii_write(path, &sp, x, &err)) return die(err.msg, path);
    return 0;
}

// /affine[SAMPLE, ROW, COL] = VALUE: a shard whose packed grid has no place in space (0 on
// the diagonal makes the affine singular), as pack never writes one.
static int edit_affine(const char *path, char **argv) {
    double v;
    if (number(argv[6], &v)) return die("bad arguments (see tests/damage.c)", "grid");
    hsize_t start[3] = { strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10), strtoul(argv[5], NULL, 10) };
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return die("cannot open for writing", path);
    int rc = write_one(f, path, "affine", start, H5T_NATIVE_DOUBLE, &v);
    if (H5Fclose(f) < 0) rc = die("closing failed", path);
    return rc;
}

// The header's vox_offset rewritten in place (host byte order, as nii_write wrote it): a float
// at byte 108 of a NIfTI-1 header, an int64 at byte 168 of a NIfTI-2 one.
static int set_vox_offset(const char *path, double offset, int version) {
    FILE *f = fopen(path, "r+b");
    if (!f) return die("cannot open for writing", path);
    float f32 = (float)offset;
    int64_t i64 = (int64_t)offset;
    int ok = fseek(f, version == 1 ? 108 : 168, SEEK_SET) == 0 &&
             (version == 1 ? fwrite(&f32, sizeof f32, 1, f) : fwrite(&i64, sizeof i64, 1, f)) == 1;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : die("cannot rewrite vox_offset", path);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[2], "nifti")) return nifti_ramp(argv[1], strcmp(argv[3], "all") ? atol(argv[3]) : -2, 1, NULL);
    if (argc == 15 && !strcmp(argv[2], "affine")) {
        double A[12];
        for (int i = 0; i < 12; i++)
            if (number(argv[3 + i], &A[i])) return die("the affine's 12 values must be numbers (nan allowed)", argv[3 + i]);
        return nifti_ramp(argv[1], -1, 1, A);
    }
    if (argc == 5 && !strcmp(argv[2], "voxoffset")) {
        double off;
        int version = atoi(argv[4]);
        if (number(argv[3], &off) || (version != 1 && version != 2)) return die("usage: damage FILE voxoffset N 1|2", argv[1]);
        return nifti_ramp(argv[1], -1, version, NULL) || set_vox_offset(argv[1], off, version);
    }
    if (argc == 7 && !strcmp(argv[2], "grid")) return edit_affine(argv[1], argv);
    if (argc < 4) return die("usage: damage FILE meta|label|voxel|columns|nifti|affine|voxoffset|grid ... (see tests/damage.c)", "damage");
    return edit_shard(argv[1], argc, argv);
}
