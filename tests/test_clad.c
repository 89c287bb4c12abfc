// test_clad.c: CLAD's InfoNCE term and queues (nn/clad.h) against PyTorch, by finite
// differences and over shares of a batch; the foreground pasting that makes its positives
// (data/paste.h), bit for bit.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/rng.h"
#include "mdn_util.h"
#include "data/bgvariant.h"
#include "data/paste.h"
#include "mpi/gradsync.h"
#include "nn/clad.h"
#include "nn/net.h"
#include "nn/term.h"
#include "run/step.h"
#include "testutil.h"

static int *ref_ints(const RefTensor *t) {
    int *v = malloc(sizeof(int) * t->n);
    for (size_t i = 0; i < t->n; i++) v[i] = (int)t->v[i];
    return v;
}

// ---- against PyTorch (tests/gen_debias_ref.py): queues, rows, mean, gradients -----------------

static void test_clad_reference(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "clad.txt") == 0);
    RefTensor *a0t = tu_ref_get(&f, "a0"), *at = tu_ref_get(&f, "a"), *qt = tu_ref_get(&f, "queues");
    CU_ASSERT_FATAL(a0t && at && qt && tu_ref_get(&f, "p") && tu_ref_get(&f, "y0") && tu_ref_get(&f, "bg"));
    int B = at->dims[0], d = at->dims[1], K = qt->dims[0], L = qt->dims[1];
    double tau = tu_ref_get(&f, "tau")->v[0];
    float *a0 = tu_ref_floats(a0t), *a = tu_ref_floats(at), *p = tu_ref_floats(tu_ref_get(&f, "p"));
    float *want_q = tu_ref_floats(qt);
    int *y0 = ref_ints(tu_ref_get(&f, "y0")), *y = ref_ints(tu_ref_get(&f, "y")), *bg = ref_ints(tu_ref_get(&f, "bg"));
    CladQueues q;
    clad_queues_alloc(&q, K, L, d);
    clad_queues_init(&q, a0, y0, B);
    clad_queues_push(&q, p, bg, B);  // class 0 receives 5 positives into a queue of 4
    // the queues hold copies of float features: the same bits
    CU_ASSERT(memcmp(q.feat, want_q, sizeof(float) * K * L * d) == 0);
    double rows[64];
    double total = clad_forward(rows, a, p, y, B, &q, tau);
    // in double from the same float inputs: equal to double rounding
    RefTensor *wr = tu_ref_get(&f, "rows");
    CU_ASSERT(ratio_dd("CLAD loss rows", rows, wr->v, B, 1e-14, 1e-12) <= 1);
    double mean = total / B;
    CU_ASSERT(ratio_dd("CLAD loss", &mean, tu_ref_get(&f, "loss")->v, 1, 1e-14, 1e-12) <= 1);
    float *da = calloc((size_t)B * d, sizeof(float)), *dp = calloc((size_t)B * d, sizeof(float));
    clad_backward(da, dp, a, p, y, B, &q, tau, 1.0 / B);
    // the gradients are rounded to float once: 1e-7 relative
    tu_ref_check(&f, "grad_a", da, (size_t)B * d, 1e-7, 1e-6);
    tu_ref_check(&f, "grad_p", dp, (size_t)B * d, 1e-7, 1e-6);
    clad_queues_free(&q);
    tu_ref_free(&f);
    free(a0); free(a); free(p); free(want_q); free(y0); free(y); free(bg); free(da); free(dp);
}

// ---- finite differences -------------------------------------------------------------------------

enum { FB = 7, FD_ = 6, FK = 3, FL = 5 };
typedef struct { const float *a, *p; const int *y; const CladQueues *q; double tau; } CladFd;
static double clad_value(void *ctx) {
    CladFd *c = ctx;
    return clad_forward(NULL, c->a, c->p, c->y, FB, c->q, c->tau) / FB;
}

