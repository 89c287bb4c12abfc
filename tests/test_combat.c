// test_combat.c: ComBat (prep/combat.c) against Bioconductor sva 3.46's ComBat
// (tests/ref/combat.txt, made by tests/gen_combat_ref.R), the same model at 1, 2 and 3
// simulated ranks, applying the model to the training subjects and to a subset, and the
// errors (a site with one subject, a singular covariate, non-finite data).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prep/combat.h"
#include "testutil.h"

// Worst |got - want| / (atol + rtol |want|) (<= 1 passes); prints it with COMBAT_VERBOSE set
// (to measure the margins) and the worst entry when it fails.
static double ratio(const char *what, const double *got, const double *want, size_t n, double atol, double rtol) {
    double worst = 0, wrel = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]), r = d / (atol + rtol * fabs(want[i]));
        if (isnan(r)) r = INFINITY;
        if (want[i] != 0 && d / fabs(want[i]) > wrel) wrel = d / fabs(want[i]);
        if (r > worst) { worst = r; wi = i; }
    }
    if (getenv("COMBAT_VERBOSE")) fprintf(stderr, "\n  %-32s n=%-4zu max rel diff %.3g  ratio %.3g", what, n, wrel, worst);
    if (worst > 1)
        fprintf(stderr, "\n  %s: worst at [%zu] of %zu: C %.17g vs reference %.17g (ratio %.3g to tolerance)\n", what, wi, n,
                got[wi], want[wi], worst);
    return worst;
}

// One reference case: the inputs and what sva (or the hand-made no-EB fit) made of them.
typedef struct {
    int n, S, kc;
    long v;
    CombatPrior prior;
    const double *y, *cov, *out, *gstar, *dstar, *iters, *priors;  // into the RefFile
    int *site;
} Case;

static int load_case(Case *c, RefFile *f, int id) {
    char name[64];
    memset(c, 0, sizeof *c);
#define GET(field, suffix, optional)                                     \
    do {                                                                 \
        snprintf(name, sizeof name, "case%d." suffix, id);               \
        RefTensor *t = optional ? tu_ref_find(f, name) : tu_ref_get(f, name); \
        if (!t && !optional) return -1;                                  \
        field = t ? t->v : NULL;                                         \
    } while (0)
    const double *meta, *site;
    GET(meta, "meta", 0);
    c->n = (int)meta[0];
    c->v = (long)meta[1];
    c->S = (int)meta[2];
    c->prior = (CombatPrior)(int)meta[3];
    GET(c->y, "y", 0);
    GET(site, "site", 0);
    GET(c->cov, "cov", 1);
    GET(c->out, "out", 0);
    GET(c->gstar, "gamma_star", 0);
    GET(c->dstar, "delta_star", 0);
    GET(c->iters, "iterations", 1);
    GET(c->priors, "priors", 0);
#undef GET
    snprintf(name, sizeof name, "case%d.cov", id);
    RefTensor *ct = tu_ref_find(f, name);
    c->kc = ct ? ct->dims[1] : 0;
    c->site = xmalloc((size_t)c->n * sizeof(int));
    for (int i = 0; i < c->n; i++) c->site[i] = (int)site[i];
    return 0;
}

#define N_CASES 5
static const char *const case_what[N_CASES + 1] = { "", "3 balanced sites, parametric", "4 unbalanced sites + covariates, parametric",
                                                     "non-parametric", "no empirical Bayes", "a voxel constant in a site" };

// Tolerances against sva. Only rounding differs: the least squares (Cholesky here, LU in R),
// the order of the sums (BLAS and long-double row sums in R), in both priors sum2 from
// (n_s - 1) delta_hat + n_s (gamma_hat - g)^2 instead of a sum over the subjects (so that the
// fit can stream the voxels in chunks), and for the non-parametric prior the weights,
// exp(log L - max) here against sva's product (an exp argument of size |log L| carries
// ~|log L| 1e-16). The parametric cases run the same it.sol iteration to the same stopping
// point: the iteration counts must be equal. The no-EB reference (case 4) is the R script's
// hand implementation, sva's arithmetic without the star step.
// Measured (max relative difference over the five cases): output 7.1e-15 (case 3; parametric
// <= 2.1e-15), delta_star 1.8e-13, priors 8.0e-14, gamma_star 6.8e-12 relative but ~1e-15
// absolute (it is near 0; its scale is the standardised data's, ~1).
// Tolerances: output 1e-13 relative (the data are ~100); the estimates 1e-12 relative plus
// 1e-12 absolute (on the z scale).
#define OUT_RTOL 1e-13
#define EST_RTOL 1e-12
#define EST_ATOL 1e-12

