// test_mdn.c: Metadata Normalization (src/mdn.c) and its design rows (src/metadata.c).
//   - residuals equal an ordinary least-squares fit solved here independently (double,
//     Gauss-Jordan on the normal equations), batch kernel and dataset kernel with N = B;
//   - backward against central finite differences (loss = sum(out * R)), both kernel modes,
//     plain functions and the layer table;
//   - categorical coding, unknown columns, unknown levels;
//   - singular designs (a level with no training subjects, collinear columns) name the
//     column and suggest kernel = batch; kernel = batch (a pseudo-inverse) fits collinear
//     columns and a global batch without a level as OLS on the columns present, backward
//     included; ridge > 0 gives the ridge fit;
//   - evaluation uses the running beta (exponential average of the per-step betas);
//   - 2 and 3 simulated ranks (a fake Reducer, see `simulate`) give the one-rank residuals,
//     input gradients, parameter gradients and running beta, for the layer and a whole net;
//   - PyTorch reference numbers (tests/gen_mdn_ref.py -> tests/ref/mdn_*.txt);
//   - the checkpoint holds the MDN state; missing metadata is a clear error.
#include "testutil.h"
#include "data/checkpoint.h"
#include "nn/layer.h"
#include "nn/mdn.h"
#include "data/cohort.h"
#include "nn/metadata.h"
#include "nn/net.h"
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- independent reference: least squares in double ---------------------------------------

// beta (k,d) = (X^T X + ridge I)^-1 X^T F by Gauss-Jordan elimination with partial pivoting on
// the normal equations. X (n,k) double, F (n,d) float.
static void ols_ref(double *beta, const double *X, const float *F, int n, int k, int d, double ridge) {
    int w = k + d;
    double *A = calloc((size_t)k * w, sizeof(double));  // [X^T X | X^T F]
    for (int a = 0; a < k; a++) {
        for (int b = 0; b < k; b++)
            for (int i = 0; i < n; i++) A[a * w + b] += X[i * k + a] * X[i * k + b];
        A[a * w + a] += ridge;
        for (int j = 0; j < d; j++)
            for (int i = 0; i < n; i++) A[a * w + k + j] += X[i * k + a] * (double)F[(size_t)i * d + j];
    }
    for (int c = 0; c < k; c++) {
        int p = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(A[r * w + c]) > fabs(A[p * w + c])) p = r;
        for (int j = 0; j < w; j++) { double t = A[c * w + j]; A[c * w + j] = A[p * w + j]; A[p * w + j] = t; }
        double piv = A[c * w + c];
        for (int j = 0; j < w; j++) A[c * w + j] /= piv;
        for (int r = 0; r < k; r++) {
            if (r == c) continue;
            double f = A[r * w + c];
            for (int j = 0; j < w; j++) A[r * w + j] -= f * A[c * w + j];
        }
    }
    for (int a = 0; a < k; a++)
        for (int j = 0; j < d; j++) beta[(size_t)a * d + j] = A[a * w + k + j];
    free(A);
}

// out (n,d) = F - X_S beta_S in double.
static void residual_ref(double *out, const float *F, const double *X, const double *beta, const unsigned char *removed,
                         int n, int k, int d) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double v = F[(size_t)i * d + j];
            for (int a = 0; a < k; a++)
                if (removed[a]) v -= X[i * k + a] * beta[(size_t)a * d + j];
            out[(size_t)i * d + j] = v;
        }
}

// Worst |got - want| / (atol + rtol |want|), printing the worst entry when > 1.
static double ratio_d(const char *what, const float *got, const double *want, size_t n, double atol, double rtol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (isnan(r)) r = INFINITY;
        if (r > worst) { worst = r; wi = i; }
    }
    if (worst > 1) fprintf(stderr, "  %s: mismatch at %zu: %.9g vs %.9g (ratio %.3g)\n", what, wi, got[wi], want[wi], worst);
    return worst;
}
static double ratio_dd(const char *what, const double *got, const double *want, size_t n, double atol, double rtol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs(got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (isnan(r)) r = INFINITY;
        if (r > worst) { worst = r; wi = i; }
    }
    if (worst > 1) fprintf(stderr, "  %s: mismatch at %zu: %.17g vs %.17g (ratio %.3g)\n", what, wi, got[wi], want[wi], worst);
    return worst;
}

// ---- cohorts and schemas --------------------------------------------------------------------

// A cohort of metadata only (no images): what meta_schema_build reads.
static void cohort_of(Cohort *c, int n, int k, const char *const *names, const MetaKind *kinds, double *meta, int32_t *labels) {
    memset(c, 0, sizeof *c);
    c->n = n;
    c->k = k;
    c->meta = meta;
    c->labels = labels;
    for (int j = 0; j < k; j++) { c->columns[j] = (char *)names[j]; c->kinds[j] = kinds[j]; }
}

static const char *const AS_NAMES[] = { "age", "site" };
static const MetaKind AS_KINDS[] = { META_CONTINUOUS, META_CATEGORICAL };
static const double SITES[] = { 0, 2, 5 };

// n rows of [age, site] with site cycling through {0, 2, 5} (every site present when n >= 3)
// and labels random 0/1.
static void random_rows(double *meta, int32_t *labels, int n, Rng *rng) {
    int off = (int)rng_below(rng, 3);
    for (int i = 0; i < n; i++) {
        meta[i * 2] = rng_uniformf(rng, 20, 80);
        meta[i * 2 + 1] = SITES[(i + off) % 3];
        labels[i] = (int32_t)rng_below(rng, 2);
    }
}

// The schema of age (continuous) and site (levels 0, 2, 5), binary label.
static void age_site_schema(MetaSchema *s) {
    double meta[] = { 30, 0, 40, 2, 50, 5, 60, 0 };
    int32_t labels[] = { 0, 1, 1, 0 };
    Cohort c;
    cohort_of(&c, 4, 2, AS_NAMES, AS_KINDS, meta, labels);
    DfError err;
    CU_ASSERT_FATAL(meta_schema_build(s, &c, &err) == 0);
}

// Design rows (n,k) of raw rows.
static void design_rows(double *X, const MetaDesign *d, const MetaSchema *s, const double *meta, const int32_t *labels, int n) {
    for (int i = 0; i < n; i++) CU_ASSERT(meta_design_row(d, s, meta + (size_t)i * s->n_cols, labels[i], X + (size_t)i * d->k) == 0);
}

// ---- a fake Reducer that simulates P ranks in one process ----------------------------------
// A rank's computation is run once per simulated rank. The reductions it makes are numbered
// in call order (the same on every rank). Pass p sums every rank's buffer of call p
// ("record"), returns the known totals for calls < p ("replay"), and leaves later calls
// alone (their results are garbage in that pass, and discarded). Passes repeat until a pass
// records nothing: then every reduction returned the true total, as on P real ranks, even
// when a later reduction's input depends on an earlier one's result (two MDN layers).

#define FAKE_MAX_CALLS 64
typedef struct {
    Reducer base;  // first: the layer sees a Reducer *
    int known, call, recorded;
    double *tot[FAKE_MAX_CALLS];
    size_t n[FAKE_MAX_CALLS];
} FakeRed;

static void fake_sum_f64(Reducer *r, double *buf, size_t n) {
    FakeRed *f = (FakeRed *)r;
    int i = f->call++;
    if (i >= FAKE_MAX_CALLS) { CU_FAIL("too many reductions"); return; }
    if (i < f->known) {
        CU_ASSERT(f->n[i] == n);
        memcpy(buf, f->tot[i], n * sizeof(double));
    } else if (i == f->known) {
        if (!f->tot[i]) { f->tot[i] = calloc(n, sizeof(double)); f->n[i] = n; }
        CU_ASSERT(f->n[i] == n);
        for (size_t j = 0; j < n; j++) f->tot[i][j] += buf[j];
        f->recorded = 1;
    }
}

static void fake_sum_f32(Reducer *r, float *buf, size_t n) {
    double *t = malloc((n ? n : 1) * sizeof(double));
    for (size_t j = 0; j < n; j++) t[j] = buf[j];
    fake_sum_f64(r, t, n);
    for (size_t j = 0; j < n; j++) buf[j] = (float)t[j];
    free(t);
}

static void fake_init(FakeRed *f, int P) {
    memset(f, 0, sizeof *f);
    f->base.sum_f64 = fake_sum_f64;
    f->base.sum_f32 = fake_sum_f32;
    f->base.nranks = P;
}

