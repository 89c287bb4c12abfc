// test_residualize.c: `deconfound residualize` (prep/residualize.c, ScaLAPACK) against
// LAPACK's serial least squares (dgels, from OpenBLAS) on shards written here.
//
// The reference is built independently of prep/design.c: its design columns are found by
// level NAME in each shard (so the two training shards, which number their sites
// differently, and a held-out shard with a subset of the sites are coded alike), and the
// fit is one dgels over the training subjects in double.
//
// usage: test_residualize                     in-process at 1 rank: every check below
//        test_residualize write DIR           the inputs (tests/residualize.sh, then mpirun)
//        test_residualize check DIR OUT KEEP MASK   compare OUT's shards with the reference
//                                             (KEEP: label or none; MASK: 0 or 1)
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "testutil.h"
#include "data/h5util.h"
#include "data/nifti.h"
#include "data/shard.h"
#include "mpi/comm.h"
#include "prep/residualize.h"

void dgels_(const char *trans, const int *m, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, double *work, const int *lwork, int *info, size_t trans_len);

#define SIDE 12
static const Shape shape = { 1, SIDE, SIDE, SIDE };

// ---- inputs ---------------------------------------------------------------------------------

// n subjects whose sites are the listed level names (the shard's own numbering: index into
// `levels`); y = voxel mean + label, age, sex and site effects + noise.
static int write_shard(const char *path, int n, uint64_t seed, const char **levels, int n_levels, DfError *err) {
    Cohort c;
    cohort_alloc(&c, n, shape, 4);
    const char *cols[4] = { "age", "sex", "site", "dose" };  // dose = 2 age + 1: collinear with age
    for (int j = 0; j < 4; j++) c.columns[j] = xstrdup(cols[j]);
    c.kinds[0] = c.kinds[3] = META_CONTINUOUS;
    c.kinds[1] = c.kinds[2] = META_CATEGORICAL;
    c.n_levels[2] = n_levels;
    c.levels[2] = xcalloc((size_t)n_levels, sizeof(char *));
    for (int l = 0; l < n_levels; l++) c.levels[2][l] = xstrdup(levels[l]);
    Rng r;
    rng_seed(&r, seed);
    size_t V = shape_numel(shape);
    for (int i = 0; i < n; i++) {
        int lv = (int)(rng_uniform(&r) * n_levels) % n_levels, site = (int)(strchr("ABCD", levels[lv][0]) - "ABCD");
        c.labels[i] = rng_uniform(&r) < 0.5;
        c.meta[i * 4 + 0] = 20 + 60 * rng_uniform(&r);
        c.meta[i * 4 + 1] = rng_uniform(&r) < 0.5;
        c.meta[i * 4 + 2] = lv;
        c.meta[i * 4 + 3] = 2 * c.meta[i * 4] + 1;
        for (size_t v = 0; v < V; v++) {
            double y = 5.0 + sin(0.1 * (double)v) + 0.8 * c.labels[i] * cos(0.05 * (double)v) +
                       0.02 * c.meta[i * 4] * (1 + (double)(v % 7) / 7) + 0.3 * c.meta[i * 4 + 1] +
                       0.7 * site * sin(0.02 * (double)v + site) + 0.5 * rng_normal(&r);
            c.images[(size_t)i * V + v] = (float)y;
        }
    }
    int rc = shard_write(path, &c, err);
    cohort_free(&c);
    return rc;
}

// A ball in the middle of the volume (about half the voxels).
static int write_mask(const char *path, DfError *err) {
    size_t V = shape_spatial(shape);
    float *m = xcalloc(V, sizeof(float));
    for (int z = 0; z < SIDE; z++)
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++) {
                double d2 = (x - 5.5) * (x - 5.5) + (y - 5.5) * (y - 5.5) + (z - 5.5) * (z - 5.5);
                m[((size_t)z * SIDE + y) * SIDE + x] = d2 < 25.0f;
            }
    NiiWriteSpec s = { .version = 1, .datatype = 2, .dims = { 3, SIDE, SIDE, SIDE, 1, 1, 1, 1 } };
    int rc = nii_write(path, &s, m, err);
    free(m);
    return rc;
}