static void check_case(int id, RefFile *f) {
    Case c;
    CU_ASSERT_FATAL(load_case(&c, f, id) == 0);
    CombatModel m;
    DfError err;
    int rc = combat_fit(&m, c.y, c.n, c.v, 0, c.v, c.site, c.S, c.cov, c.kc, c.prior, NULL, &err);
    if (rc) fprintf(stderr, "\n  case%d: %s\n", id, err.msg);
    CU_ASSERT_FATAL(rc == 0);
    double *out = xmalloc((size_t)c.n * c.v * sizeof(double));
    combat_apply(out, &m, c.y, c.n, c.site, c.cov);
    char what[128];
    snprintf(what, sizeof what, "case%d output (%s)", id, case_what[id]);
    CU_ASSERT(ratio(what, out, c.out, (size_t)c.n * c.v, 1e-12, OUT_RTOL) <= 1);
    snprintf(what, sizeof what, "case%d gamma_star", id);
    CU_ASSERT(ratio(what, m.gamma_star, c.gstar, (size_t)c.S * c.v, EST_ATOL, EST_RTOL) <= 1);
    snprintf(what, sizeof what, "case%d delta_star", id);
    CU_ASSERT(ratio(what, m.delta_star, c.dstar, (size_t)c.S * c.v, EST_ATOL, EST_RTOL) <= 1);
    double *pri[4] = { m.gamma_bar, m.tau2, m.a_prior, m.b_prior };
    static const char *const pname[4] = { "gamma_bar", "tau2", "a_prior", "b_prior" };
    for (int k = 0; k < 4; k++) {
        snprintf(what, sizeof what, "case%d %s", id, pname[k]);
        CU_ASSERT(ratio(what, pri[k], c.priors + (size_t)k * c.S, (size_t)c.S, EST_ATOL, EST_RTOL) <= 1);
    }
    if (c.iters) {
        for (int s = 0; s < c.S; s++) {
            if (m.iterations[s] != (int)c.iters[s])
                fprintf(stderr, "\n  case%d site %d: %d iterations, sva %d\n", id, s, m.iterations[s], (int)c.iters[s]);
            CU_ASSERT(m.iterations[s] == (int)c.iters[s]);
        }
    }
    combat_model_free(&m);
    free(out);
    free(c.site);
}

static void test_against_sva(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "combat.txt") == 0);
    for (int id = 1; id <= N_CASES; id++) check_case(id, &f);
    tu_ref_free(&f);
}

// case5: voxel 6 is constant within site 1: passed through unchanged, priors without it.
static void test_constant_voxel(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "combat.txt") == 0);
    Case c;
    CU_ASSERT_FATAL(load_case(&c, &f, 5) == 0);
    CombatModel m;
    DfError err;
    CU_ASSERT_FATAL(combat_fit(&m, c.y, c.n, c.v, 0, c.v, c.site, c.S, c.cov, c.kc, c.prior, NULL, &err) == 0);
    for (long j = 0; j < c.v; j++) CU_ASSERT(m.pass[j] == (j == 6));
    double *out = xmalloc((size_t)c.n * c.v * sizeof(double));
    combat_apply(out, &m, c.y, c.n, c.site, c.cov);
    for (int i = 0; i < c.n; i++) CU_ASSERT(out[(size_t)i * c.v + 6] == c.y[(size_t)i * c.v + 6]);
    combat_model_free(&m);
    free(out);
    free(c.site);
    tu_ref_free(&f);
}

