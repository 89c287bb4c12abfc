// test_io.c: HDF5 helpers, shards, the synthetic mri3d cohort and checkpoints.
// Every file goes into a fresh mkdtemp directory under /tmp, removed at the end.
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"
#include "data/h5util.h"
#include "data/shard.h"
#include "data/synth.h"
#include "data/checkpoint.h"

static char tmpdir[256];

// A path inside tmpdir; the strings live until the end of the run (freed in main).
static char *paths[256];
static int n_paths;
static const char *tpath(const char *name) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    if (n_paths == 256) { fprintf(stderr, "too many paths\n"); exit(1); }
    return paths[n_paths++] = xstrdup(buf);
}

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

// Number of entries in dir whose name contains `needle` (all entries when NULL).
static int count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!needle || strstr(e->d_name, needle))) n++;
    closedir(d);
    return n;
}

static int file_exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

// No HDF5 identifier of any kind (files, datasets, groups, attributes...) may stay open
// after a helper returns, on success or on failure.
static void assert_no_open_ids(void) {
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CU_ASSERT_EQUAL(n, 0);
    if (n != 0) fprintf(stderr, "  %zd HDF5 objects left open\n", n);
}

static int contains(const char *hay, const char *needle) {
    int ok = strstr(hay, needle) != NULL;
    if (!ok) fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", hay, needle);
    return ok;
}

// ---- h5util ------------------------------------------------------------------------------

static void test_h5_roundtrip(void) {
    const char *p = tpath("h5.h5");
    DfError err = { "" };
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    float fa[6] = { 1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f };
    double da[3] = { 1.0 / 3.0, -1e300, 2.0 };
    int32_t ia[4] = { -1, 2, INT32_MAX, INT32_MIN };
    uint64_t ua[2] = { UINT64_MAX, 12345678901234567ULL };
    hsize_t d23[2] = { 2, 3 }, d3 = 3, d4 = 4, d2 = 2;
    const char *text = "[conv3d]\nout = 2 # Ünïcode ✓\n";
    CU_ASSERT_EQUAL(h5_write_f32(f, p, "a/b/c", fa, 2, d23, &err), 0);  // intermediate groups
    CU_ASSERT_EQUAL(h5_write_f64(f, p, "d", da, 1, &d3, &err), 0);
    CU_ASSERT_EQUAL(h5_write_i32(f, p, "a/i", ia, 1, &d4, &err), 0);
    CU_ASSERT_EQUAL(h5_write_u64(f, p, "u", ua, 1, &d2, &err), 0);
    CU_ASSERT_EQUAL(h5_write_string(f, p, "s", text, &err), 0);
    CU_ASSERT_EQUAL(h5_write_string(f, p, "empty", "", &err), 0);
    CU_ASSERT_EQUAL(h5_attr_write_i64(f, p, "n", -((int64_t)1 << 40), &err), 0);
    CU_ASSERT_EQUAL(h5_attr_write_i64(f, p, "n", 77, &err), 0);  // replaces
    CU_ASSERT_EQUAL(h5_attr_write_string(f, p, "who", "deconfound ✓", &err), 0);
    // Writing over an existing dataset is refused.
    CU_ASSERT_EQUAL(h5_write_f64(f, p, "d", da, 1, &d3, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "d: already exists"));

    float fb[6];
    double db[3];
    int32_t ib[4];
    uint64_t ub[2];
    int64_t n = 0;
    CU_ASSERT_EQUAL(h5_read_f32(f, p, "a/b/c", fb, 6, &err), 0);
    CU_ASSERT_EQUAL(memcmp(fa, fb, sizeof fa), 0);
    CU_ASSERT_EQUAL(h5_read_f64(f, p, "d", db, 3, &err), 0);
    CU_ASSERT_EQUAL(memcmp(da, db, sizeof da), 0);
    CU_ASSERT_EQUAL(h5_read_i32(f, p, "a/i", ib, 4, &err), 0);
    CU_ASSERT_EQUAL(memcmp(ia, ib, sizeof ia), 0);
    CU_ASSERT_EQUAL(h5_read_u64(f, p, "u", ub, 2, &err), 0);
    CU_ASSERT_EQUAL(memcmp(ua, ub, sizeof ua), 0);
    char *s = h5_read_string(f, p, "s", &err);
    CU_ASSERT(s && strcmp(s, text) == 0);
    free(s);
    s = h5_read_string(f, p, "empty", &err);
    CU_ASSERT(s && strcmp(s, "") == 0);
    free(s);
    CU_ASSERT_EQUAL(h5_attr_read_i64(f, p, "n", &n, &err), 0);
    CU_ASSERT_EQUAL(n, 77);
    s = h5_attr_read_string(f, p, "who", &err);
    CU_ASSERT(s && strcmp(s, "deconfound ✓") == 0);
    free(s);
    hsize_t dims[4] = { 0 };
    CU_ASSERT_EQUAL(h5_dims(f, p, "a/b/c", dims, 4, &err), 2);
    CU_ASSERT(dims[0] == 2 && dims[1] == 3);
    // Rows 1..2 of a (3,2) view: h5_read_f32_rows on "a/b/c" (2,3) row 1.
    float row[3];
    CU_ASSERT_EQUAL(h5_read_f32_rows(f, p, "a/b/c", 1, 1, row, &err), 0);
    CU_ASSERT(row[0] == fa[3] && row[1] == fa[4] && row[2] == fa[5]);
    CU_ASSERT_EQUAL(h5_read_f32_rows(f, p, "a/b/c", 1, 2, row, &err), -1);
    CU_ASSERT(contains(err.msg, "outside"));

    CU_ASSERT_EQUAL(h5_exists(f, "a/b/c"), 1);
    CU_ASSERT_EQUAL(h5_exists(f, "a/b"), 1);
    CU_ASSERT_EQUAL(h5_exists(f, "a/x/y"), 0);  // missing intermediate: 0, not an error
    CU_ASSERT_EQUAL(h5_exists(f, "zz"), 0);
    CU_ASSERT_EQUAL(h5_attr_exists(f, "who"), 1);
    CU_ASSERT_EQUAL(h5_attr_exists(f, "nobody"), 0);

    // Errors name the file and the object.
    CU_ASSERT_EQUAL(h5_read_f32(f, p, "a/b/c", fb, 5, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "a/b/c: has 6 elements, expected 5"));
    CU_ASSERT_EQUAL(h5_read_f32(f, p, "a/i", fb, 4, &err), -1);  // int data read as float
    CU_ASSERT(contains(err.msg, "a/i: holds integer data, expected float"));
    CU_ASSERT_EQUAL(h5_read_f64(f, p, "nope/x", db, 3, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "nope/x: missing"));
    CU_ASSERT_PTR_NULL(h5_read_string(f, p, "d", &err));
    CU_ASSERT(contains(err.msg, "expected a string"));
    CU_ASSERT_EQUAL(h5_attr_read_i64(f, p, "who", &n, &err), -1);
    CU_ASSERT(contains(err.msg, "attribute who"));
    CU_ASSERT_PTR_NULL(h5_attr_read_string(f, p, "missing_attr", &err));
    CU_ASSERT(contains(err.msg, "attribute missing_attr: missing"));
    CU_ASSERT(h5_dims(f, p, "none", dims, 4, &err) < 0);
    CU_ASSERT_EQUAL(H5Fclose(f), 0);
    assert_no_open_ids();
}

