// test_dcor.c: distance correlation (nn/dcor.c) against R energy (tests/ref/dcor_*.txt,
// made by tests/gen_energy_ref.R), against the naive O(n^2)-memory reference, tile-size
// invariance, the O(n log n) path against the tiled one, groups, the training hook, the
// permutation test, edge cases, and reading FILE:DATASET[:COLUMN] arrays.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nn/dcor.h"
#include "data/feature_file.h"
#include "data/h5util.h"
#include "testutil.h"

typedef struct {
    int n, dx, dy, dz;
    double *x, *y, *z;
    double dcor2, dcov2, dcor2_u, dcov2_u, pdcor2_u;
} Ref;

static double read_num(FILE *f) {
    char tok[64];
    if (fscanf(f, "%63s", tok) != 1) return NAN;
    return strcmp(tok, "NA") == 0 ? NAN : strtod(tok, NULL);
}

static int load_ref(Ref *r, const char *name) {
    char path[512];
    const char *top = getenv("top_srcdir");
    snprintf(path, sizeof path, "%s/tests/ref/dcor_%s.txt", top ? top : ".", name);
    FILE *f = fopen(path, "r");
    if (!f) { printf("\n  cannot open %s\n", path); return -1; }
    char line[256];
    if (!fgets(line, sizeof line, f) || fscanf(f, " n %d dx %d dy %d dz %d", &r->n, &r->dx, &r->dy, &r->dz) != 4) { fclose(f); return -1; }
    double **dst[3] = { &r->x, &r->y, &r->z };
    int dims[3] = { r->dx, r->dy, r->dz };
    for (int v = 0; v < 3; v++) {
        *dst[v] = dims[v] ? malloc((size_t)r->n * dims[v] * sizeof(double)) : NULL;
        for (int i = 0; i < r->n * dims[v]; i++) (*dst[v])[i] = read_num(f);
    }
    const char *keys[5] = { "dcor2", "dcov2", "dcor2_u", "dcov2_u", "pdcor2_u" };
    double *vals[5] = { &r->dcor2, &r->dcov2, &r->dcor2_u, &r->dcov2_u, &r->pdcor2_u };
    for (int k = 0; k < 5; k++) {
        char key[32];
        if (fscanf(f, "%31s", key) != 1 || strcmp(key, keys[k]) != 0) { fclose(f); return -1; }
        *vals[k] = read_num(f);
    }
    fclose(f);
    return 0;
}
static void free_ref(Ref *r) { free(r->x); free(r->y); free(r->z); }

static const char *cases[] = { "mixed", "multi", "n4", "n3", "n2", "ties1d", "cont1d", "constcol", "consty", "offset" };
#define N_CASES (int)(sizeof cases / sizeof cases[0])

// Every case, both paths (1-D fast / tiled), several tiles, double and single precision.
static void test_against_energy(void) {
    for (int c = 0; c < N_CASES; c++) {
        Ref r;
        CU_ASSERT_FATAL(load_ref(&r, cases[c]) == 0);
        DcorVar x = { r.x, r.n, r.dx }, y = { r.y, r.n, r.dy }, z = { r.z, r.n, r.dz };
        for (int variant = 0; variant < 6; variant++) {
            DcorOptions o = dcor_options_default();
            o.no_fast = variant >= 1;
            o.tile = variant == 2 ? 7 : variant == 3 ? 1 : variant == 4 ? 64 : 512;
            o.single = variant == 5;
            double rt = o.single ? 2e-5 : 1e-9, at = o.single ? 1e-6 : 1e-12;
            DcorResult res;
            DfError err;
            int rc = dcor_compute(&res, &x, &y, r.dz ? &z : NULL, &o, &err);
            char what[128];
            if (r.n < 4 && r.dz) {  // the partial form needs n >= 4
                CU_ASSERT(rc == -1);
                CU_ASSERT(strstr(err.msg, "at least 4") != NULL);
                continue;
            }
            CU_ASSERT_FATAL(rc == 0);
            snprintf(what, sizeof what, "%s variant %d dcor2", cases[c], variant);
            CU_ASSERT(tu_near(res.dcor2, r.dcor2, rt, at, what));
            snprintf(what, sizeof what, "%s variant %d dcov2", cases[c], variant);
            CU_ASSERT(tu_near(res.dcov2, r.dcov2, rt, at, what));
            snprintf(what, sizeof what, "%s variant %d dcor2_u", cases[c], variant);
            CU_ASSERT(tu_near(res.dcor2_u, r.dcor2_u, rt, at, what));
            snprintf(what, sizeof what, "%s variant %d dcov2_u", cases[c], variant);
            CU_ASSERT(tu_near(res.dcov2_u, r.dcov2_u, rt, at, what));
            if (r.dz) {
                snprintf(what, sizeof what, "%s variant %d pdcor2_u", cases[c], variant);
                CU_ASSERT(tu_near(res.pdcor2_u, r.pdcor2_u, rt, at, what));
            } else CU_ASSERT(isnan(res.pdcor2_u));
            CU_ASSERT(isnan(res.p_value));
        }
        free_ref(&r);
    }
}