// Small data: n subjects, v voxels, sites round-robin over S, two covariates (age, sex).
static void small_data(double *y, int *site, double *cov, int n, int v, int S) {
    Rng g;
    rng_seed(&g, 7);
    for (int i = 0; i < n; i++) {
        site[i] = i % S;
        cov[2 * i] = 20 + 50 * rng_uniform(&g);
        cov[2 * i + 1] = (double)(rng_uniform(&g) < 0.5);
        for (int j = 0; j < v; j++) y[i * v + j] = 100 + 3 * site[i] - 0.2 * cov[2 * i] + 5 * rng_normal(&g);
    }
}

// ---- ranks --------------------------------------------------------------------------------------

typedef struct {
    const Case *c;
    TuSim *sim;
    double *out, *gstar, *dstar, *gbar;  // gathered from the ranks: (n, v), (S, v), (S, v), (S)
    int iters[8], rc[3];
} RankRun;

// Rank r fits its share of the voxels (every subject), applies the model to them in place,
// and puts its columns of the output and of the estimates into the global arrays.
static void fit_rank(void *arg, int r, int P) {
    RankRun *a = arg;
    const Case *c = a->c;
    int lo, hi;
    tu_share((int)c->v, r, P, &lo, &hi);
    long vl = hi - lo;
    double *y = xmalloc((size_t)c->n * (vl > 0 ? vl : 1) * sizeof(double));
    for (int i = 0; i < c->n; i++) memcpy(y + (size_t)i * vl, c->y + (size_t)i * c->v + lo, (size_t)vl * sizeof(double));
    CombatModel m;
    DfError err;
    a->rc[r] = combat_fit(&m, y, c->n, vl, lo, c->v, c->site, c->S, c->cov, c->kc, c->prior, &a->sim->base, &err);
    if (a->rc[r] == 0) {
        combat_apply(y, &m, y, c->n, c->site, c->cov);
        for (int i = 0; i < c->n; i++) memcpy(a->out + (size_t)i * c->v + lo, y + (size_t)i * vl, (size_t)vl * sizeof(double));
        for (int s = 0; s < c->S; s++) {
            memcpy(a->gstar + (size_t)s * c->v + lo, m.gamma_star + (size_t)s * vl, (size_t)vl * sizeof(double));
            memcpy(a->dstar + (size_t)s * c->v + lo, m.delta_star + (size_t)s * vl, (size_t)vl * sizeof(double));
            a->iters[s] = m.iterations[s];
            a->gbar[s] = m.gamma_bar[s];
        }
        combat_model_free(&m);
    }
    free(y);
}

// 1, 2 and 3 ranks, each with every subject and a share of the voxels, give the same model and
// output. The sums over voxels (the priors) differ only in the order of the additions, and
// everything after them is the same arithmetic: ~1e-16 relative on the priors, carried through
// the iteration (same counts) or the non-parametric weights; 1e-13 relative leaves margin.
static void test_ranks(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "combat.txt") == 0);
    for (int id = 1; id <= N_CASES; id++) {
        Case c;
        CU_ASSERT_FATAL(load_case(&c, &f, id) == 0);
        size_t nv = (size_t)c.n * c.v, sv = (size_t)c.S * c.v;
        double *ref = xmalloc((nv + 2 * sv + c.S) * sizeof(double));
        int ref_iters[8];
        for (int P = 1; P <= 3; P++) {
            TuSim sim;
            tu_sim_init(&sim, P);
            RankRun a = { &c, &sim, xcalloc(nv, sizeof(double)), xcalloc(sv, sizeof(double)), xcalloc(sv, sizeof(double)),
                          xcalloc((size_t)c.S, sizeof(double)), { 0 }, { 0 } };
            tu_simulate(&sim, P, fit_rank, &a);
            for (int r = 0; r < P; r++) CU_ASSERT(a.rc[r] == 0);
            if (P == 1) {
                memcpy(ref, a.out, nv * sizeof(double));
                memcpy(ref + nv, a.gstar, sv * sizeof(double));
                memcpy(ref + nv + sv, a.dstar, sv * sizeof(double));
                memcpy(ref + nv + 2 * sv, a.gbar, (size_t)c.S * sizeof(double));
                memcpy(ref_iters, a.iters, sizeof ref_iters);
            } else {
                char what[96];
                snprintf(what, sizeof what, "case%d, %d ranks: output", id, P);
                CU_ASSERT(ratio(what, a.out, ref, nv, 1e-13, 1e-13) <= 1);
                snprintf(what, sizeof what, "case%d, %d ranks: gamma_star", id, P);
                CU_ASSERT(ratio(what, a.gstar, ref + nv, sv, 1e-14, 1e-13) <= 1);
                snprintf(what, sizeof what, "case%d, %d ranks: delta_star", id, P);
                CU_ASSERT(ratio(what, a.dstar, ref + nv + sv, sv, 1e-14, 1e-13) <= 1);
                snprintf(what, sizeof what, "case%d, %d ranks: gamma_bar", id, P);
                CU_ASSERT(ratio(what, a.gbar, ref + nv + 2 * sv, (size_t)c.S, 1e-14, 1e-13) <= 1);
                for (int s = 0; s < c.S; s++) CU_ASSERT(a.iters[s] == ref_iters[s]);
            }
            free(a.out); free(a.gstar); free(a.dstar); free(a.gbar);
        }
        free(ref);
        free(c.site);
    }
    tu_ref_free(&f);
}

