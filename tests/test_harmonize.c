// test_harmonize.c: `deconfound harmonize` (prep/harmonize.c) end to end, through shards:
// sva::ComBat's outputs (tests/ref/combat.txt, tests/gen_combat_ref.R) reproduced from shards
// whose sites are named and numbered differently in each file, in one chunk of voxels and in
// several; the saved model applied later gives the same bytes; the errors a user meets stop
// before anything is written.
//
// usage: test_harmonize                    in-process at 1 rank: every check below
//        test_harmonize write DIR          shards of sva's case 2 (tests/harmonize.sh)
//        test_harmonize check DIR OUT      OUT's shards against sva's output
//        test_harmonize same OUT1 OUT2     two runs' shards equal (to 2 float ulps)
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "testutil.h"
#include "data/h5util.h"
#include "data/shard.h"
#include "mpi/comm.h"
#include "prep/harmonize.h"

static const char *names[3] = { "train1.h5", "train2.h5", "apply.h5" };

// Shards of a reference case: subjects [0, cut) in train1.h5, [cut, n - n_apply) in
// train2.h5, the last n_apply in apply.h5 (OUT's three shards hold sva's output when all
// three were the training set). Site s is named "site<s>"; each file lists its
// level names in its own order (train2 reversed), so only names tie them together.
// Covariates: age (continuous) and sex (categorical 0/1), when the case has them.
static int write_case(const char *dir, RefFile *f, const char *c, int n_apply, DfError *err) {
    char key[64];
    snprintf(key, sizeof key, "%s.y", c);
    RefTensor *y = tu_ref_get(f, key);
    snprintf(key, sizeof key, "%s.site", c);
    RefTensor *site = tu_ref_get(f, key);
    snprintf(key, sizeof key, "%s.cov", c);
    RefTensor *cov = tu_ref_find(f, key);
    if (!y || !site) return df_err(err, "%s: missing in combat.txt", c);
    int n = y->dims[0], v = y->dims[1], S = 0, cut = (n - n_apply) / 2, ranges[4] = { 0, cut, n - n_apply, n };
    for (int i = 0; i < n; i++) S = fmax(S, site->v[i] + 1);
    Shape shape = { 1, 1, 1, v };
    for (int part = 0; part < 3; part++) {
        int n_p = ranges[part + 1] - ranges[part], k = cov ? 3 : 1;
        Cohort h;
        cohort_alloc(&h, n_p, shape, k);
        h.columns[0] = xstrdup("site");
        h.kinds[0] = META_CATEGORICAL;
        h.n_levels[0] = S;
        h.levels[0] = xcalloc((size_t)S, sizeof(char *));
        for (int l = 0; l < S; l++) {
            char nm[16];
            snprintf(nm, sizeof nm, "site%d", part == 1 ? S - 1 - l : l);
            h.levels[0][l] = xstrdup(nm);
        }
        if (cov) {
            h.columns[1] = xstrdup("age"), h.kinds[1] = META_CONTINUOUS;
            h.columns[2] = xstrdup("sex"), h.kinds[2] = META_CATEGORICAL;
        }
        for (int i = 0; i < n_p; i++) {
            int g = ranges[part] + i, s = (int)site->v[g];
            h.labels[i] = i % 2;
            h.meta[(size_t)i * k] = part == 1 ? S - 1 - s : s;
            if (cov) h.meta[(size_t)i * k + 1] = cov->v[(size_t)g * 2], h.meta[(size_t)i * k + 2] = cov->v[(size_t)g * 2 + 1];
            for (int j = 0; j < v; j++) h.images[(size_t)i * v + j] = (float)y->v[(size_t)g * v + j];
        }
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, names[part]);
        int rc = shard_write(p, &h, err);
        cohort_free(&h);
        if (rc) return -1;
    }
    return 0;
}

static float *read_images(const char *path, int *n, int *v, DfError *err) {
    Cohort c;
    if (shard_read(path, &c, err)) return NULL;
    float *im = c.images;
    *n = c.n, *v = (int)shape_numel(c.shape);
    c.images = NULL;
    cohort_free(&c);
    return im;
}

