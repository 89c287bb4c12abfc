// test_nifti.c: NIfTI reading through the NIfTI C library (data/nifti.c).
//   - round trips: every supported datatype x both byte orders x .nii/.nii.gz x NIfTI-1/2,
//     3D and 4D, with and without scl_slope/scl_inter, files written in the test itself;
//   - a written affine is the sform and the qform (flips, axis orders), pixdim its voxel sizes;
//   - every bad header the issue lists gives one message naming the file and the reason;
//   - the real files Debian's python3-nibabel ships agree with nibabel's own statistics
//     (tests/ref/nibabel_stats.txt, made by tests/gen_nibabel_ref.py); skipped when the
//     package is absent.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nifti2_io.h>
#include "testutil.h"
#include "data/nifti.h"


// Values representable exactly in datatype dt after (x - inter) / slope.
static void fill_for_type(float *x, int64_t n, int dt, double slope, double inter, Rng *r) {
    double lo = 0, hi = 1;
    switch (dt) {
    case DT_UINT8: lo = 0; hi = 255; break;
    case DT_INT8: lo = -128; hi = 127; break;
    case DT_INT16: lo = -32768; hi = 32767; break;
    case DT_UINT16: lo = 0; hi = 65535; break;
    case DT_INT32: lo = -1e6; hi = 1e6; break;   // stays exact in float32
    case DT_UINT32: lo = 0; hi = 1e6; break;
    default: lo = -1000; hi = 1000; break;
    }
    int integer = dt != DT_FLOAT32 && dt != DT_FLOAT64;
    for (int64_t i = 0; i < n; i++) {
        double raw = lo + (hi - lo) * rng_uniform(r);
        if (integer) raw = floor(raw);
        if (i == 0) raw = lo;
        if (i == 1) raw = hi;
        x[i] = (float)(raw * (slope == 0 ? 1 : slope) + inter);
    }
}

static void roundtrip_case(int version, int dt, int big, int gz, int ndim, double slope, double inter) {
    int64_t dims[8] = { ndim, 5, 4, 3, ndim == 4 ? 2 : 1, 1, 1, 1 };
    int64_t n = 5 * 4 * 3 * (ndim == 4 ? 2 : 1);
    float *x = xmalloc(sizeof(float) * (size_t)n);
    Rng r;
    rng_seed_stream(&r, 7, (uint64_t)dt, (uint64_t)(version * 8 + big * 4 + gz * 2 + (ndim == 4)));
    fill_for_type(x, n, dt, slope, inter, &r);
    NiiWriteSpec sp = { .version = version, .datatype = dt, .big_endian = big, .slope = slope, .inter = inter };
    memcpy(sp.dims, dims, sizeof dims);
    sp.pixdim[1] = 1.5; sp.pixdim[2] = 2; sp.pixdim[3] = 2.5; sp.pixdim[4] = 1;
    char name[64];
    snprintf(name, sizeof name, "rt_v%d_%s_%s_%dd.nii%s", version, nii_datatype_name(dt), big ? "be" : "le", ndim, gz ? ".gz" : "");
    DfError err = { "" };
    int rc = nii_write(tu_path(name), &sp, x, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) { fprintf(stderr, "  %s\n", err.msg); free(x); return; }
    NiiVolume v;
    rc = nii_read(tu_path(name), &v, 1, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(v.version, version);
    CU_ASSERT_EQUAL(v.big_endian, big);
    CU_ASSERT_EQUAL(v.datatype, dt);
    CU_ASSERT_EQUAL(v.ndim, ndim);
    CU_ASSERT_EQUAL(v.nvox, n);
    CU_ASSERT_EQUAL(v.dim[1], 5);
    CU_ASSERT_EQUAL(v.dim[2], 4);
    CU_ASSERT_EQUAL(v.dim[3], 3);
    CU_ASSERT_DOUBLE_EQUAL(v.pixdim[3], 2.5, 1e-6);
    CU_ASSERT_STRING_EQUAL(v.orient, "RAS");
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double q = fabs((double)v.data[i] - x[i]) / (1e-6 + 1e-6 * fabs(x[i]));
        if (q > worst) { worst = q; at = i; }
    }
    CU_ASSERT(worst <= 1.0);
    if (worst > 1.0) fprintf(stderr, "  %s: values differ at %lld: %.9g read, %.9g written\n", name, (long long)at, v.data[at], x[at]);
    nii_free(&v);
    free(x);
}