// More ranks than voxels: a rank with none still makes every reduction (its sums are zero).
static void test_rank_without_voxels(void) {
    enum { N = 12, V = 2 };
    double y[N * V], cov[N * 2];
    int site[N];
    small_data(y, site, cov, N, V, 3);
    Case c = { N, 3, 2, V, COMBAT_PARAMETRIC, y, cov, NULL, NULL, NULL, NULL, NULL, site };
    for (int pr = 0; pr < 3; pr++) {
        c.prior = (CombatPrior)pr;
        double ref[N * V];
        for (int P = 1; P <= 3; P++) {
            TuSim sim;
            tu_sim_init(&sim, P);
            double out[N * V], gs[3 * V], ds[3 * V], gb[3];
            RankRun a = { &c, &sim, out, gs, ds, gb, { 0 }, { 0 } };
            tu_simulate(&sim, P, fit_rank, &a);
            for (int r = 0; r < P; r++) CU_ASSERT(a.rc[r] == 0);
            if (P == 1) memcpy(ref, out, sizeof ref);
            else CU_ASSERT(ratio("2 voxels over 3 ranks", out, ref, N * V, 1e-13, 1e-13) <= 1);
        }
    }
}

// The non-parametric prior with many subjects per site: sva's likelihood (2 pi d)^(-n_s / 2)
// underflows to 0 at n_s = 1500 (about 10^-600) and its weights become 0/0; in the log domain
// they stay finite, and each estimate is a weighted average of the other voxels'.
static void test_nonparametric_many_subjects(void) {
    enum { N = 3000, V = 8 };
    double *y = xmalloc(sizeof(double) * N * V), cov[1];
    int *site = xmalloc(sizeof(int) * N);
    Rng g;
    rng_seed(&g, 11);
    for (int i = 0; i < N; i++) {
        site[i] = i % 2;
        for (int j = 0; j < V; j++) y[i * V + j] = 50 + j + (site[i] ? 1 + 0.1 * j : 0) + (1 + 0.2 * site[i]) * rng_normal(&g);
    }
    CombatModel m, eb;
    DfError err;
    CU_ASSERT_FATAL(combat_fit(&m, y, N, V, 0, V, site, 2, cov, 0, COMBAT_NONPARAMETRIC, NULL, &err) == 0);
    CU_ASSERT_FATAL(combat_fit(&eb, y, N, V, 0, V, site, 2, cov, 0, COMBAT_NO_EB, NULL, &err) == 0);
    for (int s = 0; s < 2; s++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int j = 0; j < V; j++) { lo = fmin(lo, eb.gamma_star[s * V + j]); hi = fmax(hi, eb.gamma_star[s * V + j]); }
        for (int j = 0; j < V; j++) {
            double gs = m.gamma_star[s * V + j];
            CU_ASSERT(isfinite(gs) && isfinite(m.delta_star[s * V + j]) && m.delta_star[s * V + j] > 0);
            CU_ASSERT(gs >= lo && gs <= hi);
        }
    }
    combat_model_free(&m);
    combat_model_free(&eb);
    free(y);
    free(site);
}