static void fake_reset(FakeRed *f) {
    for (int i = 0; i < FAKE_MAX_CALLS; i++) { free(f->tot[i]); f->tot[i] = NULL; f->n[i] = 0; }
    f->known = f->call = f->recorded = 0;
}

typedef void (*RankFn)(void *arg, int rank, int P);

// Runs fn(arg, r, P) for r = 0..P-1 until every reduction is resolved (see above); fn must
// restore any state it changes (running statistics) at its start so that passes repeat.
static void simulate(FakeRed *f, int P, RankFn fn, void *arg) {
    fake_reset(f);
    f->base.nranks = P;
    for (;;) {
        f->recorded = 0;
        for (int r = 0; r < P; r++) { f->call = 0; fn(arg, r, P); }
        if (!f->recorded) break;
        f->known++;
    }
    fake_reset(f);
}

// The share [lo, hi) of n samples of rank r of P (the loader's uneven split).
static void share(int n, int r, int P, int *lo, int *hi) {
    *lo = (int)((long)n * r / P);
    *hi = (int)((long)n * (r + 1) / P);
}

// ---- layer fixture --------------------------------------------------------------------------

typedef struct {
    Ini ini;
    DfError err;
    NetCtx ctx;
    Layer L;
    float *in, *out, *din, *dout, *state;
} Fx;

// Builds an [mdn] layer from INI text for inputs of d features. 0, or -1 with fx->err.
static int fx_build(Fx *fx, const char *text, const MetaSchema *schema, int d, int max_batch, Reducer *red) {
    memset(fx, 0, sizeof *fx);
    if (ini_parse_string(&fx->ini, text, "test.ini", &fx->err)) return -1;
    fx->ctx.reducer = red ? red : &reducer_local;
    fx->ctx.max_batch = max_batch;
    fx->ctx.meta_schema = schema;
    fx->L.ops = &mdn_ops;
    snprintf(fx->L.name, sizeof fx->L.name, "mdn1");
    fx->L.in_shape = (Shape){ d, 1, 1, 1 };
    fx->L.ctx = &fx->ctx;
    if (mdn_ops.build(&fx->L, &fx->ini, &fx->ini.sections[0], &fx->err)) return -1;
    size_t n = (size_t)max_batch * d;
    fx->in = df_alloc_floats(n); fx->out = df_alloc_floats(n);
    fx->din = df_alloc_floats(n); fx->dout = df_alloc_floats(n);
    fx->state = df_alloc_floats(fx->L.n_state);
    fx->L.in = fx->in; fx->L.out = fx->out; fx->L.din = fx->din; fx->L.dout = fx->dout;
    fx->L.state = fx->state;
    Rng rng;
    rng_seed(&rng, 1);
    mdn_ops.init(&fx->L, &rng);
    return 0;
}

static void fx_free(Fx *fx) {
    if (fx->L.impl) mdn_ops.destroy(&fx->L);
    free(fx->in); free(fx->out); free(fx->din); free(fx->dout); free(fx->state);
    ini_free(&fx->ini);
}

// k of the layer (design columns) and the removed flags, from the layer's own design.
static MetaDesign fx_design(const MetaSchema *s, const char *keep, const char *remove) {
    MetaDesign d;
    DfError err;
    CU_ASSERT(meta_design_build(&d, s, keep, remove, "test", &err) == 0);
    return d;
}

// ---- 1. residuals are an OLS fit --------------------------------------------------------------

static void test_ols_residuals(void) {
    enum { B = 12, D = 6 };
    Rng rng;
    rng_seed(&rng, 11);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = fx_design(&s, "label", "age, site");
    int k = des.k;
    CU_ASSERT_EQUAL_FATAL(k, 5);  // label, age, site=2, site=5, intercept
    double meta[B * 2], X[B * 5];
    int32_t labels[B];
    random_rows(meta, labels, B, &rng);
    design_rows(X, &des, &s, meta, labels, B);
    float *F = tu_rand((size_t)B * D, -1, 1, &rng), out[B * D];
    for (int i = 0; i < B; i++)  // a real confounder effect to remove
        for (int j = 0; j < D; j++) F[i * D + j] += 0.05f * (float)meta[i * 2] + (float)(j + 1) * (float)X[i * k + 3];
    double beta_ref[5 * D], r_ref[B * D], beta[5 * D], K[25], XtX[25] = { 0 };
    ols_ref(beta_ref, X, F, B, k, D, 0.0);
    residual_ref(r_ref, F, X, beta_ref, des.removed, B, k, D);

    // plain functions: K from the batch, s = 1
    mdn_accumulate_xtx(XtX, X, B, k);
    int bad = -1;
    CU_ASSERT_FATAL(mdn_inverse_spd(K, XtX, k, &bad) == 0);
    double sc = mdn_forward_train(out, beta, F, X, K, des.removed, B, k, D, 0.0, &reducer_local);
    CU_ASSERT_DOUBLE_EQUAL(sc, 1.0, 0);
    CU_ASSERT(ratio_dd("beta = (X^T X)^-1 X^T F", beta, beta_ref, (size_t)k * D, 1e-9, 1e-7) <= 1);
    CU_ASSERT(ratio_d("residual (plain, batch kernel)", out, r_ref, (size_t)B * D, 1e-5, 1e-5) <= 1);

    // the layer, kernel = batch, ridge 0
    Fx fx;
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = age, site\nkernel = batch\n", &s, D, B, NULL) == 0);
    CU_ASSERT_EQUAL(fx.L.n_state, (size_t)(k * k + k * D));
    CU_ASSERT(mdn_ops.prepare(&fx.L, meta, labels, B, &fx.err) == 0);
    memcpy(fx.in, F, sizeof(float) * B * D);
    fx.ctx.batch_meta = meta;
    fx.ctx.batch_labels = labels;
    mdn_ops.forward(&fx.L, B, 1);
    CU_ASSERT(ratio_d("residual (layer, batch kernel)", fx.out, r_ref, (size_t)B * D, 1e-5, 1e-5) <= 1);
    fx_free(&fx);

    // the layer, kernel = dataset, the training set being this very batch (N = B, s = 1)
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = age, site\n", &s, D, B, NULL) == 0);
    CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, B, &fx.err) == 0);
    memcpy(fx.in, F, sizeof(float) * B * D);
    fx.ctx.batch_meta = meta;
    fx.ctx.batch_labels = labels;
    mdn_ops.forward(&fx.L, B, 1);
    CU_ASSERT(ratio_d("residual (layer, dataset kernel, N = B)", fx.out, r_ref, (size_t)B * D, 1e-5, 1e-5) <= 1);
    // the kernel state is (X^T X)^-1
    float Kf[25];
    for (int i = 0; i < 25; i++) Kf[i] = fx.state[i];
    CU_ASSERT(ratio_d("kernel state", Kf, K, 25, 1e-12, 1e-6) <= 1);
    fx_free(&fx);

    // the plain function in dataset mode with a different N: beta scales by N / B
    double beta2[5 * D];
    sc = mdn_forward_train(out, beta2, F, X, K, des.removed, B, k, D, 3.0 * B, &reducer_local);
    CU_ASSERT_DOUBLE_EQUAL(sc, 3.0, 1e-15);
    for (int i = 0; i < k * D; i++) beta_ref[i] *= 3.0;
    CU_ASSERT(ratio_dd("beta, N = 3B", beta2, beta_ref, (size_t)k * D, 1e-9, 1e-7) <= 1);
    free(F);
}