static void test_roundtrip_all(void) {
    const int dts[] = { DT_UINT8, DT_INT8, DT_INT16, DT_UINT16, DT_INT32, DT_UINT32, DT_FLOAT32, DT_FLOAT64 };
    for (int version = 1; version <= 2; version++)
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            for (int big = 0; big <= 1; big++)
                for (int gz = 0; gz <= 1; gz++) roundtrip_case(version, dts[d], big, gz, (gz + big) % 2 ? 4 : 3, 0, 0);
}

static void test_roundtrip_scaling(void) {
    // scl_slope / scl_inter applied on read, for integer and float storage, both orders.
    roundtrip_case(1, DT_INT16, 0, 0, 3, 0.25, 100.0);
    roundtrip_case(1, DT_INT16, 1, 1, 4, 0.25, -3.0);
    roundtrip_case(2, DT_UINT8, 1, 0, 3, 2.0, 0.5);
    roundtrip_case(2, DT_FLOAT32, 0, 1, 3, 3.0, 1.0);
}

static void test_header_only(void) {
    int64_t dims[8] = { 3, 6, 7, 8, 1, 1, 1, 1 };
    float *x = calloc(6 * 7 * 8, sizeof(float));
    NiiWriteSpec sp = { .version = 1, .datatype = DT_FLOAT32 };
    memcpy(sp.dims, dims, sizeof dims);
    DfError err;
    CU_ASSERT_EQUAL_FATAL(nii_write(tu_path("h.nii"), &sp, x, &err), 0);
    NiiVolume v;
    CU_ASSERT_EQUAL_FATAL(nii_read(tu_path("h.nii"), &v, 0, &err), 0);
    CU_ASSERT_PTR_NULL(v.data);
    CU_ASSERT_EQUAL(v.nvox, 6 * 7 * 8);
    nii_free(&v);
    free(x);
}

// An affine that flips i and swaps j/k gives the matching axis codes.
static void test_orientation(void) {
    int64_t dims[8] = { 3, 4, 4, 4, 1, 1, 1, 1 };
    float x[64] = { 0 };
    double aff[16] = { -2, 0, 0, 10, 0, 0, 3, -5, 0, -1, 0, 7, 0, 0, 0, 1 };
    NiiWriteSpec sp = { .version = 2, .datatype = DT_UINT8, .affine = aff };
    memcpy(sp.dims, dims, sizeof dims);
    DfError err;
    CU_ASSERT_EQUAL_FATAL(nii_write(tu_path("o.nii"), &sp, x, &err), 0);
    NiiVolume v;
    CU_ASSERT_EQUAL_FATAL(nii_read(tu_path("o.nii"), &v, 0, &err), 0);
    CU_ASSERT_STRING_EQUAL(v.orient, "LIA");
    CU_ASSERT_DOUBLE_EQUAL(v.affine[1][2], 3.0, 1e-9);
    nii_free(&v);
}