// ---- chunks ---------------------------------------------------------------------------------

// Chunk width w's pieces of y (n, v): begin, every chunk (columns copied into a (n, w) buffer,
// as harmonize reads them, and an empty chunk at the end, as a rank with a smaller share has),
// finish. 0, or -1 with err.
static int fit_in_chunks(CombatModel *m, const Case *c, long w, DfError *err) {
    CombatFit f;
    int rc = combat_fit_begin(&f, c->n, c->v, c->site, c->S, c->cov, c->kc, c->prior, err);
    double *buf = xmalloc((size_t)c->n * w * sizeof(double));
    for (long c0 = 0; c0 < c->v && !rc; c0 += w) {
        long cw = c0 + w < c->v ? w : c->v - c0;
        for (int i = 0; i < c->n; i++) memcpy(buf + (size_t)i * cw, c->y + (size_t)i * c->v + c0, (size_t)cw * sizeof(double));
        combat_fit_chunk(&f, buf, c0, cw);
    }
    if (!rc) combat_fit_chunk(&f, buf, c->v, 0);
    if (!rc) rc = combat_fit_finish(m, &f, 0, c->v, NULL, err);
    combat_fit_free(&f);
    free(buf);
    return rc;
}

static int same_doubles(const double *a, const double *b, size_t n) { return memcmp(a, b, n * sizeof(double)) == 0; }

// Every per-voxel value is computed by the same operations in the same order whatever the
// chunks, and the priors and stars see the same arrays: the model is the one-chunk fit's bit
// for bit, for widths 1, 3, 7 and v.
static void test_chunks(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "combat.txt") == 0);
    for (int id = 1; id <= N_CASES; id++) {
        Case c;
        CU_ASSERT_FATAL(load_case(&c, &f, id) == 0);
        CombatModel ref, m;
        DfError err;
        CU_ASSERT_FATAL(combat_fit(&ref, c.y, c.n, c.v, 0, c.v, c.site, c.S, c.cov, c.kc, c.prior, NULL, &err) == 0);
        long widths[4] = { 1, 3, 7, c.v };
        for (int k = 0; k < 4; k++) {
            CU_ASSERT_FATAL(fit_in_chunks(&m, &c, widths[k], &err) == 0);
            size_t v = (size_t)c.v, sv = (size_t)c.S * v;
            int same = same_doubles(m.grand_mean, ref.grand_mean, v) && same_doubles(m.var_pooled, ref.var_pooled, v) &&
                       same_doubles(m.beta_cov, ref.beta_cov, (size_t)c.kc * v) && same_doubles(m.gamma_star, ref.gamma_star, sv) &&
                       same_doubles(m.delta_star, ref.delta_star, sv) && memcmp(m.pass, ref.pass, v) == 0 &&
                       same_doubles(m.gamma_bar, ref.gamma_bar, (size_t)c.S) && same_doubles(m.tau2, ref.tau2, (size_t)c.S) &&
                       same_doubles(m.a_prior, ref.a_prior, (size_t)c.S) && same_doubles(m.b_prior, ref.b_prior, (size_t)c.S) &&
                       memcmp(m.iterations, ref.iterations, (size_t)c.S * sizeof(int)) == 0;
            if (!same) fprintf(stderr, "\n  case%d, chunks of %ld voxels: not the one-chunk model\n", id, widths[k]);
            CU_ASSERT(same);
            combat_model_free(&m);
        }
        combat_model_free(&ref);
        free(c.site);
    }
    tu_ref_free(&f);
}

// Non-finite values counted over every chunk: the error names them all; the model is empty.
static void test_chunks_nonfinite(void) {
    enum { N = 12, V = 6 };
    double y[N * V], cov[N * 2];
    int site[N];
    small_data(y, site, cov, N, V, 3);
    y[1] = NAN, y[4 * V + 5] = INFINITY;
    Case c = { N, 3, 2, V, COMBAT_PARAMETRIC, y, cov, NULL, NULL, NULL, NULL, NULL, site };
    CombatModel m;
    DfError err;
    CU_ASSERT(fit_in_chunks(&m, &c, 2, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "2 non-finite values"));
    CU_ASSERT(m.gamma_star == NULL);
}