// Features wider than the column tiles of src/mdn.c (1024): residuals against OLS, and the
// input gradient against g_j - x_j M^T H computed here in double.
static void test_wide_features(void) {
    enum { B = 7, D = 2500 };
    Rng rng;
    rng_seed(&rng, 17);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = fx_design(&s, "label", "age, site");
    int k = des.k;
    double meta[B * 2], X[B * 5], XtX[25] = { 0 }, K[25];
    int32_t labels[B];
    random_rows(meta, labels, B, &rng);
    design_rows(X, &des, &s, meta, labels, B);
    mdn_accumulate_xtx(XtX, X, B, k);
    int bad;
    CU_ASSERT_FATAL(mdn_inverse_spd(K, XtX, k, &bad) == 0);
    float *F = tu_rand((size_t)B * D, -1, 1, &rng), *R = tu_rand((size_t)B * D, -1, 1, &rng);
    float *out = df_alloc_floats((size_t)B * D), *din = df_alloc_floats((size_t)B * D);
    double *beta = malloc(sizeof(double) * k * D), *bref = malloc(sizeof(double) * k * D);
    double *want = malloc(sizeof(double) * B * D), *H = calloc((size_t)k * D, sizeof(double));
    ols_ref(bref, X, F, B, k, D, 0.0);
    residual_ref(want, F, X, bref, des.removed, B, k, D);
    double sc = mdn_forward_train(out, beta, F, X, K, des.removed, B, k, D, 0, &reducer_local);
    CU_ASSERT(ratio_d("wide residuals", out, want, (size_t)B * D, 1e-5, 1e-5) <= 1);
    mdn_backward(din, R, X, K, des.removed, B, k, D, sc, &reducer_local);
    for (int i = 0; i < B; i++)
        for (int a = 0; a < k; a++)
            if (des.removed[a])
                for (int j = 0; j < D; j++) H[a * D + j] += X[i * k + a] * R[(size_t)i * D + j];
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++) {
            double v = R[(size_t)i * D + j];
            for (int c = 0; c < k; c++)
                for (int a = 0; a < k; a++)
                    if (des.removed[a]) v -= X[i * k + c] * sc * K[a * k + c] * H[a * D + j];
            want[(size_t)i * D + j] = v;
        }
    CU_ASSERT(ratio_d("wide input gradient", din, want, (size_t)B * D, 1e-5, 1e-5) <= 1);
    free(F); free(R); free(out); free(din); free(beta); free(bref); free(want); free(H);
}

// ---- 2. finite differences ------------------------------------------------------------------

typedef struct {
    float *F, *out, *R;
    const double *X, *K;
    const unsigned char *removed;
    int B, k, d;
    double n_train;
    Fx *fx;  // layer mode when set
} FdCtx;

static double fd_loss(void *p) {
    FdCtx *c = p;
    if (c->fx) {
        c->fx->L.ops->forward(&c->fx->L, c->B, 1);
        return tu_dot(c->fx->out, c->R, (size_t)c->B * c->d);
    }
    double *beta = malloc(sizeof(double) * c->k * c->d);
    mdn_forward_train(c->out, beta, c->F, c->X, c->K, c->removed, c->B, c->k, c->d, c->n_train, &reducer_local);
    free(beta);
    return tu_dot(c->out, c->R, (size_t)c->B * c->d);
}

static void test_backward_fd(void) {
    enum { B = 9, D = 4, N = 40 };
    Rng rng;
    rng_seed(&rng, 21);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = fx_design(&s, "label", "age, site");
    int k = des.k;
    double meta[N * 2], X[N * 5], K[25];
    int32_t labels[N];
    random_rows(meta, labels, N, &rng);
    design_rows(X, &des, &s, meta, labels, N);
    float *F = tu_rand((size_t)B * D, -2, 2, &rng), *R = tu_rand((size_t)B * D, -1, 1, &rng);
    float out[B * D], din[B * D];
    double beta[5 * D];
    for (int mode = 0; mode < 2; mode++) {
        // mode 0: batch kernel from the batch's rows (depends on X only, not on F);
        // mode 1: dataset kernel of N training rows, fixed, s = N / B.
        double XtX[25] = { 0 };
        mdn_accumulate_xtx(XtX, X, mode ? N : B, k);
        int bad;
        CU_ASSERT_FATAL(mdn_inverse_spd(K, XtX, k, &bad) == 0);
        double n_train = mode ? N : 0;
        double sc = mdn_forward_train(out, beta, F, X, K, des.removed, B, k, D, n_train, &reducer_local);
        CU_ASSERT_DOUBLE_EQUAL(sc, mode ? (double)N / B : 1.0, 1e-15);
        for (int i = 0; i < B * D; i++) din[i] = 0.25f;  // backward accumulates
        mdn_backward(din, R, X, K, des.removed, B, k, D, sc, &reducer_local);
        for (int i = 0; i < B * D; i++) din[i] -= 0.25f;
        FdCtx c = { F, out, R, X, K, des.removed, B, k, D, n_train, NULL };
        // MDN is linear in F: a large step has no truncation error, only rounding
        CU_ASSERT(tu_fd_check(fd_loss, &c, F, din, (size_t)B * D, (size_t)B * D, 0.25, 1e-4, 1e-4,
                              mode ? "plain dataset kernel dinp" : "plain batch kernel dinp") <= 1.0);
    }
    // the layer table, both modes (dataset: prepared on the N rows)
    for (int mode = 0; mode < 2; mode++) {
        Fx fx;
        CU_ASSERT_FATAL(fx_build(&fx, mode ? "[mdn]\nremove = age, site\n" : "[mdn]\nremove = age,site\nkernel = batch\n", &s, D, B,
                                 NULL) == 0);
        CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, N, &fx.err) == 0);
        memcpy(fx.in, F, sizeof(float) * B * D);
        memcpy(fx.dout, R, sizeof(float) * B * D);
        fx.ctx.batch_meta = meta;
        fx.ctx.batch_labels = labels;
        mdn_ops.forward(&fx.L, B, 1);
        mdn_ops.backward(&fx.L, B);
        FdCtx c = { NULL, NULL, R, NULL, NULL, NULL, B, k, D, 0, &fx };
        CU_ASSERT(tu_fd_check(fd_loss, &c, fx.in, fx.din, (size_t)B * D, (size_t)B * D, 0.25, 1e-4, 1e-4,
                              mode ? "layer dataset kernel din" : "layer batch kernel din") <= 1.0);
        fx_free(&fx);
    }
    free(F); free(R);
}

// ---- 3. categorical coding ------------------------------------------------------------------

static void test_categorical(void) {
    static const char *const names[] = { "age", "site", "sex" };
    static const MetaKind kinds[] = { META_CONTINUOUS, META_CATEGORICAL, META_CATEGORICAL };
    double meta[] = { 30, 5, 1, 40, 0, 0, 50, 2, 1, 60, 5, 0, 70, 0, 1 };
    int32_t bin[] = { 0, 1, 1, 0, 1 }, multi[] = { 0, 2, 1, 2, 0 };
    Cohort c;
    MetaSchema s;
    DfError err;
    cohort_of(&c, 5, 3, names, kinds, meta, bin);
    CU_ASSERT_FATAL(meta_schema_build(&s, &c, &err) == 0);
    CU_ASSERT_EQUAL(s.n_levels[1], 3);
    CU_ASSERT(s.levels[1][0] == 0 && s.levels[1][1] == 2 && s.levels[1][2] == 5);
    CU_ASSERT_EQUAL(s.n_classes, 2);

    MetaDesign d;
    CU_ASSERT_FATAL(meta_design_build(&d, &s, "label", "site, age", "cfg", &err) == 0);
    // [label, site=2, site=5, age, intercept]
    CU_ASSERT_EQUAL_FATAL(d.k, 5);
    const char *want[] = { "label", "site=2", "site=5", "age", "intercept" };
    const unsigned char rem[] = { 0, 1, 1, 1, 1 };
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_STRING_EQUAL(d.names[i], want[i]);
        CU_ASSERT_EQUAL(d.removed[i], rem[i]);
    }
    double x[8];
    double row[] = { 33, 5, 1 };
    CU_ASSERT(meta_design_row(&d, &s, row, 1, x) == 0);
    CU_ASSERT(x[0] == 1 && x[1] == 0 && x[2] == 1 && x[3] == 33 && x[4] == 1);
    row[1] = 0;  // reference level: both dummies 0
    CU_ASSERT(meta_design_row(&d, &s, row, 0, x) == 0);
    CU_ASSERT(x[0] == 0 && x[1] == 0 && x[2] == 0 && x[3] == 33 && x[4] == 1);
    row[1] = 2;
    CU_ASSERT(meta_design_row(&d, &s, row, 0, x) == 0);
    CU_ASSERT(x[1] == 1 && x[2] == 0);
    row[1] = 3;  // not a level of the schema
    CU_ASSERT(meta_design_row(&d, &s, row, 0, x) == -1);
    row[1] = 2;
    CU_ASSERT(meta_design_row(&d, &s, row, 2, x) == -1);  // label 2 of a binary label
    CU_ASSERT(meta_design_row(&d, &s, row, -1, x) == -1);

    // two removed categoricals and no kept column
    CU_ASSERT_FATAL(meta_design_build(&d, &s, "", "sex,site", "cfg", &err) == 0);
    CU_ASSERT_EQUAL_FATAL(d.k, 4);
    CU_ASSERT_STRING_EQUAL(d.names[0], "sex=1");
    CU_ASSERT_STRING_EQUAL(d.names[1], "site=2");
    CU_ASSERT_STRING_EQUAL(d.names[2], "site=5");
    CU_ASSERT_STRING_EQUAL(d.names[3], "intercept");

    // a multi-class label is kept as dummies (class 0 dropped)
    cohort_of(&c, 5, 3, names, kinds, meta, multi);
    CU_ASSERT_FATAL(meta_schema_build(&s, &c, &err) == 0);
    CU_ASSERT_EQUAL(s.n_classes, 3);
    CU_ASSERT_FATAL(meta_design_build(&d, &s, "label", "age", "cfg", &err) == 0);
    CU_ASSERT_EQUAL_FATAL(d.k, 4);
    CU_ASSERT_STRING_EQUAL(d.names[0], "label=1");
    CU_ASSERT_STRING_EQUAL(d.names[1], "label=2");
    CU_ASSERT(!d.removed[0] && !d.removed[1] && d.removed[2] && d.removed[3]);
    row[1] = 0;
    CU_ASSERT(meta_design_row(&d, &s, row, 2, x) == 0);
    CU_ASSERT(x[0] == 0 && x[1] == 1 && x[2] == 33 && x[3] == 1);
    CU_ASSERT(meta_design_row(&d, &s, row, 0, x) == 0);
    CU_ASSERT(x[0] == 0 && x[1] == 0);
    CU_ASSERT(meta_design_row(&d, &s, row, 3, x) == -1);

    // unknown column: named, with the available ones listed
    CU_ASSERT(meta_design_build(&d, &s, "label", "age, scanner", "cfg.ini:9: [mdn] mdn1", &err) == -1);
    CU_ASSERT(strstr(err.msg, "cfg.ini:9") != NULL);
    CU_ASSERT(strstr(err.msg, "'scanner'") != NULL);
    CU_ASSERT(strstr(err.msg, "label, age, site, sex") != NULL);
    // a column named twice
    CU_ASSERT(meta_design_build(&d, &s, "label", "age, site, age", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'age'") != NULL && strstr(err.msg, "twice") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "label", "label", "cfg", &err) == -1);

    // the layer's own errors: through build, with the file:line
    Fx fx;
    CU_ASSERT(fx_build(&fx, "[mdn]\nremove = age, sitee\n", &s, 3, 4, NULL) == -1);
    CU_ASSERT(strstr(fx.err.msg, "test.ini:2") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "'sitee'") != NULL && strstr(fx.err.msg, "site") != NULL);
    fx_free(&fx);
    CU_ASSERT(fx_build(&fx, "[mdn]\nkernel = batch\n", &s, 3, 4, NULL) == -1);
    CU_ASSERT(strstr(fx.err.msg, "remove") != NULL);
    fx_free(&fx);
    CU_ASSERT(fx_build(&fx, "[mdn]\nremove = age\nkernel = batches\n", &s, 3, 4, NULL) == -1);
    CU_ASSERT(strstr(fx.err.msg, "kernel") != NULL);
    fx_free(&fx);
}

