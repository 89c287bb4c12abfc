// test_mi.c: MI (nn/mi.h): the statistics network and the Donsker-Varadhan bound against
// PyTorch and finite differences, the term at 1, 2 and 3 simulated ranks, and the reference's
// alternating schedule step by step on a tiny network (run/step.h, run/terms.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mdn_util.h"
#include "mpi/gradsync.h"
#include "nn/mi.h"
#include "nn/net.h"
#include "nn/term.h"
#include "run/step.h"
#include "testutil.h"

// ---- the statistics network and the bound against PyTorch (tests/gen_debias_ref.py) -----------

static double refv(RefFile *f, const char *name) {
    RefTensor *t = tu_ref_get(f, name);
    return t ? t->v[0] : NAN;
}

static void test_mi_reference(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "mi.txt") == 0);
    int B = (int)refv(&f, "B");
    MiNet m = { (int)refv(&f, "n_bias"), (int)refv(&f, "d"), (int)refv(&f, "h") };
    RefTensor *pt = tu_ref_get(&f, "params"), *ct = tu_ref_get(&f, "c"), *zt = tu_ref_get(&f, "z"), *permt = tu_ref_get(&f, "perm");
    CU_ASSERT_FATAL(pt && ct && zt && permt && pt->n == mi_net_n_params(&m));
    float *p = tu_ref_floats(pt), *z = tu_ref_floats(zt);
    int c[16], cm[16], perm[16];
    for (int i = 0; i < B; i++) c[i] = (int)ct->v[i];
    // the permutation the C side draws is the generator's, as ported to Python
    mi_permutation(perm, B, (uint64_t)refv(&f, "seed"), (int64_t)refv(&f, "draw"));
    for (int i = 0; i < B; i++) { CU_ASSERT_EQUAL(perm[i], (int)permt->v[i]); cm[i] = c[perm[i]]; }
    double tj[16], tm[16], dtj[16], dtm[16], *pre = malloc(sizeof(double) * B * 3 * m.h), *pre_m = malloc(sizeof(double) * B * 3 * m.h);
    mi_net_forward(tj, pre, p, &m, c, z, B);
    mi_net_forward(tm, pre_m, p, &m, cm, z, B);
    RefTensor *tjr = tu_ref_get(&f, "tj");
    for (int i = 0; i < B; i++) tu_ref_check_scalar("T(c_i, z_i)", tj[i], tjr->v[i], 1e-7, 1e-6);
    double I = mi_dv_bound(dtj, dtm, tj, tm, B);
    tu_ref_check_scalar("DV bound", I, refv(&f, "I"), 1e-7, 1e-5);
    double *dp = calloc(pt->n, sizeof(double)), *dz = calloc((size_t)B * m.d, sizeof(double));
    mi_net_backward(dp, dz, dtj, pre, p, &m, c, z, B);
    mi_net_backward(dp, dz, dtm, pre_m, p, &m, cm, z, B);
    float *gp = malloc(sizeof(float) * pt->n), *gz = malloc(sizeof(float) * B * m.d);
    for (size_t i = 0; i < pt->n; i++) gp[i] = (float)dp[i];
    for (int i = 0; i < B * m.d; i++) gz[i] = (float)dz[i];
    tu_ref_check(&f, "grad_params", gp, pt->n, 1e-7, 1e-5);
    tu_ref_check(&f, "grad_z", gz, (size_t)B * m.d, 1e-7, 1e-5);
    free(p); free(z); free(pre); free(pre_m); free(dp); free(dz); free(gp); free(gz);
    tu_ref_free(&f);
}

// ---- finite differences of the bound, through the statistics network ---------------------------

typedef struct { MiNet m; float *p, *z; int *c, *cm; int B; } MiFd;

static double mi_fd_bound(void *arg) {
    MiFd *a = arg;
    double tj[32], tm[32], dtj[32], dtm[32], *pre = malloc(sizeof(double) * a->B * 3 * a->m.h);
    mi_net_forward(tj, pre, a->p, &a->m, a->c, a->z, a->B);
    mi_net_forward(tm, pre, a->p, &a->m, a->cm, a->z, a->B);
    free(pre);
    return mi_dv_bound(dtj, dtm, tj, tm, a->B);
}

