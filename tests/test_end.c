// test_end.c: EnD (nn/end.h) against PyTorch and finite differences, at 1, 2 and 3 simulated
// ranks; the bias coding (nn/bias.h); and the [debias] section's configuration errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mdn_util.h"
#include "nn/end.h"
#include "nn/net.h"
#include "nn/term.h"
#include "testutil.h"

// ---- the pair terms against PyTorch (tests/gen_debias_ref.py) ---------------------------------

static void check_case(RefFile *f, const char *name) {
    char key[64];
    RefTensor *ft, *ct, *yt, *at, *bt;
#define GET(var, suffix) (snprintf(key, sizeof key, "%s." suffix, name), var = tu_ref_get(f, key))
    if (!GET(ft, "f") || !GET(ct, "c") || !GET(yt, "y") || !GET(at, "alpha") || !GET(bt, "beta")) { CU_FAIL("end.txt"); return; }
    int B = ft->dims[0], d = ft->dims[1], c[64], y[64];
    for (int i = 0; i < B; i++) { c[i] = (int)ct->v[i]; y[i] = (int)yt->v[i]; }
    float *fv = tu_ref_floats(ft), *grad = calloc((size_t)B * d, sizeof(float));
    double *z = malloc(sizeof(double) * B * d), *norm = malloc(sizeof(double) * B), *dz = calloc((size_t)B * d, sizeof(double));
    end_normalize(z, norm, fv, B, d);
    EndTerms v = end_forward(z, c, y, B, d);
    // the terms in double from the same float32 features: equal to double rounding
    snprintf(key, sizeof key, "%s.r_perp", name);
    CU_ASSERT(ratio_dd(key, &v.r_perp, tu_ref_get(f, key)->v, 1, 1e-14, 1e-12) <= 1);
    snprintf(key, sizeof key, "%s.r_par", name);
    CU_ASSERT(ratio_dd(key, &v.r_par, tu_ref_get(f, key)->v, 1, 1e-14, 1e-12) <= 1);
    end_backward(dz, z, c, y, B, d, 0, B, at->v[0], bt->v[0], &v);
    end_normalize_backward(grad, dz, z, norm, B, d);
    snprintf(key, sizeof key, "%s.grad", name);
    tu_ref_check(f, key, grad, (size_t)B * d, 1e-7, 1e-5);
#undef GET
    free(fv); free(grad); free(z); free(norm); free(dz);
}

static void test_end_reference(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "end.txt") == 0);
    check_case(&f, "a");
    check_case(&f, "b");
    check_case(&f, "c");  // no entangle pair: R_par is 0, not NaN
    tu_ref_free(&f);
}

// ---- the loss term: built from [debias], finite differences, ranks -----------------------------

// A [debias] end term on a network whose `feat` layer gives d = 6 values per sample, with the
// age/site schema (bias = site: levels 0, 2, 5).
typedef struct {
    Ini ini;
    Net net;
    MetaSchema schema;
    LossTerm *terms;
    int n;
} TermFx;

static int term_fx(TermFx *x, const char *debias, DfError *err) {
    char text[1024];
    snprintf(text, sizeof text, "[linear]\nout = 6\n[tanh]\nname = feat\n[linear]\nname = fc\nout = 2\n\n[debias]\n%s", debias);
    age_site_schema(&x->schema);
    x->terms = NULL;
    x->n = 0;
    if (ini_parse_string(&x->ini, text, "d.ini", err)) return -1;
    if (net_build_meta(&x->net, &x->ini, (Shape){ 3, 1, 1, 1 }, 64, NULL, &x->schema, err)) { ini_free(&x->ini); return -1; }
    int rc = loss_terms_build(&x->terms, &x->n, &x->ini, &x->net, &x->schema, 5, err);
    if (rc == 0) rc = ini_check_unused(&x->ini, err);
    return rc;
}

static void term_fx_free(TermFx *x) {
    loss_terms_free(x->terms, x->n);
    net_free(&x->net);
    ini_free(&x->ini);
}

typedef struct { LossTerm *t; float *f; Batch *b; } EndFd;
static double end_value(void *p) {
    EndFd *e = p;
    double logs[TERM_MAX_LOGS];
    return e->t->ops->forward_backward(e->t, e->f, e->b, NULL, 1.0f, NULL, logs) / e->b->n;
}

static Batch meta_batch(int n, double *meta, int32_t *labels) {
    Batch b = { .n = n, .global_n = n, .labels = labels, .meta = meta, .n_meta = 2 };
    return b;
}