// n < 4 with the bias-corrected form required is an error; n < 2 always.
static void test_small_n_errors(void) {
    double x[3] = { 1, 2, 4 }, y[3] = { 0, 1, 1 };
    DcorVar vx = { x, 3, 1 }, vy = { y, 3, 1 };
    DcorOptions o = dcor_options_default();
    DcorResult res;
    DfError err;
    o.unbiased = 1;
    CU_ASSERT(dcor_compute(&res, &vx, &vy, NULL, &o, &err) == -1);
    CU_ASSERT(strstr(err.msg, "3 samples") && strstr(err.msg, "at least 4"));
    o.unbiased = 0;
    CU_ASSERT(dcor_compute(&res, &vx, &vy, NULL, &o, &err) == 0);
    CU_ASSERT(isnan(res.dcor2_u) && isfinite(res.dcor2));
    vx.n = vy.n = 1;
    CU_ASSERT(dcor_compute(&res, &vx, &vy, NULL, &o, &err) == -1);
    CU_ASSERT(strstr(err.msg, "at least 2") != NULL);
    DcorVar short_y = { y, 2, 1 };
    vx.n = 3;
    CU_ASSERT(dcor_compute(&res, &vx, &short_y, NULL, &o, &err) == -1);
    CU_ASSERT(strstr(err.msg, "2 samples but x has 3") != NULL);
    double bad[3] = { 1, NAN, 2 };
    DcorVar vb = { bad, 3, 1 };
    CU_ASSERT(dcor_compute(&res, &vx, &vb, NULL, &o, &err) == -1);
    CU_ASSERT(strstr(err.msg, "non-finite") != NULL);
}

static double *randn(int n, int d, Rng *g, double scale) {
    double *x = malloc((size_t)n * d * sizeof(double));
    for (int i = 0; i < n * d; i++) x[i] = scale * rng_normal(g);
    return x;
}

// Tiled results equal the naive O(n^2) reference, and do not depend on the tile (1e-10).
static void test_tiles_vs_naive(void) {
    Rng g;
    rng_seed(&g, 5);
    int n = 203;
    double *x = randn(n, 6, &g, 1), *y = randn(n, 2, &g, 1), *z = randn(n, 3, &g, 1);
    for (int i = 0; i < n; i++) { y[i * 2] += x[i * 6] * x[i * 6]; z[i * 3] += y[i * 2 + 1]; }
    DcorVar vx = { x, n, 6 }, vy = { y, n, 2 }, vz = { z, n, 3 };
    DcorResult ref, res;
    dcor_naive(&ref, &vx, &vy, &vz);
    int tiles[] = { 1, 5, 64, 100, 203, 512 };
    for (int t = 0; t < 6; t++) {
        DcorOptions o = dcor_options_default();
        o.tile = tiles[t];
        DfError err;
        CU_ASSERT_FATAL(dcor_compute(&res, &vx, &vy, &vz, &o, &err) == 0);
        char what[64];
        snprintf(what, sizeof what, "tile %d", tiles[t]);
        CU_ASSERT(tu_near(res.dcov2, ref.dcov2, 1e-10, 0, what));
        CU_ASSERT(tu_near(res.dcor2, ref.dcor2, 1e-10, 0, what));
        CU_ASSERT(tu_near(res.dcov2_u, ref.dcov2_u, 1e-10, 0, what));
        CU_ASSERT(tu_near(res.dcor2_u, ref.dcor2_u, 1e-10, 0, what));
        CU_ASSERT(tu_near(res.pdcor2_u, ref.pdcor2_u, 1e-10, 0, what));
    }
    free(x); free(y); free(z);
}