// ---- 4. singular designs ----------------------------------------------------------------------

// Runs fn in a child process with stderr captured; returns its exit status (or -1) and the
// first part of what it printed.
static int run_child(void (*fn)(void *), void *arg, char *msg, size_t n) {
    int fds[2];
    if (pipe(fds)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < n && (got = read(fds[0], msg + len, n - 1 - len)) > 0) len += (size_t)got;
    msg[len] = '\0';
    close(fds[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void forward_train(void *p) { Fx *fx = p; mdn_ops.forward(&fx->L, fx->ctx.max_batch, 1); }
static void forward_eval(void *p) { Fx *fx = p; mdn_ops.forward(&fx->L, fx->ctx.max_batch, 0); }

static void test_singular(void) {
    enum { N = 12, D = 3 };
    Rng rng;
    rng_seed(&rng, 31);
    MetaSchema s;
    age_site_schema(&s);
    double meta[N * 2];
    int32_t labels[N];
    random_rows(meta, labels, N, &rng);
    for (int i = 0; i < N; i++)
        if (meta[i * 2 + 1] == 5) meta[i * 2 + 1] = 2;  // no subject of site 5 in these rows
    Fx fx;
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = age, site\n", &s, D, N, NULL) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, meta, labels, N, &fx.err) == -1);
    CU_ASSERT(strstr(fx.err.msg, "'site=5'") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "kernel = batch") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "mdn1") != NULL);
    fx_free(&fx);

    // no subject of the reference site 0: site=2 + site=5 = intercept, the intercept is named
    for (int i = 0; i < N; i++) meta[i * 2 + 1] = i % 2 ? 2 : 5;
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = age, site\n", &s, D, N, NULL) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, meta, labels, N, &fx.err) == -1);
    CU_ASSERT(strstr(fx.err.msg, "'intercept'") != NULL && strstr(fx.err.msg, "first level") != NULL);
    fx_free(&fx);

    // collinear: b = 2 a
    static const char *const names[] = { "a", "b" };
    static const MetaKind kinds[] = { META_CONTINUOUS, META_CONTINUOUS };
    double ab[N * 2];
    for (int i = 0; i < N; i++) { ab[i * 2] = rng_uniformf(&rng, -1, 3); ab[i * 2 + 1] = 2 * ab[i * 2]; }
    Cohort c;
    MetaSchema s2;
    DfError err;
    cohort_of(&c, N, 2, names, kinds, ab, labels);
    CU_ASSERT_FATAL(meta_schema_build(&s2, &c, &err) == 0);
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = a, b\n", &s2, D, N, NULL) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, ab, labels, N, &fx.err) == -1);
    CU_ASSERT(strstr(fx.err.msg, "'b'") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "kernel = batch") != NULL);
    fx_free(&fx);

    // kernel = batch, ridge 0: the pseudo-inverse fits the same span as a alone -- the
    // residual is that of the design without b (the kept label column is identifiable)
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = a, b\nkernel = batch\n", &s2, D, N, NULL) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, ab, labels, N, &fx.err) == 0);
    fx.ctx.batch_meta = ab;
    fx.ctx.batch_labels = labels;
    tu_fill_uniform(fx.in, (size_t)N * D, -1, 1, &rng);
    for (int i = 0; i < N; i++) fx.in[i * D + 1] -= 2.0f * (float)ab[i * 2];
    mdn_ops.forward(&fx.L, N, 1);
    {
        MetaDesign reduced = fx_design(&s2, "label", "a");
        double Xr[N * 3], br[3 * D], rr[N * D];
        design_rows(Xr, &reduced, &s2, ab, labels, N);
        ols_ref(br, Xr, fx.in, N, reduced.k, D, 0.0);
        residual_ref(rr, fx.in, Xr, br, reduced.removed, N, reduced.k, D);
        CU_ASSERT(ratio_d("collinear batch: pseudo-inverse residual", fx.out, rr, (size_t)N * D, 1e-5, 1e-5) <= 1);
    }
    fx_free(&fx);

    // kernel = batch with ridge > 0: works, and is the ridge fit
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = a, b\nkernel = batch\nridge = 0.01\n", &s2, D, N, NULL) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, ab, labels, N, &fx.err) == 0);
    fx.ctx.batch_meta = ab;
    fx.ctx.batch_labels = labels;
    tu_fill_uniform(fx.in, (size_t)N * D, -1, 1, &rng);
    for (int i = 0; i < N; i++) fx.in[i * D] += 3.0f * (float)ab[i * 2];
    mdn_ops.forward(&fx.L, N, 1);
    MetaDesign des = fx_design(&s2, "label", "a, b");
    double X[N * 4], beta[4 * D], r[N * D];
    design_rows(X, &des, &s2, ab, labels, N);
    ols_ref(beta, X, fx.in, N, des.k, D, 0.01);
    residual_ref(r, fx.in, X, beta, des.removed, N, des.k, D);
    CU_ASSERT(ratio_d("ridge residual", fx.out, r, (size_t)N * D, 1e-5, 1e-5) <= 1);
    fx_free(&fx);

    // the same rows in the plain inverse: the bad column is reported
    double XtX[16] = { 0 }, K[16];
    mdn_accumulate_xtx(XtX, X, N, 4);
    int bad = -1;
    CU_ASSERT(mdn_inverse_spd(K, XtX, 4, &bad) == -1);
    CU_ASSERT_EQUAL(bad, 2);  // label, a, b, intercept
}

