// test_layers.c: gradient checks and reference comparisons for batchnorm3d, linear, dropout,
// flatten, l2norm and the activations, plus their LayerOps tables (build, shapes, errors).
// Every gradient check uses the scalar loss L = sum(out * R) with a random R, so dL/dout = R.
#include "testutil.h"
#include "nn/activation.h"
#include "nn/batchnorm3d.h"
#include "nn/dropout.h"
#include "nn/l2norm.h"
#include "nn/layer.h"
#include "nn/linear.h"
#include "nn/reshape.h"
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *falloc(size_t n) { return df_alloc_floats(n); }

// ---- linear ---------------------------------------------------------------------------------

typedef struct {
    int B, IN, OUT, naive;
    float *inp, *w, *b, *out, *R;  // b may be NULL
} LinCtx;

static void lin_fwd(LinCtx *c) {
    if (c->naive) linear_forward_naive(c->out, c->inp, c->w, c->b, c->B, c->IN, c->OUT);
    else linear_forward(c->out, c->inp, c->w, c->b, c->B, c->IN, c->OUT);
}
static double lin_loss(void *p) {
    LinCtx *c = p;
    lin_fwd(c);
    return tu_dot(c->out, c->R, (size_t)c->B * c->OUT);
}

static void check_linear_grads(int naive, int with_bias) {
    Rng rng;
    rng_seed(&rng, 100 + naive * 2 + with_bias);
    LinCtx c = { 4, 7, 5, naive, NULL, NULL, NULL, NULL, NULL };
    size_t ni = (size_t)c.B * c.IN, nw = (size_t)c.OUT * c.IN, no = (size_t)c.B * c.OUT;
    c.inp = tu_rand(ni, -1, 1, &rng);
    c.w = tu_rand(nw, -1, 1, &rng);
    c.b = with_bias ? tu_rand((size_t)c.OUT, -1, 1, &rng) : NULL;
    c.out = falloc(no);
    c.R = tu_rand(no, -1, 1, &rng);
    float *dinp = falloc(ni), *dw = falloc(nw), *db = falloc((size_t)c.OUT);
    lin_fwd(&c);
    if (naive) linear_backward_naive(dinp, dw, with_bias ? db : NULL, c.R, c.inp, c.w, c.B, c.IN, c.OUT);
    else linear_backward(dinp, dw, with_bias ? db : NULL, c.R, c.inp, c.w, c.B, c.IN, c.OUT);
    const char *tag = naive ? "naive" : "fast";
    char what[64];
    snprintf(what, sizeof what, "linear %s dinp", tag);
    CU_ASSERT(tu_fd_check(lin_loss, &c, c.inp, dinp, ni, ni, 1e-2, 1e-3, 1e-3, what) <= 1.0);
    snprintf(what, sizeof what, "linear %s dweight", tag);
    CU_ASSERT(tu_fd_check(lin_loss, &c, c.w, dw, nw, nw, 1e-2, 1e-3, 1e-3, what) <= 1.0);
    if (with_bias) {
        snprintf(what, sizeof what, "linear %s dbias", tag);
        CU_ASSERT(tu_fd_check(lin_loss, &c, c.b, db, (size_t)c.OUT, (size_t)c.OUT, 1e-2, 1e-3, 1e-3, what) <= 1.0);
    }
    free(c.inp); free(c.w); free(c.b); free(c.out); free(c.R); free(dinp); free(dw); free(db);
}

static void test_linear_grad_fast(void) { check_linear_grads(0, 1); check_linear_grads(0, 0); }
static void test_linear_grad_naive(void) { check_linear_grads(1, 1); check_linear_grads(1, 0); }

// The sgemm path against the loops on odd shapes, including accumulation into non-zero grads.
static void test_linear_fast_vs_naive(void) {
    static const int shapes[][3] = { { 1, 1, 1 }, { 3, 7, 5 }, { 5, 33, 17 }, { 2, 1, 9 }, { 7, 19, 1 } };
    Rng rng;
    rng_seed(&rng, 7);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], IN = shapes[s][1], OUT = shapes[s][2];
        size_t ni = (size_t)B * IN, nw = (size_t)OUT * IN, no = (size_t)B * OUT;
        float *inp = tu_rand(ni, -1, 1, &rng), *w = tu_rand(nw, -1, 1, &rng), *b = tu_rand((size_t)OUT, -1, 1, &rng);
        float *dout = tu_rand(no, -1, 1, &rng);
        float *o1 = falloc(no), *o2 = falloc(no);
        for (int wb = 0; wb < 2; wb++) {
            linear_forward(o1, inp, w, wb ? b : NULL, B, IN, OUT);
            linear_forward_naive(o2, inp, w, wb ? b : NULL, B, IN, OUT);
            TU_ASSERT_CLOSE(o1, o2, no, 1e-5, 1e-5, "linear forward fast vs naive");
        }
        float *di1 = tu_rand(ni, -1, 1, &rng), *dw1 = tu_rand(nw, -1, 1, &rng), *db1 = tu_rand((size_t)OUT, -1, 1, &rng);
        float *di2 = tu_copy(di1, ni), *dw2 = tu_copy(dw1, nw), *db2 = tu_copy(db1, (size_t)OUT);
        linear_backward(di1, dw1, db1, dout, inp, w, B, IN, OUT);
        linear_backward_naive(di2, dw2, db2, dout, inp, w, B, IN, OUT);
        TU_ASSERT_CLOSE(di1, di2, ni, 1e-5, 1e-5, "linear dinp fast vs naive");
        TU_ASSERT_CLOSE(dw1, dw2, nw, 1e-5, 1e-5, "linear dweight fast vs naive");
        TU_ASSERT_CLOSE(db1, db2, (size_t)OUT, 1e-5, 1e-5, "linear dbias fast vs naive");
        // dinp = NULL, dbias = NULL must only touch dweight
        float *dw3 = tu_copy(dw1, nw);
        linear_backward(NULL, dw3, NULL, dout, inp, w, B, IN, OUT);
        linear_backward_naive(NULL, dw1, NULL, dout, inp, w, B, IN, OUT);
        TU_ASSERT_CLOSE(dw3, dw1, nw, 1e-5, 1e-5, "linear dweight without dinp/dbias");
        free(inp); free(w); free(b); free(dout); free(o1); free(o2);
        free(di1); free(dw1); free(db1); free(di2); free(dw2); free(db2); free(dw3);
    }
}