// h5_read_string / h5_attr_read_string accept fixed-length strings (as other tools write).
static void test_h5_fixed_strings(void) {
    const char *p = tpath("fixed.h5");
    DfError err = { "" };
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    hid_t space = H5Screate(H5S_SCALAR);
    // null-padded, exactly the text length (no terminator stored)
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 5);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t ds = H5Dcreate2(f, "nullpad", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, "hello");
    H5Dclose(ds);
    hid_t a = H5Acreate2(f, "fmt", t, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "shard");
    H5Aclose(a);
    H5Tclose(t);
    // space-padded UTF-8 of size 10
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 10);
    H5Tset_strpad(t, H5T_STR_SPACEPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    ds = H5Dcreate2(f, "spacepad", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, "abc       ");
    H5Dclose(ds);
    H5Tclose(t);
    H5Sclose(space);

    char *s = h5_read_string(f, p, "nullpad", &err);
    CU_ASSERT(s && strcmp(s, "hello") == 0);
    free(s);
    s = h5_read_string(f, p, "spacepad", &err);
    CU_ASSERT(s && strcmp(s, "abc") == 0);
    free(s);
    s = h5_attr_read_string(f, p, "fmt", &err);
    CU_ASSERT(s && strcmp(s, "shard") == 0);
    free(s);
    H5Fclose(f);
    assert_no_open_ids();
}

// ---- shards ------------------------------------------------------------------------------

static void make_cohort(Cohort *c, int n, Shape s, uint64_t seed) {
    cohort_alloc(c, n, s, 2);
    Rng r;
    rng_seed(&r, seed);
    tu_fill_uniform(c->images, (size_t)n * shape_numel(s), -3.0f, 3.0f, &r);
    for (int i = 0; i < n; i++) {
        c->labels[i] = (int32_t)rng_below(&r, 5);
        c->meta[i * 2] = rng_normal(&r) * 10.0;
        c->meta[i * 2 + 1] = (double)rng_below(&r, 3);
    }
    c->columns[0] = xstrdup("age_years");
    c->kinds[0] = META_CONTINUOUS;
    c->columns[1] = xstrdup("scanner");
    c->kinds[1] = META_CATEGORICAL;
}