// train1 (sites A, B, C), train2 (C, A, B numbered differently), apply (B, C), a shard with
// a site training never saw (D), one with a single site (a constant site column).
static int write_inputs(const char *dir, DfError *err) {
    char p[600];
    const char *abc[3] = { "A", "B", "C" }, *cab[3] = { "C", "A", "B" }, *bc[2] = { "B", "C" }, *bd[2] = { "B", "D" },
               *a[1] = { "A" };
    int rc = 0;
    snprintf(p, sizeof p, "%s/train1.h5", dir), rc |= write_shard(p, 37, 11, abc, 3, err);
    snprintf(p, sizeof p, "%s/train2.h5", dir), rc |= write_shard(p, 26, 12, cab, 3, err);
    snprintf(p, sizeof p, "%s/apply.h5", dir), rc |= write_shard(p, 21, 13, bc, 2, err);
    snprintf(p, sizeof p, "%s/unseen.h5", dir), rc |= write_shard(p, 9, 14, bd, 2, err);
    snprintf(p, sizeof p, "%s/onesite.h5", dir), rc |= write_shard(p, 30, 15, a, 1, err);
    snprintf(p, sizeof p, "%s/mask.nii", dir), rc |= write_mask(p, err);
    return rc;
}

// ---- the reference ------------------------------------------------------------------------

#define K 6  // label, age, sex=1, site=B, site=C, intercept
static const int removed[K] = { 0, 1, 1, 1, 1, 0 };

static void design_row(double *x, const Cohort *c, int i) {
    const double *m = c->meta + (size_t)i * c->k;
    const char *site = c->levels[2][(int)m[2]];
    x[0] = c->labels[i];
    x[1] = m[0];
    x[2] = m[1];
    x[3] = !strcmp(site, "B");
    x[4] = !strcmp(site, "C");
    x[5] = 1;
}

typedef struct {
    int n;
    double *x;      // [n, K]
    float *y;       // [n, V]
    float *out;     // [n, V] what residualize wrote
} Part;

static int load_part(Part *p, const char *in, const char *out, DfError *err) {
    Cohort c, o;
    if (shard_read(in, &c, err)) return -1;
    if (shard_read(out, &o, err)) { cohort_free(&c); return -1; }
    int same = o.n == c.n && !memcmp(o.labels, c.labels, sizeof(int32_t) * (size_t)c.n) &&
               o.k == c.k && !memcmp(o.meta, c.meta, sizeof(double) * (size_t)c.n * (size_t)c.k);
    p->n = c.n;
    p->x = xmalloc(sizeof(double) * (size_t)c.n * K);
    for (int i = 0; i < c.n; i++) design_row(p->x + (size_t)i * K, &c, i);
    p->y = c.images, c.images = NULL;
    p->out = o.images, o.images = NULL;
    cohort_free(&c);
    cohort_free(&o);
    return same ? 0 : df_err(err, "%s: labels or metadata differ from %s", out, in);
}

// b [K, V] by dgels over the training rows (column-major for LAPACK), with the kept columns.
static double *reference_fit(const Part *tr, int ntr, int keep_label) {
    int n = 0, V = (int)shape_numel(shape), k = K, info = 0, lwork = -1;
    for (int t = 0; t < ntr; t++) n += tr[t].n;
    double *a = xmalloc(sizeof(double) * (size_t)n * K), *b = xmalloc(sizeof(double) * (size_t)n * V), q;
    int row = 0;
    for (int t = 0; t < ntr; t++)
        for (int i = 0; i < tr[t].n; i++, row++) {
            for (int c = 0; c < K; c++) a[row + (size_t)c * n] = (c == 0 && !keep_label) ? 0 : tr[t].x[(size_t)i * K + c];
            for (int v = 0; v < V; v++) b[row + (size_t)v * n] = tr[t].y[(size_t)i * V + v];
        }
    if (!keep_label) { k = K - 1; memmove(a, a + n, sizeof(double) * (size_t)n * (K - 1)); }  // drop the label column
    dgels_("N", &n, &k, &V, a, &n, b, &n, &q, &lwork, &info, 1);
    lwork = (int)q;
    double *work = xmalloc(sizeof(double) * (size_t)lwork);
    dgels_("N", &n, &k, &V, a, &n, b, &n, work, &lwork, &info, 1);
    double *coef = xcalloc((size_t)K * V, sizeof(double));
    for (int c = 0; c < k; c++)
        for (int v = 0; v < V; v++) coef[(size_t)(keep_label ? c : c + 1) * V + v] = b[c + (size_t)v * n];
    free(a), free(b), free(work);
    return info == 0 ? coef : (free(coef), NULL);
}