// The O(n log n) path equals the tiled path on 1-D data with and without ties.
static void test_fast_vs_tiles(void) {
    Rng g;
    rng_seed(&g, 9);
    int n = 1001;
    double *x = randn(n, 1, &g, 1), *y = randn(n, 1, &g, 1), *z = randn(n, 1, &g, 1);
    for (int i = 0; i < n; i++) { y[i] += fabs(x[i]); z[i] = floor(z[i] * 2); }  // z has ties
    DcorVar vx = { x, n, 1 }, vy = { y, n, 1 }, vz = { z, n, 1 };
    DcorResult a, b;
    DcorOptions o = dcor_options_default();
    DfError err;
    o.permutations = 29;
    CU_ASSERT_FATAL(dcor_compute(&a, &vx, &vy, &vz, &o, &err) == 0);
    o.no_fast = 1;
    o.tile = 77;
    CU_ASSERT_FATAL(dcor_compute(&b, &vx, &vy, &vz, &o, &err) == 0);
    CU_ASSERT(tu_near(a.dcov2, b.dcov2, 1e-10, 0, "fast dcov2"));
    CU_ASSERT(tu_near(a.dcor2_u, b.dcor2_u, 1e-10, 0, "fast dcor2_u"));
    CU_ASSERT(tu_near(a.pdcor2_u, b.pdcor2_u, 1e-10, 0, "fast pdcor2_u"));
    CU_ASSERT(a.p_value == b.p_value);
    CU_ASSERT(tu_near(a.p_value, 1.0 / 30, 1e-12, 0, "dependent p-value"));
    free(x); free(y); free(z);
}

// Independent data give a non-small p-value; dependent the smallest possible; the tile and
// the statistic (biased / bias-corrected) do not change which replicates exceed.
static void test_permutations(void) {
    Rng g;
    rng_seed(&g, 3);
    int n = 150;
    double *x = randn(n, 4, &g, 1), *y = randn(n, 1, &g, 1);
    DcorVar vx = { x, n, 4 }, vy = { y, n, 1 };
    DcorOptions o = dcor_options_default();
    o.permutations = 99;
    o.seed = 42;
    DcorResult a, b;
    DfError err;
    CU_ASSERT_FATAL(dcor_compute(&a, &vx, &vy, NULL, &o, &err) == 0);
    CU_ASSERT(a.p_value > 0.05 && a.p_value <= 1);
    o.tile = 13;
    CU_ASSERT_FATAL(dcor_compute(&b, &vx, &vy, NULL, &o, &err) == 0);
    CU_ASSERT(a.p_value == b.p_value);
    o.unbiased = 1;
    CU_ASSERT_FATAL(dcor_compute(&b, &vx, &vy, NULL, &o, &err) == 0);
    CU_ASSERT(b.p_value > 0.05);
    for (int i = 0; i < n; i++) y[i] = x[i * 4] * x[i * 4 + 1];
    CU_ASSERT_FATAL(dcor_compute(&b, &vx, &vy, NULL, &o, &err) == 0);
    CU_ASSERT(tu_near(b.p_value, 0.01, 1e-12, 0, "dependent p-value"));
    free(x); free(y);
}

// Discrete data tie: a balanced table of a one-hot x (2 columns: the tiled path) and a binary
// y has dCov^2 = 0 exactly, so every replicate is >= it and p = 1; replicates equal to the
// observed statistic are summed in other orders by other tilings. The p-value (both
// statistics) is the same at every tile size, and 1 for the biased one.
static void test_permutation_ties(void) {
    Rng g;
    rng_seed(&g, 5);
    enum { N = 40 };
    double x[N * 2], y[N];
    int order[N];
    rng_permutation(&g, order, N);
    for (int i = 0; i < N; i++) {  // (a, y) = (0,0), (0,1), (1,0), (1,1), ten samples each
        int a = order[i] % 2, b = order[i] / 2 % 2;
        x[i * 2] = a; x[i * 2 + 1] = 1 - a; y[i] = b;
    }
    DcorVar vx = { x, N, 2 }, vy = { y, N, 1 };
    for (int unbiased = 0; unbiased < 2; unbiased++) {
        double p0 = NAN;
        const int tiles[] = { 1, 3, 7, 16, 64 };
        for (int t = 0; t < 5; t++) {
            DcorOptions o = dcor_options_default();
            o.permutations = 199;
            o.unbiased = unbiased;
            o.tile = tiles[t];
            DcorResult r;
            DfError err;
            CU_ASSERT_FATAL(dcor_compute(&r, &vx, &vy, NULL, &o, &err) == 0);
            if (t == 0) p0 = r.p_value;
            if (r.p_value != p0) printf("\n  unbiased %d, tile %d: p %.4f, tile 1: %.4f\n", unbiased, tiles[t], r.p_value, p0);
            CU_ASSERT(r.p_value == p0);
            if (!unbiased) CU_ASSERT(r.p_value == 1.0);
        }
    }
}

