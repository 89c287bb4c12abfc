// test_mdn_ref.c: MDN against PyTorch reference numbers (tests/gen_mdn_ref.py ->
// tests/ref/mdn_*.txt: the reference implementation's layer on fixed inputs, both kernels),
// and the checkpoint holding its state.
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
    MetaDesign des = mdn_design(&s, "label", "age, site");
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
    TuLayer fx;
    CU_ASSERT_FATAL(tu_layer_build(&fx, cfg, (Shape){ d, 1, 1, 1 }, B, NULL, &s) == 0);
    CU_ASSERT_FATAL(mdn_ops.prepare(&fx.L, tmeta, tlab, N, 0, N, &fx.err) == 0);
    if (!batch_kernel) {
        float Kf[25];
        for (int i = 0; i < 25; i++) Kf[i] = fx.state[i];
        CU_ASSERT(ratio_d("kernel vs torch", Kf, Kr->v, 25, 1e-12, 1e-6) <= 1);
    }
    memcpy(fx.in, F, sizeof(float) * B * d);
    memcpy(fx.dout, R, sizeof(float) * B * d);
    mdn_fx_meta(&fx, (double *)(bm->v), (int32_t *)(blab));
    tu_layer_forward(&fx, B, 1);
    tu_layer_backward(&fx, B);
    CU_ASSERT(ratio_d("residuals vs torch (layer)", fx.out, out_r->v, (size_t)B * d, 1e-6, 1e-5) <= 1);
    CU_ASSERT(ratio_d("input gradient vs torch (layer)", fx.din, dF->v, (size_t)B * d, 1e-6, 1e-5) <= 1);
    // the running beta after one step from 0 is m * beta
    double want_run[64];
    for (int i = 0; i < k * d && i < 64; i++) want_run[i] = 0.1 * beta_r->v[i];
    CU_ASSERT(ratio_d("running beta after one step", fx.state + 25, want_run, (size_t)(k * d < 64 ? k * d : 64), 1e-9, 1e-5) <= 1);
    tu_layer_free(&fx);
    free(all); free(tmeta); free(all_l); free(blab); free(tlab); free(X); free(F); free(R); free(out); free(din); free(beta);
    ref_free(&f);
}

static void test_torch_dataset(void) { check_torch_case("mdn_dataset.txt", 0); }
static void test_torch_batch(void) { check_torch_case("mdn_batch.txt", 1); }

// ---- checkpoint and missing metadata --------------------------------------------------------

// Two networks of one config on the age/site schema: `a` prepared on N training rows and
// stepped 3 times in training mode (its running beta moves), `b` built and initialised
// differently, for a checkpoint of `a` to be loaded into.
enum { CK_B = 6, CK_N = 20 };
typedef struct {
    MetaSchema s;
    Shape in;
    double meta[CK_N * 2];
    int32_t labels[CK_N];
    float *img;
    Ini ini;
    Net a, b;
    Batch batch;
} CkptFx;