// The largest |out - reference| in units of the float rounding of the output (<= 1 passes):
// out = y - (x_r - mean_r) b_r is computed in double and stored as float32, so it can differ
// from the double reference by half a float ulp plus the (far smaller) difference of two
// double least-squares solves; 2 ulps of the value leave room for that and nothing else.
static double compare(const Part *p, const double *b, const double *mean, const float *mask) {
    int V = (int)shape_numel(shape);
    double worst = 0;
    for (int i = 0; i < p->n; i++)
        for (int v = 0; v < V; v++) {
            double want = p->y[(size_t)i * V + v];
            for (int c = 0; c < K; c++)
                if (removed[c]) want -= (p->x[(size_t)i * K + c] - mean[c]) * b[(size_t)c * V + v];
            if (mask && mask[v] == 0) want = 0;
            double got = p->out[(size_t)i * V + v], tol = 2 * ldexp(fabs(want), -23) + 1e-30;
            if (fabs(got - want) / tol > worst) worst = fabs(got - want) / tol;
        }
    return worst;
}

// Without kept columns the training output minus its voxel means is the least-squares
// residual, orthogonal to every design column: |x_c^T r| is bounded by the float rounding of
// the stored values (each within 2^-24 of the largest |out|): |x_c| sqrt(n) 2^-24 max|out|.
// Returns the worst ratio to that bound (<= 2 passes).
static double orthogonality(const Part *tr, int ntr) {
    int V = (int)shape_numel(shape), n = 0;
    for (int t = 0; t < ntr; t++) n += tr[t].n;
    double worst = 0;
    for (int v = 0; v < V; v++) {
        double mean = 0, big = 0;
        for (int t = 0; t < ntr; t++)
            for (int i = 0; i < tr[t].n; i++) mean += tr[t].out[(size_t)i * V + v] / n, big = fmax(big, fabs(tr[t].out[(size_t)i * V + v]));
        for (int c = 1; c < K - 1; c++) {  // the confounders (the label is not in this design)
            double dot = 0, xx = 0;
            for (int t = 0; t < ntr; t++)
                for (int i = 0; i < tr[t].n; i++) {
                    double x = tr[t].x[(size_t)i * K + c];
                    dot += x * (tr[t].out[(size_t)i * V + v] - mean);
                    xx += x * x;
                }
            double bound = sqrt(xx) * sqrt((double)n) * ldexp(big, -24);
            worst = fmax(worst, fabs(dot) / bound);
        }
    }
    return worst;
}

// 0 when OUT's shards match the reference (messages on stdout), 1 otherwise.
static int check_outputs(const char *dir, const char *out, int keep_label, int masked) {
    DfError err = { "" };
    const char *names[3] = { "train1.h5", "train2.h5", "apply.h5" };
    Part p[3];
    memset(p, 0, sizeof p);
    char in_path[600], out_path[1200];
    for (int t = 0; t < 3; t++) {
        snprintf(in_path, sizeof in_path, "%s/%s", dir, names[t]);
        snprintf(out_path, sizeof out_path, "%s/%s", out, names[t]);
        if (load_part(&p[t], in_path, out_path, &err)) { printf("FAIL: %s\n", err.msg); return 1; }
    }
    float *mask = NULL;
    if (masked) {
        NiiVolume mv;
        snprintf(in_path, sizeof in_path, "%s/mask.nii", dir);
        if (nii_read(in_path, &mv, 1, &err)) { printf("FAIL: %s\n", err.msg); return 1; }
        mask = mv.data, mv.data = NULL;
        nii_free(&mv);
    }
    double *b = reference_fit(p, 2, keep_label), mean[K] = { 0 };
    int n = p[0].n + p[1].n, bad = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < p[t].n; i++)
            for (int c = 0; c < K; c++) mean[c] += p[t].x[(size_t)i * K + c] / n;
    for (int t = 0; t < 3; t++) {
        double w = b ? compare(&p[t], b, mean, mask) : 1e30;
        printf("%s: %s: worst difference from LAPACK dgels %.3g float ulps (pass <= 2)\n", w <= 1 ? "PASS" : "FAIL", names[t], 2 * w);
        bad |= !(w <= 1);
    }
    if (!keep_label && !masked) {
        double o = orthogonality(p, 2);
        printf("%s: training residuals orthogonal to the design: worst |x^T r| %.3g of the rounding bound (pass <= 2)\n",
               o <= 2 ? "PASS" : "FAIL", o);
        bad |= !(o <= 2);
    }
    for (int t = 0; t < 3; t++) free(p[t].x), free(p[t].y), free(p[t].out);
    free(b);
    free(mask);
    return bad;
}

