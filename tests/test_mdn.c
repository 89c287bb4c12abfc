// test_mdn.c: Metadata Normalization (nn/mdn.c) as one layer, and its design rows
// (nn/metadata.c):
//   - residuals equal an ordinary least-squares fit solved here independently (double,
//     Gauss-Jordan on the normal equations), batch kernel and dataset kernel with N = B;
//   - backward against central finite differences (loss = sum(out * R)), both kernel modes,
//     plain functions and the layer table;
//   - categorical coding, unknown columns, unknown levels;
//   - singular designs (a level with no training subjects, collinear columns) name the
//     column and suggest kernel = batch; kernel = batch (a pseudo-inverse) fits collinear
//     columns and a global batch without a level as OLS on the columns present, backward
//     included; ridge > 0 gives the ridge fit;
//   - evaluation uses the running beta (exponential average of the per-step betas), or with
//     eval_beta = epoch the least-squares beta of a whole refit pass;
//   - pool = channel: one beta per channel from the channel means, subtracted at every
//     position; its input gradient against finite differences;
//   - R-MDN (kernel = recursive): the Woodbury step against the reference's B x B recursion,
//     against least squares on a stationary stream, and the layer's state, residuals and
//     pass-through gradient;
//   - PMDN (kernel = penalty): the penalty's gradient against finite differences, beta's
//     Adam steps against PyTorch (tests/ref/pmdn_steps.txt), the residual, the identity
//     gradient;
//   - missing metadata is a clear error.
// Across ranks: test_mdn_ranks.c; against PyTorch and the checkpoint: test_mdn_ref.c.
#include "testutil.h"
#include "tests/mdn_util.h"
#include "base/rng.h"
#include "data/checkpoint.h"
#include "data/cohort.h"
#include "nn/layer.h"
#include "nn/mdn.h"
#include "nn/metadata.h"
#include "nn/net.h"
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- 1. residuals are an OLS fit --------------------------------------------------------------

static void test_ols_residuals(void) {
    enum { B = 12, D = 6 };
    Rng rng;
    rng_seed(&rng, 11);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = mdn_design(&s, "label", "age, site");
    int k = des.k;
    CU_ASSERT_EQUAL_FATAL(k, 5);  // label, age, site=2, site=5, intercept
    double meta[B * 2], X[B * 5];
    int32_t labels[B];
    random_design(X, meta, labels, B, &des, &s, &rng);
    float *F = tu_rand((size_t)B * D, -1, 1, &rng), out[B * D];
    for (int i = 0; i < B; i++)  // a real confounder effect to remove
        for (int j = 0; j < D; j++) F[i * D + j] += 0.05f * (float)meta[i * 2] + (float)(j + 1) * (float)X[i * k + 3];
    double beta_ref[5 * D], r_ref[B * D], beta[5 * D], K[25];
    ols_ref(beta_ref, X, F, B, k, D, 0.0);
    residual_ref(r_ref, F, X, beta_ref, des.removed, B, k, D);

    // plain functions: K from the batch, s = 1
    kernel_of(K, X, B, k);
    double sc = mdn_forward_train(out, beta, F, X, K, des.removed, B, k, D, 0.0, &reducer_local);
    CU_ASSERT_DOUBLE_EQUAL(sc, 1.0, 0);
    CU_ASSERT(ratio_dd("beta = (X^T X)^-1 X^T F", beta, beta_ref, (size_t)k * D, 1e-9, 1e-7) <= 1);
    CU_ASSERT(ratio_d("residual (plain, batch kernel)", out, r_ref, (size_t)B * D, 1e-5, 1e-5) <= 1);

    // the layer, kernel = batch, ridge 0
    TuLayer fx;
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age, site\nkernel = batch\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
    CU_ASSERT_EQUAL(fx.L.n_state, (size_t)(k * k + k * D));
    CU_ASSERT(mdn_ops.prepare(&fx.L, meta, labels, B, 0, B, &fx.err) == 0);
    memcpy(fx.in, F, sizeof(float) * B * D);
    mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
    tu_layer_forward(&fx, B, 1);
    CU_ASSERT(ratio_d("residual (layer, batch kernel)", fx.out, r_ref, (size_t)B * D, 1e-5, 1e-5) <= 1);
    tu_layer_free(&fx);

    // the layer, kernel = dataset, the training set being this very batch (N = B, s = 1)
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age, site\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
    CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, B, 0, B, &fx.err) == 0);
    memcpy(fx.in, F, sizeof(float) * B * D);
    mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
    tu_layer_forward(&fx, B, 1);
    CU_ASSERT(ratio_d("residual (layer, dataset kernel, N = B)", fx.out, r_ref, (size_t)B * D, 1e-5, 1e-5) <= 1);
    // the kernel state is (X^T X)^-1
    float Kf[25];
    for (int i = 0; i < 25; i++) Kf[i] = fx.state[i];
    CU_ASSERT(ratio_d("kernel state", Kf, K, 25, 1e-12, 1e-6) <= 1);
    tu_layer_free(&fx);

    // the plain function in dataset mode with a different N: beta scales by N / B
    double beta2[5 * D];
    sc = mdn_forward_train(out, beta2, F, X, K, des.removed, B, k, D, 3.0 * B, &reducer_local);
    CU_ASSERT_DOUBLE_EQUAL(sc, 3.0, 1e-15);
    for (int i = 0; i < k * D; i++) beta_ref[i] *= 3.0;
    CU_ASSERT(ratio_dd("beta, N = 3B", beta2, beta_ref, (size_t)k * D, 1e-9, 1e-7) <= 1);
    free(F);
}

// Features wider than the column tiles of nn/mdn.c (1024): residuals against OLS, and the
// input gradient against g_j - x_j M^T H computed here in double.
static void test_wide_features(void) {
    enum { B = 7, D = 2500 };
    Rng rng;
    rng_seed(&rng, 17);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = mdn_design(&s, "label", "age, site");
    int k = des.k;
    double meta[B * 2], X[B * 5], K[25];
    int32_t labels[B];
    random_design(X, meta, labels, B, &des, &s, &rng);
    kernel_of(K, X, B, k);
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
    TuLayer *fx;  // layer mode when set
} FdCtx;