// The p-value is exactly (1 + #{k : T(x, y o perm_k) >= T(x, y) - margin}) / (1 + P) with perm_k the
// documented permutations, recomputed here with the naive reference, for the tiled and
// the one-dimensional paths and both statistics.
static void test_permutations_exact(void) {
    Rng g;
    rng_seed(&g, 12);
    int n = 60, P = 49;
    for (int dx = 1; dx <= 3; dx += 2) {
        double *x = randn(n, dx, &g, 1), *y = randn(n, 1, &g, 1), yp[60];
        for (int i = 0; i < n; i++) y[i] += 0.12 * x[i * dx];  // weak dependence: p in between
        DcorVar vx = { x, n, dx }, vy = { y, n, 1 }, vp = { yp, n, 1 };
        for (int unbiased = 0; unbiased < 2; unbiased++) {
            DcorResult obs, rep, res;
            dcor_naive(&obs, &vx, &vy, NULL);
            int ge = 0, perm[60];
            for (int k = 1; k <= P; k++) {
                Rng r;
                rng_seed_stream(&r, 77, (uint64_t)k, 7);
                rng_permutation(&r, perm, n);
                for (int i = 0; i < n; i++) yp[i] = y[perm[i]];
                dcor_naive(&rep, &vx, &vp, NULL);
                // dCor^2's denominator is the same for every permutation: the margin in its units
                ge += unbiased ? rep.dcor2_u >= obs.dcor2_u - DCOR_TIE : rep.dcor2 >= obs.dcor2 - DCOR_TIE;
            }
            DcorOptions o = dcor_options_default();
            o.permutations = P;
            o.seed = 77;
            o.unbiased = unbiased;
            o.tile = 16;
            DfError err;
            CU_ASSERT_FATAL(dcor_compute(&res, &vx, &vy, NULL, &o, &err) == 0);
            char what[64];
            snprintf(what, sizeof what, "p-value, d_x %d, unbiased %d", dx, unbiased);
            CU_ASSERT(tu_near(res.p_value, (1.0 + ge) / (1.0 + P), 1e-12, 0, what));
            CU_ASSERT(ge > 0 && ge < P);  // the case is not degenerate
            if (!(ge > 0 && ge < P)) printf("\n  %s: %d of %d replicates exceed\n", what, ge, P);
        }
        free(x); free(y);
    }
}

// Per-group values equal the statistics of each subset; small groups are NaN or an error.
static void test_groups(void) {
    Rng g;
    rng_seed(&g, 4);
    int n = 90;
    double *x = randn(n, 3, &g, 1), *y = randn(n, 1, &g, 1), by[90];
    for (int i = 0; i < n; i++) { by[i] = i < 3 ? 7 : i % 2; y[i] += by[i] * x[i * 3]; }
    DcorVar vx = { x, n, 3 }, vy = { y, n, 1 };
    DcorOptions o = dcor_options_default();
    DcorGroups gr;
    DfError err;
    CU_ASSERT_FATAL(dcor_by_group(&gr, &vx, &vy, NULL, by, &o, &err) == 0);
    CU_ASSERT_FATAL(gr.n_groups == 3);
    CU_ASSERT(gr.value[0] == 0 && gr.value[1] == 1 && gr.value[2] == 7);
    CU_ASSERT(gr.r[2].n == 3 && isnan(gr.r[2].dcor2_u) && isfinite(gr.r[2].dcor2));
    // group 1 by hand
    double sx[90 * 3], sy[90];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (by[i] == 1) { memcpy(sx + m * 3, x + i * 3, 3 * sizeof(double)); sy[m++] = y[i]; }
    DcorVar gx = { sx, m, 3 }, gy = { sy, m, 1 };
    DcorResult ref;
    dcor_naive(&ref, &gx, &gy, NULL);
    CU_ASSERT(gr.r[1].n == m);
    CU_ASSERT(tu_near(gr.r[1].dcor2_u, ref.dcor2_u, 1e-10, 0, "group 1 dcor2_u"));
    CU_ASSERT(tu_near(gr.r[1].dcor2, ref.dcor2, 1e-10, 0, "group 1 dcor2"));
    o.unbiased = 1;
    CU_ASSERT(dcor_by_group(&gr, &vx, &vy, NULL, by, &o, &err) == -1);
    CU_ASSERT(strstr(err.msg, "group 7 has 3 samples") != NULL);
    free(x); free(y);
}

