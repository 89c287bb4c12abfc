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

// ---- one layer fixture ------------------------------------------------------------------------

int tu_layer_build(TuLayer *t, const char *text, Shape in, int max_batch, Reducer *red, const struct MetaSchema *schema) {
    memset(t, 0, sizeof *t);
    if (ini_parse_string(&t->ini, text, "test.ini", &t->err)) return -1;
    const LayerOps *ops = layer_ops_find(t->ini.sections[0].name);
    if (!ops) return df_err(&t->err, "test.ini: [%s] is not a layer type", t->ini.sections[0].name);
    t->ctx = (NetCtx){ .reducer = red ? red : &reducer_local, .max_batch = max_batch, .seed = 1234, .step = 1,
                       .meta_schema = schema };
    t->L.ops = ops;
    snprintf(t->L.name, sizeof t->L.name, "%s1", ops->type);
    t->L.in_shape = in;
    t->L.ctx = &t->ctx;
    if (ops->build(&t->L, &t->ini, &t->ini.sections[0], &t->err)) return -1;
    t->built = 1;
    size_t ni = (size_t)max_batch * shape_numel(in), no = (size_t)max_batch * shape_numel(t->L.out_shape);
    t->in = df_alloc_floats(ni); t->din = df_alloc_floats(ni);
    t->out = df_alloc_floats(no); t->dout = df_alloc_floats(no);
    t->params = df_alloc_floats(t->L.n_params); t->grads = df_alloc_floats(t->L.n_params);
    t->state = df_alloc_floats(t->L.n_state);
    t->workspace = df_alloc_floats(t->L.workspace_floats);
    t->ctx.workspace = t->workspace;
    t->ctx.workspace_floats = t->L.workspace_floats;
    t->L.in = t->in; t->L.out = t->out; t->L.din = t->din; t->L.dout = t->dout;
    t->L.params = t->params; t->L.grads = t->grads; t->L.state = t->state;
    t->batch = batch_of_images(t->in, max_batch);
    Rng rng;
    rng_seed(&rng, 77);
    ops->init(&t->L, &rng);
    return 0;
}

void tu_layer_forward(TuLayer *t, int B, int training) {
    t->batch.n = t->batch.global_n = B;
    t->L.ops->forward(&t->L, &t->batch, training);
}

void tu_layer_backward(TuLayer *t, int B) {
    t->batch.n = t->batch.global_n = B;
    t->L.ops->backward(&t->L, &t->batch);
}

void tu_layer_free(TuLayer *t) {
    if (t->built && t->L.ops->destroy) t->L.ops->destroy(&t->L);
    free(t->in); free(t->din); free(t->out); free(t->dout);
    free(t->params); free(t->grads); free(t->state); free(t->workspace);
    ini_free(&t->ini);
    memset(t, 0, sizeof *t);
}

// ---- simulated ranks --------------------------------------------------------------------------

static void sim_sum_f64(Reducer *r, double *buf, size_t n) {
    TuSim *f = (TuSim *)r;
    int i = f->call++;
    if (i >= TU_SIM_MAX_CALLS) { CU_FAIL("too many reductions"); return; }
    if (i < f->known) {
        CU_ASSERT(f->n[i] == n);
        memcpy(buf, f->tot[i], n * sizeof(double));
    } else if (i == f->known) {
        if (!f->tot[i]) { f->tot[i] = calloc(n ? n : 1, sizeof(double)); f->n[i] = n; }
        CU_ASSERT(f->n[i] == n);
        for (size_t j = 0; j < n; j++) f->tot[i][j] += buf[j];
        f->recorded = 1;
    }
}

static void sim_sum_f32(Reducer *r, float *buf, size_t n) {
    double *t = malloc((n ? n : 1) * sizeof(double));
    for (size_t j = 0; j < n; j++) t[j] = buf[j];
    sim_sum_f64(r, t, n);
    for (size_t j = 0; j < n; j++) buf[j] = (float)t[j];
    free(t);
}

static void sim_reset(TuSim *f) {
    for (int i = 0; i < TU_SIM_MAX_CALLS; i++) { free(f->tot[i]); f->tot[i] = NULL; f->n[i] = 0; }
    f->known = f->call = f->recorded = 0;
}

void tu_sim_init(TuSim *f, int P) {
    memset(f, 0, sizeof *f);
    f->base.sum_f64 = sim_sum_f64;
    f->base.sum_f32 = sim_sum_f32;
    f->base.nranks = P;
}

void tu_simulate(TuSim *f, int P, TuRankFn fn, void *arg) {
    if (!f->base.sum_f64) tu_sim_init(f, P);
    sim_reset(f);
    f->base.nranks = P;
    for (;;) {
        f->recorded = 0;
        for (int r = 0; r < P; r++) { f->call = 0; fn(arg, r, P); }
        if (!f->recorded) break;
        f->known++;
    }
    sim_reset(f);
}

void tu_share(int n, int r, int P, int *lo, int *hi) {
    *lo = (int)((long)n * r / P);
    *hi = (int)((long)n * (r + 1) / P);
}