// nii_affine_problem: a voxel-to-world affine that is not finite or singular (all zeros, a zero
// row, two parallel columns) is named; a good one of any voxel size, oblique or not, is not.
static void test_affine_problem(void) {
    const double cases[][12] = {
        { 2, 0, 0, -8, 0, 2, 0, -9, 0, 0, 2, -10 },         // fine
        { 0.001, 0, 0, 0, 0, 0.001, 0, 0, 0, 0, 0.001, 0 },  // tiny voxels: fine
        { 2, 1, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0 },              // oblique: fine
        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },              // all zeros
        { 2, 0, 0, -8, 0, 2, 0, -9, 0, 0, 0, 0 },            // srow_z zero (rank 2)
        { 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0 },              // i and j parallel
        { NAN, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0 },            // NaN
        { 1, 0, 0, INFINITY, 0, 1, 0, 0, 0, 0, 1, 0 },       // infinite offset
    };
    const char *want[] = { NULL, NULL, NULL, "is singular", "is singular", "is singular", "is not finite", "is not finite" };
    for (int k = 0; k < 8; k++) {
        NiiVolume v = { 0 };
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) v.affine[r][c] = cases[k][r * 4 + c];
        v.affine[3][3] = 1;
        const char *got = nii_affine_problem(&v);
        CU_ASSERT(want[k] ? got && strcmp(got, want[k]) == 0 : got == NULL);
    }
}

// The affine goes into the qform as well as the sform (synth brain's sites: flips and axis
// orders), and pixdim left at zero takes its column lengths. Read back through the library's
// own parser, which builds qto_xyz from the quaternion alone.
static void test_qform(void) {
    // LPI 1.2 mm, and PIR (i -> posterior, j -> inferior, k -> right) of 1 x 1 x 1.5 mm.
    const double affs[2][16] = { { -1.2, 0, 0, 50, 0, -1.2, 0, 60, 0, 0, -1.2, 40, 0, 0, 0, 1 },
                                 { 0, 0, 1.5, -90, -1, 0, 0, 100, 0, -1, 0, 80, 0, 0, 0, 1 } };
    const char *codes[2] = { "LPI", "PIR" };
    int64_t dims[8] = { 3, 4, 5, 6, 1, 1, 1, 1 };
    float x[120] = { 0 };
    for (int k = 0; k < 2; k++) {
        NiiWriteSpec sp = { .version = 1, .datatype = DT_INT16, .affine = affs[k] };
        memcpy(sp.dims, dims, sizeof dims);
        DfError err;
        const char *p = tu_path(k ? "pir.nii.gz" : "lpi.nii.gz");
        CU_ASSERT_EQUAL_FATAL(nii_write(p, &sp, x, &err), 0);
        NiiVolume v;
        CU_ASSERT_EQUAL_FATAL(nii_read(p, &v, 0, &err), 0);
        CU_ASSERT_STRING_EQUAL(v.orient, codes[k]);
        for (int a = 0; a < 3; a++) {
            double len = fabs(affs[k][a]) + fabs(affs[k][4 + a]) + fabs(affs[k][8 + a]);
            CU_ASSERT_DOUBLE_EQUAL(v.pixdim[a + 1], len, 1e-6);
        }
        nii_free(&v);
        nifti_image *nim = nifti_image_read(p, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(nim);
        CU_ASSERT(nim->qform_code > 0 && nim->sform_code > 0);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) {
                CU_ASSERT_DOUBLE_EQUAL(nim->qto_xyz.m[r][c], affs[k][r * 4 + c], 1e-5);
                CU_ASSERT_DOUBLE_EQUAL(nim->sto_xyz.m[r][c], affs[k][r * 4 + c], 1e-5);
            }
        nifti_image_free(nim);
    }
}

// ---- bad input ---------------------------------------------------------------------------

// A valid little-endian NIfTI-1 file of 4x4x4 int16, then `patch` bytes at `off`.
static const char *patched(const char *name, long off, const void *patch, size_t n) {
    int64_t dims[8] = { 3, 4, 4, 4, 1, 1, 1, 1 };
    float x[64] = { 0 };
    NiiWriteSpec sp = { .version = 1, .datatype = DT_INT16 };
    memcpy(sp.dims, dims, sizeof dims);
    DfError err;
    const char *p = tu_path(name);
    CU_ASSERT_EQUAL(nii_write(p, &sp, x, &err), 0);
    if (patch) {
        FILE *f = fopen(p, "r+b");
        fseek(f, off, SEEK_SET);
        fwrite(patch, 1, n, f);
        fclose(f);
    }
    return p;
}