static void test_mi_fd(void) {
    enum { B = 9 };
    MiNet m = { 3, 4, 6 };
    Rng rng;
    rng_seed(&rng, 12);
    size_t P = mi_net_n_params(&m);
    float *p = malloc(sizeof(float) * P), *z = tu_rand(B * 4, -1, 1, &rng);
    mi_net_init(p, &m, &rng);
    for (size_t i = 0; i < P; i++) p[i] += rng_uniformf(&rng, -0.2f, 0.2f);  // biases away from 0 too
    int c[B], cm[B], perm[B];
    for (int i = 0; i < B; i++) c[i] = i % 3;
    mi_permutation(perm, B, 5, 0);
    for (int i = 0; i < B; i++) cm[i] = c[perm[i]];
    double tj[B], tm[B], dtj[B], dtm[B], *pj = malloc(sizeof(double) * B * 3 * m.h), *pm = malloc(sizeof(double) * B * 3 * m.h);
    mi_net_forward(tj, pj, p, &m, c, z, B);
    mi_net_forward(tm, pm, p, &m, cm, z, B);
    mi_dv_bound(dtj, dtm, tj, tm, B);
    double *dp = calloc(P, sizeof(double)), *dz = calloc(B * 4, sizeof(double));
    mi_net_backward(dp, dz, dtj, pj, p, &m, c, z, B);
    mi_net_backward(dp, dz, dtm, pm, p, &m, cm, z, B);
    float *gp = malloc(sizeof(float) * P), gz[B * 4];
    for (size_t i = 0; i < P; i++) gp[i] = (float)dp[i];
    for (int i = 0; i < B * 4; i++) gz[i] = (float)dz[i];
    MiFd a = { m, p, z, c, cm, B };
    CU_ASSERT(tu_fd_check(mi_fd_bound, &a, p, gp, P, P, 1e-3, 1e-6, 2e-3, "DV bound wrt T's parameters") <= 1.0);
    CU_ASSERT(tu_fd_check(mi_fd_bound, &a, z, gz, B * 4, B * 4, 1e-3, 1e-6, 2e-3, "DV bound wrt the features") <= 1.0);
    free(p); free(z); free(pj); free(pm); free(dp); free(dz); free(gp);
}

// ---- the term at 1, 2 and 3 simulated ranks ----------------------------------------------------

typedef struct {
    Ini ini;
    Net net;
    MetaSchema schema;
    LossTerm *terms;
    int n;
} MiFx;

