// test_pack.c: CSV manifests (io/csv.c) and packing NIfTI cohorts into shards (io/pack.c).
//   - CSV edge cases: quotes, embedded commas/newlines/quotes, comments, blank lines, CRLF,
//     BOM, ragged rows, unterminated quotes; manifest kinds declared / inferred, label names,
//     relative paths, every row error naming file:line and column;
//   - NIfTI -> shard -> values for every datatype, both byte orders, .nii.gz, NIfTI-2, 4D
//     as channels and as clips, with masks and subject ids;
//   - preprocessing: reorientation to RAS, trilinear resampling against a naive reference,
//     crop/pad, normalisation;
//   - bad inputs leave no output directory behind.
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nifti2_io.h>
#include "testutil.h"
#include "csv.h"
#include "h5util.h"
#include "pack.h"
#include "shard.h"

static char tmpdir[256];
static char *tp(const char *name) {
    static char bufs[32][512];
    static int k;
    char *b = bufs[k++ % 32];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static int contains(const char *hay, const char *needle) {
    int ok = strstr(hay, needle) != NULL;
    if (!ok) fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", hay, needle);
    return ok;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

// ---- CSV ---------------------------------------------------------------------------------

static void test_csv_dialect(void) {
    CsvTable t;
    DfError err = { "" };
    const char *text =
        "\xEF\xBB\xBF# a comment before the header\n"
        "path, label ,note\r\n"
        "\n"
        "a.nii,1,\"hello, world\"\r\n"
        "   # indented comment\n"
        "\"b c.nii\" , 0 , \"say \"\"hi\"\"\"\n"
        "c.nii,2,\"two\nlines\"\n"
        "d.nii,3,";
    CU_ASSERT_EQUAL_FATAL(csv_parse(&t, text, "t.csv", &err), 0);
    CU_ASSERT_EQUAL(t.ncols, 3);
    CU_ASSERT_STRING_EQUAL(t.header[1], "label");
    CU_ASSERT_EQUAL(t.nrows, 4);
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 0, 2), "hello, world");
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 1, 0), "b c.nii");
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 1, 2), "say \"hi\"");
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 2, 2), "two\nlines");
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 3, 2), "");
    CU_ASSERT_EQUAL(t.line[0], 4);
    CU_ASSERT_EQUAL(t.line[1], 6);
    CU_ASSERT_EQUAL(t.line[3], 9);
    CU_ASSERT_EQUAL(csv_column(&t, "note"), 2);
    csv_free(&t);

    struct { const char *text, *needle; } bad[] = {
        { "a,b\n1,2,3\n", "t.csv:2: 3 fields, but the header has 2" },
        { "a,b\n1\n", "t.csv:2: 1 field," },
        { "a,b\n1,\"open\n", "unterminated quoted field" },
        { "a,b\n1,\"x\"y\n", "t.csv:2: unexpected text after a closing quote" },
        { "a,b\n1,x\"y\n", "quote inside an unquoted field" },
        { "a,a\n1,2\n", "header names column 'a' twice" },
        { "a,,b\n", "header column 2 has no name" },
        { "# only comments\n\n", "empty" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(csv_parse(&t, bad[i].text, "t.csv", &err), -1);
        CU_ASSERT(contains(err.msg, bad[i].needle));
    }
}

