// test_pack.c: CSV manifests (data/csv.c) and packing NIfTI cohorts into shards (data/pack.c).
//   - CSV edge cases: quotes, embedded commas/newlines/quotes, comments, blank lines, CRLF,
//     BOM, ragged rows, unterminated quotes; manifest kinds declared / inferred, label names,
//     relative paths, every row error naming file:line and column;
//   - NIfTI -> shard -> values for every datatype, both byte orders, .nii.gz, NIfTI-2, 4D
//     as channels and as clips, with masks and subject ids;
//   - preprocessing: reorientation to RAS, trilinear resampling against a naive reference,
//     crop/pad, normalisation;
//   - bad inputs leave no output directory behind;
//   - HDF5 video clips (written here with the HDF5 C API) in both layouts and dtypes,
//     bare FILE.h5 and FILE.h5:DATASET, and every bad clip naming the file and row;
//   - subject lists (pack --subjects) and split files ([data] split_file).
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nifti2_io.h>
#include "testutil.h"
#include "data/csv.h"
#include "data/dataset.h"
#include "data/h5clip.h"
#include "data/h5util.h"
#include "data/pack.h"
#include "data/shard.h"


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
        CU_ASSERT(tu_contains(err.msg, bad[i].needle));
    }
}

// Numeric columns (metrics.csv of a run): empty cells are NaN, everything else a number in
// range, errors name file:line and column; header names with brackets and quoted commas.
static void test_csv_numbers(void) {
    CsvTable t;
    DfError err = { "" };
    const char *text =
        "epoch,val_acc,\"val_acc[site=A]\",val_worst_group,\"odd,name\"\n"
        "1,0.5,0.25,site=B,-3e2\n"
        "2,,1,\"site=\"\"C\"\"\",\n";
    CU_ASSERT_EQUAL_FATAL(csv_parse(&t, text, "m.csv", &err), 0);
    CU_ASSERT_EQUAL(csv_column(&t, "val_acc[site=A]"), 2);
    CU_ASSERT_EQUAL(csv_column(&t, "odd,name"), 4);
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 1, 3), "site=\"C\"");
    double v[2];
    CU_ASSERT_EQUAL(csv_numbers(&t, 1, 0, 1, v, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 0.5, 0);
    CU_ASSERT(isnan(v[1]));
    CU_ASSERT_EQUAL(csv_numbers(&t, 2, 0, 1, v, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(v[1], 1.0, 0);
    CU_ASSERT_EQUAL(csv_numbers(&t, 4, -INFINITY, INFINITY, v, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(v[0], -300.0, 0);
    CU_ASSERT_EQUAL(csv_numbers(&t, 4, 0, 1, v, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "m.csv:2: odd,name: -3e2 is outside [0, 1]"));
    CU_ASSERT_EQUAL(csv_numbers(&t, 3, -INFINITY, INFINITY, v, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "m.csv:2: val_worst_group: 'site=B' is not a number"));
    csv_free(&t);
    const char *bad[] = { "a\n0.5x\n", "a\nnan\n", "a\ninf\n", "a\n1e999\n", "a\n\"\"\n2\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int parsed = csv_parse(&t, bad[i], "b.csv", &err) == 0;
        CU_ASSERT_FATAL(parsed);
        double w[2];
        int rc = csv_numbers(&t, 0, -INFINITY, INFINITY, w, &err);
        int ok = i < 4 ? rc == -1 && tu_contains(err.msg, "b.csv:2: a: '") && tu_contains(err.msg, "is not a number")
                       : rc == 0 && isnan(w[0]) && w[1] == 2;  // a quoted empty cell is empty too
        CU_ASSERT(ok);
        csv_free(&t);
    }
}

static void test_manifest(void) {
    Manifest m;
    DfError err = { "" };
    const char *p = tu_path("m.csv");
    write_text(p,
               "path,label,subject,age,sex,site:categorical,score,group:cat\n"
               "x/a.nii.gz,AD,s1,71.5,M,2,0.5,1\n"
               "/abs/b.nii,CN,,64,F,1,1.5,1\n"
               "c.nii,AD,s1,80,F,2,2,1\n");
    CU_ASSERT_EQUAL_FATAL(manifest_read(&m, p, NULL, "score", &err), 0);
    CU_ASSERT_EQUAL(m.n, 3);
    CU_ASSERT_STRING_EQUAL(m.paths[0], tu_path("x/a.nii.gz"));  // relative to the manifest
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
        // NaN is missing as NA is (csv_is_missing), not a level of a categorical column
        { "path,label,site\na,0,A\nb,1,NaN\n", NULL, "m.csv:3: site: missing value" },
        { "path,label,site:categorical\na,0,A\nb,1,nan\n", NULL, "m.csv:3: site: missing value" },
        { "path,label,age\na,0,30\nb,1,n/a\n", NULL, "m.csv:3: age: missing value" },
        { "path,label,age\na,0,30\nb,1,N/A\n", NULL, "m.csv:3: age: missing value" },
        { "path,label,age\na,AD,30\nb,NaN,31\n", NULL, "m.csv:3: label: missing value" },
        { "path,label,age\na,0,30\nb,,31\n", NULL, "m.csv:3: label: missing value" },
        { "path,label,age\na,0,30\nb,1,thirty\n", NULL, "m.csv:3: age: 'thirty' is not a number" },
        { "path,label,age:continuous\na,0,30\nb,1,old\n", NULL, "m.csv:3: age: 'old' is not a number" },
        { "path,label,age\na,-1,30\n", NULL, "m.csv:2: label: -1 is not a class index" },
        // A column mixing numbers and words names its odd value -- the first of the kind fewer
        // rows hold (numbers win a tie) -- at its own line, and the first of the others.
        { "path,label,age\na,0,abc\nb,1,40\n", NULL, "m.csv:2: age: 'abc' is not a number, but 1 of the 2 rows holds a number ('40' at " },
        { "path,label,age\na,0,inf\nb,1,40\nc,1,41\n", NULL, "m.csv:2: age: 'inf' is not a number (infinite, or beyond the range of a double), but 2 of the 3 rows hold numbers (the first '40' at " },
        { "path,label,age\na,0,1e400\nb,1,40\n", NULL, "m.csv:2: age: '1e400' is not a number (infinite" },
        { "path,label,age:continuous\na,0,30\nb,1,-1e999\n", NULL, "m.csv:3: age: '-1e999' is not a number (infinite" },
        { "path,label,site\na,0,A\nb,1,3\nc,0,B\n", NULL, "m.csv:3: site: '3' is a number, but 2 of the 3 rows hold names (the first 'A' at " },
        { "path,label,age\na,0,30\nb,1.5,30\n", NULL, "m.csv:3: label: '1.5' is not a class index" },
        { "path,label,age\na,AD,30\nb,1,30\n", NULL, "m.csv:2: label: 'AD' is not a class index, but 1 of the 2 labels is a number ('1' at " },
        { "path,label,age\na,AD,30\nb,1,30\nc,CN,30\n", NULL, "m.csv:3: label: '1' is a number, but 2 of the 3 labels are names (the first 'AD' at " },
        { "path,label,age\n,0,30\n", NULL, "m.csv:2: path is empty" },
        { "path,label,age:weird\na,0,30\n", NULL, "unknown kind 'weird'" },
        { "path,label,age\na,0,30\n", "site", "names column 'site'" },
        { "path,label\n", NULL, "no subjects" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(p, bad[i].text);
        CU_ASSERT_EQUAL(manifest_read(&m, p, bad[i].cat, NULL, &err), -1);
        CU_ASSERT(tu_contains(err.msg, bad[i].needle));
        if (!tu_contains(err.msg, bad[i].needle)) fprintf(stderr, "\n  got: %s\n", err.msg);
        CU_ASSERT(tu_contains(err.msg, "m.csv"));
    }
    CU_ASSERT_EQUAL(manifest_read(&m, tu_path("none.csv"), NULL, NULL, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "none.csv: cannot open"));
}

// ---- pack --------------------------------------------------------------------------------

static int dir_exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

static int leftovers(void) {  // temporary directories beside the outputs
    DIR *d = opendir(tu_tmpdir());
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
            CU_ASSERT_EQUAL_FATAL(nii_write(tu_path(name), &sp, x, &err), 0);
            float mk[120];
            for (int i = 0; i < 120; i++) mk[i] = (float)((i + n) % 4 == 0);
            NiiWriteSpec ms = { .version = 1, .datatype = DT_UINT8 };
            memcpy(ms.dims, dims, sizeof dims);
            CU_ASSERT_EQUAL_FATAL(nii_write(tu_path(mname), &ms, mk, &err), 0);
            size_t len = strlen(csv);
            snprintf(csv + len, sizeof csv - len, "%s,%d,%d.5,%s\n", name, n % 3, 20 + n, mname);
            n++;
        }
    write_text(tu_path("rt.csv"), csv);
    PackConfig cfg = plain_cfg(tu_path("rt.csv"), tu_path("rt_out"));
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
        CU_ASSERT_EQUAL_FATAL(shard_read(tu_path(name), &c, &err), 0);
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
    CU_ASSERT_EQUAL_FATAL(nii_write(tu_path("f4.nii.gz"), &sp, x, &err), 0);
    write_text(tu_path("f4.csv"), "path,label\nf4.nii.gz,1\nf4.nii.gz,0\n");
    PackConfig cfg = plain_cfg(tu_path("f4.csv"), tu_path("f4_ch"));
    CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
    Cohort c;
    CU_ASSERT_EQUAL_FATAL(shard_read(tu_path("f4_ch/shard-00000.h5"), &c, &err), 0);
    CU_ASSERT(c.shape.c == 2 && c.shape.d == 3 && c.shape.h == 5 && c.shape.w == 6);
    CU_ASSERT_EQUAL(memcmp(c.images, x, sizeof x), 0);  // NIfTI order is [t][k][j][i] = [C][D][H][W]
    cohort_free(&c);
    // As a clip: dim 3 = 3 colour planes, dim 4 = 2 frames -> (C=3, D=2, H=5, W=6).
    cfg = plain_cfg(tu_path("f4.csv"), tu_path("f4_clip"));
    cfg.prep.four_d = PACK_4D_FRAMES;
    CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(shard_read(tu_path("f4_clip/shard-00000.h5"), &c, &err), 0);
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
    CU_ASSERT_EQUAL_FATAL(nii_write(tu_path("lps.nii"), &sp, v, &err), 0);
    PrepConfig pc = { .reorient = 1 };
    float *x;
    uint8_t *m;
    Shape s;
    CU_ASSERT_EQUAL_FATAL(prep_load(&pc, tu_path("lps.nii"), NULL, &x, &m, &s, &err), 0);
    CU_ASSERT(s.c == 1 && s.d == 2 && s.h == 3 && s.w == 4);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(x[(k * 3 + j) * 4 + i], v[(k * 3 + (2 - j)) * 4 + (3 - i)]);
    free(x);
    PrepConfig pc2 = { .reorient = 0, .shape = { 4, 3, 2 }, .norm = PACK_NORM_ZSCORE };
    CU_ASSERT_EQUAL_FATAL(prep_load(&pc2, tu_path("lps.nii"), NULL, &x, &m, &s, &err), 0);
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
    CU_ASSERT_EQUAL(prep_shape(&pc3, tu_path("lps.nii"), &s, &err), 0);
    CU_ASSERT(s.d == 1 && s.h == 2 && s.w == 2);
}

// The packed grid's affine (PrepGeometry) says where every packed voxel is. The volume holds
// a linear function of world position, f(x, y, z) = 0.5 x - 0.25 y + 0.125 z + 3, which
// trilinear resampling reproduces exactly: every packed voxel away from the border (where
// resampling clamps and padding zeroes) must hold f at the world point the affine gives it.
// The source is LPS-ordered (i -> left, j -> posterior), anisotropic (2 x 1.5 x 3 mm) and
// off-origin, so reorientation, resampling to 1.25 mm and the centred crop/pad all move it.
static double world_f(const double w[3]) { return 0.5 * w[0] - 0.25 * w[1] + 0.125 * w[2] + 3; }

static void test_geometry(void) {
    int nx = 10, ny = 12, nz = 7;
    double aff[16] = { -2, 0, 0, 40, 0, -1.5, 0, 25, 0, 0, 3, -30, 0, 0, 0, 1 };
    float *v = xmalloc(sizeof(float) * (size_t)nx * ny * nz);
    for (int k = 0; k < nz; k++)
        for (int j = 0; j < ny; j++)
            for (int i = 0; i < nx; i++) {
                double w[3];
                for (int r = 0; r < 3; r++) w[r] = aff[r * 4] * i + aff[r * 4 + 1] * j + aff[r * 4 + 2] * k + aff[r * 4 + 3];
                v[((size_t)k * ny + j) * nx + i] = (float)world_f(w);
            }
    NiiWriteSpec sp = { .version = 1, .datatype = DT_FLOAT32, .affine = aff, .pixdim = { 0, 2, 1.5, 3 } };
    int64_t dims[8] = { 3, nx, ny, nz, 1, 1, 1, 1 };
    memcpy(sp.dims, dims, sizeof dims);
    DfError err;
    CU_ASSERT_EQUAL_FATAL(nii_write(tu_path("geo.nii"), &sp, v, &err), 0);
    PrepConfig cfgs[3] = { { .reorient = 1, .spacing = 1.25, .shape = { 14, 12, 20 } },
                           { .reorient = 0, .spacing = 0, .shape = { 9, 9, 9 } },
                           { .reorient = 1, .shape = { 16, 8, 8 }, .fit = PACK_FIT_RESIZE } };
    for (int t = 0; t < 3; t++) {
        float *x;
        uint8_t *m;
        Shape sh;
        PrepGeometry geo;
        CU_ASSERT_EQUAL_FATAL(prep_load(&cfgs[t], tu_path("geo.nii"), NULL, &x, &m, &sh, &err), 0);
        CU_ASSERT_EQUAL_FATAL(prep_geometry(&cfgs[t], tu_path("geo.nii"), &geo, &err), 0);
        CU_ASSERT(geo.has && geo.source_dims[0] == nx && geo.source_dims[1] == ny && geo.source_dims[2] == nz);
        CU_ASSERT(memcmp(geo.source_affine, aff, sizeof aff) == 0);
        double worst = 0;
        long checked = 0;
        for (int d = 1; d < sh.d - 1; d++)
            for (int h = 1; h < sh.h - 1; h++)
                for (int w = 1; w < sh.w - 1; w++) {
                    double idx[3] = { w, h, d }, wp[3], src[3];
                    for (int r = 0; r < 3; r++)
                        wp[r] = geo.affine[r * 4] * idx[0] + geo.affine[r * 4 + 1] * idx[1] + geo.affine[r * 4 + 2] * idx[2] +
                                geo.affine[r * 4 + 3];
                    // inside the source by a voxel (no clamping, no padding): the source index
                    src[0] = (wp[0] - 40) / -2, src[1] = (wp[1] - 25) / -1.5, src[2] = (wp[2] + 30) / 3;
                    if (src[0] < 1 || src[0] > nx - 2 || src[1] < 1 || src[1] > ny - 2 || src[2] < 1 || src[2] > nz - 2) continue;
                    worst = fmax(worst, fabs(x[((size_t)d * sh.h + h) * sh.w + w] - world_f(wp)));
                    checked++;
                }
        CU_ASSERT(checked > 100);
        CU_ASSERT(worst < 1e-4);  // float32 values of magnitude ~30: rounding ~4e-6
        if (worst >= 1e-4 || checked <= 100) printf("\n  geometry case %d: worst %.3g over %ld voxels\n", t, worst, checked);
        // And back (prep_to_source, what saliency maps take): the packed values sampled at each
        // source voxel's world point give the source's own values wherever that point lies
        // inside the packed grid's interior (trilinear of a linear function: exact).
        float *back = xmalloc(sizeof(float) * (size_t)nx * ny * nz);
        CU_ASSERT_EQUAL_FATAL(prep_to_source(back, x, sh.d, sh.h, sh.w, geo.affine, geo.source_affine, geo.source_dims), 0);
        double worst_back = 0, inv_ok = 0;
        long back_checked = 0, zero_outside = 0, outside = 0;
        for (int k = 0; k < nz; k++)
            for (int j = 0; j < ny; j++)
                for (int i = 0; i < nx; i++) {
                    double w[3], q[3] = { 0 };
                    for (int r = 0; r < 3; r++) w[r] = aff[r * 4] * i + aff[r * 4 + 1] * j + aff[r * 4 + 2] * k + aff[r * 4 + 3];
                    // the packed index of w, by solving affine q = w (3x3, by Cramer's rule)
                    const double *A = geo.affine;
                    double rhs[3] = { w[0] - A[3], w[1] - A[7], w[2] - A[11] };
                    double det = A[0] * (A[5] * A[10] - A[6] * A[9]) - A[1] * (A[4] * A[10] - A[6] * A[8]) + A[2] * (A[4] * A[9] - A[5] * A[8]);
                    for (int col = 0; col < 3; col++) {
                        double M[9] = { A[0], A[1], A[2], A[4], A[5], A[6], A[8], A[9], A[10] };
                        for (int r = 0; r < 3; r++) M[r * 3 + col] = rhs[r];
                        q[col] = (M[0] * (M[4] * M[8] - M[5] * M[7]) - M[1] * (M[3] * M[8] - M[5] * M[6]) + M[2] * (M[3] * M[7] - M[4] * M[6])) / det;
                    }
                    float got = back[((size_t)k * ny + j) * nx + i];
                    if (q[0] >= 1 && q[0] <= sh.w - 2 && q[1] >= 1 && q[1] <= sh.h - 2 && q[2] >= 1 && q[2] <= sh.d - 2 &&
                        i >= 1 && i <= nx - 2 && j >= 1 && j <= ny - 2 && k >= 1 && k <= nz - 2) {
                        worst_back = fmax(worst_back, fabs(got - v[((size_t)k * ny + j) * nx + i]));
                        back_checked++;
                    } else if (q[0] < -0.6 || q[1] < -0.6 || q[2] < -0.6 || q[0] > sh.w - 0.4 || q[1] > sh.h - 0.4 || q[2] > sh.d - 0.4) {
                        outside++;
                        zero_outside += got == 0.0f;
                    }
                }
        (void)inv_ok;
        CU_ASSERT(back_checked > 50 && worst_back < 1e-4);
        CU_ASSERT(zero_outside == outside);  // cropped away: nothing to show there
        if (back_checked <= 50 || worst_back >= 1e-4 || zero_outside != outside)
            printf("\n  back to source, case %d: worst %.3g over %ld voxels; %ld of %ld outside zero\n", t, worst_back, back_checked,
                   zero_outside, outside);
        free(back);
        free(x);
    }
    free(v);
}

static void expect_pack_error(const char *csv_text, const char *needle, PackConfig *base) {
    write_text(tu_path("bad.csv"), csv_text);
    PackConfig cfg = base ? *base : plain_cfg(tu_path("bad.csv"), tu_path("bad_out"));
    cfg.manifest = tu_path("bad.csv");
    cfg.out = tu_path("bad_out");
    DfError err = { "" };
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), -1);
    CU_ASSERT(tu_contains(err.msg, needle));
    CU_ASSERT(!dir_exists(tu_path("bad_out")));
    CU_ASSERT_EQUAL(leftovers(), 0);
}

// A 4x4x4 volume (x, or a mask of every other voxel when x is NULL) with the voxel-to-world
// affine's rows 1-3 `aff` (sform and qform), pixdim its column lengths (1 where 0 or not finite).
static void write_affine(const char *name, const double aff[12], const float *x) {
    double A[16] = { 0 };
    memcpy(A, aff, 12 * sizeof(double));
    A[15] = 1;
    float mk[64];
    for (int i = 0; i < 64; i++) mk[i] = (float)(i % 2);
    NiiWriteSpec sp = { .version = 1, .datatype = x ? DT_FLOAT32 : DT_UINT8, .affine = A };
    for (int c = 0; c < 3; c++) {
        double len = sqrt(A[c] * A[c] + A[4 + c] * A[4 + c] + A[8 + c] * A[8 + c]);
        sp.pixdim[c + 1] = isfinite(len) && len > 0 ? len : 1;
    }
    int64_t d4[8] = { 3, 4, 4, 4, 1, 1, 1, 1 };
    memcpy(sp.dims, d4, sizeof d4);
    DfError err;
    CU_ASSERT_EQUAL(nii_write(tu_path(name), &sp, x ? x : mk, &err), 0);
}

// Volumes without a place in world space (an affine all zeros, of rank 2, with a NaN; issue:
// pack crashed on reading an uninitialised axis permutation), or whose axis codes are not a
// permutation of RAS (reorienting needs one; --no-reorient does not), and grids that
// --spacing would make absurd (refused before any allocation): one message naming the file.
static void test_pack_bad_geometry(void) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    const double id[12] = { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0 }, zero[12] = { 0 };
    const double rank2[12] = { 2, 0, 0, -8, 0, 2, 0, -9, 0, 0, 0, 0 }, nan_aff[12] = { NAN, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0 };
    const double oblique[12] = { 2, 1, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0 };  // invertible, axis codes R?S
    const double huge[12] = { 1e30, 0, 0, 0, 0, 1e30, 0, 0, 0, 0, 1e30, 0 };
    write_affine("g_ok.nii", id, x);
    write_affine("g_zero.nii", zero, x);
    write_affine("g_rank2.nii", rank2, x);
    write_affine("g_nan.nii", nan_aff, x);
    write_affine("g_oblique.nii", oblique, x);
    write_affine("g_huge.nii", huge, x);
    expect_pack_error("path,label\ng_ok.nii,0\ng_zero.nii,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\ng_ok.nii,0\ng_zero.nii,1\n", "g_zero.nii: its voxel-to-world affine (sform, else qform) is singular", NULL);
    expect_pack_error("path,label\ng_rank2.nii,0\ng_ok.nii,1\n", "g_rank2.nii: its voxel-to-world affine (sform, else qform) is singular", NULL);
    expect_pack_error("path,label\ng_nan.nii,0\n", "g_nan.nii: its voxel-to-world affine (sform, else qform) is not finite", NULL);
    PackConfig keep = plain_cfg(NULL, NULL);  // without reorientation too: export needs the affine
    expect_pack_error("path,label\ng_zero.nii,0\n", "is singular", &keep);
    keep.prep.reorient = 1;
    expect_pack_error("path,label\ng_oblique.nii,0\n", "g_oblique.nii: its orientation cannot be told from its affine (axis codes R?S)", &keep);
    write_text(tu_path("obl.csv"), "path,label\ng_oblique.nii,0\n");
    PackConfig cfg = plain_cfg(tu_path("obl.csv"), tu_path("obl_out"));
    DfError err = { "" };
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), 0);  // reorient = 0: the stored axes, the affine as it is

    PackConfig sp = plain_cfg(NULL, NULL);
    sp.prep.spacing = 0.0009;  // 4444 voxels along each axis
    expect_pack_error("path,label\ng_ok.nii,0\n", "g_ok.nii: resampling its 4x4x4 voxels (D,H,W) of 1x1x1 mm to spacing 0.0009 mm gives "
                      "4444x4444x4444: more than 4096 voxels along an axis", &sp);
    sp.prep.spacing = 0.001;   // 4000^3 > 2^31 values
    expect_pack_error("path,label\ng_ok.nii,0\n", "4000x4000x4000: more than 2^31 values", &sp);
    sp.prep.spacing = 100;     // 4 mm across: 0.04 voxels
    expect_pack_error("path,label\ng_ok.nii,0\n", "0.04x0.04x0.04: less than one voxel along an axis", &sp);
    sp.prep.spacing = 1;       // 4e30 voxels: once lround's overflow into a 1x1x1 sample
    expect_pack_error("path,label\ng_huge.nii,0\n", "g_huge.nii: resampling its 4x4x4 voxels (D,H,W) of 1e+30x1e+30x1e+30 mm", &sp);
}