// A global batch that lacks a level (kernel = batch, no ridge) does not stop the run: the
// pseudo-inverse leaves that dummy's coefficient at 0 and fits the others -- the residual
// and its gradient are those of the design without the missing level's column.
static void test_batch_missing_level(void) {
    enum { B = 10, D = 4 };
    Rng rng;
    rng_seed(&rng, 41);
    MetaSchema s;
    age_site_schema(&s);  // site levels 0, 2, 5
    double meta[B * 2];
    int32_t labels[B];
    random_rows(meta, labels, B, &rng);
    for (int i = 0; i < B; i++) meta[i * 2 + 1] = i % 2 ? 2 : 0;  // no site 5 in this batch
    Fx fx;
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = age, site\nkernel = batch\n", &s, D, B, NULL) == 0);
    CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, B, &fx.err) == 0);
    fx.ctx.batch_meta = meta;
    fx.ctx.batch_labels = labels;
    tu_fill_uniform(fx.in, (size_t)B * D, -1, 1, &rng);
    float *R = tu_rand((size_t)B * D, -1, 1, &rng);
    memcpy(fx.dout, R, sizeof(float) * B * D);
    mdn_ops.forward(&fx.L, B, 1);
    mdn_ops.backward(&fx.L, B);
    for (int i = 0; i < B * D; i++) CU_ASSERT_FATAL(isfinite(fx.out[i]) && isfinite(fx.din[i]));
    // the reference: OLS on [label, age, site=2, intercept] (site=5 dropped)
    static const char *const names[] = { "age", "site" };
    static const MetaKind kinds[] = { META_CONTINUOUS, META_CATEGORICAL };
    Cohort c;
    MetaSchema s2;
    DfError err;
    cohort_of(&c, B, 2, names, kinds, meta, labels);
    CU_ASSERT_FATAL(meta_schema_build(&s2, &c, &err) == 0);  // levels 0 and 2 only
    MetaDesign reduced = fx_design(&s2, "label", "age, site");
    CU_ASSERT_EQUAL_FATAL(reduced.k, 4);
    double X[B * 4], beta[4 * D], r[B * D];
    design_rows(X, &reduced, &s2, meta, labels, B);
    ols_ref(beta, X, fx.in, B, 4, D, 0.0);
    residual_ref(r, fx.in, X, beta, reduced.removed, B, 4, D);
    CU_ASSERT(ratio_d("missing level: residual", fx.out, r, (size_t)B * D, 1e-5, 1e-5) <= 1);
    // the input gradient of the layer against central differences of sum(out * R)
    FdCtx fc = { NULL, NULL, R, NULL, NULL, NULL, B, 0, D, 0, &fx };
    CU_ASSERT(tu_fd_check(fd_loss, &fc, fx.in, fx.din, (size_t)B * D, (size_t)B * D, 0.25, 1e-4, 1e-4,
                          "missing level: layer din") <= 1.0);
    free(R);
    fx_free(&fx);
}

// ---- 5. evaluation uses the running beta -------------------------------------------------

static void test_running_beta(void) {
    enum { B = 8, D = 5, STEPS = 4 };
    const double m = 0.3;
    Rng rng;
    rng_seed(&rng, 41);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = fx_design(&s, "label", "age, site");
    int k = des.k;
    for (int mode = 0; mode < 2; mode++) {
        Fx fx;
        const char *cfg = mode ? "[mdn]\nremove = age, site\nmomentum = 0.3\n" : "[mdn]\nremove = age, site\nkernel = batch\nmomentum = 0.3\n";
        CU_ASSERT_FATAL(fx_build(&fx, cfg, &s, D, B, NULL) == 0);
        enum { N = 30 };
        double tmeta[N * 2], Xt[N * 5], K[25], XtX[25] = { 0 };
        int32_t tlabels[N];
        random_rows(tmeta, tlabels, N, &rng);
        design_rows(Xt, &des, &s, tmeta, tlabels, N);
        mdn_accumulate_xtx(XtX, Xt, N, k);
        int bad;
        CU_ASSERT_FATAL(mdn_inverse_spd(K, XtX, k, &bad) == 0);
        CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, tmeta, tlabels, N, &fx.err) == 0);
        double run[5 * D] = { 0 }, beta[5 * D], meta[B * 2], X[B * 5];
        int32_t labels[B];
        for (int t = 0; t < STEPS; t++) {
            int Bt = t == STEPS - 1 ? 5 : B;  // a partial last batch
            random_rows(meta, labels, Bt, &rng);
            design_rows(X, &des, &s, meta, labels, Bt);
            tu_fill_uniform(fx.in, (size_t)Bt * D, -1, 1, &rng);
            for (int i = 0; i < Bt; i++) fx.in[i * D + 1] += 0.1f * (float)meta[i * 2];
            fx.ctx.batch_meta = meta;
            fx.ctx.batch_labels = labels;
            mdn_ops.forward(&fx.L, Bt, 1);
            if (mode == 0) {
                ols_ref(beta, X, fx.in, Bt, k, D, 0.0);
            } else {  // beta = (N / B) K X^T F
                double G[5 * D] = { 0 };
                for (int i = 0; i < Bt; i++)
                    for (int a = 0; a < k; a++)
                        for (int j = 0; j < D; j++) G[a * D + j] += X[i * k + a] * fx.in[i * D + j];
                for (int a = 0; a < k; a++)
                    for (int j = 0; j < D; j++) {
                        double v = 0;
                        for (int b = 0; b < k; b++) v += K[a * k + b] * G[b * D + j];
                        beta[a * D + j] = (double)N / Bt * v;
                    }
            }
            for (int i = 0; i < k * D; i++) run[i] = (1 - m) * run[i] + m * beta[i];
        }
        const float *running = fx.state + k * k;
        CU_ASSERT(ratio_d(mode ? "running beta (dataset)" : "running beta (batch)", running, run, (size_t)k * D, 1e-6, 1e-5) <= 1);
        // eval: out = F - X_S beta_run,S, whatever the batch (here a single sample too)
        for (int Be = B; Be >= 1; Be -= 7) {
            random_rows(meta, labels, Be, &rng);
            design_rows(X, &des, &s, meta, labels, Be);
            tu_fill_uniform(fx.in, (size_t)Be * D, -1, 1, &rng);
            fx.ctx.batch_meta = meta;
            fx.ctx.batch_labels = labels;
            float before[5 * D + 25];
            memcpy(before, fx.state, sizeof(float) * fx.L.n_state);
            mdn_ops.forward(&fx.L, Be, 0);
            CU_ASSERT(memcmp(before, fx.state, sizeof(float) * fx.L.n_state) == 0);  // eval changes no state
            double rund[5 * D], want[B * D];
            for (int i = 0; i < k * D; i++) rund[i] = running[i];
            residual_ref(want, fx.in, X, rund, des.removed, Be, k, D);
            CU_ASSERT(ratio_d("eval output", fx.out, want, (size_t)Be * D, 1e-6, 1e-6) <= 1);
        }
        // eval-mode backward: beta_run is a constant, so din = dout (added to what is there)
        float *R = tu_rand((size_t)B * D, -1, 1, &rng), *want = df_alloc_floats((size_t)B * D);
        memcpy(fx.dout, R, sizeof(float) * B * D);
        for (int i = 0; i < B * D; i++) { fx.din[i] = 0.5f; want[i] = 0.5f + R[i]; }
        random_rows(meta, labels, B, &rng);
        fx.ctx.batch_meta = meta;
        fx.ctx.batch_labels = labels;
        mdn_ops.forward(&fx.L, B, 0);
        mdn_ops.backward(&fx.L, B);
        TU_ASSERT_CLOSE(fx.din, want, (size_t)B * D, 1e-7, 1e-7, "eval-mode din = dout");
        free(R); free(want);
        fx_free(&fx);
    }
}

// ---- 6. ranks: the layer ------------------------------------------------------------------

typedef struct {
    Fx *fx;
    int B, N, d;
    const double *meta, *tmeta;
    const int32_t *labels, *tlabels;
    const float *F, *R;
    float *out, *din;    // (B,d) gathered from the ranks
    const float *state0; // state before the step (restored at each pass)
} LayerRanks;

static void layer_prepare_rank(void *p, int r, int P) {
    LayerRanks *a = p;
    int lo, hi;
    share(a->N, r, P, &lo, &hi);
    DfError err;
    CU_ASSERT(mdn_ops.prepare(&a->fx->L, a->tmeta + (size_t)lo * 2, a->tlabels + lo, hi - lo, &err) == 0);
}

