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

float *tu_ramp(size_t n, Rng *rng) {
    int *perm = xmalloc(n * sizeof(int));
    rng_permutation(rng, perm, (int)n);
    float *x = df_alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = 0.01f * (float)perm[i] - 0.005f * (float)n;
    free(perm);
    return x;
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
    // two slices: a test that sets df_threads_set(2) runs the layers' threaded paths
    t->workspace = df_alloc_floats(t->L.workspace_floats * 2);
    t->ctx.workspace = t->workspace;
    t->ctx.workspace_floats = t->L.workspace_floats;
    t->ctx.workspace_threads = 2;
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
    // as net_free: a layer whose build failed is destroyed too (it may hold what it allocated)
    if (t->L.ops && t->L.ops->destroy) t->L.ops->destroy(&t->L);
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
// ---- reference files ------------------------------------------------------------------------



void tu_ref_path(char *buf, size_t n, const char *file) {
    const char *top = getenv("top_srcdir");
    snprintf(buf, n, "%s/tests/ref/%s", top && *top ? top : ".", file);
}

// Next whitespace-separated token, skipping '#' comments to the end of the line.
static char *next_token(char **p) {
    char *s = *p;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
        if (*s != '#') break;
        while (*s && *s != '\n') s++;
    }
    if (!*s) { *p = s; return NULL; }
    char *tok = s;
    while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') s++;
    if (*s) *s++ = '\0';
    *p = s;
    return tok;
}

static int parse_long_tok(char **p, long *out) {
    char *tok = next_token(p);
    return tok && df_parse_long(tok, out) == 0 ? 0 : -1;
}

// Returns 0, or -1 after printing what is wrong with the file.
int tu_ref_load(RefFile *f, const char *file) {
    memset(f, 0, sizeof *f);
    tu_ref_path(f->path, sizeof f->path, file);
    DfError err;
    char *text = df_read_text_file(f->path, NULL, &err);
    if (!text) { fprintf(stderr, "  %s\n", err.msg); return -1; }
    char *p = text, *tok;
    int rc = 0;
    while ((tok = next_token(&p))) {
        if (f->n == f->cap) {
            f->cap = f->cap ? 2 * f->cap : 32;
            f->t = xrealloc(f->t, (size_t)f->cap * sizeof *f->t);
        }
        RefTensor *t = &f->t[f->n];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", tok);
        long ndim, d;
        if (parse_long_tok(&p, &ndim) || ndim < 1 || ndim > 6) { rc = -1; break; }
        t->ndim = (int)ndim;
        t->n = 1;
        for (int i = 0; i < t->ndim; i++) {
            if (parse_long_tok(&p, &d) || d < 1) { rc = -1; break; }
            t->dims[i] = (int)d;
            t->n *= (size_t)d;
        }
        if (rc) break;
        t->v = xmalloc(t->n * sizeof(double));
        f->n++;
        for (size_t i = 0; i < t->n; i++) {
            char *num = next_token(&p);
            if (!num || df_parse_double(num, &t->v[i])) { rc = -1; break; }
        }
        if (rc) break;
    }
    if (rc) fprintf(stderr, "  %s: malformed near tensor '%s'\n", f->path, f->n ? f->t[f->n - 1].name : "(start)");
    free(text);
    return rc;
}

void tu_ref_free(RefFile *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].v);
    free(f->t);
    memset(f, 0, sizeof *f);
}

// NULL (and a printed note) when absent.
RefTensor *tu_ref_find(RefFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) { f->t[i].used = 1; return &f->t[i]; }
    return NULL;
}

RefTensor *tu_ref_get(RefFile *f, const char *name) {
    RefTensor *t = tu_ref_find(f, name);
    if (!t) fprintf(stderr, "  %s: no tensor '%s'\n", f->path, name);
    return t;
}

float *tu_ref_floats(const RefTensor *t) {
    float *x = xmalloc(t->n * sizeof(float));
    for (size_t i = 0; i < t->n; i++) x[i] = (float)t->v[i];
    return x;
}

// Worst |got - want| / (atol + rtol |want|); prints the worst entry when it exceeds 1.
double tu_ref_ratio(const char *what, const float *got, const double *want, size_t n, double atol, double rtol) {
    double worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (isnan(r)) r = INFINITY;
        if (r > worst) { worst = r; wi = i; }
    }
    if (getenv("TORCH_REF_VERBOSE"))  // margins of every comparison, for tuning tolerances
        fprintf(stderr, "  %-34s n=%-5zu worst ratio %.3g\n", what, n, worst);
    if (worst > 1.0)
        fprintf(stderr, "\n  %s: worst mismatch at [%zu] of %zu: C %.9g vs reference %.9g (ratio %.3g to tolerance)\n",
                what, wi, n, n ? got[wi] : 0.0, n ? want[wi] : 0.0, worst);
    return worst;
}

// CU_ASSERT that `got` (n floats) matches the reference tensor `name` of f.
void tu_ref_check(RefFile *f, const char *name, const float *got, size_t n, double atol, double rtol) {
    RefTensor *t = tu_ref_get(f, name);
    CU_ASSERT_PTR_NOT_NULL(t);
    if (!t) return;
    if (t->n != n) {
        fprintf(stderr, "\n  %s: C has %zu values, reference %zu\n", name, n, t->n);
        CU_FAIL("reference tensor size");
        return;
    }
    CU_ASSERT(tu_ref_ratio(name, got, t->v, n, atol, rtol) <= 1.0);
}

void tu_ref_check_scalar(const char *what, double got, double want, double atol, double rtol) {
    float g = (float)got;
    CU_ASSERT(tu_ref_ratio(what, &g, &want, 1, atol, rtol) <= 1.0);
}


int tu_near(double a, double b, double rtol, double atol, const char *what) {
    if (isnan(a) && isnan(b)) return 1;
    int ok = fabs(a - b) <= atol + rtol * fabs(b);
    if (!ok) printf("\n  %s: got %.17g, expected %.17g (diff %.3g)\n", what, a, b, a - b);
    return ok;
}