// ---- in-process (1 rank) ------------------------------------------------------------------

static char dir[512];

static int run(const char *out, const char *keep, const char *mask, const char *train, const char *apply, double mb,
               DfError *err) {
    char o_dir[600], tr[1300], ap[600], mk[1100];
    snprintf(o_dir, sizeof o_dir, "%s/%s", dir, out);
    mkdir(o_dir, 0755);
    snprintf(tr, sizeof tr, "%s/%s", dir, train);
    if (strchr(train, ',')) snprintf(tr, sizeof tr, "%s/train1.h5,%s/train2.h5", dir, dir);
    snprintf(ap, sizeof ap, "%s/%s", dir, apply);
    snprintf(mk, sizeof mk, "%s/%s", dir, mask ? mask : "");
    const char *aps[1] = { ap };
    ResidualizeOptions o = { .train = tr, .apply = aps, .n_apply = 1, .remove = "age,sex,site", .keep = keep,
                             .mask = mask ? mk : NULL, .out_dir = o_dir, .memory_mb = mb };
    ResidualizeReport r;
    return residualize_run(&o, &r, err);
}

static void t_matches_lapack(void) {
    DfError err = { "" };
    char out[600];
    const char *keeps[2] = { "label", NULL };
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL_FATAL(run(k ? "nokeep" : "keep", keeps[k], NULL, "train1.h5,train2.h5", "apply.h5", 2048, &err), 0);
        snprintf(out, sizeof out, "%s/%s", dir, k ? "nokeep" : "keep");
        CU_ASSERT_EQUAL(check_outputs(dir, out, !k, 0), 0);
    }
}

// A 1 MB budget splits the 1728 voxels into chunks; the mask leaves about half of them.
static void t_chunks_and_mask(void) {
    DfError err = { "" };
    char out[600];
    CU_ASSERT_EQUAL_FATAL(run("masked", "label", "mask.nii", "train1.h5,train2.h5", "apply.h5", 1, &err), 0);
    snprintf(out, sizeof out, "%s/masked", dir);
    CU_ASSERT_EQUAL(check_outputs(dir, out, 1, 1), 0);
}

static int dir_is_empty(const char *d) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", d);
    return system(cmd) == 0;
}

static void t_errors(void) {
    DfError err = { "" };
    char out[600];
    CU_ASSERT_EQUAL(run("e1", "label", NULL, "onesite.h5", "apply.h5", 2048, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "column 'site' has one level ('A')"));
    snprintf(out, sizeof out, "%s/e1", dir);
    CU_ASSERT(dir_is_empty(out));
    CU_ASSERT_EQUAL(run("e2", "label", NULL, "train1.h5,train2.h5", "unseen.h5", 2048, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "unseen.h5") && tu_contains(err.msg, "D"));
    snprintf(out, sizeof out, "%s/e2", dir);
    CU_ASSERT(dir_is_empty(out));
    CU_ASSERT_EQUAL(run("e3", "label", NULL, "train1.h5,train2.h5", "apply.h5", 2048, &err), 0);
    CU_ASSERT_EQUAL(run("e3", "label", NULL, "train1.h5,train2.h5", "train1.h5", 2048, &err), -1);  // two outputs, one name
    CU_ASSERT(tu_contains(err.msg, "both would be written"));
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    h5_quiet();
    if (argc == 3 && !strcmp(argv[1], "write")) {
        DfError err = { "" };
        int rc = write_inputs(argv[2], &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        dist_finalize();
        return rc ? 1 : 0;
    }
    if (argc == 6 && !strcmp(argv[1], "check")) {
        int rc = check_outputs(argv[2], argv[3], !strcmp(argv[4], "label"), atoi(argv[5]));
        dist_finalize();
        return rc;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [write DIR | check DIR OUT label|none 0|1]\n", argv[0]);
        return 2;
    }
    if (tu_tmpdir_create("df-resid") != 0) return 1;
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    DfError err = { "" };
    if (write_inputs(dir, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("residualize", NULL, NULL);
    CU_add_test(s, "equals LAPACK dgels, with and without a kept label", t_matches_lapack);
    CU_add_test(s, "chunks of voxels and a mask", t_chunks_and_mask);
    CU_add_test(s, "rank deficiency, an unseen site, colliding names: the file named, nothing written", t_errors);
    int rc = tu_run_all();
    dist_finalize();
    return rc;
}