// ---- batchnorm ------------------------------------------------------------------------------

typedef struct {
    int B, C;
    size_t S;
    float eps;
    float *inp, *w, *b, *out, *R, *mean, *rstd, *rm, *rv;
    float rm0, rv0;
} BnCtx;

static double bn_loss(void *p) {
    BnCtx *c = p;
    for (int i = 0; i < c->C; i++) { c->rm[i] = c->rm0; c->rv[i] = c->rv0; }
    batchnorm3d_forward_train(c->out, c->mean, c->rstd, c->rm, c->rv, c->inp, c->w, c->b, c->B, c->C, c->S,
                              c->eps, 0.1f, &reducer_local);
    return tu_dot(c->out, c->R, (size_t)c->B * c->C * c->S);
}

static void bn_ctx_init(BnCtx *c, int B, int C, size_t S, Rng *rng) {
    c->B = B; c->C = C; c->S = S; c->eps = 1e-5f;
    size_t n = (size_t)B * C * S;
    c->inp = tu_rand(n, -2, 2, rng);
    c->w = tu_rand((size_t)C, 0.5f, 1.5f, rng);
    c->b = tu_rand((size_t)C, -0.5f, 0.5f, rng);
    c->out = falloc(n);
    c->R = tu_rand(n, -1, 1, rng);
    c->mean = falloc((size_t)C); c->rstd = falloc((size_t)C);
    c->rm = falloc((size_t)C); c->rv = falloc((size_t)C);
    c->rm0 = 0.25f; c->rv0 = 1.5f;
}
static void bn_ctx_free(BnCtx *c) {
    free(c->inp); free(c->w); free(c->b); free(c->out); free(c->R);
    free(c->mean); free(c->rstd); free(c->rm); free(c->rv);
}

static void check_bn_grads(int B, int C, size_t S, unsigned seed) {
    Rng rng;
    rng_seed(&rng, seed);
    BnCtx c;
    bn_ctx_init(&c, B, C, S, &rng);
    size_t n = (size_t)B * C * S;
    float *dinp = tu_rand(n, -1, 1, &rng), *dw = tu_rand((size_t)C, -1, 1, &rng), *db = tu_rand((size_t)C, -1, 1, &rng);
    // backward accumulates: start from random values and subtract them afterwards
    float *dinp0 = tu_copy(dinp, n), *dw0 = tu_copy(dw, (size_t)C), *db0 = tu_copy(db, (size_t)C);
    bn_loss(&c);
    batchnorm3d_backward(dinp, dw, db, c.R, c.inp, c.mean, c.rstd, c.w, B, C, S, &reducer_local);
    for (size_t i = 0; i < n; i++) dinp[i] -= dinp0[i];
    for (int i = 0; i < C; i++) { dw[i] -= dw0[i]; db[i] -= db0[i]; }
    CU_ASSERT(tu_fd_check(bn_loss, &c, c.inp, dinp, n, 60, 1e-2, 2e-3, 1e-2, "batchnorm dinp") <= 1.0);
    CU_ASSERT(tu_fd_check(bn_loss, &c, c.w, dw, (size_t)C, (size_t)C, 1e-2, 2e-3, 1e-2, "batchnorm dweight") <= 1.0);
    CU_ASSERT(tu_fd_check(bn_loss, &c, c.b, db, (size_t)C, (size_t)C, 1e-2, 2e-3, 1e-2, "batchnorm dbias") <= 1.0);
    bn_ctx_free(&c);
    free(dinp); free(dw); free(db); free(dinp0); free(dw0); free(db0);
}

static void test_bn_grad_3d(void) { check_bn_grads(3, 2, 8, 11); }
static void test_bn_grad_1d(void) { check_bn_grads(6, 4, 1, 12); }