static void test_shard_roundtrip(void) {
    const char *p = tpath("cohort.h5");
    DfError err = { "" };
    Shape s = { 2, 3, 4, 5 };
    Cohort c, r, h;
    make_cohort(&c, 3, s, 7);
    CU_ASSERT_EQUAL_FATAL(shard_write(p, &c, &err), 0);
    CU_ASSERT_EQUAL(count_entries(tmpdir, ".tmp."), 0);  // the temporary was renamed
    assert_no_open_ids();

    CU_ASSERT_EQUAL_FATAL(shard_read(p, &r, &err), 0);
    CU_ASSERT(r.n == 3 && r.shape.c == 2 && r.shape.d == 3 && r.shape.h == 4 && r.shape.w == 5 && r.k == 2);
    CU_ASSERT_EQUAL(memcmp(r.images, c.images, 3 * shape_numel(s) * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(r.labels, c.labels, 3 * sizeof(int32_t)), 0);
    CU_ASSERT_EQUAL(memcmp(r.meta, c.meta, 6 * sizeof(double)), 0);
    CU_ASSERT(strcmp(r.columns[0], "age_years") == 0 && strcmp(r.columns[1], "scanner") == 0);
    CU_ASSERT(r.kinds[0] == META_CONTINUOUS && r.kinds[1] == META_CATEGORICAL);
    CU_ASSERT_EQUAL(cohort_column(&r, "scanner"), 1);
    CU_ASSERT_EQUAL(cohort_column(&r, "sex"), -1);
    assert_no_open_ids();

    CU_ASSERT_EQUAL_FATAL(shard_read_header(p, &h, &err), 0);
    CU_ASSERT(h.n == 3 && h.k == 2 && h.shape.w == 5 && h.images == NULL);
    CU_ASSERT_EQUAL(memcmp(h.labels, c.labels, 3 * sizeof(int32_t)), 0);
    CU_ASSERT_EQUAL(memcmp(h.meta, c.meta, 6 * sizeof(double)), 0);
    CU_ASSERT(strcmp(h.columns[1], "scanner") == 0 && h.kinds[1] == META_CATEGORICAL);
    cohort_free(&h);

    // Samples 1..2 alone.
    size_t per = shape_numel(s);
    float *two = xmalloc(2 * per * sizeof(float));
    CU_ASSERT_EQUAL(shard_read_images(p, 1, 2, two, &err), 0);
    CU_ASSERT_EQUAL(memcmp(two, c.images + per, 2 * per * sizeof(float)), 0);
    CU_ASSERT_EQUAL(shard_read_images(p, 2, 2, two, &err), -1);
    CU_ASSERT(contains(err.msg, p));
    free(two);

    // The stored layout: images chunked one sample per chunk, format attributes.
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "images", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(ds);
    hsize_t chunk[5];
    CU_ASSERT_EQUAL(H5Pget_layout(dcpl), H5D_CHUNKED);
    CU_ASSERT_EQUAL(H5Pget_chunk(dcpl, 5, chunk), 5);
    CU_ASSERT(chunk[0] == 1 && chunk[1] == 2 && chunk[2] == 3 && chunk[3] == 4 && chunk[4] == 5);
    H5Pclose(dcpl);
    H5Dclose(ds);
    char *fmt = h5_attr_read_string(f, p, "format", &err);
    CU_ASSERT(fmt && strcmp(fmt, "deconfound-shard") == 0);
    free(fmt);
    int64_t v = 0;
    CU_ASSERT_EQUAL(h5_attr_read_i64(f, p, "version", &v, &err), 0);
    CU_ASSERT_EQUAL(v, 1);
    H5Fclose(f);

    // A cohort without metadata columns round-trips too.
    Cohort z, zr;
    cohort_alloc(&z, 2, (Shape){ 1, 2, 2, 2 }, 0);
    z.labels[1] = 1;
    z.images[5] = 4.0f;
    CU_ASSERT_EQUAL(shard_write(tpath("nometa.h5"), &z, &err), 0);
    CU_ASSERT_EQUAL(shard_read(tpath("nometa.h5"), &zr, &err), 0);
    CU_ASSERT(zr.k == 0 && zr.n == 2 && zr.labels[1] == 1 && zr.images[5] == 4.0f);
    cohort_free(&z);
    cohort_free(&zr);

    cohort_free(&c);
    cohort_free(&r);
    assert_no_open_ids();
}

// Writes a shard, then edits it with raw HDF5 calls through `edit`.
static void write_and_edit(const char *p, void (*edit)(hid_t f)) {
    Cohort c;
    DfError err;
    make_cohort(&c, 3, (Shape){ 1, 2, 2, 2 }, 3);
    c.subjects = xcalloc(3, sizeof(char *));
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "sub-%02d", i);
        c.subjects[i] = xstrdup(id);
    }
    CU_ASSERT_EQUAL_FATAL(shard_write(p, &c, &err), 0);
    cohort_free(&c);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    edit(f);
    H5Fclose(f);
}
static void drop_format(hid_t f) { H5Adelete(f, "format"); }
static void bump_version(hid_t f) { DfError e; h5_attr_write_i64(f, "x", "version", 2, &e); }
static void other_format(hid_t f) { DfError e; h5_attr_write_string(f, "x", "format", "something-else", &e); }
static void short_labels(hid_t f) {
    DfError e;
    int32_t l[2] = { 0, 1 };
    hsize_t n = 2;
    H5Ldelete(f, "labels", H5P_DEFAULT);
    h5_write_i32(f, "x", "labels", l, 1, &n, &e);
}
static void bad_kinds(hid_t f) {
    DfError e;
    hid_t m = H5Dopen2(f, "meta", H5P_DEFAULT);
    h5_attr_write_string(m, "x", "kinds", "continuous,ordinal", &e);
    H5Dclose(m);
}

static void nan_meta(hid_t f) {
    double m[6] = { 1, 0, NAN, 1, 3, 2 };
    hid_t ds = H5Dopen2(f, "meta", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m);
    H5Dclose(ds);
}
static void inf_meta(hid_t f) {
    double m[6] = { 1, 0, 2, 1, -INFINITY, 2 };
    hid_t ds = H5Dopen2(f, "meta", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m);
    H5Dclose(ds);
}
static void negative_label(hid_t f) {
    int32_t l[3] = { 0, -1, 1 };
    hid_t ds = H5Dopen2(f, "labels", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, l);
    H5Dclose(ds);
}
// Column scanner (categorical, no level names) of sample 1 set to v.
static double code_value;
static void bad_code(hid_t f) {
    double m[6] = { 1, 0, 2, code_value, 3, 2 };
    hid_t ds = H5Dopen2(f, "meta", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m);
    H5Dclose(ds);
}
static const char *columns_value;
static void bad_columns(hid_t f) {
    DfError e;
    hid_t m = H5Dopen2(f, "meta", H5P_DEFAULT);
    h5_attr_write_string(m, "x", "columns", columns_value, &e);
    H5Dclose(m);
}
// Sample 2's voxel 5 (d 1, h 0, w 1 of 2x2x2) is NaN.
static void nan_voxel(hid_t f) {
    float x[8] = { 0, 1, 2, 3, 4, NAN, 6, 7 };
    hsize_t start[5] = { 2, 0, 0, 0, 0 }, count[5] = { 1, 1, 2, 2, 2 };
    hid_t ds = H5Dopen2(f, "images", H5P_DEFAULT), fs = H5Dget_space(ds), ms = H5Screate_simple(5, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, x);
    H5Sclose(ms); H5Sclose(fs); H5Dclose(ds);
}
// Labels as floats (as h5py writes a numpy float array): 7.5 and NaN cannot be class indices.
static void float_labels(hid_t f) {
    DfError e;
    double l[3] = { 0, 7.5, NAN };
    hsize_t n = 3;
    H5Ldelete(f, "labels", H5P_DEFAULT);
    h5_write_f64(f, "x", "labels", l, 1, &n, &e);
}
static void two_class_names(hid_t f) {
    DfError e;
    int32_t l[3] = { 0, 2, 1 };
    hid_t ds = H5Dopen2(f, "labels", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, l);
    h5_attr_write_string(ds, "x", "names", "AD|CN", &e);
    H5Dclose(ds);
}
// Names the levels of column scanner (values 0..2 in make_cohort) with two names only.
static void two_level_names(hid_t f) {
    DfError e;
    double m[6] = { 1, 0, 2, 1, 3, 2 };
    hid_t ds = H5Dopen2(f, "meta", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m);
    h5_attr_write_string(ds, "x", "levels", ",A|B", &e);
    H5Dclose(ds);
}