// ---- applying the model ---------------------------------------------------------------------------

// The model applied to the training subjects gives the fit's output (sva's, above) also in
// place; applied to a subset of them, in another order, it gives those rows bit for bit (each
// row is adjusted on its own, with the training estimates).
static void test_apply_subset(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "combat.txt") == 0);
    for (int id = 1; id <= N_CASES; id++) {
        Case c;
        CU_ASSERT_FATAL(load_case(&c, &f, id) == 0);
        CombatModel m;
        DfError err;
        CU_ASSERT_FATAL(combat_fit(&m, c.y, c.n, c.v, 0, c.v, c.site, c.S, c.cov, c.kc, c.prior, NULL, &err) == 0);
        size_t nv = (size_t)c.n * c.v;
        double *out = xmalloc(nv * sizeof(double)), *inplace = xmalloc(nv * sizeof(double));
        combat_apply(out, &m, c.y, c.n, c.site, c.cov);
        memcpy(inplace, c.y, nv * sizeof(double));
        combat_apply(inplace, &m, inplace, c.n, c.site, c.cov);
        CU_ASSERT(memcmp(out, inplace, nv * sizeof(double)) == 0);
        // every third subject, last first
        int ns = (c.n + 2) / 3, *sub_site = xmalloc((size_t)ns * sizeof(int));
        double *sy = xmalloc((size_t)ns * c.v * sizeof(double)), *sc = c.kc ? xmalloc((size_t)ns * c.kc * sizeof(double)) : NULL,
               *so = xmalloc((size_t)ns * c.v * sizeof(double));
        for (int k = 0; k < ns; k++) {
            int i = 3 * (ns - 1 - k);
            sub_site[k] = c.site[i];
            memcpy(sy + (size_t)k * c.v, c.y + (size_t)i * c.v, (size_t)c.v * sizeof(double));
            if (c.kc) memcpy(sc + (size_t)k * c.kc, c.cov + (size_t)i * c.kc, (size_t)c.kc * sizeof(double));
        }
        combat_apply(so, &m, sy, ns, sub_site, sc);
        for (int k = 0; k < ns; k++)
            CU_ASSERT(memcmp(so + (size_t)k * c.v, out + (size_t)3 * (ns - 1 - k) * c.v, (size_t)c.v * sizeof(double)) == 0);
        // no EB: the adjusted data, standardised with the model, have mean 0 and variance 1 in
        // every site (gamma_star = the site mean, delta_star = its variance)
        if (c.prior == COMBAT_NO_EB) {
            for (long j = 0; j < c.v; j++) {
                double sum[8] = { 0 }, sq[8] = { 0 };
                int cnt[8] = { 0 };
                for (int i = 0; i < c.n; i++) {
                    double sm = m.grand_mean[j];
                    for (int k = 0; k < c.kc; k++) sm += c.cov[(size_t)i * c.kc + k] * m.beta_cov[(size_t)k * c.v + j];
                    double u = (out[(size_t)i * c.v + j] - sm) / sqrt(m.var_pooled[j]);
                    sum[c.site[i]] += u;
                    sq[c.site[i]] += u * u;
                    cnt[c.site[i]]++;
                }
                for (int s = 0; s < c.S; s++) {
                    CU_ASSERT(fabs(sum[s] / cnt[s]) < 1e-12);
                    CU_ASSERT(fabs(sq[s] / (cnt[s] - 1) - 1) < 1e-12);
                }
            }
        }
        free(out); free(inplace); free(sub_site); free(sy); free(sc); free(so);
        combat_model_free(&m);
        free(c.site);
    }
    tu_ref_free(&f);
}

// ---- errors -----------------------------------------------------------------------------------------