static void test_end_fd(void) {
    TermFx x;
    DfError err;
    CU_ASSERT_FATAL(term_fx(&x, "method = end\nlayer = feat\nbias = site\nalpha = 0.8\nbeta = 1.7\n", &err) == 0);
    LossTerm *t = &x.terms[0];
    CU_ASSERT_EQUAL(t->d, 6);
    CU_ASSERT_EQUAL(t->alternating, 0);
    enum { B = 11 };
    Rng rng;
    rng_seed(&rng, 3);
    double meta[B * 2];
    int32_t labels[B];
    random_rows(meta, labels, B, &rng);
    float *f = tu_rand(B * 6, -1, 1, &rng), *g = calloc(B * 6, sizeof(float));
    Batch b = meta_batch(B, meta, labels);
    double logs[TERM_MAX_LOGS];
    double v = t->ops->forward_backward(t, f, &b, g, 1.0f, NULL, logs) / B;
    CU_ASSERT_DOUBLE_EQUAL(v, 0.8 * logs[0] + 1.7 * logs[1], 1e-12);  // value = alpha R_perp + beta R_par
    CU_ASSERT(logs[0] > 0 && logs[1] > 0 && logs[4] == 0);          // both terms present; not a single-class batch
    EndFd c = { t, f, &b };
    CU_ASSERT(tu_fd_check(end_value, &c, f, g, B * 6, B * 6, 1e-3, 1e-6, 1e-3, "EnD: alpha R_perp + beta R_par") <= 1.0);
    term_fx_free(&x);
    // each term alone: R_perp (alpha 1, beta 0), then R_par (alpha 0, beta 1)
    const char *alone[2] = { "method = end\nlayer = feat\nbias = site\nalpha = 1\nbeta = 0\n",
                             "method = end\nlayer = feat\nbias = site\nalpha = 0\nbeta = 1\n" };
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_FATAL(term_fx(&x, alone[k], &err) == 0);
        memset(g, 0, sizeof(float) * B * 6);
        double vk = x.terms[0].ops->forward_backward(&x.terms[0], f, &b, g, 1.0f, NULL, logs) / B;
        CU_ASSERT_DOUBLE_EQUAL(vk, logs[k], 1e-12);
        EndFd ck = { &x.terms[0], f, &b };
        CU_ASSERT(tu_fd_check(end_value, &ck, f, g, B * 6, B * 6, 1e-3, 1e-6, 1e-3, k ? "EnD: R_par" : "EnD: R_perp") <= 1.0);
        term_fx_free(&x);
    }
    free(f); free(g);
}

// P ranks, each with its share of one global batch: every rank's value and logs, and each
// rank's gradient rows, are bit for bit those of one rank (the features are gathered exactly).
typedef struct {
    LossTerm *t;
    const float *f;
    double *meta;
    int32_t *labels;
    int B;
    float *grad;     // (B, 6)
    double value[3]; // per rank: value / n
    double logs[3][TERM_MAX_LOGS];
} EndRanks;

static TuSim g_sim;
static void end_rank_sim(void *p, int r, int P) {
    EndRanks *a = p;
    int lo, hi;
    tu_share(a->B, r, P, &lo, &hi);
    Batch b = { .n = hi - lo, .global_n = a->B, .offset = lo, .first_sample = lo, .labels = a->labels + lo,
                .meta = a->meta + (size_t)lo * 2, .n_meta = 2 };
    float *g = a->grad + (size_t)lo * 6;
    memset(g, 0, sizeof(float) * (size_t)(hi - lo) * 6);
    double v = a->t->ops->forward_backward(a->t, a->f + (size_t)lo * 6, &b, g, 1.0f, &g_sim.base, a->logs[r]);
    a->value[r] = b.n ? v / b.n : NAN;
}

