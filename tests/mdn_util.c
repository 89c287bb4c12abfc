// mdn_util.c: see mdn_util.h.
#include "tests/mdn_util.h"
#include "nn/mdn.h"
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- independent reference: least squares in double ---------------------------------------

// beta (k,d) = (X^T X + ridge I)^-1 X^T F by Gauss-Jordan elimination with partial pivoting on
// the normal equations. X (n,k) double, F (n,d) float.
void ols_ref(double *beta, const double *X, const float *F, int n, int k, int d, double ridge) {
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
void residual_ref(double *out, const float *F, const double *X, const double *beta, const unsigned char *removed,
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
double ratio_d(const char *what, const float *got, const double *want, size_t n, double atol, double rtol) {
    return tu_ref_ratio(what, got, want, n, atol, rtol);
}
double ratio_dd(const char *what, const double *got, const double *want, size_t n, double atol, double rtol) {
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
void cohort_of(Cohort *c, int n, int k, const char *const *names, const MetaKind *kinds, double *meta, int32_t *labels) {
    memset(c, 0, sizeof *c);
    c->n = n;
    c->k = k;
    c->meta = meta;
    c->labels = labels;
    for (int j = 0; j < k; j++) { c->columns[j] = (char *)names[j]; c->kinds[j] = kinds[j]; }
}

const char *const AS_NAMES[] = { "age", "site" };
const MetaKind AS_KINDS[] = { META_CONTINUOUS, META_CATEGORICAL };
static const double SITES[] = { 0, 2, 5 };

// n rows of [age, site] with site cycling through {0, 2, 5} (every site present when n >= 3)
// and labels random 0/1.
void random_rows(double *meta, int32_t *labels, int n, Rng *rng) {
    int off = (int)rng_below(rng, 3);
    for (int i = 0; i < n; i++) {
        meta[i * 2] = rng_uniformf(rng, 20, 80);
        meta[i * 2 + 1] = SITES[(i + off) % 3];
        labels[i] = (int32_t)rng_below(rng, 2);
    }
}

// The schema of age (continuous) and site (levels 0, 2, 5), binary label.
void age_site_schema(MetaSchema *s) {
    double meta[] = { 30, 0, 40, 2, 50, 5, 60, 0 };
    int32_t labels[] = { 0, 1, 1, 0 };
    Cohort c;
    cohort_of(&c, 4, 2, AS_NAMES, AS_KINDS, meta, labels);
    DfError err;
    CU_ASSERT_FATAL(meta_schema_build(s, &c, &err) == 0);
}

void b_three_class_schema(MetaSchema *s) {
    static const char *const names[] = { "b" };
    static const MetaKind kinds[] = { META_CATEGORICAL };
    double meta[] = { 0, 1, 0 };
    int32_t labels[] = { 0, 1, 2 };
    Cohort c;
    cohort_of(&c, 3, 1, names, kinds, meta, labels);
    DfError err;
    CU_ASSERT_FATAL(meta_schema_build(s, &c, &err) == 0);
}

// Design rows (n,k) of raw rows.
void design_rows(double *X, const MetaDesign *d, const MetaSchema *s, const double *meta, const int32_t *labels, int n) {
    for (int i = 0; i < n; i++) CU_ASSERT(meta_design_row(d, s, meta + (size_t)i * s->n_cols, labels[i], X + (size_t)i * d->k) == 0);
}

void random_design(double *X, double *meta, int32_t *labels, int n, const MetaDesign *d, const MetaSchema *s, Rng *rng) {
    random_rows(meta, labels, n, rng);
    design_rows(X, d, s, meta, labels, n);
}

void kernel_of(double *K, const double *X, int n, int k) {
    double *XtX = calloc((size_t)k * k, sizeof(double));
    mdn_accumulate_xtx(XtX, X, n, k);
    int bad;
    CU_ASSERT_FATAL(mdn_inverse_spd(K, XtX, k, &bad) == 0);
    free(XtX);
}

MetaDesign mdn_design(const MetaSchema *s, const char *keep, const char *remove) {
    MetaDesign d;
    DfError err;
    CU_ASSERT(meta_design_build(&d, s, keep, remove, "test", &err) == 0);
    return d;
}

void mdn_fx_meta(TuLayer *t, double *meta, int32_t *labels) {
    t->batch.meta = meta;
    t->batch.labels = labels;
    t->batch.n_meta = t->ctx.meta_schema ? t->ctx.meta_schema->n_cols : 0;
}

const char *NET_INI =
    "[conv3d]\nname = conv1\nout = 3\nkernel = 3\npad = 1\n"
    "[mdn]\nname = mdn1\nremove = age, site\n"
    "[relu]\n[flatten]\n"
    "[linear]\nname = fc1\nout = 6\n"
    "[mdn]\nname = mdn2\nremove = age, site\nkernel = batch\nridge = 0.1\n"
    "[tanh]\n"
    "[linear]\nname = fc\nout = 2\n";

Batch mdn_batch(float *images, int n, double *meta, int32_t *labels) {
    Batch b = batch_of_images(images, n);
    b.meta = meta;
    b.labels = labels;
    b.n_meta = 2;
    return b;
}