static void test_clad_fd(void) {
    Rng rng;
    rng_seed(&rng, 21);
    CladQueues q;
    clad_queues_alloc(&q, FK, FL, FD_);
    tu_fill_uniform(q.feat, (size_t)FK * FL * FD_, -1, 1, &rng);
    float *a = tu_rand(FB * FD_, -1, 1, &rng), *p = tu_rand(FB * FD_, -1, 1, &rng);
    int y[FB] = { 0, 1, 2, 2, 1, 0, 1 };
    double taus[2] = { 0.2, 1.0 };
    for (int k = 0; k < 2; k++) {
        float *da = calloc(FB * FD_, sizeof(float)), *dp = calloc(FB * FD_, sizeof(float));
        clad_backward(da, dp, a, p, y, FB, &q, taus[k], 1.0 / FB);
        CladFd c = { a, p, y, &q, taus[k] };
        CU_ASSERT(tu_fd_check(clad_value, &c, a, da, FB * FD_, FB * FD_, 1e-3, 1e-6, 1e-3, "CLAD: d/d anchors") <= 1.0);
        CU_ASSERT(tu_fd_check(clad_value, &c, p, dp, FB * FD_, FB * FD_, 1e-3, 1e-6, 1e-3, "CLAD: d/d positives") <= 1.0);
        free(da); free(dp);
    }
    clad_queues_free(&q);
    free(a); free(p);
}

// ---- shares of a batch: a row's value and gradient depend on that row and the queues only -----

static void test_clad_shares(void) {
    Rng rng;
    rng_seed(&rng, 5);
    enum { B = 10, D = 4 };
    CladQueues q;
    clad_queues_alloc(&q, 2, 3, D);
    tu_fill_uniform(q.feat, 2 * 3 * D, -1, 1, &rng);
    float *a = tu_rand(B * D, -1, 1, &rng), *p = tu_rand(B * D, -1, 1, &rng);
    int y[B] = { 0, 1, 1, 0, 0, 1, 0, 1, 1, 0 };
    double rows1[B], rows[B];
    float da1[B * D] = { 0 }, dp1[B * D] = { 0 };
    clad_forward(rows1, a, p, y, B, &q, 0.2);
    clad_backward(da1, dp1, a, p, y, B, &q, 0.2, 1.0 / B);
    for (int P = 2; P <= 3; P++) {
        float da[B * D] = { 0 }, dp[B * D] = { 0 };
        for (int r = 0; r < P; r++) {
            int lo, hi;
            tu_share(B, r, P, &lo, &hi);
            clad_forward(rows + lo, a + lo * D, p + lo * D, y + lo, hi - lo, &q, 0.2);
            clad_backward(da + lo * D, dp + lo * D, a + lo * D, p + lo * D, y + lo, hi - lo, &q, 0.2, 1.0 / B);
        }
        CU_ASSERT(memcmp(rows, rows1, sizeof rows) == 0);
        CU_ASSERT(memcmp(da, da1, sizeof da) == 0);
        CU_ASSERT(memcmp(dp, dp1, sizeof dp) == 0);
    }
    clad_queues_free(&q);
    free(a); free(p);
}

// ---- the queues: first fill cycles, FIFO order, a class with no other anchor -------------------

static void test_clad_queues(void) {
    CladQueues q;
    clad_queues_alloc(&q, 3, 4, 1);
    float a[3] = { 10, 11, 12 };
    int y[3] = { 0, 0, 1 };
    clad_queues_init(&q, a, y, 3);
    float want0[4] = { 12, 12, 12, 12 }, want1[4] = { 10, 11, 10, 11 }, want2[4] = { 10, 11, 12, 10 };
    CU_ASSERT(memcmp(q.feat, want0, sizeof want0) == 0);
    CU_ASSERT(memcmp(q.feat + 4, want1, sizeof want1) == 0);
    CU_ASSERT(memcmp(q.feat + 8, want2, sizeof want2) == 0);
    float p[3] = { 1, 2, 3 };
    int bg[3] = { 1, 2, 1 };
    clad_queues_push(&q, p, bg, 3);
    float push1[4] = { 10, 11, 1, 3 }, push2[4] = { 11, 12, 10, 2 };
    CU_ASSERT(memcmp(q.feat + 4, push1, sizeof push1) == 0);
    CU_ASSERT(memcmp(q.feat + 8, push2, sizeof push2) == 0);
    // every anchor of one class: that class's queue has nothing to take and stays zero
    int same[3] = { 2, 2, 2 };
    clad_queues_init(&q, a, same, 3);
    float zeros[4] = { 0 };
    CU_ASSERT(memcmp(q.feat + 8, zeros, sizeof zeros) == 0);
    CU_ASSERT(memcmp(q.feat, want2, sizeof want2) == 0);
    clad_queues_free(&q);
}