static double fd_loss(void *p) {
    FdCtx *c = p;
    if (c->fx) {
        tu_layer_forward(c->fx, c->B, 1);
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
    MetaDesign des = mdn_design(&s, "label", "age, site");
    int k = des.k;
    double meta[N * 2], X[N * 5], K[25];
    int32_t labels[N];
    random_design(X, meta, labels, N, &des, &s, &rng);
    float *F = tu_rand((size_t)B * D, -2, 2, &rng), *R = tu_rand((size_t)B * D, -1, 1, &rng);
    float out[B * D], din[B * D];
    double beta[5 * D];
    for (int mode = 0; mode < 2; mode++) {
        // mode 0: batch kernel from the batch's rows (depends on X only, not on F);
        // mode 1: dataset kernel of N training rows, fixed, s = N / B.
        kernel_of(K, X, mode ? N : B, k);
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
        TuLayer fx;
        CU_ASSERT_FATAL(tu_layer_build(&fx, mode ? "[mdn]\nremove = age, site\n" : "[mdn]\nremove = age,site\nkernel = batch\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
        CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, N, 0, N, &fx.err) == 0);
        memcpy(fx.in, F, sizeof(float) * B * D);
        memcpy(fx.dout, R, sizeof(float) * B * D);
        mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
        tu_layer_forward(&fx, B, 1);
        tu_layer_backward(&fx, B);
        FdCtx c = { NULL, NULL, R, NULL, NULL, NULL, B, k, D, 0, &fx };
        CU_ASSERT(tu_fd_check(fd_loss, &c, fx.in, fx.din, (size_t)B * D, (size_t)B * D, 0.25, 1e-4, 1e-4,
                              mode ? "layer dataset kernel din" : "layer batch kernel din") <= 1.0);
        tu_layer_free(&fx);
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
    // a categorical column with one level in the data: an error, not a column that removes nothing
    int site_col = meta_column(&s, "site"), saved = s.n_levels[site_col];
    s.n_levels[site_col] = 1;
    CU_ASSERT(meta_design_build(&d, &s, "label", "age, site", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "column 'site' has one level") != NULL);
    s.n_levels[site_col] = saved;

    // age:spline4: four columns, named, coded through the basis once the knots are set
    cohort_of(&c, 5, 3, names, kinds, meta, bin);  // the binary label again
    CU_ASSERT_FATAL(meta_schema_build(&s, &c, &err) == 0);
    CU_ASSERT_FATAL(meta_design_build(&d, &s, "label", "site, age :spline4", "cfg", &err) == 0);
    CU_ASSERT_EQUAL(d.k, 1 + 2 + 4 + 1);
    CU_ASSERT_STRING_EQUAL(d.names[3], "age:spline4.1");
    CU_ASSERT_STRING_EQUAL(d.names[6], "age:spline4.4");
    CU_ASSERT(meta_design_splines(&d) == 1 && meta_design_spline_column(&d, 0) == 3);
    const double kn[5] = { 20, 30, 40, 50, 80 };
    meta_design_set_knots(&d, 0, kn);
    double srow[3] = { 47, 0, 2 }, sx[8];
    CU_ASSERT(meta_design_row(&d, &s, srow, 1, sx) == 0);
    for (int j = 0; j < 4; j++) CU_ASSERT_DOUBLE_EQUAL(sx[3 + j], meta_spline_basis(47, kn, 4, j), 0);
    CU_ASSERT(sx[0] == 1 && sx[7] == 1);
    // a categorical column, the label, another suffix, a column named twice
    CU_ASSERT(meta_design_build(&d, &s, "label", "site:spline3", "cfg.ini:4", &err) == -1);
    CU_ASSERT(strstr(err.msg, "cfg.ini:4") && strstr(err.msg, "'site' is categorical"));
    CU_ASSERT(meta_design_build(&d, &s, "label:spline2", "age", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "class label") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "label", "age:poly2", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'age:poly2'") && strstr(err.msg, "NAME:splineN"));
    CU_ASSERT(meta_design_build(&d, &s, "label", "age:spline9", "cfg", &err) == -1);
    CU_ASSERT(meta_design_build(&d, &s, "label", "age:spline1", "cfg", &err) == -1);
    CU_ASSERT(meta_design_build(&d, &s, "label", "age, age:spline3", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "twice") != NULL);

    // the layer's own errors: through build, with the file:line
    TuLayer fx;
    CU_ASSERT(tu_layer_build(&fx, "[mdn]\nremove = age, sitee\n", (Shape){ 3, 1, 1, 1 }, 4, NULL, &s) == -1);
    CU_ASSERT(strstr(fx.err.msg, "test.ini:2") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "'sitee'") != NULL && strstr(fx.err.msg, "site") != NULL);
    tu_layer_free(&fx);
    CU_ASSERT(tu_layer_build(&fx, "[mdn]\nkernel = batch\n", (Shape){ 3, 1, 1, 1 }, 4, NULL, &s) == -1);
    CU_ASSERT(strstr(fx.err.msg, "remove") != NULL);
    tu_layer_free(&fx);
    CU_ASSERT(tu_layer_build(&fx, "[mdn]\nremove = age\nkernel = batches\n", (Shape){ 3, 1, 1, 1 }, 4, NULL, &s) == -1);
    CU_ASSERT(strstr(fx.err.msg, "kernel") != NULL);
    tu_layer_free(&fx);
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

static void forward_train(void *p) { TuLayer *fx = p; tu_layer_forward(fx, fx->ctx.max_batch, 1); }
static void forward_eval(void *p) { TuLayer *fx = p; tu_layer_forward(fx, fx->ctx.max_batch, 0); }

// age|site and age|label: a slope of age per level of the group, age inside the group and 0
// outside; none dropped (together they are age), so age itself may not stand beside them.
static void test_grouped_slopes(void) {
    static const char *const names[] = { "age", "site", "sex" };
    static const MetaKind kinds[] = { META_CONTINUOUS, META_CATEGORICAL, META_CATEGORICAL };
    double meta[] = { 30, 5, 1, 40, 0, 0, 50, 2, 1, 60, 5, 0, 70, 0, 1 };
    int32_t bin[] = { 0, 1, 1, 0, 1 };
    Cohort c;
    MetaSchema s;
    MetaDesign d;
    DfError err;
    cohort_of(&c, 5, 3, names, kinds, meta, bin);
    CU_ASSERT_FATAL(meta_schema_build(&s, &c, &err) == 0);
    CU_ASSERT_FATAL(meta_design_build(&d, &s, "label", "site, age | site", "cfg", &err) == 0);
    // [label, site=2, site=5, age|site=0, age|site=2, age|site=5, intercept]
    CU_ASSERT_EQUAL_FATAL(d.k, 7);
    const char *want[] = { "label", "site=2", "site=5", "age|site=0", "age|site=2", "age|site=5", "intercept" };
    for (int i = 0; i < 7; i++) CU_ASSERT_STRING_EQUAL(d.names[i], want[i]);
    CU_ASSERT(d.removed[3] && d.removed[4] && d.removed[5]);
    double x[8], row[] = { 33, 2, 1 };
    CU_ASSERT(meta_design_row(&d, &s, row, 1, x) == 0);
    CU_ASSERT(x[3] == 0 && x[4] == 33 && x[5] == 0 && x[6] == 1);
    row[1] = 0;
    CU_ASSERT(meta_design_row(&d, &s, row, 0, x) == 0);
    CU_ASSERT(x[3] == 33 && x[4] == 0 && x[5] == 0);
    row[1] = 3;  // a site the data never had
    CU_ASSERT(meta_design_row(&d, &s, row, 0, x) == -1);

    // age|label: one slope per class, kept (removed, it would hand the label to evaluation)
    CU_ASSERT_FATAL(meta_design_build(&d, &s, "label, age|label", "", "cfg", &err) == 0);
    CU_ASSERT_EQUAL_FATAL(d.k, 4);
    CU_ASSERT_STRING_EQUAL(d.names[1], "age|label=0");
    CU_ASSERT_STRING_EQUAL(d.names[2], "age|label=1");
    CU_ASSERT(!d.removed[1] && !d.removed[2]);
    row[1] = 5;
    CU_ASSERT(meta_design_row(&d, &s, row, 1, x) == 0);
    CU_ASSERT(x[0] == 1 && x[1] == 0 && x[2] == 33 && x[3] == 1);
    CU_ASSERT(meta_design_row(&d, &s, row, 0, x) == 0);
    CU_ASSERT(x[0] == 0 && x[1] == 33 && x[2] == 0);
    CU_ASSERT(meta_design_row(&d, &s, row, 2, x) == -1);  // no class 2

    // errors, each naming what is wrong
    CU_ASSERT(meta_design_build(&d, &s, "label", "age, age|site", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'age' is named twice") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "label", "age|site, age", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'age' is named twice") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "label", "site|sex", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'site' is categorical") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "label", "sex|age", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'sex' is categorical") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "", "label|site", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'label' is the class label") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "label", "age|label", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'age|label' cannot be removed") != NULL);
    CU_ASSERT(meta_design_build(&d, &s, "label", "age|scanner", "cfg.ini:9", &err) == -1);
    CU_ASSERT(strstr(err.msg, "cfg.ini:9") != NULL && strstr(err.msg, "no column 'scanner'") != NULL);
    int site_col = meta_column(&s, "site"), saved = s.n_levels[site_col];
    s.n_levels[site_col] = 1;
    CU_ASSERT(meta_design_build(&d, &s, "label", "age|site", "cfg", &err) == -1);
    CU_ASSERT(strstr(err.msg, "'site' has one level") != NULL);
    s.n_levels[site_col] = saved;
}

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
    TuLayer fx;
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age, site\n", (Shape){ D, 1, 1, 1 }, N, NULL, &s) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, meta, labels, N, 0, N, &fx.err) == -1);
    CU_ASSERT(strstr(fx.err.msg, "'site=5'") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "kernel = batch") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "mdn1") != NULL);
    tu_layer_free(&fx);

    // no subject of the reference site 0: site=2 + site=5 = intercept, the intercept is named
    for (int i = 0; i < N; i++) meta[i * 2 + 1] = i % 2 ? 2 : 5;
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age, site\n", (Shape){ D, 1, 1, 1 }, N, NULL, &s) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, meta, labels, N, 0, N, &fx.err) == -1);
    CU_ASSERT(strstr(fx.err.msg, "'intercept'") != NULL && strstr(fx.err.msg, "first level") != NULL);
    tu_layer_free(&fx);

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
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = a, b\n", (Shape){ D, 1, 1, 1 }, N, NULL, &s2) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, ab, labels, N, 0, N, &fx.err) == -1);
    CU_ASSERT(strstr(fx.err.msg, "'b'") != NULL);
    CU_ASSERT(strstr(fx.err.msg, "kernel = batch") != NULL);
    tu_layer_free(&fx);

    // kernel = batch, ridge 0: the pseudo-inverse fits the same span as a alone -- the
    // residual is that of the design without b (the kept label column is identifiable)
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = a, b\nkernel = batch\n", (Shape){ D, 1, 1, 1 }, N, NULL, &s2) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, ab, labels, N, 0, N, &fx.err) == 0);
    mdn_fx_meta(&fx, (double *)(ab), (int32_t *)(labels));
    tu_fill_uniform(fx.in, (size_t)N * D, -1, 1, &rng);
    for (int i = 0; i < N; i++) fx.in[i * D + 1] -= 2.0f * (float)ab[i * 2];
    tu_layer_forward(&fx, N, 1);
    {
        MetaDesign reduced = mdn_design(&s2, "label", "a");
        double Xr[N * 3], br[3 * D], rr[N * D];
        design_rows(Xr, &reduced, &s2, ab, labels, N);
        ols_ref(br, Xr, fx.in, N, reduced.k, D, 0.0);
        residual_ref(rr, fx.in, Xr, br, reduced.removed, N, reduced.k, D);
        CU_ASSERT(ratio_d("collinear batch: pseudo-inverse residual", fx.out, rr, (size_t)N * D, 1e-5, 1e-5) <= 1);
    }
    tu_layer_free(&fx);

    // kernel = batch with ridge > 0: works, and is the ridge fit
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = a, b\nkernel = batch\nridge = 0.01\n", (Shape){ D, 1, 1, 1 }, N, NULL, &s2) == 0);
    CU_ASSERT(mdn_ops.prepare(&fx.L, ab, labels, N, 0, N, &fx.err) == 0);
    mdn_fx_meta(&fx, (double *)(ab), (int32_t *)(labels));
    tu_fill_uniform(fx.in, (size_t)N * D, -1, 1, &rng);
    for (int i = 0; i < N; i++) fx.in[i * D] += 3.0f * (float)ab[i * 2];
    tu_layer_forward(&fx, N, 1);
    MetaDesign des = mdn_design(&s2, "label", "a, b");
    double X[N * 4], beta[4 * D], r[N * D];
    design_rows(X, &des, &s2, ab, labels, N);
    ols_ref(beta, X, fx.in, N, des.k, D, 0.01);
    residual_ref(r, fx.in, X, beta, des.removed, N, des.k, D);
    CU_ASSERT(ratio_d("ridge residual", fx.out, r, (size_t)N * D, 1e-5, 1e-5) <= 1);
    tu_layer_free(&fx);

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
    TuLayer fx;
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age, site\nkernel = batch\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
    CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, B, 0, B, &fx.err) == 0);
    mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
    tu_fill_uniform(fx.in, (size_t)B * D, -1, 1, &rng);
    float *R = tu_rand((size_t)B * D, -1, 1, &rng);
    memcpy(fx.dout, R, sizeof(float) * B * D);
    tu_layer_forward(&fx, B, 1);
    tu_layer_backward(&fx, B);
    for (int i = 0; i < B * D; i++) CU_ASSERT_FATAL(isfinite(fx.out[i]) && isfinite(fx.din[i]));
    // the reference: OLS on [label, age, site=2, intercept] (site=5 dropped)
    static const char *const names[] = { "age", "site" };
    static const MetaKind kinds[] = { META_CONTINUOUS, META_CATEGORICAL };
    Cohort c;
    MetaSchema s2;
    DfError err;
    cohort_of(&c, B, 2, names, kinds, meta, labels);
    CU_ASSERT_FATAL(meta_schema_build(&s2, &c, &err) == 0);  // levels 0 and 2 only
    MetaDesign reduced = mdn_design(&s2, "label", "age, site");
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
    tu_layer_free(&fx);
}