static void mi_fx(MiFx *x, const char *extra) {
    char text[1024];
    DfError err;
    snprintf(text, sizeof text,
             "[linear]\nout = 5\n[tanh]\nname = feat\n[linear]\nname = fc\nout = 2\n\n"
             "[debias]\nmethod = mi\nlayer = feat\nbias = site\nestimator_hidden = 7\n%s", extra);
    age_site_schema(&x->schema);
    CU_ASSERT_FATAL(ini_parse_string(&x->ini, text, "mi.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&x->net, &x->ini, (Shape){ 3, 1, 1, 1 }, 64, NULL, &x->schema, &err) == 0);
    CU_ASSERT_FATAL(loss_terms_build(&x->terms, &x->n, &x->ini, &x->net, &x->schema, 21, &err) == 0);
    CU_ASSERT(ini_check_unused(&x->ini, &err) == 0);
}

static void mi_fx_free(MiFx *x) {
    loss_terms_free(x->terms, x->n);
    net_free(&x->net);
    ini_free(&x->ini);
}

typedef struct {
    LossTerm *t;
    const float *f;
    double *meta;
    int32_t *labels;
    int B;
    float *state0, *state;  // the statistics network before, and after the fit
    int64_t counters0[TERM_MAX_COUNTERS];
    float *grad;            // (B, d)
    double I[3];
} MiRanks;

static TuSim g_sim;
static void mi_rank(void *p, int r, int P) {
    MiRanks *a = p;
    LossTerm *t = a->t;
    int lo, hi, d = t->d;
    tu_share(a->B, r, P, &lo, &hi);
    // every simulated rank starts from the same term state (as real ranks hold the same)
    memcpy(t->state, a->state0, t->n_state * sizeof(float));
    memcpy(t->counters, a->counters0, sizeof a->counters0);
    Batch b = { .n = hi - lo, .global_n = a->B, .offset = lo, .first_sample = lo, .labels = a->labels + lo,
                .meta = a->meta + (size_t)lo * 2, .n_meta = 2 };
    float *g = a->grad + (size_t)lo * d;
    memset(g, 0, sizeof(float) * (size_t)(hi - lo) * d);
    double logs[TERM_MAX_LOGS];
    t->ops->forward_backward(t, a->f + (size_t)lo * d, &b, g, 1.0f, &g_sim.base, logs);
    a->I[r] = logs[0];
    t->ops->fit(t, a->f + (size_t)lo * d, &b, &g_sim.base, logs);
    if (r == P - 1) memcpy(a->state, t->state, t->n_state * sizeof(float));
}

static void test_mi_ranks(void) {
    MiFx x;
    mi_fx(&x, "");
    LossTerm *t = &x.terms[0];
    CU_ASSERT(t->alternating && t->fit_steps == 40 && t->fit_pass && t->n_state > 0);
    enum { B = 14 };
    Rng rng;
    rng_seed(&rng, 31);
    double meta[B * 2];
    int32_t labels[B];
    random_rows(meta, labels, B, &rng);
    float *f = tu_rand(B * t->d, -1, 1, &rng), ref_grad[B * 5], *ref_state = malloc(t->n_state * sizeof(float));
    MiRanks a = { t, f, meta, labels, B, tu_copy(t->state, t->n_state), malloc(t->n_state * sizeof(float)), { 0 },
                  calloc(B * t->d, sizeof(float)), { 0 } };
    double ref_I = 0;
    for (int P = 1; P <= 3; P++) {
        tu_simulate(&g_sim, P, mi_rank, &a);
        if (P == 1) {
            memcpy(ref_grad, a.grad, sizeof ref_grad);
            memcpy(ref_state, a.state, t->n_state * sizeof(float));
            ref_I = a.I[0];
            CU_ASSERT(isfinite(ref_I));
            continue;
        }
        // the bound and the encoder's gradient: the same bits (T's values are gathered exactly)
        for (int r = 0; r < P; r++) CU_ASSERT(a.I[r] == ref_I);
        CU_ASSERT(memcmp(ref_grad, a.grad, sizeof ref_grad) == 0);
        // the estimator's step sums its gradient over ranks: equal to rounding (float32 parameters
        // after one Adam step of lr 1e-3 from gradients summed in a different order)
        CU_ASSERT(tu_close_ratio(a.state, ref_state, t->n_state, 1e-7, 1e-5, "statistics network after a fit") <= 1.0);
    }
    CU_ASSERT(t->counters[0] == 2);  // two permutations drawn (bound, fit)
    free(f); free(ref_state); free(a.state0); free(a.state); free(a.grad);
    mi_fx_free(&x);
}

static void test_mi_single_class(void) {
    MiFx x;
    mi_fx(&x, "");
    LossTerm *t = &x.terms[0];
    enum { B = 5 };
    double meta[B * 2] = { 30, 5, 31, 5, 32, 5, 33, 5, 34, 5 };
    int32_t labels[B] = { 0, 1, 0, 1, 1 };
    float f[B * 5] = { 0 }, g[B * 5] = { 0 };
    float *before = tu_copy(t->state, t->n_state);
    Batch b = { .n = B, .global_n = B, .labels = labels, .meta = meta, .n_meta = 2 };
    double logs[TERM_MAX_LOGS];
    CU_ASSERT(t->ops->forward_backward(t, f, &b, g, 1.0f, NULL, logs) == 0.0);
    CU_ASSERT(logs[0] == 0.0 && logs[3] == 1.0);
    for (int i = 0; i < B * 5; i++) CU_ASSERT(g[i] == 0.0f);
    t->ops->fit(t, f, &b, NULL, logs);  // no estimator step either
    CU_ASSERT(isnan(logs[1]) && memcmp(before, t->state, t->n_state * sizeof(float)) == 0 && t->counters[0] == 0);
    free(before);
    mi_fx_free(&x);
}

// ---- the alternating schedule on a tiny network, against the reference's equations ------------

static void test_mi_schedule(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "mi_schedule.txt") == 0);
    int B = (int)refv(&f, "B"), epochs = (int)refv(&f, "epochs");
    char text[1024];
    snprintf(text, sizeof text,
             "[linear]\nname = enc\nout = 4\nbias = false\n[batchnorm3d]\nname = bn\n[tanh]\nname = feat\n[linear]\nname = fc\nout = 3\n"
             "[debias]\nmethod = mi\nlayer = feat\nbias = b\nlambda = %g\nestimator_lr = %g\nestimator_steps = %d\n"
             "estimator_hidden = %d\nwarmup = %d\n",
             refv(&f, "lambda"), refv(&f, "estimator_lr"), (int)refv(&f, "estimator_steps"), (int)refv(&f, "h"), (int)refv(&f, "warmup"));
    MetaSchema schema;
    b_three_class_schema(&schema);
    DfError err;
    Ini ini;
    Net net;
    CU_ASSERT_FATAL(ini_parse_string(&ini, text, "s.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&net, &ini, (Shape){ 6, 1, 1, 1 }, B, NULL, &schema, &err) == 0);
    LossTerm *terms;
    int n_terms;
    CU_ASSERT_FATAL(loss_terms_build(&terms, &n_terms, &ini, &net, &schema, (uint64_t)refv(&f, "seed"), &err) == 0);
    net_init(&net, 1);
    // the reference's initial parameters: enc.weight, bn.weight, bn.bias, fc.weight, fc.bias
    const int which[5][2] = { { 0, 0 }, { 1, 0 }, { 1, 1 }, { 3, 0 }, { 3, 1 } };
    char key[64];
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof key, "init.%d", k);
        RefTensor *t = tu_ref_get(&f, key);
        float *dst = layer_param(&net.layers[which[k][0]], which[k][1]);
        for (size_t i = 0; i < t->n; i++) dst[i] = (float)t->v[i];
    }
    RefTensor *T0 = tu_ref_get(&f, "init.T");
    LossTerm *mi = &terms[0];
    CU_ASSERT_FATAL(T0->n * 3 == mi->n_state);
    for (size_t i = 0; i < T0->n; i++) mi->state[i] = (float)T0->v[i];
    OptConfig oc = { .kind = OPT_ADAM, .weight_decay = refv(&f, "weight_decay"), .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
    Optimizer opt;
    optim_init(&opt, &oc, net.n_params);
    TermRunner tr;
    terms_setup(&tr, terms, n_terms, &net, &oc);
    LossConfig lc = { LOSS_CROSS_ENTROPY, -1 };
    float *dlogits = calloc((size_t)B * 3, sizeof(float)), *scratch = calloc((size_t)B * 6, sizeof(float));
    GradSync *gs = gradsync_create(net.grads, net.n_params, 1 << 20);
    Stepper st = { &net, &opt, &lc, 3, dlogits, scratch, gs, &tr };
    Batch batches[2];
    float *x[2];
    int32_t y[2][16];
    double c[2][16];
    for (int k = 0; k < 2; k++) {
        snprintf(key, sizeof key, "x%d", k);
        x[k] = tu_ref_floats(tu_ref_get(&f, key));
        snprintf(key, sizeof key, "y%d", k);
        RefTensor *yt = tu_ref_get(&f, key);
        snprintf(key, sizeof key, "c%d", k);
        RefTensor *cm = tu_ref_get(&f, key);
        for (int i = 0; i < B; i++) { y[k][i] = (int32_t)yt->v[i]; c[k][i] = cm->v[i]; }
        batches[k] = (Batch){ .n = B, .global_n = B, .images = x[k], .labels = y[k], .meta = c[k], .n_meta = 1, .step = k };
    }
    double lr = refv(&f, "lr");
    for (int e = 0; e < epochs; e++) {
        for (int k = 0; k < 2; k++) terms_fit_batch(&tr, &net, &batches[k]);  // the estimator-only pass
        terms_sync(&tr);
        for (int k = 0; k < 2; k++) {
            LossStats ls = { 0, 0, 0 };
            step_run(&st, &batches[k], e, lr, 0, &ls);
            terms_sync(&tr);
        }
        double cols[8];
        terms_epoch_end(&tr, 2.0 * B, cols);  // value, mi, mi_estimator, lambda, single-class batches
        snprintf(key, sizeof key, "epoch%d.mi", e);
        tu_ref_check_scalar(key, cols[1], refv(&f, key), 1e-7, 1e-5);
        snprintf(key, sizeof key, "epoch%d.mi_estimator", e);
        tu_ref_check_scalar(key, cols[2], refv(&f, key), 1e-7, 1e-5);
        CU_ASSERT(cols[3] == refv(&f, "lambda") && cols[4] == 0);
    }
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof key, "final.%d", k);
        tu_ref_check(&f, key, layer_param(&net.layers[which[k][0]], which[k][1]), tu_ref_get(&f, key)->n, 1e-6, 1e-5);
    }
    tu_ref_check(&f, "final.running_mean", layer_state(&net.layers[1], 0), 4, 1e-6, 1e-5);
    tu_ref_check(&f, "final.running_var", layer_state(&net.layers[1], 1), 4, 1e-6, 1e-5);
    tu_ref_check(&f, "final.T", mi->state, T0->n, 1e-6, 1e-5);
    CU_ASSERT_EQUAL(mi->counters[0], (int64_t)refv(&f, "draws"));
    gradsync_free(gs);
    free(dlogits); free(scratch); free(x[0]); free(x[1]);
    terms_free(&tr);
    optim_free(&opt);
    loss_terms_free(terms, n_terms);
    net_free(&net);
    ini_free(&ini);
    tu_ref_free(&f);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("mi", NULL, NULL);
    CU_add_test(s, "statistics network and DV bound against PyTorch", test_mi_reference);
    CU_add_test(s, "DV bound: finite differences", test_mi_fd);
    CU_add_test(s, "MI term: 1, 2, 3 ranks", test_mi_ranks);
    CU_add_test(s, "MI term: a single bias class contributes zero", test_mi_single_class);
    CU_add_test(s, "the reference's schedule, step by step", test_mi_schedule);
    return tu_run_all();
}