// A manifest's mask is on its image's grid: the same dims and the same affine, up to 1/100 of
// a voxel (rounding); one shifted by 40 mm, or a millimetre, is refused naming both files.
static void test_pack_mask_grid(void) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    const double img[12] = { 2, 0, 0, -8, 0, 2, 0, -9, 0, 0, 2, -10 };
    double m[12];
    write_affine("mg_img.nii", img, x);
    memcpy(m, img, sizeof m);
    write_affine("mg_same.nii", m, NULL);
    m[3] += 0.005;  // 1/400 of a 2 mm voxel: the same grid
    write_affine("mg_close.nii", m, NULL);
    m[3] = img[3] + 40;
    write_affine("mg_shift40.nii", m, NULL);
    memcpy(m, img, sizeof m);
    m[10] = 2.02;  // 1% larger along k: the far corner 3 x 0.02 = 0.06 mm off
    write_affine("mg_scaled.nii", m, NULL);
    m[10] = NAN;
    write_affine("mg_nan.nii", m, NULL);
    write_text(tu_path("mg.csv"), "path,label,mask\nmg_img.nii,0,mg_same.nii\nmg_img.nii,1,mg_close.nii\n");
    PackConfig cfg = plain_cfg(tu_path("mg.csv"), tu_path("mg_out"));
    DfError err = { "" };
    int rc = pack_run(&cfg, &err);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CU_ASSERT_EQUAL(rc, 0);
    expect_pack_error("path,label,mask\nmg_img.nii,0,mg_same.nii\nmg_img.nii,1,mg_shift40.nii\n",
                      "mg_shift40.nii: mask is not on the grid of ", NULL);
    expect_pack_error("path,label,mask\nmg_img.nii,0,mg_same.nii\nmg_img.nii,1,mg_shift40.nii\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label,mask\nmg_img.nii,0,mg_shift40.nii\n", "mg_img.nii: their affines place a voxel 40 mm apart", NULL);
    expect_pack_error("path,label,mask\nmg_img.nii,0,mg_scaled.nii\n", "voxel 0.06 mm apart (more than 1/100 of its 2 mm voxel)", NULL);
    expect_pack_error("path,label,mask\nmg_img.nii,0,mg_nan.nii\n", "mg_nan.nii: its voxel-to-world affine (sform, else qform) is not finite", NULL);
    // training straight from the manifest reads the masks with prep_load: the same check
    float *xo;
    uint8_t *mo;
    Shape sh;
    PrepConfig pc = { .reorient = 1 };
    CU_ASSERT_EQUAL(prep_load(&pc, tu_path("mg_img.nii"), tu_path("mg_shift40.nii"), &xo, &mo, &sh, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "mg_shift40.nii: mask is not on the grid of"));
    CU_ASSERT(xo == NULL && mo == NULL);
}