// forward_train against the normalisation computed in double (two-pass), and the running
// statistics against PyTorch's momentum rule with the unbiased variance.
static void test_bn_forward_reference(void) {
    Rng rng;
    rng_seed(&rng, 21);
    int B = 3, C = 3;
    size_t S = 5, n = (size_t)B * C * S;
    for (int offset = 0; offset < 2; offset++) {
        BnCtx c;
        bn_ctx_init(&c, B, C, S, &rng);
        // a large mean with a small spread (raw intensities) must still normalise accurately
        if (offset) for (size_t i = 0; i < n; i++) c.inp[i] = 1000.0f + 0.01f * c.inp[i];
        float momentum = 0.3f;
        for (int i = 0; i < C; i++) { c.rm[i] = c.rm0; c.rv[i] = c.rv0; }
        batchnorm3d_forward_train(c.out, c.mean, c.rstd, c.rm, c.rv, c.inp, c.w, c.b, B, C, S, c.eps, momentum,
                                  &reducer_local);
        float *ref = falloc(n);
        for (int ch = 0; ch < C; ch++) {
            double m = 0.0, v = 0.0, cnt = (double)B * S;
            for (int b = 0; b < B; b++)
                for (size_t i = 0; i < S; i++) m += c.inp[((size_t)b * C + ch) * S + i];
            m /= cnt;
            for (int b = 0; b < B; b++)
                for (size_t i = 0; i < S; i++) {
                    double d = c.inp[((size_t)b * C + ch) * S + i] - m;
                    v += d * d;
                }
            v /= cnt;
            for (int b = 0; b < B; b++)
                for (size_t i = 0; i < S; i++) {
                    size_t k = ((size_t)b * C + ch) * S + i;
                    ref[k] = (float)((c.inp[k] - m) / sqrt(v + c.eps) * c.w[ch] + c.b[ch]);
                }
            float rm = (float)((1.0 - momentum) * c.rm0 + momentum * m);
            float rv = (float)((1.0 - momentum) * c.rv0 + momentum * v * cnt / (cnt - 1.0));
            TU_ASSERT_CLOSE(&c.rm[ch], &rm, 1, 1e-6, 1e-6, "running_mean");
            TU_ASSERT_CLOSE(&c.rv[ch], &rv, 1, 1e-6, 1e-5, "running_var (unbiased)");
            float mf = (float)m, rs = (float)(1.0 / sqrt(v + c.eps));
            TU_ASSERT_CLOSE(&c.mean[ch], &mf, 1, 1e-6, 1e-6, "saved mean");
            TU_ASSERT_CLOSE(&c.rstd[ch], &rs, 1, 1e-6, offset ? 2e-3 : 1e-5, "saved rstd");
        }
        // with the 1000 offset the float input itself only carries ~1e-4 relative spread
        TU_ASSERT_CLOSE(c.out, ref, n, offset ? 2e-2 : 1e-5, 1e-4, "batchnorm forward vs double reference");
        free(ref);
        bn_ctx_free(&c);
    }
}

// Eval mode normalises with the running statistics, not the batch's.
static void test_bn_eval(void) {
    Rng rng;
    rng_seed(&rng, 22);
    int B = 2, C = 3;
    size_t S = 4, n = (size_t)B * C * S;
    BnCtx c;
    bn_ctx_init(&c, B, C, S, &rng);
    for (int i = 0; i < C; i++) { c.rm[i] = 0.1f * (float)(i + 1); c.rv[i] = 0.5f + (float)i; }
    batchnorm3d_forward_eval(c.out, c.inp, c.w, c.b, c.rm, c.rv, B, C, S, c.eps);
    float *ref = falloc(n);
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++)
            for (size_t i = 0; i < S; i++) {
                size_t k = ((size_t)b * C + ch) * S + i;
                ref[k] = (float)((c.inp[k] - c.rm[ch]) / sqrt((double)c.rv[ch] + c.eps) * c.w[ch] + c.b[ch]);
            }
    TU_ASSERT_CLOSE(c.out, ref, n, 1e-6, 1e-5, "batchnorm eval");
    free(ref);
    bn_ctx_free(&c);
}

// Two ranks simulated in one process (testutil.h, tu_simulate): rank 0 has samples [0, B0),
// rank 1 [B0, B0 + B1). The forward and backward of each rank run with the simulated
// reducer; the result must be the one-rank result.
typedef struct {
    const float *inp, *dout, *w, *bias, *rm_init, *rv_init;
    int Bk[2], C;
    size_t S, per;
    float *out, *dinp, *mean[2], *rstd[2], *rm[2], *rv[2], *dw[2], *db[2];
    Reducer *red;
    int calls[2];
} BnRanks;

static void bn_rank(void *p, int r, int P) {
    BnRanks *a = p;
    size_t off = r ? (size_t)a->Bk[0] * a->per : 0, n = (size_t)a->Bk[r] * a->per;
    int C = a->C;
    TuSim *sim = (TuSim *)a->red;
    memcpy(a->rm[r], a->rm_init, sizeof(float) * C);
    memcpy(a->rv[r], a->rv_init, sizeof(float) * C);
    memset(a->dinp + off, 0, n * sizeof(float));
    memset(a->dw[r], 0, sizeof(float) * C);
    memset(a->db[r], 0, sizeof(float) * C);
    batchnorm3d_forward_train(a->out + off, a->mean[r], a->rstd[r], a->rm[r], a->rv[r], a->inp + off, a->w, a->bias, a->Bk[r], C,
                              a->S, 1e-5f, 0.1f, a->red);
    batchnorm3d_backward(a->dinp + off, a->dw[r], a->db[r], a->dout + off, a->inp + off, a->mean[r], a->rstd[r], a->w, a->Bk[r], C,
                         a->S, a->red);
    a->calls[r] = sim->call;
}