// The largest |out - sva| in float ulps of the value. The inputs are exact in float (the
// generator quantises them to 1/256); ComBat's own arithmetic agrees with sva to 1e-13
// (tests/test_combat), so what is left is the rounding of the output to float32: half an
// ulp, and 2 ulps leave room for nothing else.
static double ulps_from(const float *got, const double *want, size_t count) {
    double worst = 0;
    for (size_t i = 0; i < count; i++) worst = fmax(worst, fabs(got[i] - want[i]) / ldexp(fabs(want[i]) + 1e-300, -23));
    return worst;
}

static double check_case(const char *dir, const char *out, RefFile *f, const char *c) {
    char key[64], p[700];
    snprintf(key, sizeof key, "%s.out", c);
    RefTensor *want = tu_ref_get(f, key);
    double worst = 0;
    size_t at = 0;
    for (int part = 0; part < 3 && want; part++) {
        int n, v;
        DfError err;
        snprintf(p, sizeof p, "%s/%s", out, names[part]);
        float *im = read_images(p, &n, &v, &err);
        if (!im) { printf("%s\n", err.msg); return 1e30; }
        worst = fmax(worst, ulps_from(im, want->v + at, (size_t)n * v));
        at += (size_t)n * v;
        free(im);
    }
    (void)dir;
    return want ? worst : 1e30;
}

// Two output folders' shards: the largest difference in float ulps.
static double same(const char *a, const char *b) {
    double worst = 0;
    for (int part = 0; part < 3; part++) {
        char pa[700], pb[700];
        int na, va, nb, vb;
        DfError err;
        snprintf(pa, sizeof pa, "%s/%s", a, names[part]);
        snprintf(pb, sizeof pb, "%s/%s", b, names[part]);
        float *x = read_images(pa, &na, &va, &err), *y = x ? read_images(pb, &nb, &vb, &err) : NULL;
        if (!x || !y || na != nb || va != vb) { printf("%s\n", err.msg); free(x); free(y); return 1e30; }
        for (size_t i = 0; i < (size_t)na * va; i++) worst = fmax(worst, fabs(x[i] - y[i]) / ldexp(fabs(x[i]) + 1e-300, -23));
        free(x);
        free(y);
    }
    return worst;
}

// ---- in-process ---------------------------------------------------------------------------

static char dir[512];
static RefFile ref;

// A budget of a few kB per rank: chunks of 3 or 4 voxel columns for these cases (20 voxels of
// ~40 subjects), so the voxels go in several chunks.
#define TINY_MB 0.002
#define DEFAULT_MB 2048.0

static int run(const char *c, const char *out, CombatPrior prior, const char *keep, const char *model, int fit_too,
               double memory_mb, DfError *err) {
    char d[700], o_dir[800], tr[1500], ap[800];
    snprintf(d, sizeof d, "%s/%s", dir, c);
    snprintf(o_dir, sizeof o_dir, "%s/%s", d, out);
    mkdir(o_dir, 0755);
    snprintf(tr, sizeof tr, "%s/train1.h5,%s/train2.h5", d, d);
    snprintf(ap, sizeof ap, "%s/apply.h5", d);
    const char *aps[2] = { ap, tr };
    HarmonizeOptions o = { .train = fit_too ? tr : NULL, .apply = aps, .n_apply = fit_too ? 1 : 2, .site = "site",
                           .keep = keep, .out_dir = o_dir, .model = model, .prior = prior, .memory_mb = memory_mb };
    HarmonizeReport r;
    return harmonize_run(&o, &r, err);
}

static void prepare(const char *c, int n_apply) {
    char d[700];
    DfError err = { "" };
    snprintf(d, sizeof d, "%s/%s", dir, c);
    mkdir(d, 0755);
    CU_ASSERT_EQUAL_FATAL(write_case(d, &ref, c, n_apply, &err), 0);
}

static void expect_sva(const char *c, const char *out) {
    char d[700], o[800];
    snprintf(d, sizeof d, "%s/%s", dir, c);
    snprintf(o, sizeof o, "%s/%s", d, out);
    double w = check_case(d, o, &ref, c);
    printf(" [%s: %.2g float ulps from sva]", c, w);
    CU_ASSERT(w <= 2);
}