static void test_end_ranks(void) {
    TermFx x;
    DfError err;
    CU_ASSERT_FATAL(term_fx(&x, "method = end\nlayer = feat\nbias = site\n", &err) == 0);
    enum { B = 13 };
    Rng rng;
    rng_seed(&rng, 8);
    double meta[B * 2];
    int32_t labels[B];
    random_rows(meta, labels, B, &rng);
    float *f = tu_rand(B * 6, -1, 1, &rng), ref[B * 6];
    EndRanks a = { &x.terms[0], f, meta, labels, B, calloc(B * 6, sizeof(float)), { 0 }, { { 0 } } };
    double ref_value = 0, ref_logs[TERM_MAX_LOGS];
    for (int P = 1; P <= 3; P++) {
        tu_simulate(&g_sim, P, end_rank_sim, &a);
        if (P == 1) {
            memcpy(ref, a.grad, sizeof ref);
            ref_value = a.value[0];
            memcpy(ref_logs, a.logs[0], sizeof ref_logs);
            continue;
        }
        CU_ASSERT(memcmp(ref, a.grad, sizeof ref) == 0);  // bit for bit
        for (int r = 0; r < P; r++) {  // the terms bit for bit; the value is returned times the rank's n
            CU_ASSERT(memcmp(a.logs[r], ref_logs, sizeof(double) * 5) == 0);
            CU_ASSERT(fabs(a.value[r] - ref_value) <= 1e-15 * ref_value);
        }
    }
    free(f);
    free(a.grad);
    term_fx_free(&x);
}

// A global batch of one bias class contributes zero (no NaN) and is counted; so does a
// sample whose features are all zero (normalised by 1e-12 as torch does, not by 0).
static void test_end_single_class(void) {
    TermFx x;
    DfError err;
    CU_ASSERT_FATAL(term_fx(&x, "method = end\nlayer = feat\nbias = site\n", &err) == 0);
    LossTerm *t = &x.terms[0];
    enum { B = 6 };
    double meta[B * 2];
    int32_t labels[B] = { 0, 1, 0, 1, 1, 0 };
    for (int i = 0; i < B; i++) { meta[2 * i] = 30 + i; meta[2 * i + 1] = 2; }
    Rng rng;
    rng_seed(&rng, 4);
    float *f = tu_rand(B * 6, -1, 1, &rng), g[B * 6] = { 0 };
    Batch b = meta_batch(B, meta, labels);
    double logs[TERM_MAX_LOGS];
    CU_ASSERT(t->ops->forward_backward(t, f, &b, g, 1.0f, NULL, logs) == 0.0);
    CU_ASSERT(logs[4] == 1.0 && logs[0] == 0.0 && logs[1] == 0.0);
    for (int i = 0; i < B * 6; i++) CU_ASSERT(g[i] == 0.0f);
    meta[1] = 0;  // now two classes, and sample 2's features are zero
    memset(f + 12, 0, 6 * sizeof(float));
    double v = t->ops->forward_backward(t, f, &b, g, 1.0f, NULL, logs);
    CU_ASSERT(isfinite(v) && logs[4] == 0.0);
    for (int i = 0; i < B * 6; i++) CU_ASSERT(isfinite(g[i]));
    free(f);
    term_fx_free(&x);
}

// ---- the bias coding --------------------------------------------------------------------------

static TuSim g_bins_sim;
typedef struct { BiasCoding *bc; const double *meta; int N; } BinsRanks;
static void bins_rank(void *p, int r, int P) {
    BinsRanks *a = p;
    int lo, hi;
    tu_share(a->N, r, P, &lo, &hi);
    DfError err;
    CU_ASSERT(bias_coding_prepare(a->bc, a->meta + (size_t)lo * 2, hi - lo, lo, a->N, &g_bins_sim.base, &err) == 0);
}

static void test_bias_bins(void) {
    MetaSchema s;
    age_site_schema(&s);
    Ini ini;
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(&ini, "[debias]\nbias = age\nbins = 4\n", "b.ini", &err) == 0);
    BiasCoding bc;
    CU_ASSERT_FATAL(bias_coding_build(&bc, &ini, ini_section(&ini, "debias"), &s, &err) == 0);
    CU_ASSERT(bc.quantile_bins && bc.n_classes == 4 && !bc.categorical);
    enum { N = 103 };
    double meta[N * 2];
    for (int i = 0; i < N; i++) { meta[2 * i] = (double)((i * 37) % N); meta[2 * i + 1] = 0; }  // ages 0..102, shuffled
    double edges[3];
    for (int P = 1; P <= 3; P++) {  // the same edges whatever the split over ranks
        BinsRanks a = { &bc, meta, N };
        tu_simulate(&g_bins_sim, P, bins_rank, &a);
        if (P == 1) memcpy(edges, bc.edges, sizeof edges);
        else CU_ASSERT(memcmp(edges, bc.edges, sizeof edges) == 0);
    }
    CU_ASSERT(bc.edges[0] == 25 && bc.edges[1] == 51 && bc.edges[2] == 77);  // values at ranks 103k/4
    int counts[4] = { 0 };
    for (int i = 0; i < N; i++) counts[bias_class(&bc, meta + 2 * i)]++;
    CU_ASSERT(counts[0] == 25 && counts[1] == 26 && counts[2] == 26 && counts[3] == 26);
    ini_free(&ini);
    // explicit edges; a categorical column's levels
    CU_ASSERT_FATAL(ini_parse_string(&ini, "[debias]\nbias = age\nbin_edges = 40, 60\n[x]\nbias = site\n", "b.ini", &err) == 0);
    CU_ASSERT_FATAL(bias_coding_build(&bc, &ini, ini_section(&ini, "debias"), &s, &err) == 0);
    double row[2] = { 39.9, 0 };
    CU_ASSERT(bc.n_classes == 3 && bias_class(&bc, row) == 0);
    row[0] = 40;
    CU_ASSERT(bias_class(&bc, row) == 1);
    row[0] = 75;
    CU_ASSERT(bias_class(&bc, row) == 2);
    CU_ASSERT_FATAL(bias_coding_build(&bc, &ini, ini_section(&ini, "x"), &s, &err) == 0);
    row[1] = 5;
    CU_ASSERT(bc.n_classes == 3 && bias_class(&bc, row) == 2);
    row[1] = 3;
    CU_ASSERT(bias_class(&bc, row) == -1);
    ini_free(&ini);
}