static void check_bn_two_ranks(int B0, int B1) {
    Rng rng;
    rng_seed(&rng, 31 + (unsigned)B1);
    int B = B0 + B1, C = 3;
    size_t S = 4, per = (size_t)C * S, n = (size_t)B * per;
    float eps = 1e-5f, mom = 0.1f;
    float *inp = tu_rand(n, -2, 2, &rng), *dout = tu_rand(n, -1, 1, &rng);
    float *w = tu_rand((size_t)C, 0.5f, 1.5f, &rng), *bias = tu_rand((size_t)C, -0.5f, 0.5f, &rng);
    float rm_init[3] = { 0.2f, -0.1f, 0.0f }, rv_init[3] = { 1.0f, 2.0f, 0.5f };

    // one rank, whole batch
    float *out = falloc(n), *mean = falloc((size_t)C), *rstd = falloc((size_t)C);
    float *rm = tu_copy(rm_init, (size_t)C), *rv = tu_copy(rv_init, (size_t)C);
    float *dinp = falloc(n), *dw = falloc((size_t)C), *db = falloc((size_t)C);
    batchnorm3d_forward_train(out, mean, rstd, rm, rv, inp, w, bias, B, C, S, eps, mom, &reducer_local);
    batchnorm3d_backward(dinp, dw, db, dout, inp, mean, rstd, w, B, C, S, &reducer_local);

    // two ranks
    TuSim sim;
    tu_sim_init(&sim, 2);
    BnRanks a = { inp, dout, w, bias, rm_init, rv_init, { B0, B1 }, C, S, per, falloc(n), falloc(n), { 0 }, { 0 }, { 0 },
                  { 0 }, { 0 }, { 0 }, &sim.base, { 0, 0 } };
    for (int k = 0; k < 2; k++) {
        a.mean[k] = falloc((size_t)C); a.rstd[k] = falloc((size_t)C); a.rm[k] = falloc((size_t)C);
        a.rv[k] = falloc((size_t)C); a.dw[k] = falloc((size_t)C); a.db[k] = falloc((size_t)C);
    }
    tu_simulate(&sim, 2, bn_rank, &a);
    // one reduction per forward and one per backward, on every rank, even with no samples
    CU_ASSERT_EQUAL(a.calls[0], 2);
    CU_ASSERT_EQUAL(a.calls[1], 2);
    TU_ASSERT_CLOSE(a.out, out, n, 1e-5, 1e-5, "two-rank batchnorm forward");
    TU_ASSERT_CLOSE(a.dinp, dinp, n, 1e-5, 1e-5, "two-rank batchnorm dinp");
    float dws[3], dbs[3];
    for (int c = 0; c < C; c++) { dws[c] = a.dw[0][c] + a.dw[1][c]; dbs[c] = a.db[0][c] + a.db[1][c]; }
    TU_ASSERT_CLOSE(dws, dw, (size_t)C, 1e-5, 1e-5, "two-rank batchnorm dweight (summed over ranks)");
    TU_ASSERT_CLOSE(dbs, db, (size_t)C, 1e-5, 1e-5, "two-rank batchnorm dbias (summed over ranks)");
    for (int k = 0; k < 2; k++) {
        TU_ASSERT_CLOSE(a.rm[k], rm, (size_t)C, 1e-6, 1e-5, "two-rank running_mean");
        TU_ASSERT_CLOSE(a.rv[k], rv, (size_t)C, 1e-6, 1e-5, "two-rank running_var");
    }
    free(inp); free(dout); free(w); free(bias); free(out); free(mean); free(rstd); free(rm); free(rv);
    free(dinp); free(dw); free(db); free(a.out); free(a.dinp);
    for (int k = 0; k < 2; k++) {
        free(a.mean[k]); free(a.rstd[k]); free(a.dw[k]); free(a.db[k]); free(a.rm[k]); free(a.rv[k]);
    }
}

static void test_bn_two_ranks(void) {
    check_bn_two_ranks(3, 2);  // uneven split
    check_bn_two_ranks(4, 0);  // a rank without samples (last partial batch) still takes part
}

// ---- dropout --------------------------------------------------------------------------------

typedef struct { int B; size_t N; float p; float *inp, *out, *mask, *R; } DropCtx;
static double drop_loss(void *p) {
    DropCtx *c = p;
    // same (seed, step, sample) streams every call: the mask is fixed
    dropout_forward(c->out, c->mask, c->inp, c->B, c->N, c->p, 99, 5, 40);
    return tu_dot(c->out, c->R, (size_t)c->B * c->N);
}

static void test_dropout_grad(void) {
    Rng rng;
    rng_seed(&rng, 41);
    DropCtx c = { 3, 10, 0.4f, NULL, NULL, NULL, NULL };
    size_t n = (size_t)c.B * c.N;
    c.inp = tu_rand(n, -1, 1, &rng); c.out = falloc(n); c.mask = falloc(n); c.R = tu_rand(n, -1, 1, &rng);
    float *dinp = falloc(n);
    drop_loss(&c);
    dropout_backward(dinp, c.R, c.mask, c.B, c.N);
    CU_ASSERT(tu_fd_check(drop_loss, &c, c.inp, dinp, n, n, 1e-2, 1e-4, 1e-3, "dropout dinp") <= 1.0);
    free(c.inp); free(c.out); free(c.mask); free(c.R); free(dinp);
}