static void ckpt_fx_init(CkptFx *f, const char *cfg, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    age_site_schema(&f->s);
    f->in = (Shape){ 1, 4, 4, 3 };
    random_rows(f->meta, f->labels, CK_N, &rng);
    f->img = tu_rand(CK_B * shape_numel(f->in), -1, 1, &rng);
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(&f->ini, cfg, "net.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&f->a, &f->ini, f->in, CK_B, NULL, &f->s, &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&f->b, &f->ini, f->in, CK_B, NULL, &f->s, &err) == 0);
    net_init(&f->a, 3);
    net_init(&f->b, 4);
    CU_ASSERT_FATAL(net_prepare(&f->a, f->meta, f->labels, CK_N, 0, CK_N, &err) == 0);
    f->batch = mdn_batch(f->img, CK_B, f->meta, f->labels);
    for (int t = 0; t < 3; t++) net_forward(&f->a, &f->batch, 1);
}

// Saves `a` (config cfg) to a temporary file and loads it into `net`: the load's status.
static int ckpt_save_load(CkptFx *f, const char *cfg, Net *net) {
    char path[] = "/tmp/test_mdn_ckpt_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    DfError err;
    CU_ASSERT_FATAL(checkpoint_save(path, cfg, &f->a, NULL, NULL, &err) == 0);
    int rc = checkpoint_load(path, net, NULL, NULL, &err);
    unlink(path);
    return rc;
}

// `b` loaded from `a`'s checkpoint: the same state, the same evaluation outputs bit for bit.
static void ckpt_roundtrip(CkptFx *f, const char *cfg) {
    CU_ASSERT_FATAL(ckpt_save_load(f, cfg, &f->b) == 0);
    CU_ASSERT(memcmp(f->a.state, f->b.state, f->a.n_state * sizeof(float)) == 0);
    float *ea = tu_copy(net_forward(&f->a, &f->batch, 0), CK_B * 2);
    const float *eb = net_forward(&f->b, &f->batch, 0);
    CU_ASSERT(memcmp(ea, eb, sizeof(float) * CK_B * 2) == 0);
    free(ea);
}

static void ckpt_fx_free(CkptFx *f) {
    net_free(&f->a);
    net_free(&f->b);
    ini_free(&f->ini);
    free(f->img);
}

// The state tensor `name` of a layer, or NULL.
static const float *state_named(const Layer *L, const char *name) {
    for (int i = 0; i < L->n_state_info; i++)
        if (strcmp(L->state_info[i].name, name) == 0) return layer_state(L, i);
    return NULL;
}

static void test_checkpoint(void) {
    CkptFx f;
    ckpt_fx_init(&f, NET_INI, 81);
    ckpt_roundtrip(&f, NET_INI);
    Layer *m1 = net_layer(&f.b, "mdn1");
    CU_ASSERT_FATAL(m1 != NULL);
    CU_ASSERT(state_named(m1, "kernel") && state_named(m1, "running_beta"));
    float kmax = 0;
    for (int i = 0; i < 25; i++) kmax = fmaxf(kmax, fabsf(m1->state[i]));
    CU_ASSERT(kmax > 0);  // the fitted kernel itself was saved
    ckpt_fx_free(&f);
}

// ---- spline-expanded columns against R's splines::ns ---------------------------------------

// For df = 2, 4, 6 (tests/gen_spline_ref.R): the knots ns(x, df) chose, and the predictions of
// a least-squares fit on [basis, intercept] -- a natural cubic spline space is the same
// whatever its basis, so they must match R's lm(y ~ ns(x, df)) at points inside and outside
// the boundary knots. Tolerance 1e-9 of the predictions' size: the normal equations of a
// well-conditioned 7-column design in double lose a few digits of 1e-16, nothing more.
static void test_spline_r(void) {
    RefF f;
    CU_ASSERT_FATAL(ref_load(&f, "spline_ns.txt") == 0);
    const RefT *x = ref_get(&f, "x"), *y = ref_get(&f, "y"), *xs = ref_get(&f, "xs");
    CU_ASSERT_FATAL(x && y && xs);
    int n = x->n;
    double *sorted = malloc(sizeof(double) * n);
    memcpy(sorted, x->v, sizeof(double) * n);
    qsort(sorted, (size_t)n, sizeof(double), df_cmp_double);
    for (int df = 2; df <= 6; df += 2) {
        char name[32];
        snprintf(name, sizeof name, "knots%d", df);
        const RefT *kr = ref_get(&f, name);
        snprintf(name, sizeof name, "pred%d", df);
        const RefT *pr = ref_get(&f, name);
        CU_ASSERT_FATAL(kr && pr && kr->n == df + 1 && pr->n == xs->n);
        double knots[META_SPLINE_MAX_DF + 1];
        CU_ASSERT_FATAL(meta_spline_knots(knots, df, sorted, n) == 0);
        CU_ASSERT(ratio_dd("knots vs R's ns", knots, kr->v, (size_t)df + 1, 1e-12, 1e-12) <= 1);
        int k = df + 1;
        double *X = malloc(sizeof(double) * n * k), XtX[64] = { 0 }, K[64], Xty[8] = { 0 }, beta[8] = { 0 };
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < df; j++) X[i * k + j] = meta_spline_basis(x->v[i], knots, df, j);
            X[i * k + df] = 1.0;
            for (int a = 0; a < k; a++) Xty[a] += X[i * k + a] * y->v[i];
        }
        mdn_accumulate_xtx(XtX, X, n, k);
        int bad;
        CU_ASSERT_FATAL(mdn_inverse_spd(K, XtX, k, &bad) == 0);
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) beta[a] += K[a * k + b] * Xty[b];
        double pred[16];
        for (int p = 0; p < xs->n; p++) {
            pred[p] = beta[df];
            for (int j = 0; j < df; j++) pred[p] += beta[j] * meta_spline_basis(xs->v[p], knots, df, j);
        }
        CU_ASSERT(ratio_dd("predictions vs R's lm(y ~ ns(x, df))", pred, pr->v, (size_t)xs->n, 1e-9, 1e-9) <= 1);
        free(X);
    }
    free(sorted);
    ref_free(&f);
}