static void expect_error(const char *path, const char *needle) {
    NiiVolume v;
    DfError err = { "" };
    CU_ASSERT_EQUAL(nii_read(path, &v, 1, &err), -1);
    CU_ASSERT(tu_contains(err.msg, path));
    CU_ASSERT(tu_contains(err.msg, needle));
    CU_ASSERT_PTR_NULL(v.data);
}

static void test_bad_files(void) {
    expect_error(tu_path("missing.nii"), "No such file");
    FILE *f = fopen(tu_path("text.nii"), "w");
    fputs("this is not a NIfTI file, just some text that is long enough......................................"
          "..............................................................................................."
          "...............................................................................................", f);
    fclose(f);
    expect_error(tu_path("text.nii"), "not a NIfTI file");
    f = fopen(tu_path("short.nii"), "w");
    fputs("tiny", f);
    fclose(f);
    expect_error(tu_path("short.nii"), "only 4 bytes");

    int16_t v;
    v = -3; expect_error(patched("negdim.nii", 40 + 2 * 2, &v, 2), "dim[2] = -3");
    v = 9; expect_error(patched("ndim.nii", 40, &v, 2), "dim[0] = 9");
    // 3 x 32767^2... with dim[0] = 4: 4*4*4*32767*... > 2^31 voxels.
    int16_t big[4] = { 7, 30000, 30000, 30000 };
    expect_error(patched("absurd.nii", 40, big, sizeof big), "more than");
    v = DT_RGB24; expect_error(patched("rgb.nii", 70, &v, 2), "not supported");
    v = 1234; expect_error(patched("unknowndt.nii", 70, &v, 2), "datatype 1234");
    char magic[4] = { 'x', 'y', 'z', 0 };
    expect_error(patched("magic.nii", 344, magic, 4), "magic");
    // vox_offset inside the header of a single-file .nii: the library clamps it to 348 and reads
    // the extension bytes as voxel 0 (nibabel refuses: "vox offset too low").
    float off = 0;
    expect_error(patched("voxoff0.nii", 108, &off, 4), "vox_offset = 0: the data of a single-file NIfTI-1 start at byte 352");
    off = 348;
    expect_error(patched("voxoff348.nii", 108, &off, 4), "vox_offset = 348");
    off = 352;
    NiiVolume ok;
    DfError e = { "" };
    CU_ASSERT_EQUAL(nii_read(patched("voxoff352.nii", 108, &off, 4), &ok, 1, &e), 0);
    nii_free(&ok);
    {  // NIfTI-2: the 540-byte header and 4 extension bytes; vox_offset an int64 at byte 168
        int64_t d2[8] = { 3, 4, 4, 4, 1, 1, 1, 1 };
        float z[64] = { 0 };
        NiiWriteSpec s2 = { .version = 2, .datatype = DT_INT16 };
        memcpy(s2.dims, d2, sizeof d2);
        const char *p2 = tu_path("voxoff540.nii");
        CU_ASSERT_EQUAL(nii_write(p2, &s2, z, &e), 0);
        int64_t off2 = 540;
        FILE *f2 = fopen(p2, "r+b");
        CU_ASSERT_FATAL(f2 != NULL);
        fseek(f2, 168, SEEK_SET);
        fwrite(&off2, sizeof off2, 1, f2);
        fclose(f2);
        expect_error(p2, "vox_offset = 540: the data of a single-file NIfTI-2 start at byte 544");
    }

    // Truncated data: the header says 128 bytes of voxels after offset 352.
    const char *t = patched("trunc.nii", 0, NULL, 0);
    CU_ASSERT_EQUAL(truncate(t, 352 + 100), 0);
    expect_error(t, "truncated");

    // Truncated compressed data: cut a .nii.gz of random floats in half.
    int64_t dims[8] = { 3, 16, 16, 16, 1, 1, 1, 1 };
    float *x = xmalloc(sizeof(float) * 4096);
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < 4096; i++) x[i] = (float)rng_normal(&r);
    NiiWriteSpec sp = { .version = 1, .datatype = DT_FLOAT32 };
    memcpy(sp.dims, dims, sizeof dims);
    DfError err;
    const char *gz = tu_path("trunc.nii.gz");
    CU_ASSERT_EQUAL(nii_write(gz, &sp, x, &err), 0);
    struct stat st;
    stat(gz, &st);
    CU_ASSERT_EQUAL(truncate(gz, st.st_size / 2), 0);
    expect_error(gz, "truncated or corrupt");
    free(x);
}