static void test_dropout_mask(void) {
    Rng rng;
    rng_seed(&rng, 42);
    int B = 4;
    size_t N = 3000, n = (size_t)B * N;
    float p = 0.3f;
    float *inp = tu_rand(n, 0.5f, 1.0f, &rng), *out = falloc(n), *mask = falloc(n);
    dropout_forward(out, mask, inp, B, N, p, 7, 3, 10);
    size_t zeros = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (mask[i] == 0.0f) zeros++;
        else if (fabsf(mask[i] - 1.0f / (1.0f - p)) > 1e-6f) ok = 0;
        if (out[i] != inp[i] * mask[i]) ok = 0;
    }
    CU_ASSERT(ok);
    double frac = (double)zeros / (double)n;
    CU_ASSERT(fabs(frac - p) < 0.02);
    // Masks depend only on (seed, step, global sample): splitting the batch changes nothing.
    float *out2 = falloc(n), *mask2 = falloc(n);
    dropout_forward(out2, mask2, inp, 1, N, p, 7, 3, 10);
    dropout_forward(out2 + N, mask2 + N, inp + N, 3, N, p, 7, 3, 11);
    CU_ASSERT(memcmp(mask, mask2, n * sizeof(float)) == 0);
    // Samples differ from each other, and another step draws another mask.
    CU_ASSERT(memcmp(mask, mask + N, N * sizeof(float)) != 0);
    dropout_forward(out2, mask2, inp, B, N, p, 7, 4, 10);
    CU_ASSERT(memcmp(mask, mask2, n * sizeof(float)) != 0);
    // p = 0 keeps everything
    dropout_forward(out2, mask2, inp, B, N, 0.0f, 7, 3, 10);
    CU_ASSERT(memcmp(out2, inp, n * sizeof(float)) == 0);
    free(inp); free(out); free(mask); free(out2); free(mask2);
}

// ---- flatten, l2norm, activations -------------------------------------------------------------

typedef struct { int kind; int B, N; float eps, slope; float *inp, *out, *R, *aux; } EwCtx;
enum { EW_FLATTEN, EW_L2NORM, EW_RELU, EW_LEAKY, EW_TANH };

static void ew_fwd(EwCtx *c) {
    size_t n = (size_t)c->B * c->N;
    switch (c->kind) {
    case EW_FLATTEN: flatten_forward(c->out, c->inp, n); break;
    case EW_L2NORM: l2norm_forward(c->out, c->aux, c->inp, c->B, c->N, c->eps); break;
    case EW_RELU: relu_forward(c->out, c->inp, n); break;
    case EW_LEAKY: leaky_relu_forward(c->out, c->inp, n, c->slope); break;
    case EW_TANH: tanh_forward(c->out, c->inp, n); break;
    }
}
static void ew_bwd(EwCtx *c, float *dinp) {
    size_t n = (size_t)c->B * c->N;
    switch (c->kind) {
    case EW_FLATTEN: flatten_backward(dinp, c->R, n); break;
    case EW_L2NORM: l2norm_backward(dinp, c->R, c->out, c->aux, c->B, c->N, c->eps); break;
    case EW_RELU: relu_backward(dinp, c->R, c->inp, n); break;
    case EW_LEAKY: leaky_relu_backward(dinp, c->R, c->inp, n, c->slope); break;
    case EW_TANH: tanh_backward(dinp, c->R, c->out, n); break;
    }
}
static double ew_loss(void *p) {
    EwCtx *c = p;
    ew_fwd(c);
    return tu_dot(c->out, c->R, (size_t)c->B * c->N);
}

// inputs are drawn with |x| in [lo, hi] and a random sign (keeps ReLU's kink out of reach)
static void check_ew(int kind, float lo, float hi, float eps, double h, double atol, double rtol, const char *what) {
    Rng rng;
    rng_seed(&rng, 50 + (unsigned)kind);
    EwCtx c = { kind, 3, 6, eps, 0.2f, NULL, NULL, NULL, NULL };
    size_t n = (size_t)c.B * c.N;
    c.inp = tu_rand(n, lo, hi, &rng);
    for (size_t i = 0; i < n; i++) if (rng_uniform(&rng) < 0.5) c.inp[i] = -c.inp[i];
    c.out = falloc(n); c.R = tu_rand(n, -1, 1, &rng); c.aux = falloc((size_t)c.B);
    float *dinp = tu_rand(n, -1, 1, &rng), *dinp0 = tu_copy(dinp, n);
    ew_fwd(&c);
    ew_bwd(&c, dinp);
    for (size_t i = 0; i < n; i++) dinp[i] -= dinp0[i];  // backward accumulates
    CU_ASSERT(tu_fd_check(ew_loss, &c, c.inp, dinp, n, n, h, atol, rtol, what) <= 1.0);
    free(c.inp); free(c.out); free(c.R); free(c.aux); free(dinp); free(dinp0);
}

static void test_flatten_grad(void) { check_ew(EW_FLATTEN, 0.1f, 1.0f, 0, 1e-2, 1e-4, 1e-3, "flatten"); }
static void test_relu_grad(void) { check_ew(EW_RELU, 0.1f, 1.0f, 0, 1e-2, 1e-4, 1e-3, "relu"); }
static void test_leaky_grad(void) { check_ew(EW_LEAKY, 0.1f, 1.0f, 0, 1e-2, 1e-4, 1e-3, "leaky_relu"); }
static void test_tanh_grad(void) { check_ew(EW_TANH, 0.0f, 2.0f, 0, 1e-2, 1e-3, 1e-2, "tanh"); }