static void layer_step_rank(void *p, int r, int P) {
    LayerRanks *a = p;
    Fx *fx = a->fx;
    int lo, hi, d = a->d;
    share(a->B, r, P, &lo, &hi);
    int n = hi - lo;
    memcpy(fx->state, a->state0, sizeof(float) * fx->L.n_state);
    memcpy(fx->in, a->F + (size_t)lo * d, sizeof(float) * n * d);
    memcpy(fx->dout, a->R + (size_t)lo * d, sizeof(float) * n * d);
    memset(fx->din, 0, sizeof(float) * n * d);
    fx->ctx.batch_meta = a->meta + (size_t)lo * 2;
    fx->ctx.batch_labels = a->labels + lo;
    mdn_ops.forward(&fx->L, n, 1);
    mdn_ops.backward(&fx->L, n);
    memcpy(a->out + (size_t)lo * d, fx->out, sizeof(float) * n * d);
    memcpy(a->din + (size_t)lo * d, fx->din, sizeof(float) * n * d);
}

static void test_ranks_layer(void) {
    enum { B = 10, D = 7, N = 33 };
    Rng rng;
    rng_seed(&rng, 51);
    MetaSchema s;
    age_site_schema(&s);
    double meta[B * 2], tmeta[N * 2];
    int32_t labels[B], tlabels[N];
    random_rows(meta, labels, B, &rng);
    random_rows(tmeta, tlabels, N, &rng);
    float *F = tu_rand((size_t)B * D, -1, 1, &rng), *R = tu_rand((size_t)B * D, -1, 1, &rng);
    for (int i = 0; i < B; i++) F[i * D] += 0.05f * (float)meta[i * 2];
    FakeRed fr;
    for (int mode = 0; mode < 2; mode++) {
        const char *cfg = mode ? "[mdn]\nremove = age, site\n" : "[mdn]\nremove = age, site\nkernel = batch\nridge = 0.5\n";
        float ref_out[B * D], ref_din[B * D], ref_state[25 + 5 * D], *state0 = NULL;
        for (int P = 1; P <= 3; P++) {
            fake_init(&fr, P);
            Fx fx;
            CU_ASSERT_FATAL(fx_build(&fx, cfg, &s, D, B, &fr.base) == 0);
            // a non-zero running beta to start from, the same for every P
            for (size_t i = 25; i < fx.L.n_state; i++) fx.state[i] = 0.01f * (float)(i % 7);
            float out[B * D], din[B * D];
            LayerRanks a = { &fx, B, N, D, meta, tmeta, labels, tlabels, F, R, out, din, NULL };
            simulate(&fr, P, layer_prepare_rank, &a);
            state0 = tu_copy(fx.state, fx.L.n_state);
            a.state0 = state0;
            simulate(&fr, P, layer_step_rank, &a);
            char what[96];
            if (P == 1) {
                memcpy(ref_out, out, sizeof out);
                memcpy(ref_din, din, sizeof din);
                memcpy(ref_state, fx.state, sizeof(float) * fx.L.n_state);
            } else {
                snprintf(what, sizeof what, "%s kernel, %d ranks: residuals", mode ? "dataset" : "batch", P);
                TU_ASSERT_CLOSE(out, ref_out, (size_t)B * D, 1e-6, 1e-5, what);
                snprintf(what, sizeof what, "%s kernel, %d ranks: input gradients", mode ? "dataset" : "batch", P);
                TU_ASSERT_CLOSE(din, ref_din, (size_t)B * D, 1e-6, 1e-5, what);
                snprintf(what, sizeof what, "%s kernel, %d ranks: kernel and running beta", mode ? "dataset" : "batch", P);
                TU_ASSERT_CLOSE(fx.state, ref_state, fx.L.n_state, 1e-9, 1e-5, what);
            }
            free(state0);
            fx_free(&fx);
        }
    }
    free(F); free(R);
}

// The plain functions too, with a hand-split batch and the same fake reducer.
typedef struct {
    const float *F, *R;
    const double *X, *K;
    const unsigned char *removed;
    int B, k, d;
    double n_train;
    float *out, *din;
    double beta[64 * 8];
    Reducer *red;
} PlainRanks;

static void plain_rank(void *p, int r, int P) {
    PlainRanks *a = p;
    int lo, hi;
    share(a->B, r, P, &lo, &hi);
    int n = hi - lo, d = a->d, k = a->k;
    memset(a->din + (size_t)lo * d, 0, sizeof(float) * n * d);
    double sc = mdn_forward_train(a->out + (size_t)lo * d, a->beta, a->F + (size_t)lo * d, a->X + (size_t)lo * k, a->K, a->removed,
                                  n, k, d, a->n_train, a->red);
    mdn_backward(a->din + (size_t)lo * d, a->R + (size_t)lo * d, a->X + (size_t)lo * k, a->K, a->removed, n, k, d, sc, a->red);
}

static void test_ranks_plain(void) {
    enum { B = 11, D = 6, N = 50 };
    Rng rng;
    rng_seed(&rng, 61);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = fx_design(&s, "label", "age, site");
    int k = des.k;
    double meta[N * 2], X[N * 5], K[25], XtX[25] = { 0 };
    int32_t labels[N];
    random_rows(meta, labels, N, &rng);
    design_rows(X, &des, &s, meta, labels, N);
    mdn_accumulate_xtx(XtX, X, N, k);
    int bad;
    CU_ASSERT_FATAL(mdn_inverse_spd(K, XtX, k, &bad) == 0);
    float *F = tu_rand((size_t)B * D, -1, 1, &rng), *R = tu_rand((size_t)B * D, -1, 1, &rng);
    float out1[B * D], din1[B * D], outP[B * D], dinP[B * D];
    FakeRed fr;
    fake_init(&fr, 1);
    PlainRanks a1 = { F, R, X, K, des.removed, B, k, D, N, out1, din1, { 0 }, &reducer_local };
    plain_rank(&a1, 0, 1);
    for (int P = 2; P <= 3; P++) {
        PlainRanks a = { F, R, X, K, des.removed, B, k, D, N, outP, dinP, { 0 }, &fr.base };
        simulate(&fr, P, plain_rank, &a);
        CU_ASSERT(ratio_dd("beta over ranks", a.beta, a1.beta, (size_t)k * D, 1e-9, 1e-9) <= 1);
        TU_ASSERT_CLOSE(outP, out1, (size_t)B * D, 1e-6, 1e-5, "plain residuals over ranks");
        TU_ASSERT_CLOSE(dinP, din1, (size_t)B * D, 1e-6, 1e-5, "plain gradients over ranks");
    }
    // a rank with no samples of this batch (B < P) still joins the reductions
    PlainRanks a = { F, R, X, K, des.removed, 2, k, D, N, outP, dinP, { 0 }, &fr.base };
    PlainRanks b = { F, R, X, K, des.removed, 2, k, D, N, out1, din1, { 0 }, &reducer_local };
    plain_rank(&b, 0, 1);
    simulate(&fr, 3, plain_rank, &a);
    TU_ASSERT_CLOSE(outP, out1, (size_t)2 * D, 1e-6, 1e-5, "B = 2 over 3 ranks: residuals");
    TU_ASSERT_CLOSE(dinP, din1, (size_t)2 * D, 1e-6, 1e-5, "B = 2 over 3 ranks: gradients");
    free(F); free(R);
}

// ---- 6. ranks: a whole network ------------------------------------------------------------

static const char *NET_INI =
    "[conv3d]\nname = conv1\nout = 3\nkernel = 3\npad = 1\n"
    "[mdn]\nname = mdn1\nremove = age, site\n"
    "[relu]\n[flatten]\n"
    "[linear]\nname = fc1\nout = 6\n"
    "[mdn]\nname = mdn2\nremove = age, site\nkernel = batch\nridge = 0.1\n"
    "[tanh]\n"
    "[linear]\nname = fc\nout = 2\n";

typedef struct {
    Net *net;
    int B, N;
    const double *meta, *tmeta;
    const int32_t *labels, *tlabels;
    const float *img, *R;
    size_t in_n, out_n;
    float *out, *din, *grads;  // gathered; grads summed over the ranks
    const float *state0;
} NetRanks;

static void net_prepare_rank(void *p, int r, int P) {
    NetRanks *a = p;
    int lo, hi;
    share(a->N, r, P, &lo, &hi);
    DfError err;
    CU_ASSERT(net_prepare(a->net, a->tmeta + (size_t)lo * 2, a->tlabels + lo, hi - lo, &err) == 0);
}