// This process's address space now, in bytes (VmSize in /proc/self/status), or -1.
static long long address_space_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

// A .nii.gz of a few hundred bytes whose header claims 2^31 float64 voxels (16 GB): the
// reader must fail with "truncated" without reserving the 16 GB first, as a gzip stream's
// length is known only by reading it (fuzzing found a 76-byte file that made it allocate
// 7.5 GB). Checked in a child process whose address space may grow by 2 GB at most: an
// allocation of the claimed size fails there, and the child exits non-zero.
static void test_gz_claiming_huge_volume(void) {
    int64_t dims[8] = { 3, 4, 4, 4, 1, 1, 1, 1 };
    float x[64] = { 0 };
    NiiWriteSpec sp = { .version = 1, .datatype = DT_FLOAT64 };
    memcpy(sp.dims, dims, sizeof dims);
    DfError err;
    const char *plain = tu_path("huge-claim.nii");
    CU_ASSERT_EQUAL_FATAL(nii_write(plain, &sp, x, &err), 0);
    short huge_dims[4] = { 3, 2048, 2048, 512 };  // dim[0..3] at byte 40: 2^31 voxels
    FILE *f = fopen(plain, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fseek(f, 40, SEEK_SET);
    fwrite(huge_dims, sizeof huge_dims, 1, f);
    unsigned char bytes[352 + 64 * 8];
    fseek(f, 0, SEEK_SET);
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(n, sizeof bytes);
    const char *gz = tu_path("huge-claim.nii.gz");
    znzFile z = znzopen(gz, "wb", 1);
    CU_ASSERT_FATAL(!znz_isnull(z));
    CU_ASSERT_EQUAL(znzwrite(bytes, 1, n, z), n);
    znzclose(z);
    NiiVolume v;
    CU_ASSERT_EQUAL(nii_read(gz, &v, 0, &err), 0);  // the header alone is valid
    CU_ASSERT_EQUAL(v.nvox, (int64_t)1 << 31);
    nii_free(&v);
    long long now = address_space_bytes();
    CU_ASSERT_FATAL(now > 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit lim = { (rlim_t)now + ((rlim_t)2 << 30), (rlim_t)now + ((rlim_t)2 << 30) };
        if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(3);
        DfError e = { "" };
        int rc = nii_read(gz, &v, 1, &e);
        _exit(rc == -1 && tu_contains(e.msg, "truncated or corrupt") ? 0 : 1);
    }
    int status = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// ---- nibabel's real files -----------------------------------------------------------------

static void test_nibabel_files(void) {
    const char *data = "/usr/lib/python3/dist-packages/nibabel/tests/data";
    char refpath[1024];
    snprintf(refpath, sizeof refpath, "%s/tests/ref/nibabel_stats.txt", getenv("top_srcdir") ? getenv("top_srcdir") : ".");
    struct stat st;
    if (stat(data, &st) != 0) {
        tu_skip("nibabel's test data absent (Debian package python3-nibabel not installed)");
        return;
    }
    FILE *f = fopen(refpath, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[2048];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char name[256], dt[32], orient[8];
        int version, big, ndim, off = 0;
        long long dims[8];
        if (sscanf(line, "%255s %d %31s %d %d%n", name, &version, dt, &big, &ndim, &off) != 5) continue;
        char *p = line + off;
        for (int i = 0; i < ndim; i++) dims[i] = strtoll(p, &p, 10);
        double mn, mx, mean, sumsq, vals[3];
        int k = 0;
        if (sscanf(p, "%7s %lf %lf %lf %lf %lf %lf %lf%n", orient, &mn, &mx, &mean, &sumsq, &vals[0], &vals[1], &vals[2], &k) != 8) {
            CU_FAIL("bad reference line");
            continue;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", data, name);
        NiiVolume v;
        DfError err = { "" };
        int rc = nii_read(path, &v, 1, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc) { fprintf(stderr, "  %s\n", err.msg); continue; }
        CU_ASSERT_EQUAL(v.version, version);
        CU_ASSERT_STRING_EQUAL(nii_datatype_name(v.datatype), dt);
        CU_ASSERT_EQUAL(v.big_endian, big);
        CU_ASSERT_EQUAL(v.ndim, ndim);
        for (int i = 0; i < ndim; i++) CU_ASSERT_EQUAL(v.dim[i + 1], dims[i]);
        CU_ASSERT_STRING_EQUAL(v.orient, orient);
        double lo = INFINITY, hi = -INFINITY, s = 0, s2 = 0;
        for (int64_t i = 0; i < v.nvox; i++) {
            double x = v.data[i];
            lo = fmin(lo, x); hi = fmax(hi, x); s += x; s2 += x * x;
        }
        // float32 storage of scaled values: relative 1e-6.
        CU_ASSERT_DOUBLE_EQUAL(lo, mn, 1e-6 * fabs(mn) + 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(hi, mx, 1e-6 * fabs(mx) + 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(s / (double)v.nvox, mean, 1e-6 * fabs(mean));
        CU_ASSERT_DOUBLE_EQUAL(s2, sumsq, 1e-6 * sumsq);
        // Fixed voxels of the first volume, nibabel [i,j,k] = our data[k][j][i].
        int64_t nx = v.dim[1], ny = v.dim[2], nz = v.dim[3];
        int64_t idx[3][3] = { { 0, 0, 0 }, { nx / 2, ny / 2, nz / 2 }, { nx - 1, ny - 1, nz - 1 } };
        for (int q = 0; q < 3; q++) {
            double got = v.data[(idx[q][2] * ny + idx[q][1]) * nx + idx[q][0]];
            CU_ASSERT_DOUBLE_EQUAL(got, vals[q], 1e-6 * fabs(vals[q]) + 1e-9);
        }
        nii_free(&v);
        checked++;
    }
    fclose(f);
    CU_ASSERT(checked >= 3);
}

static void remove_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    if (tu_tmpdir_create("df-nifti")) return 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("nifti", NULL, NULL);
    CU_add_test(s, "round trip: datatypes x byte orders x gz x NIfTI-1/2, 3D and 4D", test_roundtrip_all);
    CU_add_test(s, "round trip with scl_slope/scl_inter", test_roundtrip_scaling);
    CU_add_test(s, "header only", test_header_only);
    CU_add_test(s, "orientation codes from the sform", test_orientation);
    CU_add_test(s, "the affine in the qform too; pixdim from it", test_qform);
    CU_add_test(s, "affines that are not finite or singular are named", test_affine_problem);
    CU_add_test(s, "bad files: missing, not NIfTI, absurd dims, datatype, magic, truncated", test_bad_files);
    CU_add_test(s, "a .nii.gz claiming 16 GB in a few bytes: an error, not 16 GB allocated", test_gz_claiming_huge_volume);
    CU_add_test(s, "nibabel's real files against nibabel's statistics", test_nibabel_files);
    int rc = tu_run_all();
    remove_dir(tu_tmpdir());
    return rc;
}