// Not inlined: GCC 12.2 at -O3 miscompiles a float -> double round trip inlined into one
// function with a constant trip count (b[i] = (float)a[i]; c[i] = b[i] for n = 150 left the
// last two c[i] equal to a[i], unrounded; fine with a run-time n, -O2 or -fno-inline).
__attribute__((noinline)) static float *to_float(const double *x, size_t n) {
    float *f = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}
__attribute__((noinline)) static double *to_double(const float *f, size_t n) {
    double *x = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = f[i];
    return x;
}

static void expect_same(const DcorResult *a, const DcorResult *b, double rt, double at, const char *what) {
    char w[160];
    const double *pa[5] = { &a->dcov2, &a->dcor2, &a->dcov2_u, &a->dcor2_u, &a->pdcor2_u };
    const double *pb[5] = { &b->dcov2, &b->dcor2, &b->dcov2_u, &b->dcor2_u, &b->pdcor2_u };
    const char *names[5] = { "dcov2", "dcor2", "dcov2_u", "dcor2_u", "pdcor2_u" };
    for (int k = 0; k < 5; k++) {
        snprintf(w, sizeof w, "%s %s", what, names[k]);
        if (isnan(*pb[k])) {
            CU_ASSERT(isnan(*pa[k]));
        } else {
            CU_ASSERT(tu_near(*pa[k], *pb[k], rt, at, w));
        }
    }
}