static void test_pack_errors(void) {
    DfError err;
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    NiiWriteSpec sp = { .version = 1, .datatype = DT_FLOAT32 };
    int64_t d4[8] = { 3, 4, 4, 4, 1, 1, 1, 1 }, d3[8] = { 3, 4, 4, 3, 1, 1, 1, 1 };
    memcpy(sp.dims, d4, sizeof d4);
    CU_ASSERT_EQUAL(nii_write(tu_path("ok.nii"), &sp, x, &err), 0);
    memcpy(sp.dims, d3, sizeof d3);
    CU_ASSERT_EQUAL(nii_write(tu_path("other.nii"), &sp, x, &err), 0);
    memcpy(sp.dims, d4, sizeof d4);
    sp.datatype = DT_INT16;
    CU_ASSERT_EQUAL(nii_write(tu_path("trunc.nii"), &sp, x, &err), 0);
    CU_ASSERT_EQUAL(truncate(tu_path("trunc.nii"), 360), 0);
    write_text(tu_path("text.nii"), "not a nifti file at all, just text ..........................................................................................................................................................................................................................................................................................................................................................");

    expect_pack_error("path,label\nok.nii,0\nmissing.nii,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nok.nii,0\nmissing.nii,1\n", "missing.nii: cannot open", NULL);
    expect_pack_error("path,label\nok.nii,0\ntrunc.nii,1\n", "truncated", NULL);
    expect_pack_error("path,label\nok.nii,0\ntext.nii,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nok.nii,0\nother.nii,1\n", "give --shape", NULL);
    expect_pack_error("path,label,age\nok.nii,0,30\nok.nii,1,x\n", "bad.csv:3: age: 'x' is not a number", NULL);
    expect_pack_error("path,label,mask\nok.nii,0,other.nii\n", "mask", NULL);
    // An existing output directory.
    mkdir(tu_path("bad_out"), 0755);
    write_text(tu_path("bad.csv"), "path,label\nok.nii,0\n");
    PackConfig cfg = plain_cfg(tu_path("bad.csv"), tu_path("bad_out"));
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "already exists"));
    rmdir(tu_path("bad_out"));
    // An output directory that cannot be made: the message names it, not pack's temporary.
    cfg = plain_cfg(tu_path("bad.csv"), tu_path("no_such_dir/out"));
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "no_such_dir/out: cannot create: No such file or directory"));
    CU_ASSERT(strstr(err.msg, ".tmp.") == NULL);
    // Mixed shapes are fine with --shape.
    write_text(tu_path("mix.csv"), "path,label\nok.nii,0\nother.nii,1\n");
    cfg = plain_cfg(tu_path("mix.csv"), tu_path("mix_out"));
    cfg.prep.shape[0] = 4; cfg.prep.shape[1] = 4; cfg.prep.shape[2] = 4;
    CU_ASSERT_EQUAL(pack_run(&cfg, &err), 0);
}