static void test_shard_errors(void) {
    DfError err = { "" };
    Cohort c;
    // Not a file at all.
    const char *missing = tpath("does-not-exist.h5");
    CU_ASSERT_EQUAL(shard_read(missing, &c, &err), -1);
    CU_ASSERT(contains(err.msg, missing) && contains(err.msg, "No such file"));
    // A text file.
    const char *txt = tpath("notes.txt");
    FILE *fp = fopen(txt, "w");
    fputs("this is not HDF5\n", fp);
    fclose(fp);
    CU_ASSERT_EQUAL(shard_read(txt, &c, &err), -1);
    CU_ASSERT(contains(err.msg, txt) && contains(err.msg, "not an HDF5 file"));
    // An HDF5 file without the format attribute.
    const char *p = tpath("noformat.h5");
    write_and_edit(p, drop_format);
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "'format'"));
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
    // Another format.
    p = tpath("other.h5");
    write_and_edit(p, other_format);
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "something-else"));
    // A future version.
    p = tpath("v2.h5");
    write_and_edit(p, bump_version);
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "version 2"));
    // Inconsistent lengths.
    p = tpath("short.h5");
    write_and_edit(p, short_labels);
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "labels") && contains(err.msg, "3 samples"));
    p = tpath("kinds.h5");
    write_and_edit(p, bad_kinds);
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "ordinal"));
    CU_ASSERT_PTR_NULL(c.images);  // a failed read leaves the cohort empty
    // Values: NaN or infinite metadata, a negative label, a level number with no name --
    // each named by file, row and column, on every read path.
    p = tpath("nan.h5");
    write_and_edit(p, nan_meta);
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, ": sample 1 (subject sub-01), meta column 'age_years': NaN;"));
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    p = tpath("inf.h5");
    write_and_edit(p, inf_meta);
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "sample 2 (subject sub-02), meta column 'age_years': infinite"));
    p = tpath("neglabel.h5");
    write_and_edit(p, negative_label);
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "sample 1 (subject sub-01): label -1 is not a class index"));
    p = tpath("floatlabels.h5");
    write_and_edit(p, float_labels);
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "labels: holds float data, expected integer"));
    p = tpath("classes.h5");
    write_and_edit(p, two_class_names);
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "sample 1 (subject sub-01): label 2, but the labels name only 2 classes"));
    p = tpath("levels.h5");
    write_and_edit(p, two_level_names);
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "sample 2 (subject sub-02), meta column 'scanner': 2 is not a level number"));
    // A categorical column without level names: its values are still whole level numbers.
    const double codes[] = { 7.5, -3, 1e12, 1e6 };
    for (int i = 0; i < 4; i++) {
        char want[128];
        code_value = codes[i];
        p = tpath("code.h5");
        write_and_edit(p, bad_code);
        CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
        snprintf(want, sizeof want, "sample 1 (subject sub-01), meta column 'scanner': %.15g is not a level number", codes[i]);
        CU_ASSERT(contains(err.msg, p) && contains(err.msg, want));
    }
    code_value = 999999;  // the largest level number allowed
    write_and_edit(p, bad_code);
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), 0);
    cohort_free(&c);
    // Column names: empty or given twice (columns are found by name).
    const char *cols[][2] = { { "age_years,", "column 2 has an empty name" },
                              { "scanner,scanner", "column name 'scanner' is given twice (columns 1 and 2)" },
                              { ",scanner", "column 1 has an empty name" } };
    for (int i = 0; i < 3; i++) {
        columns_value = cols[i][0];
        p = tpath("columns.h5");
        write_and_edit(p, bad_columns);
        CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), -1);
        CU_ASSERT(contains(err.msg, p) && contains(err.msg, cols[i][1]));
    }
    // A NaN voxel: shard_read reads the images and checks them (the loader checks the
    // samples it reads, tests/test_loader.c).
    p = tpath("nanvoxel.h5");
    write_and_edit(p, nan_voxel);
    CU_ASSERT_EQUAL(shard_read_header(p, &c, &err), 0);  // the header alone does not read voxels
    cohort_free(&c);
    CU_ASSERT_EQUAL(shard_read(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "sample 2 (subject sub-02), images: channel 0 voxel (d 1, h 0, w 1) is NaN"));
    assert_no_open_ids();
}