static void net_step_rank(void *p, int r, int P) {
    NetRanks *a = p;
    Net *net = a->net;
    int lo, hi;
    share(a->B, r, P, &lo, &hi);
    int n = hi - lo;
    if (r == 0) memset(a->grads, 0, net->n_params * sizeof(float));
    memcpy(net->state, a->state0, net->n_state * sizeof(float));
    net->ctx.batch_meta = a->meta + (size_t)lo * 2;
    net->ctx.batch_labels = a->labels + lo;
    const float *o = net_forward(net, a->img + (size_t)lo * a->in_n, n, 1);
    memcpy(a->out + (size_t)lo * a->out_n, o, sizeof(float) * n * a->out_n);
    net_zero_grad(net);
    net_backward(net, a->R + (size_t)lo * a->out_n, n);
    memcpy(a->din + (size_t)lo * a->in_n, net->dacts[0], sizeof(float) * n * a->in_n);
    for (size_t i = 0; i < net->n_params; i++) a->grads[i] += net->grads[i];
}

static void test_ranks_net(void) {
    enum { B = 10, N = 40 };
    Rng rng;
    rng_seed(&rng, 71);
    MetaSchema s;
    age_site_schema(&s);
    Shape in = { 1, 4, 4, 3 };
    size_t in_n = shape_numel(in), out_n = 2;
    double meta[B * 2], tmeta[N * 2];
    int32_t labels[B], tlabels[N];
    random_rows(meta, labels, B, &rng);
    random_rows(tmeta, tlabels, N, &rng);
    float *img = tu_rand(B * in_n, -1, 1, &rng), *R = tu_rand(B * out_n, -1, 1, &rng);
    float *out[4], *din[4], *grads[4], *state[4];
    size_t np = 0, ns = 0;
    FakeRed fr;
    for (int P = 1; P <= 3; P++) {
        fake_init(&fr, P);
        Ini ini;
        DfError err;
        CU_ASSERT_FATAL(ini_parse_string(&ini, NET_INI, "net.ini", &err) == 0);
        Net net;
        if (net_build_meta(&net, &ini, in, (B + P - 1) / P, &fr.base, &s, &err)) {
            fprintf(stderr, "  %s\n", err.msg);
            CU_FAIL_FATAL("net_build_meta");
        }
        net_enable_input_grad(&net);
        net_init(&net, 5);
        np = net.n_params;
        ns = net.n_state;
        out[P] = df_alloc_floats(B * out_n); din[P] = df_alloc_floats(B * in_n);
        grads[P] = df_alloc_floats(np);
        NetRanks a = { &net, B, N, meta, tmeta, labels, tlabels, img, R, in_n, out_n, out[P], din[P], grads[P], NULL };
        simulate(&fr, P, net_prepare_rank, &a);
        float *s0 = tu_copy(net.state, ns);
        a.state0 = s0;
        simulate(&fr, P, net_step_rank, &a);
        state[P] = tu_copy(net.state, ns);
        free(s0);
        net_free(&net);
        ini_free(&ini);
    }
    for (int P = 2; P <= 3; P++) {
        char what[80];
        snprintf(what, sizeof what, "net, %d ranks: output", P);
        TU_ASSERT_CLOSE(out[P], out[1], B * out_n, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "net, %d ranks: input gradients", P);
        TU_ASSERT_CLOSE(din[P], din[1], B * in_n, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "net, %d ranks: parameter gradients", P);
        TU_ASSERT_CLOSE(grads[P], grads[1], np, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "net, %d ranks: state", P);
        TU_ASSERT_CLOSE(state[P], state[1], ns, 1e-9, 1e-5, what);
    }
    for (int P = 1; P <= 3; P++) { free(out[P]); free(din[P]); free(grads[P]); free(state[P]); }
    free(img); free(R);
}

// ---- 7. PyTorch reference --------------------------------------------------------------------

typedef struct { char name[32]; int n; double *v; } RefT;
typedef struct { RefT t[32]; int n; char path[512]; } RefF;

static int ref_load(RefF *f, const char *file) {
    memset(f, 0, sizeof *f);
    const char *top = getenv("top_srcdir");
    snprintf(f->path, sizeof f->path, "%s/tests/ref/%s", top && *top ? top : ".", file);
    FILE *fp = fopen(f->path, "r");
    if (!fp) { fprintf(stderr, "  cannot open %s\n", f->path); return -1; }
    char line[4096];
    RefT *cur = NULL;
    int filled = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *p = line;
        if ((line[0] >= 'a' && line[0] <= 'z') || (line[0] >= 'A' && line[0] <= 'Z')) {
            if (f->n == 32) break;
            cur = &f->t[f->n++];
            int ndim, off;
            if (sscanf(p, "%31s %d%n", cur->name, &ndim, &off) != 2) break;
            p += off;
            cur->n = 1;
            for (int i = 0; i < ndim; i++) cur->n *= (int)strtol(p, &p, 10);
            cur->v = calloc((size_t)cur->n, sizeof(double));
            filled = 0;
            continue;
        }
        for (;;) {
            char *e;
            double v = strtod(p, &e);
            if (e == p) break;
            if (cur && filled < cur->n) cur->v[filled++] = v;
            p = e;
        }
    }
    fclose(fp);
    return 0;
}

static const RefT *ref_get(const RefF *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    fprintf(stderr, "  %s: no tensor '%s'\n", f->path, name);
    return NULL;
}

static void ref_free(RefF *f) { for (int i = 0; i < f->n; i++) free(f->t[i].v); }

static void check_torch_case(const char *file, int batch_kernel) {
    RefF f;
    CU_ASSERT_FATAL(ref_load(&f, file) == 0);
    const RefT *bm = ref_get(&f, "batch_meta"), *bl = ref_get(&f, "batch_labels"), *Xr = ref_get(&f, "X"), *Kr = ref_get(&f, "K"),
               *Fr = ref_get(&f, "F"), *Rr = ref_get(&f, "R"), *beta_r = ref_get(&f, "beta"), *out_r = ref_get(&f, "out"),
               *dF = ref_get(&f, "dF"), *scr = ref_get(&f, "scale");
    CU_ASSERT_FATAL(bm && bl && Xr && Kr && Fr && Rr && beta_r && out_r && dF && scr);
    const RefT *tm = batch_kernel ? NULL : ref_get(&f, "train_meta"), *tl = batch_kernel ? NULL : ref_get(&f, "train_labels");
    const RefT *ridge = batch_kernel ? ref_get(&f, "ridge") : NULL;
    int B = bl->n, k = 5, d = Fr->n / B, N = tm ? tl->n : 0;
    CU_ASSERT_FATAL(Xr->n == B * k && Kr->n == k * k && bm->n == 2 * B);

    // schema from every row the case has (train and batch), as the trainer does from the cohort
    int n_all = B + N;
    double *all = malloc(sizeof(double) * 2 * n_all), *tmeta = malloc(sizeof(double) * 2 * (N + 1));
    int32_t *all_l = malloc(sizeof(int32_t) * n_all), *blab = malloc(sizeof(int32_t) * B), *tlab = malloc(sizeof(int32_t) * (N + 1));
    for (int i = 0; i < B; i++) { all[2 * i] = bm->v[2 * i]; all[2 * i + 1] = bm->v[2 * i + 1]; all_l[i] = blab[i] = (int32_t)bl->v[i]; }
    for (int i = 0; i < N; i++) {
        tmeta[2 * i] = all[2 * (B + i)] = tm->v[2 * i];
        tmeta[2 * i + 1] = all[2 * (B + i) + 1] = tm->v[2 * i + 1];
        tlab[i] = all_l[B + i] = (int32_t)tl->v[i];
    }
    Cohort c;
    MetaSchema s;
    DfError err;
    cohort_of(&c, n_all, 2, AS_NAMES, AS_KINDS, all, all_l);
    CU_ASSERT_FATAL(meta_schema_build(&s, &c, &err) == 0);

    // the design rows equal torch's
    MetaDesign des = fx_design(&s, "label", "age, site");
    CU_ASSERT_EQUAL_FATAL(des.k, k);
    double *X = malloc(sizeof(double) * B * k);
    design_rows(X, &des, &s, bm->v, blab, B);
    CU_ASSERT(memcmp(X, Xr->v, sizeof(double) * B * k) == 0);

    float *F = malloc(sizeof(float) * B * d), *R = malloc(sizeof(float) * B * d), *out = malloc(sizeof(float) * B * d),
          *din = calloc((size_t)B * d, sizeof(float));
    for (int i = 0; i < B * d; i++) { F[i] = (float)Fr->v[i]; R[i] = (float)Rr->v[i]; }

    // plain functions with torch's kernel
    double *beta = malloc(sizeof(double) * k * d);
    double sc = mdn_forward_train(out, beta, F, X, Kr->v, des.removed, B, k, d, N, &reducer_local);
    CU_ASSERT_DOUBLE_EQUAL(sc, scr->v[0], 1e-15);
    CU_ASSERT(ratio_dd("beta vs torch", beta, beta_r->v, (size_t)k * d, 1e-12, 1e-9) <= 1);
    CU_ASSERT(ratio_d("residuals vs torch (plain)", out, out_r->v, (size_t)B * d, 1e-6, 1e-5) <= 1);
    mdn_backward(din, R, X, Kr->v, des.removed, B, k, d, sc, &reducer_local);
    CU_ASSERT(ratio_d("input gradient vs torch (plain)", din, dF->v, (size_t)B * d, 1e-6, 1e-5) <= 1);

    // the layer: its own kernel (prepare on the training rows, or the batch's with ridge)
    char cfg[128];
    snprintf(cfg, sizeof cfg, "[mdn]\nremove = age, site\n%s", batch_kernel ? "kernel = batch\nridge = 0.5\n" : "");
    CU_ASSERT(!ridge || ridge->v[0] == 0.5);
    Fx fx;
    CU_ASSERT_FATAL(fx_build(&fx, cfg, &s, d, B, NULL) == 0);
    CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, tmeta, tlab, N, &fx.err) == 0);
    if (!batch_kernel) {
        float Kf[25];
        for (int i = 0; i < 25; i++) Kf[i] = fx.state[i];
        CU_ASSERT(ratio_d("kernel vs torch", Kf, Kr->v, 25, 1e-12, 1e-6) <= 1);
    }
    memcpy(fx.in, F, sizeof(float) * B * d);
    memcpy(fx.dout, R, sizeof(float) * B * d);
    fx.ctx.batch_meta = bm->v;
    fx.ctx.batch_labels = blab;
    mdn_ops.forward(&fx.L, B, 1);
    mdn_ops.backward(&fx.L, B);
    CU_ASSERT(ratio_d("residuals vs torch (layer)", fx.out, out_r->v, (size_t)B * d, 1e-6, 1e-5) <= 1);
    CU_ASSERT(ratio_d("input gradient vs torch (layer)", fx.din, dF->v, (size_t)B * d, 1e-6, 1e-5) <= 1);
    // the running beta after one step from 0 is m * beta
    double want_run[64];
    for (int i = 0; i < k * d && i < 64; i++) want_run[i] = 0.1 * beta_r->v[i];
    CU_ASSERT(ratio_d("running beta after one step", fx.state + 25, want_run, (size_t)(k * d < 64 ? k * d : 64), 1e-9, 1e-5) <= 1);
    fx_free(&fx);
    free(all); free(tmeta); free(all_l); free(blab); free(tlab); free(X); free(F); free(R); free(out); free(din); free(beta);
    ref_free(&f);
}