// ---- HDF5 clips ------------------------------------------------------------------------------

// Writes one dataset `name` (groups created) of `rank` dims and HDF5 file type `type` into
// `path` (created, or opened for appending when append); data are native values of `type`
// (a big-endian float file type takes native floats).
static void write_h5(const char *path, int append, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t mem = H5Tget_class(type) == H5T_FLOAT ? H5T_NATIVE_FLOAT : type;
    hid_t f = append ? H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT) : H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    CU_ASSERT(H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d); H5Sclose(sp); H5Pclose(lcpl);
    CU_ASSERT(H5Fclose(f) >= 0);
}

// Clips of T=3 frames of H=4 x W=5 pixels, C=3: (T,H,W,C) uint8 and (C,T,H,W) float32, as
// FILE.h5:DATASET and as a bare FILE.h5, packed: the shard holds (C, D = T, H, W) with
// uint8 / 255; with --shape the frames are cropped/padded; --clip-uint8 raw keeps 0..255.
static void test_h5clip(void) {
    enum { T = 3, H = 4, W = 5, C = 3, N = T * H * W * C };
    uint8_t u8[N];   // (T, H, W, C)
    float f32[N];    // (C, T, H, W)
    float want_u8[N], want_f[N];  // both in (C, T, H, W)
    for (int t = 0; t < T; t++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    int thwc = ((t * H + y) * W + x) * C + c, cthw = ((c * T + t) * H + y) * W + x;
                    u8[thwc] = (uint8_t)((thwc * 37 + 11) % 256);
                    want_u8[cthw] = (float)u8[thwc] / 255.0f;
                    f32[cthw] = want_f[cthw] = (float)(cthw % 17) - 3.25f;
                }
    hsize_t thwc[4] = { T, H, W, C }, cthw[4] = { C, T, H, W };
    write_h5(tu_path("u8.h5"), 0, "video", H5T_NATIVE_UINT8, 4, thwc, u8);
    write_h5(tu_path("u8.h5"), 1, "audio/other", H5T_NATIVE_FLOAT, 4, cthw, f32);  // a second dataset
    write_h5(tu_path("one.h5"), 0, "clips/rgb", H5T_NATIVE_UINT8, 4, thwc, u8);    // the only dataset
    write_h5(tu_path("f.hdf5"), 0, "x", H5T_IEEE_F32BE, 4, cthw, f32);             // big-endian floats

    DfError err = { "" };
    H5Clip clip;
    CU_ASSERT(h5clip_is_ref("a/b.h5") && h5clip_is_ref("b.h5:video") && h5clip_is_ref("b.hdf5:/g/x.h5"));
    CU_ASSERT(!h5clip_is_ref("b.nii.gz") && !h5clip_is_ref("b.h5x") && !h5clip_is_ref(".h5"));
    char ref[600];
    snprintf(ref, sizeof ref, "%s:video", tu_path("u8.h5"));
    CU_ASSERT_EQUAL_FATAL(h5clip_read(ref, CLIP_THWC, 0, 1, &clip, &err), 0);
    CU_ASSERT(clip.C == C && clip.T == T && clip.H == H && clip.W == W && clip.is_uint8);
    CU_ASSERT_EQUAL(memcmp(clip.data, want_u8, sizeof want_u8), 0);
    h5clip_free(&clip);

    // Through pack: uint8 THWC (named dataset), the bare file with one nested dataset,
    // CTHW float32 (big-endian) under --clip-layout CTHW in a second manifest.
    write_text(tu_path("clips.csv"), "path,label,subject\nu8.h5:video,0,\none.h5,1,\nu8.h5:/video,1,s3\n");
    PackConfig cfg = plain_cfg(tu_path("clips.csv"), tu_path("clips_out"));
    int rc = pack_run(&cfg, &err);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    Cohort c;
    CU_ASSERT_EQUAL_FATAL(shard_read(tu_path("clips_out/shard-00000.h5"), &c, &err), 0);
    CU_ASSERT(c.n == 3 && c.shape.c == C && c.shape.d == T && c.shape.h == H && c.shape.w == W);
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(memcmp(c.images + (size_t)i * N, want_u8, sizeof want_u8), 0);
    CU_ASSERT_STRING_EQUAL(c.subjects[0], "u8");  // default subject: the file's name, dataset dropped
    CU_ASSERT_STRING_EQUAL(c.subjects[1], "one");
    cohort_free(&c);

    write_text(tu_path("clipsf.csv"), "path,label\nf.hdf5,0\nf.hdf5:x,1\n");
    cfg = plain_cfg(tu_path("clipsf.csv"), tu_path("clipsf_out"));
    cfg.prep.clip_layout = CLIP_CTHW;
    cfg.prep.shape[0] = 5; cfg.prep.shape[1] = 2; cfg.prep.shape[2] = 5;  // pad frames 3 -> 5, crop rows 4 -> 2
    CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(shard_read(tu_path("clipsf_out/shard-00000.h5"), &c, &err), 0);
    CU_ASSERT(c.shape.c == C && c.shape.d == 5 && c.shape.h == 2 && c.shape.w == W);
    for (int ch = 0; ch < C; ch++)
        for (int t = 0; t < 5; t++)
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < W; x++) {
                    float got = c.images[(((size_t)ch * 5 + t) * 2 + y) * W + x];
                    int st = t - 1, sy = y + 1;  // centred: one padded frame before, one row cropped above
                    float want = st >= 0 && st < T ? want_f[((ch * T + st) * H + sy) * W + x] : 0.0f;
                    CU_ASSERT_EQUAL(got, want);
                }
    cohort_free(&c);

    // Raw uint8 values, and resize (trilinear in time and space) with minmax normalisation.
    cfg = plain_cfg(tu_path("clips.csv"), tu_path("clips_raw"));
    cfg.prep.clip_raw = 1;
    CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(shard_read(tu_path("clips_raw/shard-00000.h5"), &c, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(c.images[0], want_u8[0] * 255.0, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(c.images[7], want_u8[7] * 255.0, 1e-4);
    cohort_free(&c);
    PrepConfig pc = { .fit = PACK_FIT_RESIZE, .norm = PACK_NORM_MINMAX, .shape = { 6, 8, 10 } };
    float *x = NULL;
    uint8_t *mk = NULL;
    Shape sh;
    CU_ASSERT_EQUAL_FATAL(prep_load(&pc, ref, NULL, &x, &mk, &sh, &err), 0);
    CU_ASSERT(sh.c == C && sh.d == 6 && sh.h == 8 && sh.w == 10 && mk == NULL);
    float lo = 1e9f, hi = -1e9f;
    for (size_t i = 0; i < shape_numel(sh); i++) { lo = fminf(lo, x[i]); hi = fmaxf(hi, x[i]); }
    CU_ASSERT(lo == 0.0f && hi == 1.0f);
    free(x);

    // Bad clips: each names the manifest row and the file (and the dataset).
    hsize_t r3[3] = { T, H, W }, c7[4] = { T, H, W, 7 };
    write_h5(tu_path("rank3.h5"), 0, "video", H5T_NATIVE_UINT8, 3, r3, u8);
    uint8_t u8c7[T * H * W * 7] = { 0 };  // the reader looks at the header only, but H5Dwrite reads all 420
    write_h5(tu_path("c7.h5"), 0, "video", H5T_NATIVE_UINT8, 4, c7, u8c7);
    int16_t i16[N] = { 0 };
    write_h5(tu_path("i16.h5"), 0, "video", H5T_NATIVE_INT16, 4, thwc, i16);
    float nanclip[N];
    memcpy(nanclip, want_f, sizeof nanclip);
    nanclip[17] = NAN;
    write_h5(tu_path("nan.h5"), 0, "video", H5T_NATIVE_FLOAT, 4, thwc, nanclip);
    write_text(tu_path("noth5.h5"), "just text");
    expect_pack_error("path,label\nu8.h5:video,0\nrank3.h5:video,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nrank3.h5:video,1\n", "rank3.h5: video: a 3-D array (3x4x5); a clip must be 4-D (T,H,W,C)", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nu8.h5:vidoe,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nu8.h5:vidoe,1\n", "u8.h5: no dataset 'vidoe'", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nu8.h5:audio/nothing/x,1\n", "u8.h5: no dataset 'audio/nothing/x'", NULL);
    expect_pack_error("path,label\nu8.h5,0\n", "bad.csv:2: ", NULL);
    expect_pack_error("path,label\nu8.h5,0\n", "u8.h5: holds 2 datasets (audio/other, video): name the clip as", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nc7.h5:video,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nc7.h5:video,1\n", "gives 7 colour planes", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\ni16.h5:video,1\n", "i16.h5: video: element type (signed integer, 2 bytes) is not supported", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nnan.h5:video,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nnan.h5:video,1\n", "nan.h5: video: element 17 is NaN", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nnone.h5:video,1\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nnone.h5:video,1\n", "none.h5: cannot open", NULL);
    expect_pack_error("path,label\nu8.h5:video,0\nnoth5.h5:video,1\n", "noth5.h5: not an HDF5 file", NULL);
    expect_pack_error("path,label,mask\nu8.h5:video,0,ok.nii\n", "bad.csv:2: ", NULL);
    expect_pack_error("path,label,mask\nu8.h5:video,0,ok.nii\n", "ok.nii: an HDF5 clip's mask is an HDF5 array too", NULL);
    // A NIfTI volume and a clip of different shapes: the usual mixed-shape message.
    expect_pack_error("path,label\nu8.h5:video,0\nok.nii,1\n", "bad.csv:3: ", NULL);
    static uint8_t zeros[8 * H * W * C];
    hsize_t t8[4] = { 8, H, W, C };
    write_h5(tu_path("t8.h5"), 0, "video", H5T_NATIVE_UINT8, 4, t8, zeros);
    PackConfig lay = plain_cfg(NULL, NULL);
    lay.prep.clip_layout = CLIP_CTHW;  // 8 THWC frames read as CTHW: 8 colour planes
    expect_pack_error("path,label\nt8.h5:video,0\n", "t8.h5: video: 8x4x5x3 read as CTHW gives 8 colour planes (1 to 4 expected; is the layout THWC?)", &lay);
}

// Clips with masks as h5py writes them (tests/ref/clips, tests/gen_h5py_clips.py): a bool
// (T,H,W) mask beside a THWC uint8 clip, a uint8 (1,T,H,W) mask beside a CTHW float32 clip, a
// float64 (T,H,W,1) plane. The mask is read in the clip's layout and goes through the clip's
// geometry: every packed mask voxel is the mask at the clip voxel the image holds there.
enum { MC = 3, MT = 4, MH = 6, MW = 5 };
static int mask_at(int t, int y, int x) { return (t + 2 * y + 3 * x) % 4 == 0; }

static void copy_fixture(const char *name) {
    char src[1024];
    tu_ref_path(src, sizeof src, name);
    FILE *in = fopen(src, "rb"), *out = fopen(tu_path(strrchr(name, '/') + 1), "wb");
    CU_ASSERT_FATAL(in && out);
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, k, out);
    fclose(in);
    fclose(out);
}

// Each packed mask voxel against the mask at the (t, y, x) its image voxel came from: plane 0
// of the image holds t * 30 + y * 5 + x (divided by 255 for a uint8 clip), one code per voxel.
static int mask_mismatches(const Cohort *c, float scale) {
    size_t numel = shape_numel(c->shape), V = shape_spatial(c->shape);
    int bad = 0;
    for (int i = 0; i < c->n; i++)
        for (size_t v = 0; v < V; v++) {
            int code = (int)lrintf(c->images[(size_t)i * numel + v] * scale);
            bad += mask_at(code / 30, code % 30 / 5, code % 5) != c->masks[(size_t)i * V + v];
        }
    return bad;
}

static void test_clip_masks(void) {
    copy_fixture("clips/thwc.h5");
    copy_fixture("clips/cthw.h5");
    copy_fixture("clips/plane.h5");
    copy_fixture("clips/bad.h5");
    DfError err = { "" };
    H5Clip m;
    const char *thw_refs[2] = { "thwc.h5:mask", "plane.h5:mask" };
    for (int k = 0; k < 3; k++) {
        const char *ref = k < 2 ? tu_path(thw_refs[k]) : tu_path("cthw.h5:mask");
        CU_ASSERT_EQUAL_FATAL(h5clip_read_mask(ref, k < 2 ? CLIP_THWC : CLIP_CTHW, 1, &m, &err), 0);
        CU_ASSERT(m.C == 1 && m.T == MT && m.H == MH && m.W == MW);
        int bad = 0;
        for (int t = 0; t < MT; t++)
            for (int y = 0; y < MH; y++)
                for (int x = 0; x < MW; x++) bad += m.data[(t * MH + y) * MW + x] != (float)mask_at(t, y, x);
        CU_ASSERT_EQUAL(bad, 0);
        h5clip_free(&m);
    }
    // packed as they are, and cropped to 4x4 pixels: the mask follows the image
    Cohort c;
    for (int crop = 0; crop < 2; crop++) {
        write_text(tu_path("mclips.csv"), "path,label,mask\nthwc.h5:video,0,thwc.h5:mask\nplane.h5:video,1,plane.h5:mask\n");
        PackConfig cfg = plain_cfg(tu_path("mclips.csv"), tu_path(crop ? "mclips_crop" : "mclips_out"));
        if (crop) { cfg.prep.shape[0] = MT; cfg.prep.shape[1] = 4; cfg.prep.shape[2] = 4; }
        CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
        CU_ASSERT_EQUAL_FATAL(shard_read(tu_path(crop ? "mclips_crop/shard-00000.h5" : "mclips_out/shard-00000.h5"), &c, &err), 0);
        CU_ASSERT(c.has_masks && c.shape.c == MC && c.shape.d == MT && c.shape.h == (crop ? 4 : MH) && c.shape.w == (crop ? 4 : MW));
        CU_ASSERT_EQUAL(mask_mismatches(&c, 255.0f), 0);
        cohort_free(&c);
    }
    write_text(tu_path("mclips2.csv"), "path,label,mask\ncthw.h5:video,0,cthw.h5:mask\n");
    PackConfig cfg = plain_cfg(tu_path("mclips2.csv"), tu_path("mclips2_out"));
    cfg.prep.clip_layout = CLIP_CTHW;
    CU_ASSERT_EQUAL_FATAL(pack_run(&cfg, &err), 0);
    CU_ASSERT_EQUAL_FATAL(shard_read(tu_path("mclips2_out/shard-00000.h5"), &c, &err), 0);
    CU_ASSERT_EQUAL(mask_mismatches(&c, 1.0f), 0);
    cohort_free(&c);
    // a mask of other size, of two planes, read in the wrong layout, a NIfTI mask for a clip
    expect_pack_error("path,label,mask\nthwc.h5:video,0,thwc.h5:mask\nbad.h5:video,1,bad.h5:mask\n", "bad.csv:3: ", NULL);
    expect_pack_error("path,label,mask\nbad.h5:video,1,bad.h5:mask\n",
                      "bad.h5:mask: mask is 4 frames of 6x4 but the clip ", NULL);
    expect_pack_error("path,label,mask\nbad.h5:video,1,bad.h5:mask2\n", "bad.h5: mask2: a mask must be (T,H,W) or one plane (T,H,W,1)", NULL);
    PackConfig lay = plain_cfg(NULL, NULL);
    lay.prep.clip_layout = CLIP_CTHW;
    expect_pack_error("path,label,mask\ncthw.h5:video,0,plane.h5:mask\n", "plane.h5: mask: a mask must be (T,H,W) or one plane (1,T,H,W)", &lay);
    expect_pack_error("path,label,mask\nthwc.h5:video,0,thwc.nii\n", "thwc.nii: an HDF5 clip's mask is an HDF5 array too", NULL);
}

// ---- subject lists and split files ------------------------------------------------------------

static void test_subject_list(void) {
    DfError err = { "" };
    Manifest m;
    write_text(tu_path("sl.csv"), "path,label,subject,age\na.nii,0,s1,30\nb.nii,1,s2,31\nc.nii,0,s1,32\nd.nii,1,s3,33\n");
    write_text(tu_path("keep.txt"), "# subjects to pack\ns3\n\n  s1  \r\n");
    CU_ASSERT_EQUAL_FATAL(manifest_read(&m, tu_path("sl.csv"), NULL, NULL, &err), 0);
    CU_ASSERT_EQUAL_FATAL(manifest_select_subjects(&m, tu_path("keep.txt"), &err), 0);
    CU_ASSERT_EQUAL(m.n, 3);  // s1 twice and s3, in manifest order
    CU_ASSERT(!strcmp(m.subjects[0], "s1") && !strcmp(m.subjects[1], "s1") && !strcmp(m.subjects[2], "s3"));
    CU_ASSERT(m.line[1] == 4 && m.labels[2] == 1);
    CU_ASSERT_DOUBLE_EQUAL(m.meta[1], 32, 0);
    CU_ASSERT_DOUBLE_EQUAL(m.meta[2], 33, 0);
    manifest_free(&m);
    write_text(tu_path("keep.txt"), "s1\n# s2\ns9\n");
    CU_ASSERT_EQUAL_FATAL(manifest_read(&m, tu_path("sl.csv"), NULL, NULL, &err), 0);
    CU_ASSERT_EQUAL(manifest_select_subjects(&m, tu_path("keep.txt"), &err), -1);
    CU_ASSERT(tu_contains(err.msg, "keep.txt:3: subject 's9' is not in ") && tu_contains(err.msg, "sl.csv"));
    manifest_free(&m);
    // Through pack: the unknown subject stops pack with nothing written.
    PackConfig base = plain_cfg(NULL, NULL);
    base.subjects = tu_path("keep.txt");
    expect_pack_error("path,label,subject\nok.nii,0,s1\nok.nii,1,s2\n", "keep.txt:3: subject 's9' is not in", &base);
}

// A data set of n samples with the given subject ids, labels i % 2.
static void fake_dataset(Dataset *ds, int n, const char *const *subjects) {
    memset(ds, 0, sizeof *ds);
    cohort_alloc(&ds->cohort, n, (Shape){ 1, 1, 1, 2 }, 0);
    snprintf(ds->source, sizeof ds->source, "cohort.h5");
    if (subjects) {
        ds->cohort.subjects = xcalloc((size_t)n, sizeof(char *));
        for (int i = 0; i < n; i++) ds->cohort.subjects[i] = xstrdup(subjects[i]);
    }
    for (int i = 0; i < n; i++) ds->cohort.labels[i] = i % 2;
}

static void test_split_file(void) {
    const char *subj[] = { "a", "b", "a", "c", "d", "e" };
    Dataset ds;
    DfError err = { "" };
    fake_dataset(&ds, 6, subj);
    write_text(tu_path("split.csv"), "# a published split\nsubject,site,split\nc,1,val\na,2,train\nd,1,test\ne,3,train\nb,2,validation\n");
    CU_ASSERT_EQUAL_FATAL(dataset_split_file(&ds, tu_path("split.csv"), &err), 0);
    CU_ASSERT(ds.n_train == 3 && ds.train_idx[0] == 0 && ds.train_idx[1] == 2 && ds.train_idx[2] == 5);
    CU_ASSERT(ds.n_val == 2 && ds.val_idx[0] == 1 && ds.val_idx[1] == 3);
    CU_ASSERT(ds.n_test == 1 && ds.test_idx[0] == 4);
    struct { const char *text, *needle; } bad[] = {
        { "subject,split\na,train\nb,val\nc,val\nd,test\ne,train\nzz,train\n", "split.csv:7: subject 'zz' is not in the data (cohort.h5)" },
        { "subject,split\na,train\nb,val\nc,val\ne,train\n", "split.csv: subject 'd' of the data (sample 4 of cohort.h5) is not in the split file" },
        { "subject,split\na,train\nb,val\nc,val\nd,test\ne,train\nb,train\n", "split.csv:7: subject 'b' is listed again (first on line 3)" },
        { "subject,split\na,train\nb,valid\nc,val\nd,test\ne,train\n", "split.csv:3: split 'valid' for subject 'b': expected train, val or test" },
        { "subject,set\na,train\n", "split.csv: the header needs columns subject and split" },
        { "subject,split\na,train\n,val\n", "split.csv:3: subject is empty" },
        { "subject,split\na,val\nb,val\nc,val\nd,test\ne,test\n", "split.csv: assigns no subject of the data to train" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(tu_path("split.csv"), bad[i].text);
        CU_ASSERT_EQUAL(dataset_split_file(&ds, tu_path("split.csv"), &err), -1);
        CU_ASSERT(tu_contains(err.msg, bad[i].needle));
    }
    CU_ASSERT_EQUAL(dataset_split_file(&ds, tu_path("nosplit.csv"), &err), -1);
    CU_ASSERT(tu_contains(err.msg, "nosplit.csv: cannot open"));
    dataset_free(&ds);
    fake_dataset(&ds, 4, NULL);
    write_text(tu_path("split.csv"), "subject,split\na,train\n");
    CU_ASSERT_EQUAL(dataset_split_file(&ds, tu_path("split.csv"), &err), -1);
    CU_ASSERT(tu_contains(err.msg, "has no subject ids"));
    dataset_free(&ds);
}

int main(void) {
    h5_quiet();
    if (tu_tmpdir_create("df-pack")) return 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("csv", NULL, NULL);
    CU_add_test(s, "the packed grid's affine (reorient, resample, crop, resize)", test_geometry);
    CU_add_test(s, "dialect and errors", test_csv_dialect);
    CU_add_test(s, "numeric columns: NaN for empty, errors name file:line and column", test_csv_numbers);
    CU_add_test(s, "manifest kinds, labels, paths, row errors", test_manifest);
    s = CU_add_suite("pack", NULL, NULL);
    CU_add_test(s, "NIfTI -> shard -> values: datatypes, byte orders, gz, NIfTI-2, masks", test_pack_roundtrip);
    CU_add_test(s, "4D as channels and as clips", test_pack_4d);
    CU_add_test(s, "resampling, reorientation, crop/pad, zscore", test_preprocessing);
    CU_add_test(s, "bad inputs: message, nothing left behind", test_pack_errors);
    CU_add_test(s, "bad geometry: singular or NaN affines, no orientation, absurd spacing", test_pack_bad_geometry);
    CU_add_test(s, "a mask on its image's grid: dims and affine", test_pack_mask_grid);
    CU_add_test(s, "HDF5 clips: layouts, dtypes, bare files, bad clips", test_h5clip);
    CU_add_test(s, "HDF5 clips with masks written by h5py: both layouts, geometry, errors", test_clip_masks);
    s = CU_add_suite("subjects", NULL, NULL);
    CU_add_test(s, "subject lists (pack --subjects)", test_subject_list);
    CU_add_test(s, "split files ([data] split_file)", test_split_file);
    int rc = tu_run_all();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tu_tmpdir());
    return rc;
}