// sva fitted every subject of a case, so the reference runs train on all three shards. r: the
// run's report (its chunks).
static int run_all(const char *c, const char *out, CombatPrior prior, const char *keep, double memory_mb,
                   HarmonizeReport *r, DfError *err) {
    char d[700], o_dir[800], tr[2200];
    snprintf(d, sizeof d, "%s/%s", dir, c);
    snprintf(o_dir, sizeof o_dir, "%s/%s", d, out);
    mkdir(o_dir, 0755);
    snprintf(tr, sizeof tr, "%s/train1.h5,%s/train2.h5,%s/apply.h5", d, d, d);
    HarmonizeOptions o = { .train = tr, .site = "site", .keep = keep, .out_dir = o_dir, .prior = prior,
                           .memory_mb = memory_mb };
    return harmonize_run(&o, r, err);
}

static const struct { const char *c; CombatPrior p; const char *keep; } cases[] = {
    { "case1", COMBAT_PARAMETRIC, NULL }, { "case2", COMBAT_PARAMETRIC, "age,sex" },
    { "case3", COMBAT_NONPARAMETRIC, "age,sex" }, { "case4", COMBAT_NO_EB, "age,sex" },
    { "case5", COMBAT_PARAMETRIC, NULL },
};

static void t_sva(void) {
    DfError err = { "" };
    for (int i = 0; i < 5; i++) {
        HarmonizeReport r;
        prepare(cases[i].c, 6);
        int rc = run_all(cases[i].c, "all", cases[i].p, cases[i].keep, DEFAULT_MB, &r, &err);
        if (rc) printf("%s\n", err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_EQUAL(r.chunks, 1);
        expect_sva(cases[i].c, "all");
    }
}

// The same fits with a budget of a few kB: 4 to 7 chunks, and the one-chunk outputs (prep/combat.h
// computes every per-voxel value alike whatever the chunks: measured 0 ulps; the test allows
// 2), so still sva's.
static void t_chunks(void) {
    DfError err = { "" };
    for (int i = 0; i < 5; i++) {
        HarmonizeReport r;
        int rc = run_all(cases[i].c, "chunks", cases[i].p, cases[i].keep, TINY_MB, &r, &err);
        if (rc) printf("%s\n", err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT(r.chunks >= 4);
        char a[800], b[800];
        snprintf(a, sizeof a, "%s/%s/all", dir, cases[i].c);
        snprintf(b, sizeof b, "%s/%s/chunks", dir, cases[i].c);
        double w = same(a, b);
        printf(" [%s: %ld chunks, %.2g float ulps from one chunk]", cases[i].c, r.chunks, w);
        CU_ASSERT(w <= 2);
        expect_sva(cases[i].c, "chunks");
    }
}

// Fit on train1 + train2 and save the model; apply it later to apply.h5 and to the training
// shards: the bytes of the fit's own outputs.
static void t_model_file(void) {
    DfError err = { "" };
    char model[800], a[800], b[800];
    snprintf(model, sizeof model, "%s/case2/model.h5", dir);
    CU_ASSERT_EQUAL_FATAL(run("case2", "fit", COMBAT_PARAMETRIC, "age,sex", model, 1, DEFAULT_MB, &err), 0);
    CU_ASSERT_EQUAL_FATAL(run("case2", "later", COMBAT_PARAMETRIC, NULL, model, 0, DEFAULT_MB, &err), 0);
    snprintf(a, sizeof a, "%s/case2/fit", dir);
    snprintf(b, sizeof b, "%s/case2/later", dir);
    CU_ASSERT_EQUAL(same(a, b), 0.0);
    // the model applied in chunks
    CU_ASSERT_EQUAL_FATAL(run("case2", "later_chunks", COMBAT_PARAMETRIC, NULL, model, 0, TINY_MB, &err), 0);
    snprintf(b, sizeof b, "%s/case2/later_chunks", dir);
    CU_ASSERT_EQUAL(same(a, b), 0.0);
}

static int dir_is_empty(const char *d) {
    char cmd[900];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", d);
    return system(cmd) == 0;
}

// DIR/unseen.h5: DIR/apply.h5 with its third site renamed "Siemens-7", a site no training
// subject has.
static int write_unseen(const char *d, DfError *err) {
    char p[800];
    Cohort h;
    snprintf(p, sizeof p, "%s/apply.h5", d);
    if (shard_read(p, &h, err)) return -1;
    free(h.levels[0][2]);
    h.levels[0][2] = xstrdup("Siemens-7");
    snprintf(p, sizeof p, "%s/unseen.h5", d);
    int rc = shard_write(p, &h, err);
    cohort_free(&h);
    return rc;
}

// An unseen site in an --apply set; a training site with one subject.
static void t_errors(void) {
    DfError err = { "" };
    char d[700], p[800], o[800];
    Cohort h;
    snprintf(d, sizeof d, "%s/case1", dir);
    CU_ASSERT_EQUAL_FATAL(write_unseen(d, &err), 0);
    snprintf(p, sizeof p, "%s/unseen.h5", d);
    snprintf(o, sizeof o, "%s/err1", d);
    mkdir(o, 0755);
    char tr[1500];
    snprintf(tr, sizeof tr, "%s/train1.h5,%s/train2.h5", d, d);
    const char *aps[1] = { p };
    HarmonizeOptions opt = { .train = tr, .apply = aps, .n_apply = 1, .site = "site", .out_dir = o, .memory_mb = TINY_MB };
    HarmonizeReport r;
    CU_ASSERT_EQUAL(harmonize_run(&opt, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "unseen.h5") && tu_contains(err.msg, "Siemens-7"));
    CU_ASSERT(dir_is_empty(o));
    // a training set where one site has a single subject (the first three of train1)
    snprintf(p, sizeof p, "%s/train1.h5", d);
    CU_ASSERT_EQUAL_FATAL(shard_read(p, &h, &err), 0);
    for (int i = 0; i < h.n; i++) h.meta[i] = i == 0 ? 2 : i % 2;  // site2 once, the rest site0/site1
    snprintf(p, sizeof p, "%s/lonely.h5", d);
    CU_ASSERT_EQUAL_FATAL(shard_write(p, &h, &err), 0);
    cohort_free(&h);
    opt.train = p;
    opt.n_apply = 0;
    CU_ASSERT_EQUAL(harmonize_run(&opt, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "site 'site2' has 1 training subject"));
    CU_ASSERT(dir_is_empty(o));
    // a budget that cannot hold one voxel column of the training subjects
    opt.train = tr;
    opt.memory_mb = 1e-5;
    CU_ASSERT_EQUAL(harmonize_run(&opt, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "cannot hold one voxel column of 39 subjects"));
    CU_ASSERT(dir_is_empty(o));
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    h5_quiet();
    int rc = 0;
    if (argc == 3 && !strcmp(argv[1], "write")) {
        DfError err = { "" };
        if (tu_ref_load(&ref, "combat.txt")) rc = 1;
        else if (write_case(argv[2], &ref, "case2", 10, &err) || write_unseen(argv[2], &err))
            fprintf(stderr, "%s\n", err.msg), rc = 1;
    } else if (argc == 4 && !strcmp(argv[1], "check")) {
        rc = tu_ref_load(&ref, "combat.txt") != 0;
        double w = rc ? 1e30 : check_case(argv[2], argv[3], &ref, "case2");
        printf("%s: case2 through shards: %.2g float ulps from sva::ComBat (pass <= 2)\n", w <= 2 ? "PASS" : "FAIL", w);
        rc |= !(w <= 2);
    } else if (argc == 4 && !strcmp(argv[1], "same")) {
        double w = same(argv[2], argv[3]);
        printf("%s: %s and %s differ by at most %.2g float ulps (pass <= 2)\n", w <= 2 ? "PASS" : "FAIL", argv[2], argv[3], w);
        rc = !(w <= 2);
    } else if (argc == 1) {
        if (tu_tmpdir_create("df-harm") != 0 || tu_ref_load(&ref, "combat.txt")) return 1;
        snprintf(dir, sizeof dir, "%s", tu_tmpdir());
        CU_initialize_registry();
        CU_pSuite s = CU_add_suite("harmonize", NULL, NULL);
        CU_add_test(s, "sva::ComBat's outputs through shards (parametric, non-parametric, no EB, a passed voxel)", t_sva);
        CU_add_test(s, "several chunks per rank give the one-chunk outputs, and sva's", t_chunks);
        CU_add_test(s, "the saved model applied later gives the fit's bytes, in one chunk or several", t_model_file);
        CU_add_test(s, "an unseen site, a site with one subject: the file named, nothing written", t_errors);
        rc = tu_run_all();
    } else {
        fprintf(stderr, "usage: %s [write DIR | check DIR OUT | same OUT1 OUT2]\n", argv[0]);
        rc = 2;
    }
    dist_finalize();
    return rc;
}