// The basis itself: cubic pieces joined with continuous first and second derivatives at
// every knot, and linear (second derivative 0) beyond the boundary knots. Knots in [0, 1],
// where the basis and its derivatives are O(1): one-sided differences with step h on either
// side of a knot differ by O(h) (0.01 and 0.05 at h = 1e-3) when the derivative is
// continuous, by O(1) when it jumps; rounding adds ~1e-16 / h^2 = 1e-10.
static void test_spline_shape(void) {
    const double knots[5] = { 0, 0.19, 0.45, 0.53, 1 };
    const double h = 1e-3;
    for (int j = 0; j < 4; j++) {
        for (int t = 0; t < 5; t++) {
            double x = knots[t];
            double f0 = meta_spline_basis(x, knots, 4, j), fl = meta_spline_basis(x - h, knots, 4, j),
                   fr = meta_spline_basis(x + h, knots, 4, j), fl2 = meta_spline_basis(x - 2 * h, knots, 4, j),
                   fr2 = meta_spline_basis(x + 2 * h, knots, 4, j);
            // one-sided second derivatives from the left and from the right agree (C^2)
            double d2l = (f0 - 2 * fl + fl2) / (h * h), d2r = (fr2 - 2 * fr + f0) / (h * h);
            CU_ASSERT(fabs(d2l - d2r) < 0.05);
            double d1l = (f0 - fl) / h, d1r = (fr - f0) / h;  // first derivatives, O(h) apart
            CU_ASSERT(fabs(d1l - d1r) < 0.01);
        }
        for (double x = -3.0; x < 4.0; x += 0.17) {  // linear outside [0, 1]
            if (x > knots[0] - 2 * h && x < knots[4] + 2 * h) continue;
            double d2 = meta_spline_basis(x + h, knots, 4, j) - 2 * meta_spline_basis(x, knots, 4, j) +
                        meta_spline_basis(x - h, knots, 4, j);
            CU_ASSERT(fabs(d2) / (h * h) < 1e-6);
        }
    }
    // N_0 is the column scaled to the knots' range, whatever its units
    const double years[5] = { 20, 31.4, 47, 52, 80 };
    CU_ASSERT_DOUBLE_EQUAL(meta_spline_basis(20, years, 4, 0), 0.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(meta_spline_basis(80, years, 4, 0), 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(meta_spline_basis(50, years, 4, 2), meta_spline_basis(0.5, (const double[]){ 0, 0.19, 0.45, 0.5333333333333333, 1 }, 4, 2), 1e-12);
    // too few distinct values for the quantiles
    double ties[6] = { 1, 1, 1, 1, 2, 3 }, kn[5];
    CU_ASSERT(meta_spline_knots(kn, 4, ties, 6) == -1);
    CU_ASSERT(meta_spline_knots(kn, 2, ties, 6) == -1);
    CU_ASSERT(meta_spline_knots(kn, 2, ties + 2, 4) == 0);
}

// A network whose MDN layer removes age:spline3: prepare fits the knots at the training
// values' quantiles into the layer's state, and a second network that only loads the
// checkpoint (never prepared) codes every sample as the first does.
static void test_spline_checkpoint(void) {
    const char *cfg = "[conv3d]\nname = conv1\nout = 2\nkernel = 3\npad = 1\n"
                      "[mdn]\nname = mdn1\nremove = age:spline3, site\n"
                      "[flatten]\n[linear]\nname = fc\nout = 2\n";
    CkptFx f;
    ckpt_fx_init(&f, cfg, 82);
    const float *kn = state_named(net_layer(&f.a, "mdn1"), "knots");
    CU_ASSERT_FATAL(kn != NULL);
    double ages[CK_N], want[4];
    for (int i = 0; i < CK_N; i++) ages[i] = f.meta[i * 2];
    qsort(ages, CK_N, sizeof(double), df_cmp_double);
    CU_ASSERT_FATAL(meta_spline_knots(want, 3, ages, CK_N) == 0);
    for (int j = 0; j < 4; j++) CU_ASSERT_EQUAL(kn[j], (float)want[j]);
    ckpt_roundtrip(&f, cfg);
    // a model trained with a linear age is not this one
    char cfg2[512];
    snprintf(cfg2, sizeof cfg2, "%s", cfg);
    char *at = strstr(cfg2, "age:spline3");
    memmove(at + 3, at + 11, strlen(at + 11) + 1);
    Ini lin;
    Net c;
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(&lin, cfg2, "lin.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build_meta(&c, &lin, f.in, CK_B, NULL, &f.s, &err) == 0);
    CU_ASSERT(ckpt_save_load(&f, cfg, &c) == -1);
    net_free(&c);
    ini_free(&lin);
    ckpt_fx_free(&f);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("mdn reference", NULL, NULL);
    CU_add_test(s, "PyTorch reference, dataset kernel", test_torch_dataset);
    CU_add_test(s, "PyTorch reference, batch kernel", test_torch_batch);
    CU_add_test(s, "checkpoint holds the MDN state", test_checkpoint);
    CU_add_test(s, "spline columns against R's splines::ns", test_spline_r);
    CU_add_test(s, "spline basis: C2 at the knots, linear outside", test_spline_shape);
    CU_add_test(s, "spline knots fitted by prepare, kept by the checkpoint", test_spline_checkpoint);
    return tu_run_all();
}