static void test_errors(void) {
    enum { N = 12, V = 6 };
    double y[N * V], cov[N * 2];
    int site[N];
    CombatModel m;
    DfError err;
    small_data(y, site, cov, N, V, 3);
    CU_ASSERT_FATAL(combat_fit(&m, y, N, V, 0, V, site, 3, cov, 2, COMBAT_PARAMETRIC, NULL, &err) == 0);
    combat_model_free(&m);
    // a site with one subject (sva switches to its "mean only" model; this one refuses)
    int one[N];
    for (int i = 0; i < N; i++) one[i] = i == 5 ? 3 : site[i];
    CU_ASSERT(combat_fit(&m, y, N, V, 0, V, one, 4, cov, 2, COMBAT_PARAMETRIC, NULL, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "site 3 has 1 subject;"));
    CU_ASSERT(m.gamma_star == NULL);
    // a site with none
    CU_ASSERT(combat_fit(&m, y, N, V, 0, V, site, 4, cov, 2, COMBAT_PARAMETRIC, NULL, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "site 3 has 0 subjects"));
    // a constant covariate: a combination of the site indicators. Column 1, then column 0
    // (all ones: an intercept, which sva drops silently and this refuses)
    double bad[N * 2];
    for (int i = 0; i < N; i++) { bad[2 * i] = cov[2 * i]; bad[2 * i + 1] = 3.5; }
    CU_ASSERT(combat_fit(&m, y, N, V, 0, V, site, 3, bad, 2, COMBAT_PARAMETRIC, NULL, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "covariate column 1 (0-based) is constant"));
    for (int i = 0; i < N; i++) { bad[2 * i] = 1; bad[2 * i + 1] = cov[2 * i + 1]; }
    CU_ASSERT(combat_fit(&m, y, N, V, 0, V, site, 3, bad, 2, COMBAT_NONPARAMETRIC, NULL, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "covariate column 0 (0-based)"));
    // a covariate that is another one times 2 plus a site effect
    for (int i = 0; i < N; i++) { bad[2 * i] = cov[2 * i]; bad[2 * i + 1] = 2 * cov[2 * i] + site[i]; }
    CU_ASSERT(combat_fit(&m, y, N, V, 0, V, site, 3, bad, 2, COMBAT_NO_EB, NULL, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "covariate column 1 (0-based)"));
    // non-finite data
    double yn[N * V];
    memcpy(yn, y, sizeof yn);
    yn[7] = NAN;
    CU_ASSERT(combat_fit(&m, yn, N, V, 0, V, site, 3, cov, 2, COMBAT_PARAMETRIC, NULL, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "1 non-finite value"));
    // every voxel but one constant within a site: no priors
    for (int i = 0; i < N; i++)
        for (int j = 1; j < V; j++) yn[i * V + j] = site[i] == 2 ? 4 : y[i * V + j];
    yn[7] = y[7];
    CU_ASSERT(combat_fit(&m, yn, N, V, 0, V, site, 3, cov, 2, COMBAT_PARAMETRIC, NULL, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "1 voxel varies within every site"));
    CU_ASSERT(combat_fit(&m, yn, N, V, 0, V, site, 3, cov, 2, COMBAT_NO_EB, NULL, &err) == 0);
    combat_model_free(&m);
}

int main(void) {
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("combat", NULL, NULL);
    CU_add_test(s, "against sva::ComBat (parametric, non-parametric, no EB, constant voxel)", test_against_sva);
    CU_add_test(s, "a voxel constant within a site passes through", test_constant_voxel);
    CU_add_test(s, "1, 2 and 3 ranks give the same model", test_ranks);
    CU_add_test(s, "a rank without voxels", test_rank_without_voxels);
    CU_add_test(s, "the fit in chunks gives the one-chunk model bit for bit", test_chunks);
    CU_add_test(s, "non-finite values in several chunks", test_chunks_nonfinite);
    CU_add_test(s, "non-parametric prior with 1500 subjects per site (no underflow)", test_nonparametric_many_subjects);
    CU_add_test(s, "applying to the training subjects, in place and a subset", test_apply_subset);
    CU_add_test(s, "errors: one subject, singular covariates, non-finite, no priors", test_errors);
    return tu_run_all();
}