// Float input (DcorVar.xf) gives the statistics of the same values widened to double. The
// float path widens and centres each tile's rows DCOR_COLS (2048) columns at a time and adds
// the dgemm of each block; double input does one dgemm over all d. The values and their
// centring are the same, bit for bit; only the grouping of the Gram's sums differs, as
// between tile sizes, so the tile-invariance tolerance holds (1e-10 relative). d = 5000
// makes three column blocks (2048, 2048, 904). Every path: fused (x multivariate, y 1-D),
// two-pass (with z), the permutation test (permuted tiles), groups (rows read through the
// group's indices), offset data (centring), float 1-D variables; tiles 64 and 512. With
// single both sides are sgemm on the same float values blocked differently: 2e-5, the
// single-precision tolerance against energy above.
static void test_float_input(void) {
    Rng g;
    rng_seed(&g, 21);
    int n = 150, d = 5000;
    // x = 100 + u w^T + noise (the offset makes centring matter), y = u + noise, z = y + noise
    double *x0 = randn(n, d, &g, 1), *y0 = randn(n, 1, &g, 0.5), *z0 = randn(n, 3, &g, 1), *w = randn(1, d, &g, 1);
    double by[150];
    for (int i = 0; i < n; i++) {
        double u = rng_normal(&g);
        y0[i] += u;
        z0[i * 3] += y0[i];
        by[i] = i % 3 == 0;
        for (int k = 0; k < d; k++) x0[(size_t)i * d + k] += 100 + 0.5 * u * w[k];
    }
    float *xf = to_float(x0, (size_t)n * d), *yf = to_float(y0, n), *zf = to_float(z0, (size_t)n * 3);
    double *x = to_double(xf, (size_t)n * d), *y = to_double(yf, n), *z = to_double(zf, (size_t)n * 3);
    DcorVar vx = { x, n, d }, vy = { y, n, 1 }, vz = { z, n, 3 };
    DcorVar fx = { NULL, n, d, xf }, fy = { NULL, n, 1, yf }, fz = { NULL, n, 3, zf };
    for (int variant = 0; variant < 6; variant++) {
        DcorOptions o = dcor_options_default();
        o.tile = variant % 2 ? 64 : 512;
        o.single = variant >= 4;
        o.permutations = variant == 2 || variant == 3 ? 19 : 0;
        double rt = o.single ? 2e-5 : 1e-10, at = o.single ? 1e-6 : 1e-14;
        DcorResult a, b;
        DfError err;
        char what[64];
        for (int with_z = 0; with_z < 2; with_z++) {
            CU_ASSERT_FATAL(dcor_compute(&a, &fx, &fy, with_z ? &fz : NULL, &o, &err) == 0);
            CU_ASSERT_FATAL(dcor_compute(&b, &vx, &vy, with_z ? &vz : NULL, &o, &err) == 0);
            snprintf(what, sizeof what, "float input, variant %d, z %d", variant, with_z);
            expect_same(&a, &b, rt, at, what);
            if (o.permutations) CU_ASSERT(a.p_value == b.p_value && a.p_value < 0.1);
            CU_ASSERT(a.dcor2_u > 0.05);  // dependent: the comparison is not of noise
        }
        DcorGroups ga, gb;
        CU_ASSERT_FATAL(dcor_by_group(&ga, &fx, &fy, &fz, by, &o, &err) == 0);
        CU_ASSERT_FATAL(dcor_by_group(&gb, &vx, &vy, &vz, by, &o, &err) == 0);
        CU_ASSERT_FATAL(ga.n_groups == 2 && gb.n_groups == 2);
        for (int k = 0; k < 2; k++) {
            snprintf(what, sizeof what, "float input, variant %d, group %d", variant, k);
            expect_same(&ga.r[k], &gb.r[k], rt, at, what);
        }
    }
    // mixed: float x, double y; a group of float x against the same group copied
    DcorOptions o = dcor_options_default();
    DcorResult a, b;
    DfError err;
    CU_ASSERT_FATAL(dcor_compute(&a, &fx, &vy, NULL, &o, &err) == 0);
    CU_ASSERT_FATAL(dcor_compute(&b, &vx, &vy, NULL, &o, &err) == 0);
    expect_same(&a, &b, 1e-10, 1e-14, "float x, double y");
    // exactly one of x and xf
    DcorVar both = { x, n, d, xf }, neither = { NULL, n, d, NULL };
    CU_ASSERT(dcor_compute(&a, &both, &vy, NULL, &o, &err) == -1);
    CU_ASSERT(strstr(err.msg, "exactly one") != NULL);
    CU_ASSERT(dcor_compute(&a, &neither, &vy, NULL, &o, &err) == -1);
    xf[7 * d + 3000] = NAN;
    CU_ASSERT(dcor_compute(&a, &fx, &vy, NULL, &o, &err) == -1);
    CU_ASSERT(strstr(err.msg, "non-finite value at sample 7, column 3000") != NULL);
    free(x0); free(y0); free(z0); free(w); free(xf); free(yf); free(zf); free(x); free(y); free(z);
}

