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
#include "nn/clad.h"
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
        // every voxel: the sample's own inside its mask; outside, the partner's (or the fill)
        bg_variant_images(img, &c, (BgVariant)v, partner, -5.0f);
        int bad = 0;
        for (int i = 0; i < N; i++)
            for (size_t k = 0; k < numel; k++) {
                const float *want = c.images + (size_t)i * numel + k;
                int fg = c.masks[(size_t)i * sp + k % sp] != 0;
                if (!fg && v != BG_ORIGINAL && v != BG_ONLY_BG) want = c.images + (size_t)partner[i] * numel + k;
                float got = img[(size_t)i * numel + k];
                bad += v == BG_ONLY_BG && fg ? got != -5.0f : memcmp(&got, want, sizeof got) != 0;
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

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("clad", NULL, NULL);
    CU_add_test(s, "CLAD queues, loss and gradients against PyTorch", test_clad_reference);
    CU_add_test(s, "CLAD InfoNCE: finite differences", test_clad_fd);
    CU_add_test(s, "CLAD InfoNCE: shares of a batch give the same bits", test_clad_shares);
    CU_add_test(s, "CLAD queues: first fill, FIFO push", test_clad_queues);
    CU_add_test(s, "paste: foreground bit for bit, background from the other", test_paste);
    CU_add_test(s, "background variants: pairs and images", test_bg_variants);
    return tu_run_all();
}