static void test_torch_dataset(void) { check_torch_case("mdn_dataset.txt", 0); }
static void test_torch_batch(void) { check_torch_case("mdn_batch.txt", 1); }

// ---- checkpoint and missing metadata --------------------------------------------------------

static void test_checkpoint(void) {
    enum { B = 6, N = 20 };
    Rng rng;
    rng_seed(&rng, 81);
    MetaSchema s;
    age_site_schema(&s);
    Shape in = { 1, 4, 4, 3 };
    size_t in_n = shape_numel(in);
    double meta[N * 2];
    int32_t labels[N];
    random_rows(meta, labels, N, &rng);
    float *img = tu_rand(B * in_n, -1, 1, &rng);
    Ini ini;
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(&ini, NET_INI, "net.ini", &err) == 0);
    Net a, b;
    CU_ASSERT_FATAL(net_build_meta(&a, &ini, in, B, NULL, &s, &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&b, &ini, in, B, NULL, &s, &err) == 0);
    net_init(&a, 3);
    net_init(&b, 4);
    CU_ASSERT_FATAL(net_prepare(&a, meta, labels, N, &err) == 0);
    a.ctx.batch_meta = meta;
    a.ctx.batch_labels = labels;
    for (int t = 0; t < 3; t++) net_forward(&a, img, B, 1);  // running beta moves
    char path[] = "/tmp/test_mdn_ckpt_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_FATAL(checkpoint_save(path, NET_INI, &a, NULL, NULL, &err) == 0);
    CU_ASSERT_FATAL(checkpoint_load(path, &b, NULL, NULL, &err) == 0);
    unlink(path);
    CU_ASSERT(memcmp(a.state, b.state, a.n_state * sizeof(float)) == 0);
    Layer *m1 = net_layer(&b, "mdn1");
    CU_ASSERT_FATAL(m1 != NULL);
    int has_k = 0, has_b = 0;
    for (int i = 0; i < m1->n_state_info; i++) {
        has_k |= strcmp(m1->state_info[i].name, "kernel") == 0;
        has_b |= strcmp(m1->state_info[i].name, "running_beta") == 0;
    }
    CU_ASSERT(has_k && has_b);
    float kmax = 0;
    for (int i = 0; i < 25; i++) kmax = fmaxf(kmax, fabsf(m1->state[i]));
    CU_ASSERT(kmax > 0);  // the fitted kernel itself was saved
    b.ctx.batch_meta = meta;
    b.ctx.batch_labels = labels;
    float *ea = tu_copy(net_forward(&a, img, B, 0), B * 2);
    const float *eb = net_forward(&b, img, B, 0);
    CU_ASSERT(memcmp(ea, eb, sizeof(float) * B * 2) == 0);
    free(ea);
    net_free(&a);
    net_free(&b);
    ini_free(&ini);
    free(img);
}

static void test_missing_metadata(void) {
    MetaSchema s;
    age_site_schema(&s);
    // no schema (a command or data without metadata): a build error naming the need
    Fx fx;
    CU_ASSERT(fx_build(&fx, "[mdn]\nremove = age\n", NULL, 4, 3, NULL) == -1);
    CU_ASSERT(strstr(fx.err.msg, "test.ini") != NULL && strstr(fx.err.msg, "metadata") != NULL);
    fx_free(&fx);
    Ini ini;
    DfError err;
    Net net;
    CU_ASSERT_FATAL(ini_parse_string(&ini, NET_INI, "net.ini", &err) == 0);
    CU_ASSERT(net_build(&net, &ini, (Shape){ 1, 4, 4, 3 }, 2, NULL, &err) == -1);
    CU_ASSERT(strstr(err.msg, "metadata") != NULL);
    ini_free(&ini);
    // a schema but no rows for this batch: exit 2 with a message, not a crash
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = age\nkernel = batch\n", &s, 4, 3, NULL) == 0);
    char msg[2048];
    int st = run_child(forward_eval, &fx, msg, sizeof msg);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT(strstr(msg, "mdn1") != NULL && strstr(msg, "metadata") != NULL);
    st = run_child(forward_train, &fx, msg, sizeof msg);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT(strstr(msg, "metadata") != NULL);
    // a value not among the schema's levels
    double meta[] = { 30, 0, 40, 3, 50, 5 };
    int32_t labels[] = { 0, 1, 0 };
    fx_free(&fx);
    CU_ASSERT_FATAL(fx_build(&fx, "[mdn]\nremove = site\nkernel = batch\n", &s, 4, 3, NULL) == 0);
    fx.ctx.batch_meta = meta;
    fx.ctx.batch_labels = labels;
    st = run_child(forward_eval, &fx, msg, sizeof msg);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT(strstr(msg, "site") != NULL);
    if (st != 2 || !strstr(msg, "site")) fprintf(stderr, "  child: status %d, %s\n", st, msg);
    fx_free(&fx);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("mdn", NULL, NULL);
    CU_add_test(s, "residuals equal an OLS fit", test_ols_residuals);
    CU_add_test(s, "backward vs finite differences", test_backward_fd);
    CU_add_test(s, "features wider than a column tile", test_wide_features);
    CU_add_test(s, "categorical coding and column errors", test_categorical);
    CU_add_test(s, "singular designs", test_singular);
    CU_add_test(s, "batch kernel: a batch without a level", test_batch_missing_level);
    CU_add_test(s, "eval uses the running beta", test_running_beta);
    CU_add_test(s, "plain functions: 2 and 3 ranks equal 1", test_ranks_plain);
    CU_add_test(s, "layer: 2 and 3 ranks equal 1", test_ranks_layer);
    CU_add_test(s, "network: 2 and 3 ranks equal 1", test_ranks_net);
    CU_add_test(s, "PyTorch reference, dataset kernel", test_torch_dataset);
    CU_add_test(s, "PyTorch reference, batch kernel", test_torch_batch);
    CU_add_test(s, "checkpoint holds the MDN state", test_checkpoint);
    CU_add_test(s, "missing metadata is a clear error", test_missing_metadata);
    return tu_run_all();
}