static void test_shard_write_failures(void) {
    DfError err = { "" };
    Cohort c;
    make_cohort(&c, 2, (Shape){ 1, 2, 2, 2 }, 5);
    int before = count_entries(tmpdir, NULL);
    // A directory that does not exist: clean error, nothing created anywhere.
    const char *p = tpath("no/such/dir/x.h5");
    CU_ASSERT_EQUAL(shard_write(p, &c, &err), -1);
    CU_ASSERT(contains(err.msg, p));
    CU_ASSERT(!file_exists(tpath("no")));
    CU_ASSERT_EQUAL(count_entries(tmpdir, NULL), before);
    // A failure after the temporary exists (the target is a directory, so the final rename
    // fails): the temporary is removed.
    const char *d = tpath("adir");
    CU_ASSERT_FATAL(mkdir(d, 0755) == 0);
    CU_ASSERT_EQUAL(shard_write(d, &c, &err), -1);
    CU_ASSERT(contains(err.msg, d));
    CU_ASSERT_EQUAL(count_entries(tmpdir, ".tmp."), 0);
    CU_ASSERT_EQUAL(count_entries(tmpdir, NULL), before + 1);
    rmdir(d);
    // Bad cohorts are refused before anything is written.
    free(c.columns[1]);
    c.columns[1] = xstrdup("a,b");
    CU_ASSERT_EQUAL(shard_write(tpath("comma.h5"), &c, &err), -1);
    CU_ASSERT(contains(err.msg, "comma"));
    CU_ASSERT(!file_exists(tpath("comma.h5")));
    cohort_free(&c);
    assert_no_open_ids();
}

// ---- synthetic mri3d ---------------------------------------------------------------------