// One-hot coding of a categorical variable: a column per level in order of first
// appearance; dCor of features with it does not depend on how the levels are coded, while
// with the codes as numbers it does.
static void test_one_hot(void) {
    double v[6] = { 2, 0, 2, 5, 0, 7 };
    int L = 0;
    double *Y = dcor_one_hot(v, 6, &L);
    CU_ASSERT_FATAL(L == 4);
    int want[6] = { 0, 1, 0, 2, 1, 3 };
    for (int i = 0; i < 6; i++)
        for (int q = 0; q < L; q++) CU_ASSERT(Y[i * L + q] == (q == want[i]));
    free(Y);
    double w[3] = { 4, NAN, 4 };
    Y = dcor_one_hot(w, 3, &L);  // a missing value stays missing, for dcor_compute to report
    CU_ASSERT(L == 1 && Y[0] == 1 && isnan(Y[1]) && Y[2] == 1);
    free(Y);
    enum { N = 60, D = 3 };
    double x[N * D], codes[N], recoded[N];
    Rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < N; i++) {
        codes[i] = (double)(i % 3);
        recoded[i] = codes[i] == 0 ? 2 : codes[i] == 1 ? 0 : 1;  // the same groups, other codes
        for (int j = 0; j < D; j++) x[i * D + j] = rng_normal(&r) + (j == 0 ? codes[i] * codes[i] : 0);
    }
    DcorOptions o = dcor_options_default();
    DfError err;
    DcorResult a, b, c, e;
    DcorVar vx = { x, N, D };
    int La, Lb;
    double *Ya = dcor_one_hot(codes, N, &La), *Yb = dcor_one_hot(recoded, N, &Lb);
    DcorVar ya = { Ya, N, La }, yb = { Yb, N, Lb }, ca = { codes, N, 1 }, cb = { recoded, N, 1 };
    CU_ASSERT_FATAL(dcor_compute(&a, &vx, &ya, NULL, &o, &err) == 0 && dcor_compute(&b, &vx, &yb, NULL, &o, &err) == 0);
    CU_ASSERT(fabs(a.dcor2_u - b.dcor2_u) < 1e-12 && a.dcor2_u > 0.1);
    CU_ASSERT_FATAL(dcor_compute(&c, &vx, &ca, NULL, &o, &err) == 0 && dcor_compute(&e, &vx, &cb, NULL, &o, &err) == 0);
    CU_ASSERT(fabs(c.dcor2_u - e.dcor2_u) > 0.01);  // numeric codes: the order matters
    // A whole (age, site) table: the categorical column expanded where it stands, the
    // continuous one kept; dCor of x with it does not depend on the site codes either.
    double t[4 * 2] = { 50, 1, 60, 0, 70, 1, 80, 2 }, ta[N * 2], tb[N * 2];
    const int kinds[2] = { 0, 1 };
    int width = 0;
    double *T = dcor_one_hot_columns(t, 4, 2, kinds, &width);
    const double want_t[4 * 4] = { 50, 1, 0, 0, 60, 0, 1, 0, 70, 1, 0, 0, 80, 0, 0, 1 };
    CU_ASSERT_FATAL(width == 4);
    for (int k = 0; k < 16; k++) CU_ASSERT(T[k] == want_t[k]);
    free(T);
    for (int i = 0; i < N; i++) {
        ta[i * 2] = tb[i * 2] = rng_normal(&r);
        ta[i * 2 + 1] = codes[i];
        tb[i * 2 + 1] = recoded[i];
    }
    int wa, wb;
    double *Ta = dcor_one_hot_columns(ta, N, 2, kinds, &wa), *Tb = dcor_one_hot_columns(tb, N, 2, kinds, &wb);
    DcorVar za = { Ta, N, wa }, zb = { Tb, N, wb };
    CU_ASSERT_FATAL(dcor_compute(&a, &vx, &za, NULL, &o, &err) == 0 && dcor_compute(&b, &vx, &zb, NULL, &o, &err) == 0);
    CU_ASSERT(wa == 4 && wb == 4 && fabs(a.dcor2_u - b.dcor2_u) < 1e-12 && a.dcor2_u > 0.05);
    DcorVar ra = { ta, N, 2 }, rb = { tb, N, 2 };  // the codes as numbers: they matter
    CU_ASSERT_FATAL(dcor_compute(&c, &vx, &ra, NULL, &o, &err) == 0 && dcor_compute(&e, &vx, &rb, NULL, &o, &err) == 0);
    CU_ASSERT(fabs(c.dcor2_u - e.dcor2_u) > 0.005);
    free(Ta); free(Tb); free(Ya); free(Yb);
}