// ---- pasting: the foreground bit for bit, every background voxel from the other sample ---------

static void test_paste(void) {
    Shape s = { 2, 3, 4, 5 };
    size_t n = shape_numel(s), sp = shape_spatial(s);
    Rng rng;
    rng_seed(&rng, 9);
    float *fg = tu_rand(n, -1, 1, &rng), *bg = tu_rand(n, -1, 1, &rng), *out = malloc(n * sizeof(float));
    // values whose bits a careless blend (fg * m + bg * (1 - m)) would change: -0, a subnormal, NaN
    fg[0] = -0.0f; fg[1] = 1e-41f; fg[2] = NAN; bg[3] = -0.0f; bg[4] = 1e-41f;
    uint8_t *mask = malloc(sp);
    for (size_t v = 0; v < sp; v++) mask[v] = (uint8_t)(v < 3 ? 1 : v < 5 ? 0 : rng_below(&rng, 2) * 255u);
    paste_foreground(out, fg, mask, bg, s);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(out + i, (mask[i % sp] ? fg : bg) + i, sizeof(float)) != 0;
    CU_ASSERT_EQUAL(bad, 0);
    // in place, into the background's buffer
    float *bg2 = tu_copy(bg, n);
    paste_foreground(bg2, fg, mask, bg2, s);
    CU_ASSERT(memcmp(bg2, out, n * sizeof(float)) == 0);
    // only-bg: the foreground blanked, the background untouched
    paste_blank_foreground(out, bg, mask, 0.0f, s);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += mask[i % sp] ? out[i] != 0.0f || signbit(out[i]) : memcmp(out + i, bg + i, 4) != 0;
    CU_ASSERT_EQUAL(bad, 0);
    free(fg); free(bg); free(bg2); free(out); free(mask);
}

// Voxel k of x's background alone, as paste_background_only documents it, one voxel at a time.
static float background_voxel(const float *x, const uint8_t *m, Shape s, size_t k) {
    size_t sp = shape_spatial(s), plane = (size_t)s.h * s.w, v = k % sp, c = k / sp;
    const float *xc = x + c * sp;
    if (!m[v]) return xc[v];
    int d = (int)(v / plane);
    size_t p = v % plane;
    for (int j = 1; j < s.d; j++) {
        if (d - j >= 0 && !m[(size_t)(d - j) * plane + p]) return xc[(size_t)(d - j) * plane + p];
        if (d + j < s.d && !m[(size_t)(d + j) * plane + p]) return xc[(size_t)(d + j) * plane + p];
    }
    double sum = 0.0;
    size_t nb = 0;
    for (size_t u = 0; u < sp; u++)
        if (!m[u]) { sum += xc[u]; nb++; }
    return nb ? (float)(sum / (double)nb) : 0.0f;
}

// A sample's background alone: its foreground filled from the nearest background voxel along
// D (the lower d on a tie), or its channel's background mean where the whole line is
// foreground; the background itself bit for bit.
static void test_background_only(void) {
    // one channel, D = 5 lines of one pixel: by hand
    Shape s1 = { 1, 5, 1, 2 };
    float x[10] = { 1, 10, 2, 20, 3, 30, 4, 40, 5, 50 };  // (d, w): x[d * 2 + w]
    uint8_t m[10] = { 0, 1, 1, 1, 1, 1, 0, 1, 1, 1 };      // w = 1: all foreground
    float out[10];
    paste_background_only(out, x, m, s1);
    // w = 0, background at d = 0 and 3: d 1 takes d 0 (at 1, before d 3 at 2), d 2 and d 4
    // take d 3; w = 1 has no background: the channel's background mean, (1 + 4) / 2
    float want[10] = { 1, 2.5f, 1, 2.5f, 4, 2.5f, 4, 2.5f, 4, 2.5f };
    CU_ASSERT(memcmp(out, want, sizeof want) == 0);
    // random data, several channels, against the voxel-by-voxel reading
    Shape s = { 3, 6, 4, 5 };
    size_t n = shape_numel(s), sp = shape_spatial(s);
    Rng rng;
    rng_seed(&rng, 12);
    float *xr = tu_rand(n, -1, 1, &rng), *o = malloc(n * sizeof(float));
    uint8_t *mr = malloc(sp);
    for (size_t v = 0; v < sp; v++) mr[v] = (uint8_t)(rng_below(&rng, 3) != 0);  // 2/3 foreground
    for (int d = 0; d < s.d; d++) mr[(size_t)d * 20 + 7] = 1;                     // one line all foreground
    paste_background_only(o, xr, mr, s);
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        float w = background_voxel(xr, mr, s, k);
        bad += memcmp(&o[k], &w, sizeof w) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(xr); free(o); free(mr);
}