static void test_synth_determinism(void) {
    SynthMri3dConfig cfg = { 12, 8, 9, 10, 42 };
    Cohort a, b, c, small;
    synth_mri3d(&a, &cfg);
    synth_mri3d(&b, &cfg);
    size_t V = (size_t)12 * 8 * 9 * 10;
    CU_ASSERT(a.n == 12 && a.shape.c == 1 && a.shape.d == 8 && a.shape.h == 9 && a.shape.w == 10 && a.k == 3);
    CU_ASSERT_EQUAL(memcmp(a.images, b.images, V * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(a.labels, b.labels, 12 * sizeof(int32_t)), 0);
    CU_ASSERT_EQUAL(memcmp(a.meta, b.meta, 36 * sizeof(double)), 0);
    CU_ASSERT(strcmp(a.columns[0], "age") == 0 && strcmp(a.columns[1], "sex") == 0 && strcmp(a.columns[2], "site") == 0);
    CU_ASSERT(a.kinds[0] == META_CONTINUOUS && a.kinds[1] == META_CATEGORICAL && a.kinds[2] == META_CATEGORICAL);
    cfg.seed = 43;
    synth_mri3d(&c, &cfg);
    CU_ASSERT(memcmp(a.images, c.images, V * sizeof(float)) != 0);
    CU_ASSERT(memcmp(a.meta, c.meta, 36 * sizeof(double)) != 0);
    // Per-sample streams: a smaller cohort is a prefix of a bigger one.
    cfg.seed = 42;
    cfg.n = 5;
    synth_mri3d(&small, &cfg);
    CU_ASSERT_EQUAL(memcmp(small.images, a.images, V / 12 * 5 * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(small.labels, a.labels, 5 * sizeof(int32_t)), 0);
    cohort_free(&a);
    cohort_free(&b);
    cohort_free(&c);
    cohort_free(&small);
}

// The site as a background shortcut: tied to the label at site_rho, out of the brain, with a
// per-site intensity outside it; the label, age and sex draws are those of the default design.
static void test_synth_site_background(void) {
    int n = 300, D = 12;
    SynthMri3dConfig def = { n, D, D, D, 5, 1 }, cfg = def;
    cfg.tie_site = 1;
    cfg.site_rho = 0.9;
    cfg.site_outside_only = 1;
    cfg.site_background = 0.4;
    Cohort a, b;
    synth_mri3d(&a, &def);
    synth_mri3d(&b, &cfg);
    CU_ASSERT_EQUAL(memcmp(a.labels, b.labels, (size_t)n * sizeof(int32_t)), 0);
    size_t V = (size_t)D * D * D;
    int own = 0;
    // inside: per site over label-0 volumes (the label moves the brain's intensity itself)
    double in_sum[3] = { 0 }, out_sum[3] = { 0 }, in_n[3] = { 0 }, out_n[3] = { 0 };
    for (int i = 0; i < n; i++) {
        CU_ASSERT(b.meta[3 * i] == a.meta[3 * i] && b.meta[3 * i + 1] == a.meta[3 * i + 1]);  // age, sex
        int site = (int)b.meta[3 * i + 2];
        own += site == (b.labels[i] ? 2 : 0);
        for (size_t v = 0; v < V; v++) {
            // the centre voxels (the brain, away from the blobs' peaks) and the corners' (air)
            int z = (int)(v / (D * D)), y = (int)(v / D % D), x = (int)(v % D);
            float val = b.images[(size_t)i * V + v];
            if (z == D / 2 && y == D / 2 && x == D / 2 && b.labels[i] == 0) { in_sum[site] += val; in_n[site]++; }
            if ((z == 0 || z == D - 1) && (y == 0 || y == D - 1) && (x == 0 || x == D - 1)) { out_sum[site] += val; out_n[site]++; }
        }
    }
    CU_ASSERT(own > 0.85 * n && own < 0.95 * n);  // 270 expected
    for (int s = 0; s < 3; s++) {
        CU_ASSERT_FATAL(in_n[s] > 0 && out_n[s] > 0);
        // outside: 0.2 * site plus noise of sd <= 0.05; inside: the same brain at every site
        // (the default design moves site 1 by about 0.12 there)
        CU_ASSERT(fabs(out_sum[s] / out_n[s] - 0.2 * s) < 0.01);
        CU_ASSERT(fabs(in_sum[s] / in_n[s] - in_sum[0] / in_n[0]) < 0.04);
    }
    cohort_free(&a);
    cohort_free(&b);
}

static void test_synth_statistics(void) {
    int n = 400, D = 16;
    SynthMri3dConfig cfg = { n, D, D, D, 2024 };
    Cohort c;
    synth_mri3d(&c, &cfg);
    size_t V = (size_t)D * D * D;
    int ones = 0, sex1 = 0, site_count[2][3] = { { 0 } };
    double sa = 0, sy = 0, saa = 0, syy = 0, say = 0;
    for (int i = 0; i < n; i++) {
        int y = c.labels[i];
        CU_ASSERT(y == 0 || y == 1);
        double age = c.meta[i * 3], sex = c.meta[i * 3 + 1], site = c.meta[i * 3 + 2];
        CU_ASSERT(age >= 20.0 && age < 80.0);
        CU_ASSERT(sex == 0.0 || sex == 1.0);
        CU_ASSERT(site == 0.0 || site == 1.0 || site == 2.0);
        ones += y;
        sex1 += (int)sex;
        site_count[y][(int)site]++;
        sa += age; sy += y; saa += age * age; syy += (double)y * y; say += age * y;
    }
    CU_ASSERT_EQUAL(ones, n / 2);  // exactly balanced (pairs)
    int parity = 0;  // ... but not simply alternating (a split by index parity must not separate the classes)
    for (int i = 0; i < n; i++) parity += c.labels[i] == (i & 1);
    CU_ASSERT(parity > n / 4 && parity < 3 * n / 4);
    CU_ASSERT(sex1 > n / 2 - 60 && sex1 < n / 2 + 60);
    double cov = say / n - (sa / n) * (sy / n);
    double corr = cov / sqrt((saa / n - (sa / n) * (sa / n)) * (syy / n - (sy / n) * (sy / n)));
    printf("\n  age-label correlation %.3f\n", corr);
    CU_ASSERT(corr > 0.5);
    CU_ASSERT(site_count[0][0] > site_count[0][2] && site_count[1][2] > site_count[1][0]);

    // Values finite and in a sane range; the brain is bright and the background dark; the
    // label regions are brighter on average for label 1 (so the label is learnable).
    int bad = 0;
    for (size_t i = 0; i < (size_t)n * V; i++)
        if (!isfinite(c.images[i]) || c.images[i] < -1.0f || c.images[i] > 4.0f) bad++;
    CU_ASSERT_EQUAL(bad, 0);
    size_t centre = ((size_t)D / 2 * D + D / 2) * D + D / 2, corner = 0;
    // Left-front label blob at x=-0.35, y=0.40, z=0.10 -> voxel coordinate (u+1)*n/2 - 0.5.
    int bw = (int)lround((-0.35 + 1) * D / 2 - 0.5), bh = (int)lround((0.40 + 1) * D / 2 - 0.5),
        bd = (int)lround((0.10 + 1) * D / 2 - 0.5);
    size_t blob = ((size_t)bd * D + bh) * D + bw;
    double in = 0, out = 0, blob_mean[2] = { 0, 0 };
    for (int i = 0; i < n; i++) {
        in += c.images[i * V + centre];
        out += fabs(c.images[i * V + corner]);
        blob_mean[c.labels[i]] += c.images[i * V + blob];
    }
    in /= n; out /= n;
    blob_mean[0] /= n / 2; blob_mean[1] /= n / 2;
    printf("  centre %.3f, corner |x| %.3f, label blob y=0 %.3f y=1 %.3f\n", in, out, blob_mean[0], blob_mean[1]);
    CU_ASSERT(in > 0.8 && in < 1.3);
    CU_ASSERT(out < 0.1);
    CU_ASSERT(blob_mean[1] - blob_mean[0] > 0.1);
    cohort_free(&c);
}

static void test_synth_speed(void) {
    SynthMri3dConfig cfg = { 512, 32, 32, 32, 1 };
    Cohort c;
    double t0 = df_now();
    synth_mri3d(&c, &cfg);
    double dt = df_now() - t0;
    printf("\n  512 volumes of 32^3 in %.3f s\n", dt);
    CU_ASSERT(dt < 3.0);  // well under a second normally; generous for loaded machines
    cohort_free(&c);
}

// ---- checkpoints -------------------------------------------------------------------------

// A hand-made network: conv1 (weight [2,1,3,3,3], bias [2]), relu1 (nothing), bn1 (weight,
// bias [2]; running_mean, running_var [2]) -- the same TensorInfo a real net has.
typedef struct { Net net; Layer layers[3]; } FakeNet;

static void fake_net(FakeNet *fn, int conv_out, const char *conv_name) {
    memset(fn, 0, sizeof *fn);
    Net *net = &fn->net;
    net->layers = fn->layers;
    net->n_layers = 3;
    Layer *L = fn->layers;
    snprintf(L[0].name, sizeof L[0].name, "%s", conv_name);
    snprintf(L[1].name, sizeof L[1].name, "relu1");
    snprintf(L[2].name, sizeof L[2].name, "bn1");
    int wd[5] = { conv_out, 1, 3, 3, 3 }, bd[1] = { conv_out }, nd[1] = { 2 };
    layer_add_param(&L[0], "weight", 5, wd);
    layer_add_param(&L[0], "bias", 1, bd);
    layer_add_param(&L[2], "weight", 1, nd);
    layer_add_param(&L[2], "bias", 1, nd);
    layer_add_state(&L[2], "running_mean", 1, nd);
    layer_add_state(&L[2], "running_var", 1, nd);
    for (int i = 0; i < 3; i++) { net->n_params += L[i].n_params; net->n_state += L[i].n_state; }
    net->params = df_alloc_floats(net->n_params);
    net->grads = df_alloc_floats(net->n_params);
    net->state = df_alloc_floats(net->n_state);
    size_t po = 0, so = 0;
    for (int i = 0; i < 3; i++) {
        L[i].params = net->params + po; L[i].grads = net->grads + po; po += L[i].n_params;
        L[i].state = net->state + so; so += L[i].n_state;
    }
}
static void fake_free(FakeNet *fn) { free(fn->net.params); free(fn->net.grads); free(fn->net.state); }

static void test_checkpoint_roundtrip(void) {
    const char *p = tpath("ck.h5");
    const char *config = "[conv3d]\nout = 2\n[relu]\n[batchnorm3d]\n";
    DfError err = { "" };
    FakeNet fn;
    fake_net(&fn, 2, "conv1");
    Net *net = &fn.net;
    Rng r;
    rng_seed(&r, 11);
    tu_fill_uniform(net->params, net->n_params, -1, 1, &r);
    tu_fill_uniform(net->state, net->n_state, 0, 2, &r);
    OptConfig oc = { .kind = OPT_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
    Optimizer opt;
    optim_init(&opt, &oc, net->n_params);
    tu_fill_uniform(opt.m, opt.n, -1, 1, &r);
    tu_fill_uniform(opt.v, opt.n, 0, 1, &r);
    opt.step = 17;
    TrainState ts = { 3, 42, { { 0 } } };
    rng_seed(&ts.rng, 99);
    rng_u64(&ts.rng);

    CU_ASSERT_EQUAL_FATAL(checkpoint_save(p, config, net, &opt, &ts, &err), 0);
    CU_ASSERT_EQUAL(count_entries(tmpdir, ".tmp."), 0);
    assert_no_open_ids();

    // The stored layout uses the PyTorch names and shapes.
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hsize_t dims[5];
    CU_ASSERT_EQUAL(h5_dims(f, p, "params/conv1/weight", dims, 5, &err), 5);
    CU_ASSERT(dims[0] == 2 && dims[1] == 1 && dims[4] == 3);
    CU_ASSERT_EQUAL(h5_exists(f, "params/bn1/running_var"), 1);
    CU_ASSERT_EQUAL(h5_exists(f, "params/relu1"), 0);
    H5Fclose(f);

    float *p0 = xmalloc(net->n_params * sizeof(float)), *s0 = xmalloc(net->n_state * sizeof(float)),
          *m0 = xmalloc(opt.n * sizeof(float)), *v0 = xmalloc(opt.n * sizeof(float));
    memcpy(p0, net->params, net->n_params * sizeof(float));
    memcpy(s0, net->state, net->n_state * sizeof(float));
    memcpy(m0, opt.m, opt.n * sizeof(float));
    memcpy(v0, opt.v, opt.n * sizeof(float));
    memset(net->params, 0, net->n_params * sizeof(float));
    memset(net->state, 0, net->n_state * sizeof(float));
    memset(opt.m, 0, opt.n * sizeof(float));
    memset(opt.v, 0, opt.n * sizeof(float));
    opt.step = 0;
    TrainState back = { 0 };
    CU_ASSERT_EQUAL_FATAL(checkpoint_load(p, net, &opt, &back, &err), 0);
    CU_ASSERT_EQUAL(memcmp(p0, net->params, net->n_params * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(s0, net->state, net->n_state * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(m0, opt.m, opt.n * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(v0, opt.v, opt.n * sizeof(float)), 0);
    CU_ASSERT_EQUAL(opt.step, 17);
    CU_ASSERT(back.epoch == 3 && back.step == 42 && memcmp(&back.rng, &ts.rng, sizeof(Rng)) == 0);
    // Parameters only (opt, ts NULL).
    memset(net->params, 0, net->n_params * sizeof(float));
    CU_ASSERT_EQUAL(checkpoint_load(p, net, NULL, NULL, &err), 0);
    CU_ASSERT_EQUAL(memcmp(p0, net->params, net->n_params * sizeof(float)), 0);
    char *text = checkpoint_read_config(p, &err);
    CU_ASSERT(text && strcmp(text, config) == 0);
    free(text);
    assert_no_open_ids();

    // `deconfound info`: probe and describe (layers in network order, not alphabetical).
    CU_ASSERT_EQUAL(checkpoint_probe(p, &err), 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(checkpoint_describe(p, mem, 0, &err), 0);
    fclose(mem);
    CU_ASSERT(buf && contains(buf, "epoch 3, step 42") && contains(buf, "optimizer adam (step 17)") &&
              contains(buf, "conv1/weight") && contains(buf, "[2,1,3,3,3]") && contains(buf, "bn1/running_var") &&
              contains(buf, "total: 64 values"));
    CU_ASSERT(buf && strstr(buf, "conv1/bias") < strstr(buf, "bn1/weight"));
    free(buf);
    mem = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(checkpoint_describe(p, mem, 1, &err), 0);
    fclose(mem);
    CU_ASSERT(buf && contains(buf, "\"epoch\": 3") && contains(buf, "{\"name\": \"conv1/weight\", \"shape\": [2,1,3,3,3]}") &&
              contains(buf, "\"values\": 64}"));
    free(buf);
    assert_no_open_ids();

    // Overwriting an existing checkpoint works and still leaves no temporary.
    ts.epoch = 4;
    CU_ASSERT_EQUAL(checkpoint_save(p, config, net, &opt, &ts, &err), 0);
    CU_ASSERT_EQUAL(checkpoint_load(p, net, NULL, &back, &err), 0);
    CU_ASSERT_EQUAL(back.epoch, 4);
    CU_ASSERT_EQUAL(count_entries(tmpdir, ".tmp."), 0);

    free(p0); free(s0); free(m0); free(v0);
    optim_free(&opt);
    fake_free(&fn);
    assert_no_open_ids();
}

static char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = xmalloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

static void test_checkpoint_errors(void) {
    const char *p = tpath("ck2.h5");
    DfError err = { "" };
    FakeNet fn, other, renamed;
    fake_net(&fn, 2, "conv1");
    OptConfig oc = { .kind = OPT_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
    Optimizer opt;
    optim_init(&opt, &oc, fn.net.n_params);
    TrainState ts = { 1, 10, { { 1, 2, 3, 4 } } };
    CU_ASSERT_EQUAL_FATAL(checkpoint_save(p, "x", &fn.net, &opt, &ts, &err), 0);

    // Shape mismatch names the file, the tensor and both shapes; nothing is overwritten.
    fake_net(&other, 3, "conv1");
    other.net.params[0] = 5.0f;
    CU_ASSERT_EQUAL(checkpoint_load(p, &other.net, NULL, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, p) &&
              contains(err.msg, "params/conv1/weight has shape [2,1,3,3,3] but the network expects [3,1,3,3,3]"));
    CU_ASSERT_EQUAL(other.net.params[0], 5.0f);
    // A layer the checkpoint does not have (and one it has that the network lacks).
    fake_net(&renamed, 2, "convA");
    CU_ASSERT_EQUAL(checkpoint_load(p, &renamed.net, NULL, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "conv1"));
    fake_free(&renamed);
    // A checkpoint holding a layer the network does not have (bn1 dropped from the net).
    fake_net(&renamed, 2, "conv1");
    renamed.net.n_layers = 2;
    CU_ASSERT_EQUAL(checkpoint_load(p, &renamed.net, NULL, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "params/bn1 is not a layer"));
    fake_free(&renamed);
    // Optimiser of another kind.
    Optimizer sgd;
    OptConfig sc = { .kind = OPT_SGD, .momentum = 0.9 };
    optim_init(&sgd, &sc, fn.net.n_params);
    CU_ASSERT_EQUAL(checkpoint_load(p, &fn.net, &sgd, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, p) && contains(err.msg, "adam") && contains(err.msg, "sgd"));
    // Saved without an optimiser, loaded with one.
    const char *p3 = tpath("ck3.h5");
    CU_ASSERT_EQUAL(checkpoint_save(p3, "x", &fn.net, NULL, &ts, &err), 0);
    CU_ASSERT_EQUAL(checkpoint_load(p3, &fn.net, &opt, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, p3) && contains(err.msg, "no optimizer state"));
    // Missing file; a shard is not a checkpoint.
    const char *missing = tpath("missing-ck.h5");
    CU_ASSERT_EQUAL(checkpoint_load(missing, &fn.net, NULL, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, missing) && contains(err.msg, "cannot open"));
    CU_ASSERT_PTR_NULL(checkpoint_read_config(missing, &err));
    Cohort c;
    make_cohort(&c, 1, (Shape){ 1, 1, 1, 1 }, 1);
    CU_ASSERT_EQUAL(shard_write(tpath("s.h5"), &c, &err), 0);
    cohort_free(&c);
    CU_ASSERT_EQUAL(checkpoint_probe(tpath("s.h5"), &err), 0);
    CU_ASSERT_EQUAL(checkpoint_probe(missing, &err), -1);
    CU_ASSERT(contains(err.msg, missing));
    CU_ASSERT_EQUAL(checkpoint_load(tpath("s.h5"), &fn.net, NULL, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, "deconfound-shard") && contains(err.msg, "deconfound-checkpoint"));

    // A save that fails half-way leaves the previous checkpoint untouched and no temporary.
    size_t n0 = 0, n1 = 0;
    char *before = slurp(p, &n0);
    snprintf(other.layers[2].name, sizeof other.layers[2].name, "bad/name");
    CU_ASSERT_EQUAL(checkpoint_save(p, "y", &other.net, NULL, &ts, &err), -1);
    CU_ASSERT(contains(err.msg, p));
    char *after = slurp(p, &n1);
    CU_ASSERT(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    CU_ASSERT_EQUAL(count_entries(tmpdir, ".tmp."), 0);
    free(before);
    free(after);
    // Into a directory that does not exist.
    const char *nodir = tpath("nodir/ck.h5");
    CU_ASSERT_EQUAL(checkpoint_save(nodir, "x", &fn.net, &opt, &ts, &err), -1);
    CU_ASSERT(contains(err.msg, nodir));
    CU_ASSERT(!file_exists(tpath("nodir")));

    optim_free(&sgd);
    optim_free(&opt);
    fake_free(&other);
    fake_free(&fn);
    assert_no_open_ids();
}

int main(void) {
    h5_quiet();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/df_test_io.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("h5util", NULL, NULL);
    CU_add_test(s, "round trips and errors", test_h5_roundtrip);
    CU_add_test(s, "fixed-length strings", test_h5_fixed_strings);
    s = CU_add_suite("shard", NULL, NULL);
    CU_add_test(s, "write/read round trip", test_shard_roundtrip);
    CU_add_test(s, "bad files give clear errors", test_shard_errors);
    CU_add_test(s, "failed writes leave nothing", test_shard_write_failures);
    s = CU_add_suite("synth", NULL, NULL);
    CU_add_test(s, "mri3d determinism", test_synth_determinism);
    CU_add_test(s, "mri3d statistics", test_synth_statistics);
    CU_add_test(s, "mri3d: the site as a background shortcut", test_synth_site_background);
    CU_add_test(s, "mri3d speed", test_synth_speed);
    s = CU_add_suite("checkpoint", NULL, NULL);
    CU_add_test(s, "save/load round trip", test_checkpoint_roundtrip);
    CU_add_test(s, "errors and atomicity", test_checkpoint_errors);
    int rc = tu_run_all();
    remove_tree(tmpdir);
    for (int i = 0; i < n_paths; i++) free(paths[i]);
    return rc;
}