static void test_l2norm(void) {
    check_ew(EW_L2NORM, 0.1f, 1.0f, 1e-12f, 1e-3, 1e-3, 1e-2, "l2norm");
    // clamped: ||x|| < eps, out = x / eps
    check_ew(EW_L2NORM, 1e-5f, 1e-4f, 1e-3f, 1e-6, 1e-3, 1e-3, "l2norm clamped");
    // unit norm per sample, and the saved norm is the unclamped one
    Rng rng;
    rng_seed(&rng, 60);
    int B = 3, N = 7;
    float *x = tu_rand((size_t)B * N, -2, 2, &rng), *y = falloc((size_t)B * N), nrm[3];
    l2norm_forward(y, nrm, x, B, N, 1e-12f);
    for (int b = 0; b < B; b++) {
        double s = 0.0, sx = 0.0;
        for (int i = 0; i < N; i++) { s += (double)y[b * N + i] * y[b * N + i]; sx += (double)x[b * N + i] * x[b * N + i]; }
        CU_ASSERT(fabs(s - 1.0) < 1e-5);
        CU_ASSERT(fabs(nrm[b] - sqrt(sx)) < 1e-5 * sqrt(sx));
    }
    free(x); free(y);
}

// ---- layer tables -----------------------------------------------------------------------------

// Built with the shared fixture (testutil.h, tu_layer_build).

