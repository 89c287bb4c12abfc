// testutil.c: see testutil.h.
#include "testutil.h"
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"

void tu_fill_uniform(float *x, size_t n, float lo, float hi, Rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = rng_uniformf(rng, lo, hi);
}

float *tu_rand(size_t n, float lo, float hi, Rng *rng) {
    float *x = df_alloc_floats(n);
    tu_fill_uniform(x, n, lo, hi, rng);
    return x;
}

float *tu_copy(const float *x, size_t n) {
    float *y = df_alloc_floats(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

double tu_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol, const char *what) {
    double worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(r <= worst)) { worst = r; wi = i; }  // NaN counts as worst
        if (isnan(r)) { worst = INFINITY; wi = i; break; }
    }
    if (worst > 1.0 && what)
        fprintf(stderr, "  %s: mismatch at %zu: %.9g vs %.9g (ratio %.3g)\n", what, wi, a[wi], b[wi], worst);
    return worst;
}

double tu_fd_check(tu_loss_fn f, void *ctx, float *x, const float *grad, size_t n, size_t checks,
                   double h, double atol, double rtol, const char *what) {
    Rng rng;
    rng_seed(&rng, 12345);
    double worst = 0.0;
    size_t wi = 0;
    double wfd = 0, wg = 0;
    size_t m = checks >= n ? n : checks;
    for (size_t t = 0; t < m; t++) {
        size_t i = checks >= n ? t : (size_t)rng_below(&rng, n);
        float orig = x[i];
        x[i] = (float)(orig + h);
        double hp = (double)x[i] - orig;  // the step actually representable in float
        double fp = f(ctx);
        x[i] = (float)(orig - h);
        double hm = orig - (double)x[i];
        double fm = f(ctx);
        x[i] = orig;
        double fd = (fp - fm) / (hp + hm);
        double r = fabs(fd - grad[i]) / (atol + rtol * fabs(fd));
        if (isnan(r)) r = INFINITY;
        if (r > worst) { worst = r; wi = i; wfd = fd; wg = grad[i]; }
    }
    if (worst > 1.0 && what)
        fprintf(stderr, "  %s: gradient mismatch at %zu: finite difference %.9g, analytic %.9g (ratio %.3g)\n",
                what, wi, wfd, wg, worst);
    return worst;
}

static char tmpdir_path[256];

int tu_tmpdir_create(const char *prefix) {
    snprintf(tmpdir_path, sizeof tmpdir_path, "/tmp/%s-XXXXXX", prefix);
    return mkdtemp(tmpdir_path) ? 0 : -1;
}

const char *tu_tmpdir(void) { return tmpdir_path; }

char *tu_path(const char *name) {
    static char bufs[32][512];
    static int k;
    char *b = bufs[k++ % 32];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir_path, name);
    return b;
}

int tu_contains(const char *hay, const char *needle) {
    int ok = strstr(hay, needle) != NULL;
    if (!ok) fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", hay, needle);
    return ok;
}

double tu_dot(const float *out, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * (double)r[i];
    return s;
}

static int n_skipped;

void tu_skip(const char *why) {
    n_skipped++;
    printf("\n  SKIP: %s\n", why);
}

int tu_run_all(void) {
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) { fprintf(stderr, "no tests ran\n"); return 1; }
    if (failed) return 1;
    if (n_skipped) printf("%d test(s) skipped: exit 77 (skipped)\n", n_skipped);
    return n_skipped ? 77 : 0;
}