// ---- configuration errors: one message naming file, line and problem --------------------------

static void expect_error(const char *debias, const char *line, const char *what) {
    TermFx x;
    DfError err;
    int rc = term_fx(&x, debias, &err);
    CU_ASSERT(rc == -1);
    if (rc == 0) { term_fx_free(&x); return; }
    CU_ASSERT(tu_contains(err.msg, line) && tu_contains(err.msg, what));
    if (x.terms || x.n) loss_terms_free(x.terms, x.n);
    if (x.net.layers) net_free(&x.net);
    ini_free(&x.ini);
}

static void test_config_errors(void) {
    // the [debias] section starts at line 9 of term_fx's text
    expect_error("method = end\nlayer = feat\nbias = scanner\n", "d.ini:12", "no such column (columns: age, site)");
    expect_error("method = end\nlayer = feat\nbias = label\n", "d.ini:12", "not the class label");
    expect_error("method = mi\nlayer = fc2\nbias = site\n", "d.ini:11", "no layer of that name");
    expect_error("method = mi\nlayer = fc\nbias = site\n", "d.ini:11", "the network's output");
    expect_error("method = end\nlayer = feat\nbias = age\n", "d.ini:12", "is continuous: give bins");
    expect_error("method = end\nlayer = feat\nbias = site\nbins = 3\n", "d.ini:13", "categorical");
    expect_error("method = end\nlayer = feat\nbias = age\nbins = 1\n", "d.ini:13", "at least 2 bins");
    expect_error("method = end\nlayer = feat\nbias = age\nbin_edges = 50, 30\n", "d.ini:13", "edges must increase");
    expect_error("method = clade\nlayer = feat\nbias = site\n", "d.ini:10", "not one of: end, mi, clad");
    expect_error("method = end\nbias = site\n", "d.ini:9", "missing");
    expect_error("method = end\nlayer = feat\nbias = site\nalpha = -1\n", "d.ini:13", "alpha");
    // a layer with nothing trainable at or below it
    Ini ini;
    Net net;
    DfError err;
    MetaSchema s;
    age_site_schema(&s);
    CU_ASSERT_FATAL(ini_parse_string(&ini, "[flatten]\nname = flat\n[linear]\nout = 2\n[debias]\nmethod = end\nlayer = flat\nbias = site\n",
                                     "p.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&net, &ini, (Shape){ 3, 1, 1, 1 }, 4, NULL, &s, &err) == 0);
    LossTerm *terms;
    int n;
    CU_ASSERT(loss_terms_build(&terms, &n, &ini, &net, &s, 1, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "p.ini:7") && tu_contains(err.msg, "no layer at or below it has parameters"));
    net_free(&net);
    ini_free(&ini);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("end", NULL, NULL);
    CU_add_test(s, "EnD terms and gradient against PyTorch", test_end_reference);
    CU_add_test(s, "EnD term: finite differences", test_end_fd);
    CU_add_test(s, "EnD term: 1, 2, 3 ranks give the same bits", test_end_ranks);
    CU_add_test(s, "EnD term: a single bias class contributes zero", test_end_single_class);
    CU_add_test(s, "bias coding: quantile bins, edges, levels", test_bias_bins);
    CU_add_test(s, "[debias] configuration errors", test_config_errors);
    return tu_run_all();
}