static void test_ops_linear(void) {
    TuLayer fx;
    Shape in = { 2, 3, 2, 2 };  // 24 features per sample
    int rc = tu_layer_build(&fx, "[linear]\nout = 5\ninit = xavier_uniform\n", in, 3, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(ini_check_unused(&fx.ini, &fx.err) == 0);
    CU_ASSERT(fx.L.out_shape.c == 5 && fx.L.out_shape.d == 1 && fx.L.out_shape.h == 1 && fx.L.out_shape.w == 1);
    CU_ASSERT_EQUAL(fx.L.n_params, 5 * 24 + 5);
    CU_ASSERT_EQUAL(fx.L.n_params_info, 2);
    CU_ASSERT(strcmp(fx.L.params_info[0].name, "weight") == 0 && fx.L.params_info[0].ndim == 2 &&
              fx.L.params_info[0].dims[0] == 5 && fx.L.params_info[0].dims[1] == 24);
    CU_ASSERT(strcmp(fx.L.params_info[1].name, "bias") == 0 && fx.L.params_info[1].offset == 120);
    CU_ASSERT_EQUAL(fx.L.n_state, 0);
    // xavier_uniform bound sqrt(6 / (24 + 5)); bias U(+-1/sqrt(24))
    double wb = sqrt(6.0 / 29.0), bb = 1.0 / sqrt(24.0), wmax = 0, bmax = 0;
    for (int i = 0; i < 120; i++) wmax = fmax(wmax, fabs(fx.params[i]));
    for (int i = 120; i < 125; i++) bmax = fmax(bmax, fabs(fx.params[i]));
    CU_ASSERT(wmax <= wb && wmax > 0.5 * wb);
    CU_ASSERT(bmax <= bb && bmax > 0.0);
    // the table calls the plain functions on the flat buffers
    Rng rng;
    rng_seed(&rng, 3);
    tu_fill_uniform(fx.in, 3 * 24, -1, 1, &rng);
    tu_fill_uniform(fx.dout, 3 * 5, -1, 1, &rng);
    tu_layer_forward(&fx, 3, 1);
    float ref[15], din[72] = { 0 }, dw[125] = { 0 };
    linear_forward_naive(ref, fx.in, fx.params, fx.params + 120, 3, 24, 5);
    TU_ASSERT_CLOSE(fx.out, ref, 15, 1e-5, 1e-5, "linear ops forward");
    tu_layer_backward(&fx, 3);
    linear_backward_naive(din, dw, dw + 120, fx.dout, fx.in, fx.params, 3, 24, 5);
    TU_ASSERT_CLOSE(fx.din, din, 72, 1e-5, 1e-5, "linear ops dinp");
    TU_ASSERT_CLOSE(fx.grads, dw, 125, 1e-5, 1e-5, "linear ops grads");
    tu_layer_free(&fx);

    rc = tu_layer_build(&fx, "[linear]\nout = 4\nbias = false\n", (Shape){ 6, 1, 1, 1 }, 2, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(fx.L.n_params, 24);
    CU_ASSERT_EQUAL(fx.L.n_params_info, 1);
    tu_layer_free(&fx);
}

static void test_ops_errors(void) {
    static const struct { const char *text; const char *where; } cases[] = {
        { "[linear]\nbias = false\n", "test.ini:1:" },        // missing out
        { "; c\n[linear]\nout = 0\n", "test.ini:3:" },        // out < 1
        { "[linear]\nout = 3\ninit = magic\n", "test.ini:3:" },
        { "[linear]\nout = 3\nbias = maybe\n", "test.ini:3:" },
        { "[dropout]\np = 1\n", "test.ini:2:" },
        { "[dropout]\np = -0.1\n", "test.ini:2:" },
        { "[batchnorm3d]\neps = 1e-5\nmomentum = 1.5\n", "test.ini:3:" },
        { "[l2norm]\neps = 0\n", "test.ini:2:" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TuLayer fx;
        int rc = tu_layer_build(&fx, cases[i].text, (Shape){ 4, 1, 1, 1 }, 2, NULL, NULL);
        CU_ASSERT_EQUAL(rc, -1);
        if (!strstr(fx.err.msg, cases[i].where)) {
            fprintf(stderr, "  case %zu: expected '%s' in '%s'\n", i, cases[i].where, fx.err.msg);
            CU_FAIL("error does not name file:line");
        }
        tu_layer_free(&fx);
    }
    // the missing-key message names the key
    TuLayer fx;
    tu_layer_build(&fx, "[linear]\n", (Shape){ 4, 1, 1, 1 }, 2, NULL, NULL);
    CU_ASSERT(strstr(fx.err.msg, "'out'") != NULL);
    tu_layer_free(&fx);
}

static void test_ops_batchnorm(void) {
    TuLayer fx;
    Shape in = { 3, 2, 1, 2 };
    int rc = tu_layer_build(&fx, "[batchnorm3d]\nmomentum = 0.2\n", in, 4, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(fx.L.out_shape.c == 3 && fx.L.out_shape.d == 2 && fx.L.out_shape.h == 1 && fx.L.out_shape.w == 2);
    CU_ASSERT_EQUAL(fx.L.n_params, 6);
    CU_ASSERT_EQUAL(fx.L.n_state, 6);
    CU_ASSERT(fx.L.n_params_info == 2 && fx.L.n_state_info == 2);
    CU_ASSERT(strcmp(fx.L.params_info[0].name, "weight") == 0 && strcmp(fx.L.params_info[1].name, "bias") == 0);
    CU_ASSERT(strcmp(fx.L.state_info[0].name, "running_mean") == 0 &&
              strcmp(fx.L.state_info[1].name, "running_var") == 0 && fx.L.state_info[1].offset == 3);
    for (int c = 0; c < 3; c++) {
        CU_ASSERT(fx.params[c] == 1.0f && fx.params[3 + c] == 0.0f);
        CU_ASSERT(fx.state[c] == 0.0f && fx.state[3 + c] == 1.0f);
    }
    Rng rng;
    rng_seed(&rng, 4);
    int B = 3;
    size_t n = (size_t)B * 12;
    tu_fill_uniform(fx.in, n, -1, 3, &rng);
    tu_fill_uniform(fx.params, 6, 0.5f, 1.5f, &rng);
    // training: matches the plain function with momentum 0.2 and eps 1e-5
    float ref[36], mean[3], rstd[3], rm[3] = { 0, 0, 0 }, rv[3] = { 1, 1, 1 };
    batchnorm3d_forward_train(ref, mean, rstd, rm, rv, fx.in, fx.params, fx.params + 3, B, 3, 4, 1e-5f, 0.2f, NULL);
    tu_layer_forward(&fx, B, 1);
    TU_ASSERT_CLOSE(fx.out, ref, n, 1e-6, 1e-6, "batchnorm ops train forward");
    TU_ASSERT_CLOSE(fx.state, rm, 3, 1e-7, 1e-6, "batchnorm ops running_mean");
    TU_ASSERT_CLOSE(fx.state + 3, rv, 3, 1e-7, 1e-6, "batchnorm ops running_var");
    // eval: the running statistics
    tu_layer_forward(&fx, B, 0);
    batchnorm3d_forward_eval(ref, fx.in, fx.params, fx.params + 3, fx.state, fx.state + 3, B, 3, 4, 1e-5f);
    TU_ASSERT_CLOSE(fx.out, ref, n, 1e-6, 1e-6, "batchnorm ops eval forward");
    tu_layer_free(&fx);
}

// The eval-mode backward (a fixed affine map), through the table, by finite differences.
typedef struct { TuLayer *fx; float *R; size_t n; int B; } BnOpsCtx;
static double bn_ops_eval_loss(void *p) {
    BnOpsCtx *c = p;
    tu_layer_forward(c->fx, c->B, 0);
    return tu_dot(c->fx->out, c->R, c->n);
}

static void test_ops_batchnorm_eval_grad(void) {
    TuLayer fx;
    int rc = tu_layer_build(&fx, "[batchnorm3d]\n", (Shape){ 2, 1, 1, 3 }, 2, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    Rng rng;
    rng_seed(&rng, 5);
    int B = 2;
    size_t n = (size_t)B * 6;
    tu_fill_uniform(fx.in, n, -1, 1, &rng);
    tu_fill_uniform(fx.params, 4, 0.5f, 1.5f, &rng);
    fx.state[0] = 0.3f; fx.state[1] = -0.2f; fx.state[2] = 0.7f; fx.state[3] = 2.0f;
    float R[12];
    tu_fill_uniform(R, n, -1, 1, &rng);
    memcpy(fx.dout, R, sizeof R);
    BnOpsCtx c = { &fx, R, n, B };
    bn_ops_eval_loss(&c);
    tu_layer_backward(&fx, B);
    CU_ASSERT(tu_fd_check(bn_ops_eval_loss, &c, fx.in, fx.din, n, n, 1e-2, 1e-4, 1e-3, "batchnorm eval dinp") <= 1.0);
    CU_ASSERT(tu_fd_check(bn_ops_eval_loss, &c, fx.params, fx.grads, 4, 4, 1e-2, 1e-4, 1e-3, "batchnorm eval grads") <= 1.0);
    tu_layer_free(&fx);
}

static void test_ops_dropout_flatten_l2norm(void) {
    Rng rng;
    rng_seed(&rng, 6);
    TuLayer fx;
    Shape in = { 2, 2, 2, 2 };
    int B = 3;
    size_t n = (size_t)B * 16;

    int rc = tu_layer_build(&fx, "[dropout]\np = 0.25\n", in, 4, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(fx.L.n_params == 0 && fx.L.out_shape.c == 2 && fx.L.out_shape.w == 2);
    tu_fill_uniform(fx.in, n, 0.5f, 1, &rng);
    tu_fill_uniform(fx.dout, n, 0.5f, 1, &rng);
    tu_layer_forward(&fx, B, 0);  // eval: identity, and so is its backward
    CU_ASSERT(memcmp(fx.out, fx.in, n * sizeof(float)) == 0);
    tu_layer_backward(&fx, B);
    CU_ASSERT(memcmp(fx.din, fx.dout, n * sizeof(float)) == 0);
    tu_layer_forward(&fx, B, 1);
    int dropped = 0, ok = 1;
    memset(fx.din, 0, n * sizeof(float));
    tu_layer_backward(&fx, B);
    for (size_t i = 0; i < n; i++) {
        if (fx.out[i] == 0.0f) { dropped++; ok &= fx.din[i] == 0.0f; }
        else ok &= fabsf(fx.out[i] - fx.in[i] / 0.75f) < 1e-6f && fabsf(fx.din[i] - fx.dout[i] / 0.75f) < 1e-6f;
    }
    CU_ASSERT(ok);
    CU_ASSERT(dropped > 0 && dropped < (int)n);
    // another dropout layer (another name) draws another mask for the same samples and step
    float *out1 = tu_copy(fx.out, n);
    snprintf(fx.L.name, sizeof fx.L.name, "dropout2");
    fx.L.ops->destroy(&fx.L);
    fx.L.impl = NULL;
    fx.L.ops->build(&fx.L, &fx.ini, &fx.ini.sections[0], &fx.err);
    tu_layer_forward(&fx, B, 1);
    CU_ASSERT(memcmp(out1, fx.out, n * sizeof(float)) != 0);
    free(out1);
    tu_layer_free(&fx);

    rc = tu_layer_build(&fx, "[flatten]\n", in, 4, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(fx.L.out_shape.c == 16 && fx.L.out_shape.d == 1 && fx.L.out_shape.h == 1 && fx.L.out_shape.w == 1);
    tu_fill_uniform(fx.in, n, -1, 1, &rng);
    tu_layer_forward(&fx, B, 1);
    CU_ASSERT(memcmp(fx.out, fx.in, n * sizeof(float)) == 0);
    tu_layer_free(&fx);

    rc = tu_layer_build(&fx, "[l2norm]\n", (Shape){ 8, 1, 1, 1 }, 4, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(fx.L.out_shape.c == 8 && fx.L.n_params == 0);
    tu_fill_uniform(fx.in, 24, -1, 1, &rng);
    tu_layer_forward(&fx, B, 1);
    float ref[24], nrm[3];
    l2norm_forward(ref, nrm, fx.in, B, 8, 1e-12f);
    TU_ASSERT_CLOSE(fx.out, ref, 24, 1e-7, 1e-6, "l2norm ops forward");
    tu_layer_free(&fx);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("linear", NULL, NULL);
    CU_add_test(s, "gradients (sgemm)", test_linear_grad_fast);
    CU_add_test(s, "gradients (naive)", test_linear_grad_naive);
    CU_add_test(s, "fast vs naive, odd shapes", test_linear_fast_vs_naive);
    s = CU_add_suite("batchnorm3d", NULL, NULL);
    CU_add_test(s, "gradients, 3D", test_bn_grad_3d);
    CU_add_test(s, "gradients, 1D (S = 1)", test_bn_grad_1d);
    CU_add_test(s, "forward and running stats vs double reference", test_bn_forward_reference);
    CU_add_test(s, "eval uses running stats", test_bn_eval);
    CU_add_test(s, "two ranks equal one", test_bn_two_ranks);
    s = CU_add_suite("dropout", NULL, NULL);
    CU_add_test(s, "gradient with fixed mask", test_dropout_grad);
    CU_add_test(s, "mask values and streams", test_dropout_mask);
    s = CU_add_suite("elementwise", NULL, NULL);
    CU_add_test(s, "flatten", test_flatten_grad);
    CU_add_test(s, "relu", test_relu_grad);
    CU_add_test(s, "leaky_relu", test_leaky_grad);
    CU_add_test(s, "tanh", test_tanh_grad);
    CU_add_test(s, "l2norm", test_l2norm);
    s = CU_add_suite("layer tables", NULL, NULL);
    CU_add_test(s, "linear build/forward/backward", test_ops_linear);
    CU_add_test(s, "config errors name file:line", test_ops_errors);
    CU_add_test(s, "batchnorm3d build/train/eval", test_ops_batchnorm);
    CU_add_test(s, "batchnorm3d eval-mode gradients", test_ops_batchnorm_eval_grad);
    CU_add_test(s, "dropout, flatten, l2norm", test_ops_dropout_flatten_l2norm);
    return tu_run_all();
}