// FILE:DATASET[:COLUMN] specs: types, ranks, column by index and by name, clear errors.
static void test_read_spec(void) {
    char path[] = "/tmp/test_dcor_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    DfError err;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    int32_t lab[4] = { 0, 1, 1, 2 };
    float feat[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    double meta[8] = { 20, 0, 30, 1, 40, 0, 50, 1 }, cube[8] = { 0 };
    hsize_t d1[1] = { 4 }, d2[2] = { 4, 2 }, d3[3] = { 2, 2, 2 };
    CU_ASSERT_FATAL(h5_write_i32(f, path, "labels", lab, 1, d1, &err) == 0);
    CU_ASSERT_FATAL(h5_write_f32(f, path, "features/fc1", feat, 2, d2, &err) == 0);
    CU_ASSERT_FATAL(h5_write_f64(f, path, "meta", meta, 2, d2, &err) == 0);
    CU_ASSERT_FATAL(h5_write_f64(f, path, "cube", cube, 3, d3, &err) == 0);
    CU_ASSERT_FATAL(h5_write_string(f, path, "config", "text", &err) == 0);
    hid_t m = H5Dopen2(f, "meta", H5P_DEFAULT);
    CU_ASSERT_FATAL(h5_attr_write_string(m, path, "columns", "age,sex", &err) == 0);
    CU_ASSERT_FATAL(h5_attr_write_string(m, path, "kinds", "continuous,categorical", &err) == 0);
    H5Dclose(m);
    H5Fclose(f);
    char spec[600];
    double *x;
    int n, d;
    snprintf(spec, sizeof spec, "%s:labels", path);
    CU_ASSERT_FATAL(features_read_spec(spec, &x, &n, &d, &err) == 0);
    CU_ASSERT(n == 4 && d == 1 && x[3] == 2);
    free(x);
    snprintf(spec, sizeof spec, "%s:features/fc1", path);
    CU_ASSERT_FATAL(features_read_spec(spec, &x, &n, &d, &err) == 0);
    CU_ASSERT(n == 4 && d == 2 && x[5] == 6);
    free(x);
    snprintf(spec, sizeof spec, "%s:meta:sex", path);
    CU_ASSERT_FATAL(features_read_spec(spec, &x, &n, &d, &err) == 0);
    CU_ASSERT(n == 4 && d == 1 && x[1] == 1 && x[2] == 0);
    free(x);
    snprintf(spec, sizeof spec, "%s:meta:0", path);
    CU_ASSERT_FATAL(features_read_spec(spec, &x, &n, &d, &err) == 0);
    CU_ASSERT(d == 1 && x[3] == 50);
    free(x);
    // the columns' kinds, from the `kinds` attribute
    int *cat;
    snprintf(spec, sizeof spec, "%s:meta:sex", path);
    CU_ASSERT(features_read_spec_kind(spec, &x, &n, &d, &cat, &err) == 0 && cat[0] == 1);
    free(x); free(cat);
    snprintf(spec, sizeof spec, "%s:meta:age", path);
    CU_ASSERT(features_read_spec_kind(spec, &x, &n, &d, &cat, &err) == 0 && cat[0] == 0);
    free(x); free(cat);
    snprintf(spec, sizeof spec, "%s:labels", path);
    CU_ASSERT(features_read_spec_kind(spec, &x, &n, &d, &cat, &err) == 0 && cat[0] == 0);
    free(x); free(cat);
    // a whole dataset: every column's kind
    snprintf(spec, sizeof spec, "%s:meta", path);
    CU_ASSERT(features_read_spec_kind(spec, &x, &n, &d, &cat, &err) == 0 && d == 2 && cat[0] == 0 && cat[1] == 1);
    free(x); free(cat);
    const char *bad[][2] = { { "meta:weight", "no column named 'weight'" }, { "meta:2", "out of range" },
                             { "nothere", "no dataset 'nothere'" }, { "cube", "3 dimensions" },
                             { "config", "not numeric" }, { "labels:0", "1-D" } };
    for (int k = 0; k < 6; k++) {
        snprintf(spec, sizeof spec, "%s:%s", path, bad[k][0]);
        CU_ASSERT(features_read_spec(spec, &x, &n, &d, &err) == -1);
        CU_ASSERT(strstr(err.msg, bad[k][1]) != NULL && strstr(err.msg, path) != NULL);
        if (!strstr(err.msg, bad[k][1])) printf("\n  %s -> %s\n", spec, err.msg);
    }
    CU_ASSERT(features_read_spec("nocolon", &x, &n, &d, &err) == -1);
    CU_ASSERT(strstr(err.msg, "FILE:DATASET") != NULL);
    CU_ASSERT(features_read_spec("/nonexistent/f.h5:x", &x, &n, &d, &err) == -1);
    CU_ASSERT(strstr(err.msg, "/nonexistent/f.h5") != NULL);
    unlink(path);
}

int main(void) {
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("dcor", NULL, NULL);
    CU_add_test(s, "against R energy (dcor, dcov, bcdcor, dcovU, pdcor)", test_against_energy);
    CU_add_test(s, "n < 4 and bad input errors", test_small_n_errors);
    CU_add_test(s, "tiled == naive, tile invariance", test_tiles_vs_naive);
    CU_add_test(s, "O(n log n) path == tiled path", test_fast_vs_tiles);
    CU_add_test(s, "permutation test", test_permutations);
    CU_add_test(s, "permutation p-values, recomputed", test_permutations_exact);
    CU_add_test(s, "permutation p-values with ties", test_permutation_ties);
    CU_add_test(s, "per-group values", test_groups);
    CU_add_test(s, "float input == double input", test_float_input);
    CU_add_test(s, "FILE:DATASET[:COLUMN]", test_read_spec);
    CU_add_test(s, "one-hot coding of categorical variables", test_one_hot);
    return tu_run_all();
}