// ---- the Background Challenge's variants of a cohort with masks -------------------------------

static void test_bg_variants(void) {
    enum { N = 30 };
    Shape s = { 3, 2, 3, 4 };
    Cohort c;
    cohort_alloc(&c, N, s, 0);
    cohort_alloc_masks(&c);
    Rng rng;
    rng_seed(&rng, 4);
    size_t numel = shape_numel(s), sp = shape_spatial(s);
    tu_fill_uniform(c.images, N * numel, -1, 1, &rng);
    for (int i = 0; i < N; i++) c.labels[i] = (i * 7) % 3;
    for (size_t v = 0; v < N * sp; v++) c.masks[v] = (uint8_t)rng_below(&rng, 2);
    int partner[N], again[N], other_seed[N];
    float *img = malloc(sizeof(float) * N * numel);
    DfError err;
    for (int v = 0; v < BG_N_VARIANTS; v++) {
        CU_ASSERT_FATAL(bg_partners(partner, &c, (BgVariant)v, 7, "t.h5", &err) == 0);
        CU_ASSERT_FATAL(bg_partners(again, &c, (BgVariant)v, 7, "t.h5", &err) == 0);
        CU_ASSERT_FATAL(bg_partners(other_seed, &c, (BgVariant)v, 8, "t.h5", &err) == 0);
        CU_ASSERT(memcmp(partner, again, sizeof partner) == 0);  // the seed decides the pairs
        int self = 0, same_class = 0, moved = 0;
        for (int i = 0; i < N; i++) {
            self += partner[i] == i;
            same_class += c.labels[partner[i]] == c.labels[i];
            moved += partner[i] != other_seed[i];
        }
        if (v == BG_MIXED_SAME || v == BG_MIXED_RAND) {
            CU_ASSERT_EQUAL(self, 0);  // always another sample
            CU_ASSERT(moved > 0);      // and another seed, other pairs
        } else CU_ASSERT_EQUAL(self, N);
        if (v == BG_MIXED_SAME) CU_ASSERT_EQUAL(same_class, N);
        if (v == BG_MIXED_RAND) CU_ASSERT(same_class < N / 2);  // 3 balanced classes: about a third
        // every voxel: the sample's own inside its mask; outside, the partner's background (or the fill)
        bg_variant_images(img, &c, (BgVariant)v, partner, -5.0f);
        int bad = 0;
        for (int i = 0; i < N; i++)
            for (size_t k = 0; k < numel; k++) {
                float want = c.images[(size_t)i * numel + k];
                int fg = c.masks[(size_t)i * sp + k % sp] != 0, j = partner[i];
                if (!fg && v != BG_ORIGINAL && v != BG_ONLY_BG)  // the partner's background, its object removed
                    want = background_voxel(c.images + (size_t)j * numel, c.masks + (size_t)j * sp, s, k);
                float got = img[(size_t)i * numel + k];
                bad += v == BG_ONLY_BG && fg ? got != -5.0f : memcmp(&got, &want, sizeof got) != 0;
            }
        CU_ASSERT_EQUAL(bad, 0);
    }
    // a class with one sample has no same-class background; fewer than 2 samples, no other
    c.labels[5] = 3;
    CU_ASSERT(bg_partners(partner, &c, BG_MIXED_SAME, 7, "t.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "t.h5: mixed-same: class '3' has a single sample (sample 5)"));
    CU_ASSERT(bg_partners(partner, &c, BG_MIXED_RAND, 7, "t.h5", &err) == 0);
    c.n = 1;
    CU_ASSERT(bg_partners(partner, &c, BG_MIXED_RAND, 7, "t.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "mixed-rand needs at least 2 samples"));
    c.n = N;
    cohort_free(&c);
    free(img);
}

static double refv(RefFile *f, const char *name) {
    RefTensor *t = tu_ref_get(f, name);
    CU_ASSERT_FATAL(t != NULL);
    return t->v[0];
}

// CLAD through step_run against PyTorch (tests/ref/clad_steps.txt): the positives through the
// network's twin on the same parameters (both forwards update BatchNorm's running statistics,
// anchors first), the queues filled from the first batch and pushed before the loss, CE +
// lambda * InfoNCE with the gradient down both passes, Adam; 2 epochs of 2 batches.
static void test_clad_steps(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "clad_steps.txt") == 0);
    int B = (int)refv(&f, "B"), K = (int)refv(&f, "K"), epochs = (int)refv(&f, "epochs");
    char text[1024], key[64];
    snprintf(text, sizeof text,
             "[linear]\nname = enc\nout = 4\nbias = false\n[batchnorm3d]\nname = bn\n[tanh]\nname = feat\n[linear]\nname = fc\nout = 3\n"
             "[debias]\nmethod = clad\nlayer = feat\nlambda = %g\ntemperature = %g\nqueue = %d\n",
             refv(&f, "lambda"), refv(&f, "tau"), (int)refv(&f, "queue"));
    MetaSchema schema;
    b_three_class_schema(&schema);
    DfError err;
    Ini ini;
    Net net, twin;
    CU_ASSERT_FATAL(schema.n_classes == K);
    CU_ASSERT_FATAL(ini_parse_string(&ini, text, "c.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&net, &ini, (Shape){ 6, 1, 1, 1 }, B, NULL, &schema, &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&twin, &ini, (Shape){ 6, 1, 1, 1 }, B, NULL, &schema, &err) == 0);
    LossTerm *terms;
    int n_terms;
    CU_ASSERT_FATAL(loss_terms_build(&terms, &n_terms, &ini, &net, &schema, 1, &err) == 0 && n_terms == 1);
    CU_ASSERT_FATAL(ini_check_unused(&ini, &err) == 0);
    net_init(&net, 1);
    net_share_tensors(&twin, &net);
    const int which[5][2] = { { 0, 0 }, { 1, 0 }, { 1, 1 }, { 3, 0 }, { 3, 1 } };
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof key, "init.%d", k);
        RefTensor *t = tu_ref_get(&f, key);
        float *dst = layer_param(&net.layers[which[k][0]], which[k][1]);
        for (size_t i = 0; i < t->n; i++) dst[i] = (float)t->v[i];
    }
    OptConfig oc = { .kind = OPT_ADAM, .weight_decay = refv(&f, "weight_decay"), .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
    Optimizer opt;
    optim_init(&opt, &oc, net.n_params);
    TermRunner tr;
    terms_setup(&tr, terms, n_terms, &net, &oc);
    CU_ASSERT_FATAL(terms_need_positives(&tr));
    terms_set_twin(&tr, &twin);
    LossConfig lc = { LOSS_CROSS_ENTROPY, -1 };
    float *dlogits = calloc((size_t)B * 3, sizeof(float)), *scratch = calloc((size_t)B * 6, sizeof(float));
    GradSync *gs = gradsync_create(net.grads, net.n_params, 1 << 20);
    Stepper st = { &net, &opt, &lc, 3, dlogits, scratch, gs, &tr };
    Batch batches[2];
    float *x[2], *xp[2];
    int32_t y[2][16], bg[2][16];
    for (int k = 0; k < 2; k++) {
        snprintf(key, sizeof key, "x%d", k);
        x[k] = tu_ref_floats(tu_ref_get(&f, key));
        snprintf(key, sizeof key, "xp%d", k);
        xp[k] = tu_ref_floats(tu_ref_get(&f, key));
        snprintf(key, sizeof key, "y%d", k);
        RefTensor *yt = tu_ref_get(&f, key);
        snprintf(key, sizeof key, "bg%d", k);
        RefTensor *bt = tu_ref_get(&f, key);
        for (int i = 0; i < B; i++) { y[k][i] = (int32_t)yt->v[i]; bg[k][i] = (int32_t)bt->v[i]; }
        batches[k] = (Batch){ .n = B, .global_n = B, .images = x[k], .labels = y[k], .positives = xp[k], .positive_bg = bg[k],
                              .step = k };
    }
    double lr = refv(&f, "lr");
    for (int e = 0; e < epochs; e++) {
        for (int k = 0; k < 2; k++) {
            LossStats ls = { 0, 0, 0 };
            step_run(&st, &batches[k], e, lr, 0, &ls);
            terms_sync(&tr);
        }
        double cols[3];  // value, pos_cos, top1
        terms_epoch_end(&tr, 2.0 * B, cols);
        snprintf(key, sizeof key, "epoch%d.value", e);
        tu_ref_check_scalar(key, cols[0], refv(&f, key), 1e-7, 1e-5);
        snprintf(key, sizeof key, "epoch%d.pos_cos", e);
        tu_ref_check_scalar(key, cols[1], refv(&f, key), 1e-7, 1e-5);
    }
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof key, "final.%d", k);
        tu_ref_check(&f, key, layer_param(&net.layers[which[k][0]], which[k][1]), tu_ref_get(&f, key)->n, 1e-6, 1e-5);
    }
    tu_ref_check(&f, "final.running_mean", layer_state(&net.layers[1], 0), 4, 1e-6, 1e-5);
    tu_ref_check(&f, "final.running_var", layer_state(&net.layers[1], 1), 4, 1e-6, 1e-5);
    tu_ref_check(&f, "final.queues", terms[0].state, terms[0].n_state, 1e-6, 1e-5);
    CU_ASSERT_EQUAL(terms[0].counters[0], 1);
    gradsync_free(gs);
    free(dlogits); free(scratch);
    for (int k = 0; k < 2; k++) { free(x[k]); free(xp[k]); }
    terms_free(&tr);
    optim_free(&opt);
    loss_terms_free(terms, n_terms);
    net_free(&twin);
    net_free(&net);
    ini_free(&ini);
    tu_ref_free(&f);
}

// [debias] method = clad on a network whose `feat` gives 6 values, 3 classes.
static void clad_term(Ini *ini, Net *net, LossTerm **terms, const char *keys) {
    MetaSchema schema;
    b_three_class_schema(&schema);
    DfError err;
    char text[512];
    snprintf(text, sizeof text, "[linear]\nout = 6\n[tanh]\nname = feat\n[linear]\nname = fc\nout = 3\n[debias]\nmethod = clad\n%s", keys);
    int n;
    CU_ASSERT_FATAL(ini_parse_string(ini, text, "c.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(net, ini, (Shape){ 3, 1, 1, 1 }, 64, NULL, &schema, &err) == 0);
    CU_ASSERT_FATAL(loss_terms_build(terms, &n, ini, net, &schema, 1, &err) == 0 && n == 1);
    CU_ASSERT_FATAL(ini_check_unused(ini, &err) == 0);
}

// P ranks, each with its share of two global batches in turn: every rank ends with the same
// queues, and each rank's values, logs and gradient rows are bit for bit one rank's.
enum { RB = 11, RD = 6, RSTEPS = 2 };
typedef struct {
    LossTerm *t;
    float *f, *fp;           // (RSTEPS, RB, RD)
    int32_t y[RSTEPS][RB], bg[RSTEPS][RB];
    float *state0;           // the queues before the first step
    float *grad, *gradp;     // (RSTEPS, RB, RD)
    double value[RSTEPS];    // summed over ranks
    float *queues[3];        // each rank's queues at the end
    double logs[3][RSTEPS][TERM_MAX_LOGS];
} CladRanks;

static TuSim g_sim;
static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

static void clad_rank_sim(void *p, int r, int P) {
    CladRanks *a = p;
    LossTerm *t = a->t;
    memcpy(t->state, a->state0, t->n_state * sizeof(float));  // every rank starts as the others
    t->counters[0] = 0;
    if (r == 0) memset(a->value, 0, sizeof a->value);
    int lo, hi;
    tu_share(RB, r, P, &lo, &hi);
    for (int s = 0; s < RSTEPS; s++) {
        size_t o = ((size_t)s * RB + lo) * RD;
        Batch b = { .n = hi - lo, .global_n = RB, .offset = lo, .first_sample = lo, .labels = a->y[s] + lo,
                    .positive_bg = a->bg[s] + lo };
        memset(a->grad + o, 0, sizeof(float) * (size_t)(hi - lo) * RD);
        memset(a->gradp + o, 0, sizeof(float) * (size_t)(hi - lo) * RD);
        a->value[s] += t->ops->forward_backward_pair(t, a->f + o, a->fp + o, &b, a->grad + o, a->gradp + o, 1.0f / RB,
                                                      &g_sim.base, a->logs[r][s]);
    }
    memcpy(a->queues[r], t->state, t->n_state * sizeof(float));
}

static void test_clad_term_ranks(void) {
    Ini ini;
    Net net;
    LossTerm *terms;
    clad_term(&ini, &net, &terms, "layer = feat\nqueue = 3\nlambda = 0.5\n");
    LossTerm *t = &terms[0];
    CU_ASSERT(t->positives && t->n_classes == 3 && t->d == RD && t->n_state == 3 * 3 * RD && t->weight == 0.5);
    Rng rng;
    rng_seed(&rng, 21);
    CladRanks a = { .t = t };
    a.f = tu_rand(RSTEPS * RB * RD, -1, 1, &rng);
    a.fp = tu_rand(RSTEPS * RB * RD, -1, 1, &rng);
    for (int s = 0; s < RSTEPS; s++)
        for (int i = 0; i < RB; i++) {
            a.y[s][i] = (int32_t)rng_below(&rng, 3);
            a.bg[s][i] = (a.y[s][i] + 1 + (int32_t)rng_below(&rng, 2)) % 3;
        }
    a.state0 = calloc(t->n_state, sizeof(float));
    a.grad = calloc(RSTEPS * RB * RD, sizeof(float));
    a.gradp = calloc(RSTEPS * RB * RD, sizeof(float));
    float *ref_g = malloc(sizeof(float) * RSTEPS * RB * RD), *ref_gp = malloc(sizeof(float) * RSTEPS * RB * RD);
    float *ref_q = malloc(sizeof(float) * t->n_state);
    double ref_value[RSTEPS];
    for (int r = 0; r < 3; r++) a.queues[r] = calloc(t->n_state, sizeof(float));
    for (int P = 1; P <= 3; P++) {
        tu_simulate(&g_sim, P, clad_rank_sim, &a);
        if (P == 1) {
            memcpy(ref_g, a.grad, sizeof(float) * RSTEPS * RB * RD);
            memcpy(ref_gp, a.gradp, sizeof(float) * RSTEPS * RB * RD);
            memcpy(ref_q, a.queues[0], sizeof(float) * t->n_state);
            memcpy(ref_value, a.value, sizeof ref_value);
            // the value is lambda times the sum of the rows; the queues changed; the
            // gradient reached both views
            CU_ASSERT(a.value[0] > 0 && memcmp(ref_q, a.state0, sizeof(float) * t->n_state) != 0);
            CU_ASSERT(max_abs(ref_g, RSTEPS * RB * RD) > 0 && max_abs(ref_gp, RSTEPS * RB * RD) > 0);
            continue;
        }
        CU_ASSERT(memcmp(ref_g, a.grad, sizeof(float) * RSTEPS * RB * RD) == 0);
        CU_ASSERT(memcmp(ref_gp, a.gradp, sizeof(float) * RSTEPS * RB * RD) == 0);
        for (int r = 0; r < P; r++) CU_ASSERT(memcmp(ref_q, a.queues[r], sizeof(float) * t->n_state) == 0);
        // per-rank row sums added in another order: equal to double rounding
        for (int s = 0; s < RSTEPS; s++) CU_ASSERT(fabs(a.value[s] - ref_value[s]) <= 1e-14 * ref_value[s]);
    }
    free(a.f); free(a.fp); free(a.state0); free(a.grad); free(a.gradp); free(ref_g); free(ref_gp); free(ref_q);
    for (int r = 0; r < 3; r++) free(a.queues[r]);
    loss_terms_free(terms, 1);
    net_free(&net);
    ini_free(&ini);
}

// The logs: positives equal to their anchors give pos_cos 1 and top1 1 (no random negative is
// as close); positives opposite to them give -1 and 0.
static void test_clad_term_logs(void) {
    Ini ini;
    Net net;
    LossTerm *terms;
    clad_term(&ini, &net, &terms, "layer = feat\nqueue = 3\n");
    enum { B = 6 };
    Rng rng;
    rng_seed(&rng, 5);
    float *a = tu_rand(B * RD, -1, 1, &rng), *neg = malloc(sizeof(float) * B * RD);
    for (int i = 0; i < B * RD; i++) neg[i] = -a[i];
    int32_t y[B] = { 0, 1, 2, 0, 1, 2 }, bg[B] = { 1, 2, 0, 2, 0, 1 };
    Batch b = { .n = B, .global_n = B, .labels = y, .positive_bg = bg };
    double logs[TERM_MAX_LOGS];
    terms[0].ops->forward_backward_pair(&terms[0], a, a, &b, NULL, NULL, 1.0f / B, NULL, logs);
    CU_ASSERT(fabs(logs[0] - 1.0) < 1e-12 && logs[1] == 1.0);
    terms[0].ops->forward_backward_pair(&terms[0], a, neg, &b, NULL, NULL, 1.0f / B, NULL, logs);
    CU_ASSERT(fabs(logs[0] + 1.0) < 1e-12 && logs[1] == 0.0);
    free(a); free(neg);
    loss_terms_free(terms, 1);
    net_free(&net);
    ini_free(&ini);
}

// A task without classes (one class) is refused where [debias] says clad.
static void test_clad_term_errors(void) {
    Ini ini;
    Net net;
    LossTerm *terms = NULL;
    int n = 0;
    DfError err;
    MetaSchema schema;
    memset(&schema, 0, sizeof schema);
    schema.n_classes = 1;
    CU_ASSERT_FATAL(ini_parse_string(&ini, "[linear]\nout = 4\n[tanh]\nname = feat\n[linear]\nout = 1\n[debias]\nmethod = clad\nlayer = feat\n",
                                     "e.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&net, &ini, (Shape){ 3, 1, 1, 1 }, 8, NULL, NULL, &err) == 0);
    CU_ASSERT(loss_terms_build(&terms, &n, &ini, &net, &schema, 1, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "e.ini:8") && tu_contains(err.msg, "CLAD contrasts classes, but the data have 1"));
    ini_free(&ini);
    ini_parse_string(&ini, "[linear]\nout = 4\n[tanh]\nname = feat\n[linear]\nout = 2\n[debias]\nmethod = clad\nlayer = feat\ntemperature = 0\n",
                     "e.ini", &err);
    schema.n_classes = 2;
    CU_ASSERT(loss_terms_build(&terms, &n, &ini, &net, &schema, 1, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "e.ini:10") && tu_contains(err.msg, "temperature"));
    net_free(&net);
    ini_free(&ini);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("clad", NULL, NULL);
    CU_add_test(s, "CLAD queues, loss and gradients against PyTorch", test_clad_reference);
    CU_add_test(s, "CLAD InfoNCE: finite differences", test_clad_fd);
    CU_add_test(s, "CLAD InfoNCE: shares of a batch give the same bits", test_clad_shares);
    CU_add_test(s, "CLAD queues: first fill, FIFO push", test_clad_queues);
    CU_add_test(s, "CLAD term: 1, 2 and 3 ranks, the same queues and bits", test_clad_term_ranks);
    CU_add_test(s, "CLAD term: pos_cos and top1", test_clad_term_logs);
    CU_add_test(s, "CLAD term: configuration errors", test_clad_term_errors);
    CU_add_test(s, "CLAD training steps (twin network, queues, BatchNorm) against PyTorch", test_clad_steps);
    CU_add_test(s, "paste: foreground bit for bit, background from the other", test_paste);
    CU_add_test(s, "paste: a sample's background alone", test_background_only);
    CU_add_test(s, "background variants: pairs and images", test_bg_variants);
    return tu_run_all();
}