// ---- 5. evaluation uses the running beta -------------------------------------------------

static void test_running_beta(void) {
    enum { B = 8, D = 5, STEPS = 4 };
    const double m = 0.3;
    Rng rng;
    rng_seed(&rng, 41);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = mdn_design(&s, "label", "age, site");
    int k = des.k;
    for (int mode = 0; mode < 2; mode++) {
        TuLayer fx;
        const char *cfg = mode ? "[mdn]\nremove = age, site\nmomentum = 0.3\n" : "[mdn]\nremove = age, site\nkernel = batch\nmomentum = 0.3\n";
        CU_ASSERT_FATAL(tu_layer_build(&fx, cfg, (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
        enum { N = 30 };
        double tmeta[N * 2], Xt[N * 5], K[25];
        int32_t tlabels[N];
        random_design(Xt, tmeta, tlabels, N, &des, &s, &rng);
        kernel_of(K, Xt, N, k);
        CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, tmeta, tlabels, N, 0, N, &fx.err) == 0);
        double run[5 * D] = { 0 }, beta[5 * D], meta[B * 2], X[B * 5];
        int32_t labels[B];
        for (int t = 0; t < STEPS; t++) {
            int Bt = t == STEPS - 1 ? 5 : B;  // a partial last batch
            random_design(X, meta, labels, Bt, &des, &s, &rng);
            tu_fill_uniform(fx.in, (size_t)Bt * D, -1, 1, &rng);
            for (int i = 0; i < Bt; i++) fx.in[i * D + 1] += 0.1f * (float)meta[i * 2];
            mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
            tu_layer_forward(&fx, Bt, 1);
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
            random_design(X, meta, labels, Be, &des, &s, &rng);
            tu_fill_uniform(fx.in, (size_t)Be * D, -1, 1, &rng);
            mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
            float before[5 * D + 25];
            memcpy(before, fx.state, sizeof(float) * fx.L.n_state);
            tu_layer_forward(&fx, Be, 0);
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
        mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
        tu_layer_forward(&fx, B, 0);
        tu_layer_backward(&fx, B);
        TU_ASSERT_CLOSE(fx.din, want, (size_t)B * D, 1e-7, 1e-7, "eval-mode din = dout");
        free(R); free(want);
        tu_layer_free(&fx);
    }
}

// ---- eval_beta = epoch: the refit pass ------------------------------------------------------

// Over a refit pass (ctx.refitting, training forwards of several batches) the layer's
// outputs are its ordinary training outputs, and at the end the evaluation beta is the least-
// squares fit of every row the pass saw, as ols_ref solves it on all rows at once (double;
// the stored beta is float32, hence 1e-6). A level absent from the whole pass gets
// coefficient 0 (the pseudo-inverse). A layer without eval_beta = epoch does not ask for
// the pass; R-MDN refuses the key, and a refit pass leaves its estimate alone.
static void test_refit(void) {
    enum { B = 7, D = 6, STEPS = 5, N = B * STEPS };
    Rng rng;
    rng_seed(&rng, 43);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = mdn_design(&s, "label", "age, site");
    int k = des.k;
    for (int mode = 0; mode < 2; mode++) {
        TuLayer fx, plain;
        const char *cfg = mode ? "[mdn]\nremove = age, site\neval_beta = epoch\n" : "[mdn]\nremove = age, site\nkernel = batch\neval_beta = epoch\n";
        CU_ASSERT_FATAL(tu_layer_build(&fx, cfg, (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
        CU_ASSERT_FATAL(tu_layer_build(&plain, mode ? "[mdn]\nremove = age, site\n" : "[mdn]\nremove = age, site\nkernel = batch\n",
                                       (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
        double meta[N * 2], X[N * 5];
        int32_t labels[N];
        float F[N * D];
        random_design(X, meta, labels, N, &des, &s, &rng);
        tu_fill_uniform(F, (size_t)N * D, -1, 1, &rng);
        for (int i = 0; i < N; i++) F[i * D + 2] += 3.0f + 0.5f * (float)meta[i * 2] - (float)labels[i];
        CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, N, 0, N, &fx.err) == 0);
        CU_ASSERT_FATAL(mdn_ops.prepare(&plain.L, meta, labels, N, 0, N, &plain.err) == 0);
        CU_ASSERT(mdn_ops.refit(&plain.L, 0) == 0);  // the running average: no pass wanted
        CU_ASSERT(mdn_ops.refit(&fx.L, 0) == 1);
        fx.ctx.refitting = 1;
        for (int t = 0; t < STEPS; t++) {
            memcpy(fx.in, F + t * B * D, sizeof(float) * B * D);
            memcpy(plain.in, fx.in, sizeof(float) * B * D);
            mdn_fx_meta(&fx, meta + t * B * 2, labels + t * B);
            mdn_fx_meta(&plain, meta + t * B * 2, labels + t * B);
            tu_layer_forward(&fx, B, 1);
            tu_layer_forward(&plain, B, 1);
            CU_ASSERT(memcmp(fx.out, plain.out, sizeof(float) * B * D) == 0);
        }
        fx.ctx.refitting = 0;
        CU_ASSERT(mdn_ops.refit(&fx.L, 1) == 1);
        double want[5 * D];
        ols_ref(want, X, F, N, k, D, 0.0);
        CU_ASSERT(ratio_d(mode ? "refit beta (dataset kernel)" : "refit beta (batch kernel)", fx.state + k * k, want, (size_t)k * D, 1e-6, 1e-6) <= 1);
        tu_layer_free(&plain);
        // a site no sample of the pass has: its dummy's coefficient is 0, the rest the fit without it
        CU_ASSERT(mdn_ops.refit(&fx.L, 0) == 1);
        fx.ctx.refitting = 1;
        int n2 = 0;
        double X2[N * 5];
        float F2[N * D];
        for (int i = 0; i < N; i++) {
            if (X[i * k + 3] != 0.0) continue;  // design column 3: the dummy of site 5
            memcpy(F2 + (size_t)n2 * D, F + (size_t)i * D, sizeof(float) * D);
            memcpy(X2 + (size_t)n2 * k, X + (size_t)i * k, sizeof(double) * k);
            fx.batch.meta = meta + i * 2;  // one sample per forward
            fx.batch.labels = labels + i;
            memcpy(fx.in, F + (size_t)i * D, sizeof(float) * D);
            tu_layer_forward(&fx, 1, 1);
            n2++;
        }
        fx.ctx.refitting = 0;
        mdn_ops.refit(&fx.L, 1);
        CU_ASSERT_FATAL(n2 > k);
        double X2r[N * 4], want2[5 * D] = { 0 }, w3[4 * D];  // the design without column 3
        for (int i = 0; i < n2; i++)
            for (int a = 0, c = 0; a < k; a++)
                if (a != 3) X2r[i * (k - 1) + c++] = X2[i * k + a];
        ols_ref(w3, X2r, F2, n2, k - 1, D, 0.0);
        for (int a = 0, c = 0; a < k; a++)
            if (a != 3) memcpy(want2 + a * D, w3 + c++ * D, sizeof(double) * D);
        CU_ASSERT(ratio_d("refit beta, a site absent", fx.state + k * k, want2, (size_t)k * D, 1e-6, 1e-5) <= 1);
        tu_layer_free(&fx);
    }
    // eval_beta = epoch_eval: it wants the evaluation-mode pass, where its forwards are
    // evaluation's (the running beta, bit for bit) and add up the inputs; the least squares
    // over them is its new evaluation beta. In a training-mode pass it adds nothing, and a
    // layer with eval_beta = epoch adds nothing in an evaluation-mode pass.
    {
        TuLayer ev, tr, plain;
        CU_ASSERT_FATAL(tu_layer_build(&ev, "[mdn]\nremove = age, site\nkernel = batch\neval_beta = epoch_eval\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
        CU_ASSERT_FATAL(tu_layer_build(&tr, "[mdn]\nremove = age, site\nkernel = batch\neval_beta = epoch\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
        CU_ASSERT_FATAL(tu_layer_build(&plain, "[mdn]\nremove = age, site\nkernel = batch\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
        double meta[N * 2], X[N * 5];
        int32_t labels[N];
        float F[N * D];
        random_design(X, meta, labels, N, &des, &s, &rng);
        tu_fill_uniform(F, (size_t)N * D, -1, 1, &rng);
        for (int i = 0; i < N; i++) F[i * D + 1] += 2.0f - 0.3f * (float)meta[i * 2 + 1] + (float)labels[i];
        for (size_t i = 0; i < ev.L.n_state; i++) ev.state[i] = tr.state[i] = plain.state[i] = 0.01f * (float)(i % 5);
        CU_ASSERT(mdn_ops.refit(&ev.L, 0) == REFIT_EVALUATION);
        CU_ASSERT(mdn_ops.refit(&tr.L, 0) == REFIT_TRAINING);
        for (int pass = REFIT_TRAINING; pass <= REFIT_EVALUATION; pass++) {
            ev.ctx.refitting = tr.ctx.refitting = pass;
            for (int t = 0; t < STEPS; t++) {
                TuLayer *all[3] = { &ev, &tr, &plain };
                for (int l = 0; l < 3; l++) {
                    // the training-mode pass sees other features: 3 - F
                    for (int i = 0; i < B * D; i++) all[l]->in[i] = pass == REFIT_TRAINING ? 3.0f - F[t * B * D + i] : F[t * B * D + i];
                    mdn_fx_meta(all[l], meta + t * B * 2, labels + t * B);
                    tu_layer_forward(all[l], B, pass == REFIT_TRAINING);
                }
                if (pass == REFIT_EVALUATION) CU_ASSERT(memcmp(ev.out, plain.out, sizeof(float) * B * D) == 0);
            }
        }
        ev.ctx.refitting = tr.ctx.refitting = 0;
        CU_ASSERT(mdn_ops.refit(&ev.L, REFIT_TRAINING) == 0);  // not its pass: its sums stay
        CU_ASSERT(mdn_ops.refit(&ev.L, REFIT_EVALUATION) == 1);
        double want[5 * D];
        ols_ref(want, X, F, N, k, D, 0.0);
        CU_ASSERT(ratio_d("epoch_eval: refit beta from the evaluation-mode pass alone", ev.state + k * k, want, (size_t)k * D, 1e-6, 1e-6) <= 1);
        CU_ASSERT(mdn_ops.refit(&tr.L, 1) == 1);
        float G[N * D];
        for (int i = 0; i < N * D; i++) G[i] = 3.0f - F[i];
        ols_ref(want, X, G, N, k, D, 0.0);
        CU_ASSERT(ratio_d("epoch: refit beta from the training-mode pass alone", tr.state + k * k, want, (size_t)k * D, 1e-6, 1e-6) <= 1);
        tu_layer_free(&ev);
        tu_layer_free(&tr);
        tu_layer_free(&plain);
    }
    TuLayer r;
    CU_ASSERT(tu_layer_build(&r, "[mdn]\nremove = age\nkernel = recursive\neval_beta = epoch\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) != 0);
    CU_ASSERT(strstr(r.err.msg, "eval_beta") && strstr(r.err.msg, "recursive"));
    tu_layer_free(&r);
    // R-MDN inside another layer's refit pass: its P and beta stay, its output uses the beta
    CU_ASSERT_FATAL(tu_layer_build(&r, "[mdn]\nremove = age\nkernel = recursive\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
    MetaDesign d1 = mdn_design(&s, "label", "age");
    double meta[B * 2], X[B * 5];
    int32_t labels[B];
    random_design(X, meta, labels, B, &d1, &s, &rng);
    tu_fill_uniform(r.in, (size_t)B * D, -1, 1, &rng);
    mdn_fx_meta(&r, meta, labels);
    tu_layer_forward(&r, B, 1);  // one ordinary step: beta no longer 0
    float before[64];
    CU_ASSERT_FATAL(r.L.n_state <= 64);
    memcpy(before, r.state, sizeof(float) * r.L.n_state);
    r.ctx.refitting = 1;
    tu_fill_uniform(r.in, (size_t)B * D, -1, 1, &rng);
    tu_layer_forward(&r, B, 1);
    r.ctx.refitting = 0;
    CU_ASSERT(memcmp(before, r.state, sizeof(float) * r.L.n_state) == 0);
    double beta[3 * D], want[B * D];
    for (int i = 0; i < d1.k * D; i++) beta[i] = r.state[d1.k * d1.k + i];
    residual_ref(want, r.in, X, beta, d1.removed, B, d1.k, D);
    CU_ASSERT(ratio_d("R-MDN output in a refit pass", r.out, want, (size_t)B * D, 1e-6, 1e-6) <= 1);
    tu_layer_free(&r);
}

// ---- pool = channel -------------------------------------------------------------------------

// One beta per channel from the channel means: with the batch kernel the layer's output is
// the input minus x_S beta_S, beta the least-squares fit of the channel means (ols_ref on the
// means, double), the same shift at every position of a channel; evaluation broadcasts the
// running beta the same way; the refit pass fits the means; the input gradient of both
// kernels against finite differences.
static void test_pool_channel(void) {
    enum { B = 9, C = 3, V = 8, N = 40 };
    Rng rng;
    rng_seed(&rng, 47);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = mdn_design(&s, "label", "age, site");
    int k = des.k;
    Shape in = { C, 2, 2, 2 };
    double meta[N * 2], X[N * 5];
    int32_t labels[N];
    random_design(X, meta, labels, N, &des, &s, &rng);
    float *F = tu_rand((size_t)B * C * V, -2, 2, &rng), *R = tu_rand((size_t)B * C * V, -1, 1, &rng);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < C * V; j++) F[i * C * V + j] += 0.05f * (float)meta[i * 2] * (float)(j % V) / V;
    float means[B * C];
    for (int r = 0; r < B * C; r++) {
        double sum = 0;
        for (int v = 0; v < V; v++) sum += F[r * V + v];
        means[r] = (float)(sum / V);
    }
    for (int mode = 0; mode < 2; mode++) {
        TuLayer fx;
        CU_ASSERT_FATAL(tu_layer_build(&fx, mode ? "[mdn]\nremove = age, site\npool = channel\neval_beta = epoch\n"
                                                 : "[mdn]\nremove = age, site\nkernel = batch\npool = channel\neval_beta = epoch\n",
                                       in, B, NULL, &s) == 0);
        CU_ASSERT(fx.L.state_info[1].dims[1] == C);  // running_beta [k, C]
        CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, meta, labels, N, 0, N, &fx.err) == 0);
        memcpy(fx.in, F, sizeof(float) * B * C * V);
        memcpy(fx.dout, R, sizeof(float) * B * C * V);
        mdn_fx_meta(&fx, meta, labels);
        mdn_ops.refit(&fx.L, 0);
        fx.ctx.refitting = 1;
        tu_layer_forward(&fx, B, 1);
        fx.ctx.refitting = 0;
        double beta[5 * C], want[B * C * V];
        ols_ref(beta, X, means, B, k, C, 0.0);
        if (mode == 0) {  // batch kernel: the fit of this batch's means
            for (int i = 0; i < B; i++)
                for (int c = 0; c < C; c++) {
                    double shift = 0;
                    for (int a = 0; a < k; a++)
                        if (des.removed[a]) shift += X[i * k + a] * beta[a * C + c];
                    for (int v = 0; v < V; v++) want[(i * C + c) * V + v] = F[(i * C + c) * V + v] - shift;
                }
            CU_ASSERT(ratio_d("pooled residuals", fx.out, want, (size_t)B * C * V, 1e-5, 1e-5) <= 1);
        }
        tu_layer_backward(&fx, B);
        FdCtx c = { NULL, NULL, R, NULL, NULL, NULL, B, k, C * V, 0, &fx };
        CU_ASSERT(tu_fd_check(fd_loss, &c, fx.in, fx.din, (size_t)B * C * V, (size_t)B * C * V, 0.25, 1e-4, 1e-4,
                              mode ? "pooled dataset kernel din" : "pooled batch kernel din") <= 1.0);
        // the refit beta: the least-squares fit of the means; evaluation subtracts it per channel
        mdn_ops.refit(&fx.L, 1);
        CU_ASSERT(ratio_d("pooled refit beta", fx.state + k * k, beta, (size_t)k * C, 1e-5, 1e-5) <= 1);
        tu_layer_forward(&fx, B, 0);
        for (int i = 0; i < B; i++)
            for (int c = 0; c < C; c++) {
                double shift = 0;
                for (int a = 0; a < k; a++)
                    if (des.removed[a]) shift += X[i * k + a] * (double)fx.state[k * k + a * C + c];
                for (int v = 0; v < V; v++) want[(i * C + c) * V + v] = F[(i * C + c) * V + v] - shift;
            }
        CU_ASSERT(ratio_d("pooled eval output", fx.out, want, (size_t)B * C * V, 1e-6, 1e-6) <= 1);
        tu_layer_free(&fx);
    }
    free(F); free(R);
}

// ---- R-MDN (kernel = recursive) -------------------------------------------------------------

// A (n,n) inverted in place by Gauss-Jordan with partial pivoting (the reference's B x B form).
static void gj_inverse(double *A, int n) {
    double *M = calloc((size_t)n * 2 * n, sizeof(double));
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) M[i * 2 * n + j] = A[i * n + j];
        M[i * 2 * n + n + i] = 1.0;
    }
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++) if (fabs(M[r * 2 * n + c]) > fabs(M[p * 2 * n + c])) p = r;
        for (int j = 0; j < 2 * n; j++) { double t = M[c * 2 * n + j]; M[c * 2 * n + j] = M[p * 2 * n + j]; M[p * 2 * n + j] = t; }
        double piv = M[c * 2 * n + c];
        for (int j = 0; j < 2 * n; j++) M[c * 2 * n + j] /= piv;
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            double f = M[r * 2 * n + c];
            for (int j = 0; j < 2 * n; j++) M[r * 2 * n + j] -= f * M[c * 2 * n + j];
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) A[i * n + j] = M[i * 2 * n + n + j];
    free(M);
}

// One step of the reference's recursion as written (rmdn.py), with the B x B inverse:
// P <- P / lambda; K = P X^T (I + X P X^T)^-1; P <- P - K X P + rho I; beta += K (F - X beta).
static void rls_reference(double *P, double *beta, const double *X, const double *F, int B, int k, int d, double lambda, double rho) {
    double *Kg = calloc((size_t)k * B, sizeof(double)), *S = calloc((size_t)B * B, sizeof(double));
    double *PX = calloc((size_t)k * B, sizeof(double)), *KXP = calloc((size_t)k * k, sizeof(double));
    for (int i = 0; i < k * k; i++) P[i] /= lambda;
    for (int a = 0; a < k; a++)  // PX = P X^T (k,B)
        for (int i = 0; i < B; i++)
            for (int b = 0; b < k; b++) PX[a * B + i] += P[a * k + b] * X[i * k + b];
    for (int i = 0; i < B; i++)  // S = I + X P X^T
        for (int j = 0; j < B; j++) {
            double v = i == j;
            for (int a = 0; a < k; a++) v += X[i * k + a] * PX[a * B + j];
            S[i * B + j] = v;
        }
    gj_inverse(S, B);
    for (int a = 0; a < k; a++)  // K = PX S^-1
        for (int j = 0; j < B; j++)
            for (int i = 0; i < B; i++) Kg[a * B + j] += PX[a * B + i] * S[i * B + j];
    for (int a = 0; a < k; a++)  // K X P
        for (int b = 0; b < k; b++)
            for (int i = 0; i < B; i++)
                for (int c = 0; c < k; c++) KXP[a * k + b] += Kg[a * B + i] * X[i * k + c] * P[c * k + b];
    for (int j = 0; j < d; j++) {
        double *r = calloc((size_t)B, sizeof(double));
        for (int i = 0; i < B; i++) {
            r[i] = F[i * d + j];
            for (int a = 0; a < k; a++) r[i] -= X[i * k + a] * beta[a * d + j];
        }
        for (int a = 0; a < k; a++)
            for (int i = 0; i < B; i++) beta[a * d + j] += Kg[a * B + i] * r[i];
        free(r);
    }
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) P[a * k + b] += -KXP[a * k + b] + (a == b ? rho : 0.0);
    free(Kg); free(S); free(PX); free(KXP);
}

// The Woodbury step equals the reference's B x B recursion; with lambda = 1 and rho = 0 it is
// the least-squares fit of everything seen, with the prior P0 = p0 I: beta = (sum X^T X + I /
// p0)^-1 sum X^T F; and the layer updates its state so, subtracts X_S beta_S, and passes the
// gradient through unchanged (beta is an estimate, detached as in the reference).
static void test_recursive(void) {
    enum { B = 7, K = 5, D = 4, STEPS = 4 };
    Rng rng;
    rng_seed(&rng, 77);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = mdn_design(&s, "label", "age, site");
    CU_ASSERT_FATAL(des.k == K);
    double P[K * K] = { 0 }, Pr[K * K] = { 0 }, beta[K * D] = { 0 }, br[K * D] = { 0 };
    double sXX[K * K] = { 0 }, sXF[K * D] = { 0 };
    for (int a = 0; a < K; a++) P[a * K + a] = Pr[a * K + a] = 100.0;
    for (int pass = 0; pass < 2; pass++) {  // 0: lambda 0.9, rho 1e-3 against the reference; 1: lambda 1, rho 0
        double lambda = pass ? 1.0 : 0.9, rho = pass ? 0.0 : 1e-3;
        for (int t = 0; t < STEPS; t++) {
            double meta[B * 2], X[B * K], F[B * D], XtX[K * K] = { 0 }, XtF[K * D] = { 0 };
            int32_t labels[B];
            random_design(X, meta, labels, B, &des, &s, &rng);
            for (int i = 0; i < B * D; i++) F[i] = 2.0 * rng_uniform(&rng) - 1.0 + 0.3 * X[(i / D) * K + 1];
            mdn_accumulate_xtx(XtX, X, B, K);
            for (int i = 0; i < B; i++)
                for (int a = 0; a < K; a++)
                    for (int j = 0; j < D; j++) XtF[a * D + j] += X[i * K + a] * F[i * D + j];
            CU_ASSERT_FATAL(mdn_rls_step(P, beta, XtX, XtF, K, D, lambda, rho) == 0);
            if (!pass) rls_reference(Pr, br, X, F, B, K, D, lambda, rho);
            for (int i = 0; i < K * K; i++) sXX[i] += XtX[i];
            for (int i = 0; i < K * D; i++) sXF[i] += XtF[i];
        }
        if (!pass) {
            // equal in exact arithmetic; in double they round differently: the Woodbury form
            // inverts P and A (k x k, P0 = 100 I beside X^T X of raw ages), the reference
            // S = I + X P X^T (B x B). Measured: P within 1e-9, beta within 3e-8 relative.
            CU_ASSERT(ratio_dd("R-MDN P vs the B x B recursion", P, Pr, K * K, 1e-12, 1e-8) <= 1);
            CU_ASSERT(ratio_dd("R-MDN beta vs the B x B recursion", beta, br, K * D, 1e-12, 2e-7) <= 1);
            memset(P, 0, sizeof P);  // start again from the prior for the stationary stream
            memset(beta, 0, sizeof beta);
            memset(sXX, 0, sizeof sXX);
            memset(sXF, 0, sizeof sXF);
            for (int a = 0; a < K; a++) P[a * K + a] = 100.0;
        }
    }
    double A[K * K], want[K * D] = { 0 };
    memcpy(A, sXX, sizeof A);
    for (int a = 0; a < K; a++) A[a * K + a] += 1.0 / 100.0;
    gj_inverse(A, K);
    for (int a = 0; a < K; a++)
        for (int j = 0; j < D; j++)
            for (int b = 0; b < K; b++) want[a * D + j] += A[a * K + b] * sXF[b * D + j];
    CU_ASSERT(ratio_dd("R-MDN beta (lambda 1, rho 0) vs least squares over the stream", beta, want, K * D, 1e-12, 1e-9) <= 1);

    // the layer: state P0 = 100 I, beta 0; each step as mdn_rls_step from the float32 state
    TuLayer fx;
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age, site\nkernel = recursive\nforgetting = 0.95\nridge = 0.001\n",
                                   (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
    CU_ASSERT(fx.state[0] == 100.0f && fx.state[1] == 0.0f && fx.state[K * K] == 0.0f);
    double meta[B * 2];  // outside the loop: the layer keeps pointing at them for the eval pass after it
    int32_t labels[B];
    for (int t = 0; t < 3; t++) {
        double X[B * K], XtX[K * K] = { 0 }, XtF[K * D] = { 0 }, Pd[K * K], bd[K * D];
        random_design(X, meta, labels, B, &des, &s, &rng);
        tu_fill_uniform(fx.in, (size_t)B * D, -1, 1, &rng);
        for (int i = 0; i < B; i++) fx.in[i * D] += 0.2f * (float)meta[i * 2];
        mdn_accumulate_xtx(XtX, X, B, K);
        for (int i = 0; i < B; i++)
            for (int a = 0; a < K; a++)
                for (int j = 0; j < D; j++) XtF[a * D + j] += X[i * K + a] * fx.in[i * D + j];
        for (int i = 0; i < K * K; i++) Pd[i] = fx.state[i];
        for (int i = 0; i < K * D; i++) bd[i] = fx.state[K * K + i];
        CU_ASSERT_FATAL(mdn_rls_step(Pd, bd, XtX, XtF, K, D, 0.95, 0.001) == 0);
        mdn_fx_meta(&fx, meta, labels);
        tu_layer_forward(&fx, B, 1);
        int bad = 0;
        for (int i = 0; i < K * K; i++) bad += fx.state[i] != (float)Pd[i];
        for (int i = 0; i < K * D; i++) bad += fx.state[K * K + i] != (float)bd[i];
        CU_ASSERT_EQUAL(bad, 0);
        double bf[K * D], res[B * D];
        for (int i = 0; i < K * D; i++) bf[i] = (float)bd[i];
        residual_ref(res, fx.in, X, bf, des.removed, B, K, D);
        CU_ASSERT(ratio_d("R-MDN residuals", fx.out, res, (size_t)B * D, 1e-7, 1e-6) <= 1);
        // the gradient passes unchanged (added to what is there)
        float *R = tu_rand((size_t)B * D, -1, 1, &rng), want_g[B * D];
        memcpy(fx.dout, R, sizeof(float) * B * D);
        for (int i = 0; i < B * D; i++) { fx.din[i] = 0.25f; want_g[i] = 0.25f + R[i]; }
        tu_layer_backward(&fx, B);
        CU_ASSERT(memcmp(fx.din, want_g, sizeof want_g) == 0);
        free(R);
    }
    // eval subtracts the same beta and changes no state
    float before[K * K + K * D];
    memcpy(before, fx.state, sizeof before);
    tu_layer_forward(&fx, B, 0);
    CU_ASSERT(memcmp(before, fx.state, sizeof before) == 0);
    tu_layer_free(&fx);
}

// ---- PMDN (kernel = penalty) ----------------------------------------------------------------

static double penalty_value(const double *beta, const double *X, const double *F, int B, int k, int d) {
    double sum = 0;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < d; j++) {
            double r = F[i * d + j];
            for (int a = 0; a < k; a++) r -= X[i * k + a] * beta[a * d + j];
            sum += r * r;
        }
    return sum / (B * d);
}

// The penalty's gradient against central differences of the penalty itself (double);
// then the layer over the 5 batches of tests/ref/pmdn_steps.txt, where PyTorch moved a
// float32 beta by Adam (lr 0.045) on mse_loss(X beta, F): beta after every step to 1e-5
// relative (the gradient is summed in double here, in float32 there), the residual F -
// X_S beta_S with that beta, the identity gradient, and eval_beta = epoch refused.
static void test_penalty(void) {
    enum { B = 6, K = 3, D = 4, STEPS = 5 };
    Rng rng;
    rng_seed(&rng, 53);
    double X[B * K], F[B * D], beta[K * D], XtX[K * K] = { 0 }, XtF[K * D] = { 0 }, grad[K * D];
    for (int i = 0; i < B * K; i++) X[i] = rng_uniform(&rng) * 2 - 1;
    for (int i = 0; i < B * D; i++) F[i] = rng_uniform(&rng) * 2 - 1;
    for (int i = 0; i < K * D; i++) beta[i] = rng_uniform(&rng) - 0.5;
    mdn_accumulate_xtx(XtX, X, B, K);
    for (int i = 0; i < B; i++)
        for (int a = 0; a < K; a++)
            for (int j = 0; j < D; j++) XtF[a * D + j] += X[i * K + a] * F[i * D + j];
    mdn_penalty_grad(grad, beta, XtX, XtF, B, K, D);
    double worst = 0;
    for (int i = 0; i < K * D; i++) {
        double keep = beta[i], h = 1e-5;
        beta[i] = keep + h;
        double up = penalty_value(beta, X, F, B, K, D);
        beta[i] = keep - h;
        double down = penalty_value(beta, X, F, B, K, D);
        beta[i] = keep;
        worst = fmax(worst, fabs((up - down) / (2 * h) - grad[i]));
    }
    CU_ASSERT(worst < 1e-8);

    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "pmdn_steps.txt") == 0);
    MetaSchema s;
    age_site_schema(&s);
    TuLayer fx;
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age\nkernel = penalty\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) == 0);
    CU_ASSERT_FATAL(fx.L.n_state == (size_t)(K * K + 3 * K * D + 1));
    MetaDesign des = mdn_design(&s, "label", "age");  // [label, age, 1]: the reference's columns
    CU_ASSERT_FATAL(des.k == K);
    for (int t = 0; t < STEPS; t++) {
        char name[16];
        snprintf(name, sizeof name, "X%d", t);
        RefTensor *xt = tu_ref_get(&f, name);
        snprintf(name, sizeof name, "F%d", t);
        RefTensor *ft = tu_ref_get(&f, name);
        CU_ASSERT_FATAL(xt && ft && xt->n == B * K && ft->n == B * D);
        double meta[B * 2];
        int32_t labels[B];
        for (int i = 0; i < B; i++) {
            labels[i] = (int32_t)xt->v[i * K];
            meta[i * 2] = xt->v[i * K + 1];  // age
            meta[i * 2 + 1] = 0;             // site: its first level
        }
        for (int i = 0; i < B * D; i++) fx.in[i] = (float)ft->v[i];
        mdn_fx_meta(&fx, meta, labels);
        tu_layer_forward(&fx, B, 1);
        snprintf(name, sizeof name, "beta%d", t);
        tu_ref_check(&f, name, fx.state + K * K, K * D, 1e-7, 1e-5);
        double b[K * D], want[B * D];
        for (int i = 0; i < K * D; i++) b[i] = fx.state[K * K + i];
        residual_ref(want, fx.in, xt->v, b, des.removed, B, K, D);
        CU_ASSERT(ratio_d("PMDN residual", fx.out, want, (size_t)B * D, 1e-6, 1e-6) <= 1);
    }
    CU_ASSERT(fx.state[K * K + 3 * K * D] == (float)STEPS);  // Adam's step count
    float *R = tu_rand((size_t)B * D, -1, 1, &rng);
    memcpy(fx.dout, R, sizeof(float) * B * D);
    for (int i = 0; i < B * D; i++) fx.din[i] = 0.5f;
    tu_layer_backward(&fx, B);
    for (int i = 0; i < B * D; i++) R[i] += 0.5f;
    CU_ASSERT(memcmp(fx.din, R, sizeof(float) * B * D) == 0);  // beta is a constant to the network
    free(R);
    tu_layer_free(&fx);
    tu_ref_free(&f);
    CU_ASSERT(tu_layer_build(&fx, "[mdn]\nremove = age\nkernel = penalty\neval_beta = epoch\n", (Shape){ D, 1, 1, 1 }, B, NULL, &s) != 0);
    CU_ASSERT(strstr(fx.err.msg, "eval_beta") && strstr(fx.err.msg, "penalty"));
    tu_layer_free(&fx);
}

static void test_missing_metadata(void) {
    MetaSchema s;
    age_site_schema(&s);
    // no schema (a command or data without metadata): a build error naming the need
    TuLayer fx;
    CU_ASSERT(tu_layer_build(&fx, "[mdn]\nremove = age\n", (Shape){ 4, 1, 1, 1 }, 3, NULL, NULL) == -1);
    CU_ASSERT(strstr(fx.err.msg, "test.ini") != NULL && strstr(fx.err.msg, "metadata") != NULL);
    tu_layer_free(&fx);
    Ini ini;
    DfError err;
    Net net;
    CU_ASSERT_FATAL(ini_parse_string(&ini, NET_INI, "net.ini", &err) == 0);
    CU_ASSERT(net_build(&net, &ini, (Shape){ 1, 4, 4, 3 }, 2, NULL, &err) == -1);
    CU_ASSERT(strstr(err.msg, "metadata") != NULL);
    ini_free(&ini);
    // a schema but no rows for this batch: exit 2 with a message, not a crash
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = age\nkernel = batch\n", (Shape){ 4, 1, 1, 1 }, 3, NULL, &s) == 0);
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
    tu_layer_free(&fx);
    CU_ASSERT_FATAL(tu_layer_build(&fx, "[mdn]\nremove = site\nkernel = batch\n", (Shape){ 4, 1, 1, 1 }, 3, NULL, &s) == 0);
    mdn_fx_meta(&fx, (double *)(meta), (int32_t *)(labels));
    st = run_child(forward_eval, &fx, msg, sizeof msg);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT(strstr(msg, "site") != NULL);
    if (st != 2 || !strstr(msg, "site")) fprintf(stderr, "  child: status %d, %s\n", st, msg);
    tu_layer_free(&fx);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("mdn", NULL, NULL);
    CU_add_test(s, "residuals equal an OLS fit", test_ols_residuals);
    CU_add_test(s, "backward vs finite differences", test_backward_fd);
    CU_add_test(s, "features wider than a column tile", test_wide_features);
    CU_add_test(s, "categorical coding and column errors", test_categorical);
    CU_add_test(s, "grouped slopes (age|site, age|label)", test_grouped_slopes);
    CU_add_test(s, "singular designs", test_singular);
    CU_add_test(s, "batch kernel: a batch without a level", test_batch_missing_level);
    CU_add_test(s, "eval uses the running beta", test_running_beta);
    CU_add_test(s, "eval_beta = epoch: the refit pass", test_refit);
    CU_add_test(s, "pool = channel: one beta per channel", test_pool_channel);
    CU_add_test(s, "R-MDN: Woodbury step, least squares, the layer", test_recursive);
    CU_add_test(s, "PMDN: the penalty's gradient, steps against PyTorch", test_penalty);
    CU_add_test(s, "missing metadata is a clear error", test_missing_metadata);
    return tu_run_all();
}