static void test_manifest(void) {
    Manifest m;
    DfError err = { "" };
    const char *p = tp("m.csv");
    write_text(p,
               "path,label,subject,age,sex,site:categorical,score,group:cat\n"
               "x/a.nii.gz,AD,s1,71.5,M,2,0.5,1\n"
               "/abs/b.nii,CN,,64,F,1,1.5,1\n"
               "c.nii,AD,s1,80,F,2,2,1\n");
    CU_ASSERT_EQUAL_FATAL(manifest_read(&m, p, NULL, "score", &err), 0);
    CU_ASSERT_EQUAL(m.n, 3);
    CU_ASSERT_STRING_EQUAL(m.paths[0], tp("x/a.nii.gz"));  // relative to the manifest
    CU_ASSERT_STRING_EQUAL(m.paths[1], "/abs/b.nii");
    CU_ASSERT_STRING_EQUAL(m.subjects[1], "b");             // default: the file name
    CU_ASSERT_STRING_EQUAL(m.subjects[2], "s1");
    CU_ASSERT_EQUAL(m.n_label_names, 2);
    CU_ASSERT_STRING_EQUAL(m.label_names[0], "AD");
    CU_ASSERT(m.labels[0] == 0 && m.labels[1] == 1 && m.labels[2] == 0);
    CU_ASSERT_EQUAL(m.k, 5);
    CU_ASSERT_STRING_EQUAL(m.columns[2], "site");  // ":categorical" stripped
    CU_ASSERT(m.kinds[0] == META_CONTINUOUS);      // age: numbers
    CU_ASSERT(m.kinds[1] == META_CATEGORICAL);     // sex: names
    CU_ASSERT(m.kinds[2] == META_CATEGORICAL);     // declared in the header
    CU_ASSERT(m.kinds[3] == META_CONTINUOUS);      // declared by the caller
    CU_ASSERT(m.kinds[4] == META_CATEGORICAL);     // ":cat"
    CU_ASSERT_EQUAL(m.meta[0 * 5 + 1], 1.0);      // sex M = level 1 of (F, M)
    CU_ASSERT_EQUAL(m.meta[1 * 5 + 2], 0.0);      // site 1 = level 0 of (1, 2)
    CU_ASSERT_STRING_EQUAL(m.levels[2][1], "2");
    CU_ASSERT_DOUBLE_EQUAL(m.meta[2 * 5 + 0], 80.0, 0);
    manifest_free(&m);

    // Binary integer column inferred categorical; more levels: continuous.
    write_text(p, "path,label,sex,age\na,0,0,30\nb,1,1,31\nc,0,1,32\n");
    CU_ASSERT_EQUAL_FATAL(manifest_read(&m, p, NULL, NULL, &err), 0);
    CU_ASSERT(m.kinds[0] == META_CATEGORICAL && m.kinds[1] == META_CONTINUOUS);
    manifest_free(&m);

    struct { const char *text, *cat, *needle; } bad[] = {
        { "label,path\na,0\n", NULL, "must start with path,label" },
        { "path,label,age\na,0,30\nb,1,\nc,0,31\n", NULL, "m.csv:3: age: missing value" },
        { "path,label,age\na,0,30\nb,1,NA\n", NULL, "m.csv:3: age: missing value" },
        { "path,label,age\na,0,30\nb,1,thirty\n", NULL, "m.csv:3: age: 'thirty' is not a number" },
        { "path,label,age:continuous\na,0,30\nb,1,old\n", NULL, "m.csv:3: age: 'old' is not a number" },
        { "path,label,age\na,-1,30\n", NULL, "m.csv:2: label: -1 is not a class index" },
        { "path,label,age\na,AD,30\nb,1,30\n", NULL, "m.csv:3: label: '1' is a number" },
        { "path,label,age\n,0,30\n", NULL, "m.csv:2: path is empty" },
        { "path,label,age:weird\na,0,30\n", NULL, "unknown kind 'weird'" },
        { "path,label,age\na,0,30\n", "site", "names column 'site'" },
        { "path,label\n", NULL, "no subjects" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(p, bad[i].text);
        CU_ASSERT_EQUAL(manifest_read(&m, p, bad[i].cat, NULL, &err), -1);
        CU_ASSERT(contains(err.msg, bad[i].needle));
        CU_ASSERT(contains(err.msg, "m.csv"));
    }
    CU_ASSERT_EQUAL(manifest_read(&m, tp("none.csv"), NULL, NULL, &err), -1);
    CU_ASSERT(contains(err.msg, "none.csv: cannot open"));
}

// ---- pack --------------------------------------------------------------------------------

static int dir_exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

static int leftovers(void) {  // temporary directories beside the outputs
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static PackConfig plain_cfg(const char *manifest, const char *out) {
    PackConfig c = { .manifest = manifest, .out = out, .shard_size = 4 };
    return c;
}

// Every datatype x byte order x gz x version, 3D volumes 6x5x4, packed without any
// preprocessing: the shard holds exactly the values written (scaled).
static void test_pack_roundtrip(void) {
    const int dts[] = { DT_UINT8, DT_INT8, DT_INT16, DT_UINT16, DT_INT32, DT_UINT32, DT_FLOAT32, DT_FLOAT64 };
    int nd = (int)(sizeof dts / sizeof dts[0]);
    char csv[8192] = "path,label,age,mask\n";
    int n = 0;
    float *want = xmalloc(sizeof(float) * 120 * 64);
    for (int d = 0; d < nd; d++)
        for (int variant = 0; variant < 4; variant++) {  // (big, gz, version) combinations
            int big = variant & 1, gz = (variant >> 1) & 1, version = 1 + ((d + variant) % 2);
            float *x = want + (size_t)n * 120;
            for (int i = 0; i < 120; i++) x[i] = (float)((i * 7 + n * 3) % 100);
            NiiWriteSpec sp = { .version = version, .datatype = dts[d], .big_endian = big };
            int64_t dims[8] = { 3, 6, 5, 4, 1, 1, 1, 1 };
            memcpy(sp.dims, dims, sizeof dims);
            if (dts[d] == DT_INT16) { sp.slope = 0.5; sp.inter = 10; for (int i = 0; i < 120; i++) x[i] = x[i] * 0.5f + 10; }
            char name[64], mname[64];
            snprintf(name, sizeof name, "v%02d.nii%s", n, gz ? ".gz" : "");
            snprintf(mname, sizeof mname, "m%02d.nii", n);
            DfError err;
            CU_ASSERT_EQUAL_FATAL(nii_write(tp(name), &sp, x, &err), 0);
            float mk[120];
            for (int i = 0; i < 120; i++) mk[i] = (float)((i + n) % 4 == 0);
            NiiWriteSpec ms = { .version = 1, .datatype = DT_UINT8 };
            memcpy(ms.dims, dims, sizeof dims);
            CU_ASSERT_EQUAL_FATAL(nii_write(tp(mname), &ms, mk, &err), 0);
            size_t len = strlen(csv);
            snprintf(csv + len, sizeof csv - len, "%s,%d,%d.5,%s\n", name, n % 3, 20 + n, mname);
            n++;
        }
    write_text(tp("rt.csv"), csv);
    PackConfig cfg = plain_cfg(tp("rt.csv"), tp("rt_out"));
    DfError err = { "" };
    int rc = pack_run(&cfg, &err);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(leftovers(), 0);
    int shards = (n + 3) / 4;
    for (int s = 0; s < shards; s++) {
        char name[64];
        snprintf(name, sizeof name, "rt_out/shard-%05d.h5", s);
        Cohort c;
        CU_ASSERT_EQUAL_FATAL(shard_read(tp(name), &c, &err), 0);
        CU_ASSERT(c.shape.c == 1 && c.shape.d == 4 && c.shape.h == 5 && c.shape.w == 6);
        CU_ASSERT(c.has_masks && c.masks && c.subjects);
        for (int i = 0; i < c.n; i++) {
            int row = s * 4 + i;
            CU_ASSERT_EQUAL(memcmp(c.images + (size_t)i * 120, want + (size_t)row * 120, 120 * sizeof(float)), 0);
            CU_ASSERT_EQUAL(c.labels[i], row % 3);
            CU_ASSERT_DOUBLE_EQUAL(c.meta[i], 20 + row + 0.5, 0);
            char subj[16];
            snprintf(subj, sizeof subj, "v%02d", row);
            CU_ASSERT_STRING_EQUAL(c.subjects[i], subj);
            for (int v = 0; v < 120; v++) CU_ASSERT_EQUAL(c.masks[(size_t)i * 120 + v], (v + row) % 4 == 0);
        }
        cohort_free(&c);
    }
    free(want);
}

// 4D: channels and clips.
static void test_pack_4d(void) {
    float x[6 * 5 * 3 * 2];
    for (int i = 0; i < 180; i++) x[i] = (float)i;
    NiiWriteSpec sp = { .version = 2, .datatype = DT_FLOAT32 };
    int64_t dims[8] = { 4, 6, 5, 3, 2, 1, 1, 1 };  // nx ny nz nt
    memcpy(sp.dims, dims, sizeof dims);
    DfError err = { "" };
    CU_ASSERT_EQUAL_FATAL(nii_write(tp("f4.nii.gz"), &sp, x, &err), 0);
    write_text(tp("f4.csv"), "path,label\nf4.nii.gz,1\nf4.nii.gz,0\n");
    PackConfig cfg = plain_cfg(tp("f4.csv"), tp("f4_ch"));
    CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
    Cohort c;
    CU_ASSERT_EQUAL_FATAL(shard_read(tp("f4_ch/shard-00000.h5"), &c, &err), 0);
    CU_ASSERT(c.shape.c == 2 && c.shape.d == 3 && c.shape.h == 5 && c.shape.w == 6);
    CU_ASSERT_EQUAL(memcmp(c.images, x, sizeof x), 0);  // NIfTI order is [t][k][j][i] = [C][D][H][W]
    cohort_free(&c);
    // As a clip: dim 3 = 3 colour planes, dim 4 = 2 frames -> (C=3, D=2, H=5, W=6).
    cfg = plain_cfg(tp("f4.csv"), tp("f4_clip"));
    cfg.prep.four_d = PACK_4D_FRAMES;
    CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(shard_read(tp("f4_clip/shard-00000.h5"), &c, &err), 0);
    CU_ASSERT(c.shape.c == 3 && c.shape.d == 2 && c.shape.h == 5 && c.shape.w == 6);
    for (int ch = 0; ch < 3; ch++)
        for (int t = 0; t < 2; t++)
            CU_ASSERT_EQUAL(memcmp(c.images + ((size_t)ch * 2 + t) * 30, x + ((size_t)t * 3 + ch) * 30, 30 * sizeof(float)), 0);
    cohort_free(&c);
}

// Trilinear resampling against a direct evaluation; reorientation; crop/pad; zscore.
static void test_preprocessing(void) {
    int C = 2, D = 5, H = 4, W = 7, D2 = 3, H2 = 9, W2 = 4;
    float *in = xmalloc(sizeof(float) * C * D * H * W), *out = xmalloc(sizeof(float) * C * D2 * H2 * W2);
    Rng r;
    rng_seed(&r, 1);
    tu_fill_uniform(in, (size_t)C * D * H * W, -1, 1, &r);
    prep_resample(out, in, C, D, H, W, D2, H2, W2);
    double worst = 0;
    for (int c = 0; c < C; c++)
        for (int z = 0; z < D2; z++)
            for (int y = 0; y < H2; y++)
                for (int x = 0; x < W2; x++) {
                    // Naive: the source point, clamped, and the 8 weighted neighbours.
                    double p[3] = { (z + 0.5) * D / D2 - 0.5, (y + 0.5) * H / H2 - 0.5, (x + 0.5) * W / W2 - 0.5 };
                    int n[3] = { D, H, W };
                    double acc = 0;
                    for (int a = 0; a < 3; a++) p[a] = fmin(fmax(p[a], 0), n[a] - 1);
                    for (int corner = 0; corner < 8; corner++) {
                        double wgt = 1;
                        int idx[3];
                        for (int a = 0; a < 3; a++) {
                            int lo = (int)floor(p[a]), hi = DF_MIN(lo + 1, n[a] - 1), bit = (corner >> a) & 1;
                            double f = p[a] - lo;
                            idx[a] = bit ? hi : lo;
                            wgt *= bit ? f : 1 - f;
                        }
                        acc += wgt * in[(((size_t)c * D + idx[0]) * H + idx[1]) * W + idx[2]];
                    }
                    worst = fmax(worst, fabs(acc - out[(((size_t)c * D2 + z) * H2 + y) * W2 + x]));
                }
    CU_ASSERT(worst < 1e-5);
    free(in);
    free(out);

    // An LPS volume (i -> left, j -> posterior, k -> superior) reoriented to RAS: i and j
    // flip; then cropped/padded to (4, 3, 8) and z-scored.
    float v[4 * 3 * 2];
    for (int i = 0; i < 24; i++) v[i] = (float)i;
    double aff[16] = { -1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 };
    NiiWriteSpec sp = { .version = 1, .datatype = DT_FLOAT32, .affine = aff };
    int64_t dims[8] = { 3, 4, 3, 2, 1, 1, 1, 1 };
    memcpy(sp.dims, dims, sizeof dims);
    DfError err;
    CU_ASSERT_EQUAL_FATAL(nii_write(tp("lps.nii"), &sp, v, &err), 0);
    PrepConfig pc = { .reorient = 1 };
    float *x;
    uint8_t *m;
    Shape s;
    CU_ASSERT_EQUAL_FATAL(prep_load(&pc, tp("lps.nii"), NULL, &x, &m, &s, &err), 0);
    CU_ASSERT(s.c == 1 && s.d == 2 && s.h == 3 && s.w == 4);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(x[(k * 3 + j) * 4 + i], v[(k * 3 + (2 - j)) * 4 + (3 - i)]);
    free(x);
    PrepConfig pc2 = { .reorient = 0, .shape = { 4, 3, 2 }, .norm = PACK_NORM_ZSCORE };
    CU_ASSERT_EQUAL_FATAL(prep_load(&pc2, tp("lps.nii"), NULL, &x, &m, &s, &err), 0);
    CU_ASSERT(s.d == 4 && s.h == 3 && s.w == 2);
    // Crop W 4 -> 2 from offset 1, pad D 2 -> 4 with one plane each side; then zscore.
    double mean = 0, sq = 0;
    for (int i = 0; i < 24; i++) { mean += x[i] / 24; sq += x[i] * x[i] / 24; }
    CU_ASSERT_DOUBLE_EQUAL(mean, 0, 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(sq, 1, 1e-4);
    // Relative structure: x[d=1][h][w] corresponds to v[k=0][h][w+1].
    CU_ASSERT_DOUBLE_EQUAL(x[(1 * 3 + 2) * 2 + 1] - x[(1 * 3 + 0) * 2 + 0], (v[(0 * 3 + 2) * 4 + 2] - v[(0 * 3 + 0) * 4 + 1]) * (x[(1 * 3 + 0) * 2 + 1] - x[(1 * 3 + 0) * 2 + 0]), 1e-4);
    free(x);
    // Spacing: 1 mm -> 2 mm halves every axis (rounded).
    PrepConfig pc3 = { .spacing = 2.0 };
    CU_ASSERT_EQUAL(prep_shape(&pc3, tp("lps.nii"), &s, &err), 0);
    CU_ASSERT(s.d == 1 && s.h == 2 && s.w == 2);
}

static void expect_pack_error(const char *csv_text, const char *needle, PackConfig *base) {
    write_text(tp("bad.csv"), csv_text);
    PackConfig cfg = base ? *base : plain_cfg(tp("bad.csv"), tp("bad_out"));
    cfg.manifest = tp("bad.csv");
    cfg.out = tp("bad_out");
    DfError err = { "" };
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), -1);
    CU_ASSERT(contains(err.msg, needle));
    CU_ASSERT(!dir_exists(tp("bad_out")));
    CU_ASSERT_EQUAL(leftovers(), 0);
}

static void test_pack_errors(void) {
    DfError err;
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    NiiWriteSpec sp = { .version = 1, .datatype = DT_FLOAT32 };
    int64_t d4[8] = { 3, 4, 4, 4, 1, 1, 1, 1 }, d3[8] = { 3, 4, 4, 3, 1, 1, 1, 1 };
    memcpy(sp.dims, d4, sizeof d4);
    CU_ASSERT_EQUAL(nii_write(tp("ok.nii"), &sp, x, &err), 0);
    memcpy(sp.dims, d3, sizeof d3);
    CU_ASSERT_EQUAL(nii_write(tp("other.nii"), &sp, x, &err), 0);
    memcpy(sp.dims, d4, sizeof d4);
    sp.datatype = DT_INT16;
    CU_ASSERT_EQUAL(nii_write(tp("trunc.nii"), &sp, x, &err), 0);
    CU_ASSERT_EQUAL(truncate(tp("trunc.nii"), 360), 0);
    write_text(tp("text.nii"), "not a nifti file at all, just text ..........................................................................................................................................................................................................................................................................................................................................................");

    expect_pack_error("path,label\nok.nii,0\nmissing.nii,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nok.nii,0\nmissing.nii,1\n", "missing.nii: cannot open", NULL);
    expect_pack_error("path,label\nok.nii,0\ntrunc.nii,1\n", "truncated", NULL);
    expect_pack_error("path,label\nok.nii,0\ntext.nii,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nok.nii,0\nother.nii,1\n", "give --shape", NULL);
    expect_pack_error("path,label,age\nok.nii,0,30\nok.nii,1,x\n", "bad.csv:3: age: 'x' is not a number", NULL);
    expect_pack_error("path,label,mask\nok.nii,0,other.nii\n", "mask", NULL);
    // An existing output directory.
    mkdir(tp("bad_out"), 0755);
    write_text(tp("bad.csv"), "path,label\nok.nii,0\n");
    PackConfig cfg = plain_cfg(tp("bad.csv"), tp("bad_out"));
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), -1);
    CU_ASSERT(contains(err.msg, "already exists"));
    rmdir(tp("bad_out"));
    // Mixed shapes are fine with --shape.
    write_text(tp("mix.csv"), "path,label\nok.nii,0\nother.nii,1\n");
    cfg = plain_cfg(tp("mix.csv"), tp("mix_out"));
    cfg.prep.shape[0] = 4; cfg.prep.shape[1] = 4; cfg.prep.shape[2] = 4;
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), 0);
}

int main(void) {
    h5_quiet();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/df-pack-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("csv", NULL, NULL);
    CU_add_test(s, "dialect and errors", test_csv_dialect);
    CU_add_test(s, "manifest kinds, labels, paths, row errors", test_manifest);
    s = CU_add_suite("pack", NULL, NULL);
    CU_add_test(s, "NIfTI -> shard -> values: datatypes, byte orders, gz, NIfTI-2, masks", test_pack_roundtrip);
    CU_add_test(s, "4D as channels and as clips", test_pack_4d);
    CU_add_test(s, "resampling, reorientation, crop/pad, zscore", test_preprocessing);
    CU_add_test(s, "bad inputs: message, nothing left behind", test_pack_errors);
    int rc = tu_run_all();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
