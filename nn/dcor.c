// dcor.c: distance covariance / correlation without an n x n matrix (see dcor.h).
//
// Notation (DESIGN.md 3.5): a_ij = |x_i - x_j|, r_i = sum_j a_ij, t = sum_i r_i.
//   double-centred  A_ij = a_ij - r_i/n - r_j/n + t/n^2,                     V^2 = <A,B>/n^2
//   U-centred       A~_ij = a_ij - r_i/(n-2) - r_j/(n-2) + t/((n-1)(n-2)), 0 on the diagonal,
//                   Omega = <A~,B~>/(n(n-3))
// Tiled path: pass 1 computes r (each rank its tiles, one all-reduce of V*n doubles);
// pass 2 recomputes every tile and accumulates the centred inner products of every pair
// of variables in both forms (one all-reduce of 12 doubles). Only tiles (I, J) with I <= J
// are computed; an off-diagonal tile stands for itself and its transpose (weight 2).
// The two passes keep the centring explicit: no cancellation between huge raw sums.
//
// One-dimensional path: r_i from a sort and prefix sums, S = sum_ij a_ij b_ij with Fenwick
// trees over the ranks of y (O(n log n)), then the centred products from the identities
//   <A,B>   = S - (2/n)     sum_i r_i s_i + t u/n^2
//   <A~,B~> = S - (2/(n-2)) sum_i r_i s_i + t u/((n-1)(n-2))
// (r, t for x and s, u for y; Huo & Szekely 2016).
//
// Fused path (one variable multivariate, the other 1-D, no z): one sweep over the tiles of
// the multivariate one, y centred on the fly from its sorted row sums (see pass_fused_1d_y).
//
// Float input (DcorVar.xf, d > 1) is not copied: every tile widens its rows to double and
// centres them DCOR_COLS columns at a time, and the Gram block is a sum of dgemm calls over
// the column blocks (gram_src). Not sgemm on the float rows as they are: without centring
// |x_i|^2 + |x_j|^2 - 2 x_i.x_j cancels on offset data (ReLU features are all >= 0), and in
// float that cancellation costs digits that no later double arithmetic recovers. So float
// input gives the statistics of its values widened to double, as double input would, to
// rounding (the Gram's sums are grouped by column block: 1e-10 relative, tested), and with
// `single` those of double input with `single` (sgemm on centred float blocks). Cost: the
// widening reads each tile's rows once more per tile (about 1/T of the GEMM's work), and
// O(T * DCOR_COLS) scratch instead of an (n, d) centred double copy.
#include "nn/dcor.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "base/rng.h"

#define NV_MAX 3                       // x, y, z
#define DCOR_COLS 2048                 // columns per block when tiles widen float input (gram_src)
#define NP_MAX 6                       // pairs (u <= v)
static const int pair_u[NP_MAX] = { 0, 1, 0, 2, 0, 1 };
static const int pair_v[NP_MAX] = { 0, 1, 1, 2, 2, 2 };
enum { P_XX, P_YY, P_XY, P_ZZ, P_XZ, P_YZ };

DcorOptions dcor_options_default(void) {
    DcorOptions o;
    memset(&o, 0, sizeof o);
    o.tile = DCOR_DEFAULT_TILE;
    o.nranks = 1;
    o.seed = 1;
    return o;
}

// ---- variables --------------------------------------------------------------------------

typedef struct {
    int n, d;
    double *x;     // (n, d) column-centred copy (distances are translation invariant; centring
                   // keeps |x_i|^2 + |x_j|^2 - 2 x_i.x_j from cancelling on offset data);
                   // NULL for float input with d > 1 (src)
    float *xf;     // (n, d) float copy for sgemm (single precision, double input only)
    const float *src;  // float input with d > 1: the caller's rows, centred tile by tile (gram_src)
    const int *rows;   // (n) the source rows of samples 0..n-1 (NULL: the same): a group's subset
    double *mean;      // (d) column means of src's rows
    int single;        // Gram in float (sgemm); only when d > 1
    double *nrm;   // (n) |x_i|^2 of the values the Gram uses
    float *nrmf;
    double *r;     // (n) row sums of the distance matrix (after pass 1)
    double t;      // sum of r
    double *rb, *ru;  // r/n and r/(n-2): the centring terms
} Var;

// Row i of a variable's input, through rows (a group's subset; NULL: row i).
static const double *in_row(const DcorVar *in, const int *rows, int i) { return in->x + (size_t)(rows ? rows[i] : i) * in->d; }
static const float *in_row_f(const DcorVar *in, const int *rows, int i) { return in->xf + (size_t)(rows ? rows[i] : i) * in->d; }

// The samples rows[0 .. in->n) of in (rows NULL: all of them).
static void var_init(Var *v, const DcorVar *in, const int *rows, int single) {
    int n = in->n, d = in->d;
    memset(v, 0, sizeof *v);
    v->n = n;
    v->d = d;
    v->single = single && d > 1;
    // Column means, summed in the same order as column by column but read row by row
    // (a strided walk over 64 columns cost as much as a tenth of the n = 10 000 sweep).
    double *m = xcalloc((size_t)d, sizeof(double));
    for (int i = 0; i < n; i++) {
        if (in->x) {
            const double *row = in_row(in, rows, i);
            for (int k = 0; k < d; k++) m[k] += row[k];
        } else {
            const float *row = in_row_f(in, rows, i);
            for (int k = 0; k < d; k++) m[k] += row[k];
        }
    }
    for (int k = 0; k < d; k++) m[k] /= n;
    v->nrm = xmalloc((size_t)n * sizeof(double));
    if (v->single) v->nrmf = xmalloc((size_t)n * sizeof(float));
    if (in->xf && d > 1) {
        // Float input: no copy. The norms are those of the centred values the tiles make
        // (src_block): widened and centred in double, rounded to float with `single`.
        v->src = in->xf;
        v->rows = rows;
        v->mean = m;
        for (int i = 0; i < n; i++) {
            const float *row = in_row_f(in, rows, i);
            double s = 0;
            for (int k = 0; k < d; k++) {
                double e = (double)row[k] - m[k];
                if (v->single) e = (float)e;
                s += e * e;
            }
            v->nrm[i] = s;
            if (v->nrmf) v->nrmf[i] = (float)s;
        }
    } else {
        v->x = xmalloc((size_t)n * d * sizeof(double));
        for (int i = 0; i < n; i++) {
            double *out = v->x + (size_t)i * d;
            if (in->x) {
                const double *row = in_row(in, rows, i);
                for (int k = 0; k < d; k++) out[k] = row[k] - m[k];
            } else {
                const float *row = in_row_f(in, rows, i);
                for (int k = 0; k < d; k++) out[k] = (double)row[k] - m[k];
            }
        }
        free(m);
        if (v->single) {
            v->xf = xmalloc((size_t)n * d * sizeof(float));
            for (size_t i = 0; i < (size_t)n * d; i++) v->xf[i] = (float)v->x[i];
        }
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int k = 0; k < d; k++) {
                double e = v->xf ? (double)v->xf[(size_t)i * d + k] : v->x[(size_t)i * d + k];
                s += e * e;
            }
            v->nrm[i] = s;
            if (v->nrmf) v->nrmf[i] = (float)s;
        }
    }
    v->r = xcalloc((size_t)n, sizeof(double));
    v->rb = xcalloc((size_t)n, sizeof(double));
    v->ru = xcalloc((size_t)n, sizeof(double));
    v->t = 0;
}

static void var_free(Var *v) {
    free(v->x); free(v->xf); free(v->mean); free(v->nrm); free(v->nrmf); free(v->r); free(v->rb); free(v->ru);
}

static void var_set_rowsums(Var *v) {
    int n = v->n;
    double t = 0;
    for (int i = 0; i < n; i++) t += v->r[i];
    v->t = t;
    for (int i = 0; i < n; i++) {
        v->rb[i] = v->r[i] / n;
        v->ru[i] = n > 2 ? v->r[i] / (n - 2) : 0;
    }
}

// ---- tile kernels ------------------------------------------------------------------------
// The element loops are compiled for AVX-512, AVX2 and the baseline, picked at run time
// (the default build targets x86-64-v2, where these loops would run 2 doubles wide).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DCOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DCOR_CLONES
#endif

// drow[j] = sqrt(max(ni + nj[j] + g[j], 0)), g = -2 x_i.x_j (double Gram, in place)
DCOR_CLONES static void dist_row_f64(double *restrict drow, double ni, const double *restrict nj, int m) {
    for (int j = 0; j < m; j++) {
        double s = ni + nj[j] + drow[j];
        drow[j] = sqrt(s > 0 ? s : 0);
    }
}

// drow[j] = sqrt(max(ni + nj[j] - 2 g[j], 0)) from a float Gram (single precision path);
// the sum in double (a float sqrt here ran 4x slower than the whole double row: the
// float -> double widening split every vector).
DCOR_CLONES static void dist_row_f32(double *restrict drow, const float *restrict g, double ni, const float *restrict nj, int m) {
    for (int j = 0; j < m; j++) {
        double s = ni + (double)nj[j] - 2.0 * (double)g[j];
        drow[j] = sqrt(s > 0 ? s : 0);
    }
}

// drow[j] = |xi - xj[j]|  (one-dimensional variable)
DCOR_CLONES static void dist_row_1d(double *restrict drow, double xi, const double *restrict xj, int m) {
    for (int j = 0; j < m; j++) drow[j] = fabs(xi - xj[j]);
}

// sum_j a[j], and col[j] += a[j]
DCOR_CLONES static double rowsum_colsum(double *restrict col, const double *restrict a, int m, int with_col) {
    double s[8] = { 0 };
    int j = 0;
    for (; j + 8 <= m; j += 8)
        for (int k = 0; k < 8; k++) s[k] += a[j + k];
    double t = 0;
    for (; j < m; j++) t += a[j];
    if (with_col)
        for (j = 0; j < m; j++) col[j] += a[j];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

// cb[j] = a[j] - bi - bj[j] + bm;  cu[j] = a[j] - ui - uj[j] + um
DCOR_CLONES static void center_row(double *restrict cb, double *restrict cu, const double *restrict a, double bi,
                                   const double *restrict bj, double bm, double ui, const double *restrict uj,
                                   double um, int m) {
    for (int j = 0; j < m; j++) {
        cb[j] = a[j] - bi - bj[j] + bm;
        cu[j] = a[j] - ui - uj[j] + um;
    }
}

// out[k] = x[k] - mu[k], widened (float input's rows, centred for the Gram)
DCOR_CLONES static void centre_row_f64(double *restrict out, const float *restrict x, const double *restrict mu, int m) {
    for (int k = 0; k < m; k++) out[k] = (double)x[k] - mu[k];
}
// The same rounded to float (single precision: the values double input's float copy holds)
DCOR_CLONES static void centre_row_f32(float *restrict out, const float *restrict x, const double *restrict mu, int m) {
    for (int k = 0; k < m; k++) out[k] = (float)((double)x[k] - mu[k]);
}

DCOR_CLONES static double dot(const double *restrict a, const double *restrict b, int m) {
    double s[8] = { 0 };
    int j = 0;
    for (; j + 8 <= m; j += 8)
        for (int k = 0; k < 8; k++) s[k] += a[j + k] * b[j + k];
    double t = 0;
    for (; j < m; j++) t += a[j] * b[j];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

typedef struct {
    int T, dmax;
    double *D[NV_MAX];     // (T, T) distance tiles, one per variable
    float *G;              // (T, T) float Gram (single precision)
    double *C;             // (T, T) centred x tile (permutation pass)
    double *cb[NV_MAX], *cu[NV_MAX];  // (T) centred rows
    double *pi, *pj;       // (T, dmax) gathered rows of a permuted variable (double input)
    float *pif, *pjf;
    double *ad, *bd;       // (T, DCOR_COLS) a column block of a tile's rows, widened and centred
    float *af, *bf;        // (float input, gram_src; af, bf with single)
    double *ni, *nj, *gi, *gj;  // (T) gathered norms / centring terms
    float *nif, *njf;
    int progress;          // DcorOptions.progress: after each tile, done += step
    double done, step;     // (tiles, or permutations: a tile of a batch is a share of its permutations)
} Scratch;

static void tile_done(Scratch *s) {
    if (s->progress) progress_update(s->done += s->step);
}

// dmax: the largest d of a variable held in full (double input, or d = 1); dsrc: of a float
// input variable (0: none), whose tiles are made a column block at a time.
static void scratch_init(Scratch *s, int T, int dmax, int dsrc, int nv, int single, int perm) {
    memset(s, 0, sizeof *s);
    s->T = T;
    s->dmax = dmax;
    for (int v = 0; v < nv; v++) {
        s->D[v] = xmalloc((size_t)T * T * sizeof(double));
        s->cb[v] = xmalloc((size_t)T * sizeof(double));
        s->cu[v] = xmalloc((size_t)T * sizeof(double));
    }
    if (single) s->G = xmalloc((size_t)T * T * sizeof(float));
    if (perm) {
        s->C = xmalloc((size_t)T * T * sizeof(double));
        s->pi = xmalloc((size_t)T * dmax * sizeof(double));
        s->pj = xmalloc((size_t)T * dmax * sizeof(double));
        s->pif = xmalloc((size_t)T * dmax * sizeof(float));
        s->pjf = xmalloc((size_t)T * dmax * sizeof(float));
    }
    if (dsrc > 0) {
        size_t blk = (size_t)T * DF_MIN(dsrc, DCOR_COLS);
        if (single) { s->af = xmalloc(blk * sizeof(float)); s->bf = xmalloc(blk * sizeof(float)); }
        else { s->ad = xmalloc(blk * sizeof(double)); s->bd = xmalloc(blk * sizeof(double)); }
    }
    s->ni = xmalloc((size_t)T * sizeof(double));
    s->nj = xmalloc((size_t)T * sizeof(double));
    s->gi = xmalloc((size_t)T * sizeof(double));
    s->gj = xmalloc((size_t)T * sizeof(double));
    s->nif = xmalloc((size_t)T * sizeof(float));
    s->njf = xmalloc((size_t)T * sizeof(float));
}

static void scratch_free(Scratch *s) {
    for (int v = 0; v < NV_MAX; v++) { free(s->D[v]); free(s->cb[v]); free(s->cu[v]); }
    free(s->G); free(s->C); free(s->pi); free(s->pj); free(s->pif); free(s->pjf);
    free(s->ad); free(s->bd); free(s->af); free(s->bf);
    free(s->ni); free(s->nj); free(s->gi); free(s->gj); free(s->nif); free(s->njf);
}

// Rows p(i0 .. i0+m) of a float-input variable (p: perm or the identity), columns k0 ..
// k0+kc, widened and centred into out (m, kc): double, or float with single.
static void src_block(void *out, const Var *v, const int *perm, int i0, int m, int k0, int kc) {
    for (int i = 0; i < m; i++) {
        int r = perm ? perm[i0 + i] : i0 + i;
        const float *row = v->src + (size_t)(v->rows ? v->rows[r] : r) * v->d + k0;
        if (v->single) centre_row_f32((float *)out + (size_t)i * kc, row, v->mean + k0, kc);
        else centre_row_f64((double *)out + (size_t)i * kc, row, v->mean + k0, kc);
    }
}

// The Gram block of rows p(i0 .. i0+ni) and p(j0 .. j0+nj) of a float-input variable,
// summed over column blocks: D = -2 A B^T (dgemm) or, single, s->G = A B^T (sgemm), with A,
// B the centred rows. Scratch O(T * DCOR_COLS), never an (n, d) copy (see the top).
static void gram_src(double *D, const Var *v, const int *perm, int i0, int ni, int j0, int nj, Scratch *s) {
    int d = v->d, same = i0 == j0 && ni == nj;  // a diagonal tile: B is A
    for (int k0 = 0; k0 < d; k0 += DCOR_COLS) {
        int kc = DF_MIN(DCOR_COLS, d - k0);
        if (v->single) {
            src_block(s->af, v, perm, i0, ni, k0, kc);
            if (!same) src_block(s->bf, v, perm, j0, nj, k0, kc);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, kc, 1.0f, s->af, kc, same ? s->af : s->bf, kc,
                        k0 ? 1.0f : 0.0f, s->G, nj);
        } else {
            src_block(s->ad, v, perm, i0, ni, k0, kc);
            if (!same) src_block(s->bd, v, perm, j0, nj, k0, kc);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, kc, -2.0, s->ad, kc, same ? s->ad : s->bd, kc,
                        k0 ? 1.0 : 0.0, D, nj);
        }
    }
}

// D (ni, nj) = distances between rows p(i0 .. i0+ni) and p(j0 .. j0+nj) of v, where p is
// perm or the identity. A row's distance to itself is set to exactly 0.
static void var_tile(double *D, const Var *v, const int *perm, int i0, int ni, int j0, int nj, Scratch *s) {
    int d = v->d;
    if (d == 1) {
        const double *xi = v->x + i0, *xj = v->x + j0;
        if (perm) {
            for (int i = 0; i < ni; i++) s->ni[i] = v->x[perm[i0 + i]];
            for (int j = 0; j < nj; j++) s->nj[j] = v->x[perm[j0 + j]];
            xi = s->ni;
            xj = s->nj;
        }
        for (int i = 0; i < ni; i++) dist_row_1d(D + (size_t)i * nj, xi[i], xj, nj);
    } else if (v->src) {
        const double *na = v->nrm + i0, *nb = v->nrm + j0;
        const float *naf = v->nrmf ? v->nrmf + i0 : NULL, *nbf = v->nrmf ? v->nrmf + j0 : NULL;
        if (perm) {
            for (int i = 0; i < ni; i++) { s->ni[i] = v->nrm[perm[i0 + i]]; if (naf) s->nif[i] = v->nrmf[perm[i0 + i]]; }
            for (int j = 0; j < nj; j++) { s->nj[j] = v->nrm[perm[j0 + j]]; if (nbf) s->njf[j] = v->nrmf[perm[j0 + j]]; }
            na = s->ni; nb = s->nj;
            if (naf) { naf = s->nif; nbf = s->njf; }
        }
        gram_src(D, v, perm, i0, ni, j0, nj, s);
        if (v->single)
            for (int i = 0; i < ni; i++) dist_row_f32(D + (size_t)i * nj, s->G + (size_t)i * nj, naf[i], nbf, nj);
        else
            for (int i = 0; i < ni; i++) dist_row_f64(D + (size_t)i * nj, na[i], nb, nj);
    } else if (v->xf) {
        const float *A = v->xf + (size_t)i0 * d, *B = v->xf + (size_t)j0 * d;
        const float *na = v->nrmf + i0, *nb = v->nrmf + j0;
        if (perm) {
            for (int i = 0; i < ni; i++) {
                memcpy(s->pif + (size_t)i * d, v->xf + (size_t)perm[i0 + i] * d, (size_t)d * sizeof(float));
                s->nif[i] = v->nrmf[perm[i0 + i]];
            }
            for (int j = 0; j < nj; j++) {
                memcpy(s->pjf + (size_t)j * d, v->xf + (size_t)perm[j0 + j] * d, (size_t)d * sizeof(float));
                s->njf[j] = v->nrmf[perm[j0 + j]];
            }
            A = s->pif; B = s->pjf; na = s->nif; nb = s->njf;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, d, 1.0f, A, d, B, d, 0.0f, s->G, nj);
        for (int i = 0; i < ni; i++) dist_row_f32(D + (size_t)i * nj, s->G + (size_t)i * nj, na[i], nb, nj);
    } else {
        const double *A = v->x + (size_t)i0 * d, *B = v->x + (size_t)j0 * d;
        const double *na = v->nrm + i0, *nb = v->nrm + j0;
        if (perm) {
            for (int i = 0; i < ni; i++) {
                memcpy(s->pi + (size_t)i * d, v->x + (size_t)perm[i0 + i] * d, (size_t)d * sizeof(double));
                s->ni[i] = v->nrm[perm[i0 + i]];
            }
            for (int j = 0; j < nj; j++) {
                memcpy(s->pj + (size_t)j * d, v->x + (size_t)perm[j0 + j] * d, (size_t)d * sizeof(double));
                s->nj[j] = v->nrm[perm[j0 + j]];
            }
            A = s->pi; B = s->pj; na = s->ni; nb = s->nj;
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, d, -2.0, A, d, B, d, 0.0, D, nj);
        for (int i = 0; i < ni; i++) dist_row_f64(D + (size_t)i * nj, na[i], nb, nj);
    }
    if (i0 == j0)
        for (int i = 0; i < ni && i < nj; i++) D[(size_t)i * nj + i] = 0;
}

// The upper-triangle tiles (bi <= bj) in a fixed order; tile k belongs to rank k % nranks.
typedef struct { int n, T, nb, bi, bj, k; } TileIter;
static void tiles_begin(TileIter *it, int n, int T) { it->n = n; it->T = T; it->nb = (n + T - 1) / T; it->bi = 0; it->bj = -1; it->k = -1; }
static int tiles_next(TileIter *it, int rank, int nranks) {
    for (;;) {
        if (++it->bj >= it->nb) { it->bi++; it->bj = it->bi; }
        if (it->bi >= it->nb) return 0;
        if (++it->k % nranks == rank) return 1;
    }
}
// How many tiles tiles_next gives `rank` (for the progress).
static long tiles_of_rank(int n, int T, int rank, int nranks) {
    long nb = (n + T - 1) / T, all = nb * (nb + 1) / 2;
    return all / nranks + (rank < all % nranks);
}

// Pass 1: row sums of every variable's distance matrix, all-reduced.
static void pass_rowsums(Var *vs, int nv, const DcorOptions *o, Scratch *s) {
    int n = vs[0].n, T = s->T;
    double *buf = xcalloc((size_t)nv * n, sizeof(double));
    TileIter it;
    tiles_begin(&it, n, T);
    while (tiles_next(&it, o->rank, o->nranks)) {
        int i0 = it.bi * T, j0 = it.bj * T, ni = DF_MIN(T, n - i0), nj = DF_MIN(T, n - j0), off = i0 != j0;
        for (int v = 0; v < nv; v++) {
            double *D = s->D[v], *r = buf + (size_t)v * n;
            var_tile(D, &vs[v], NULL, i0, ni, j0, nj, s);
            for (int i = 0; i < ni; i++) r[i0 + i] += rowsum_colsum(r + j0, D + (size_t)i * nj, nj, off);
        }
        tile_done(s);
    }
    reduce_sum_f64(o->red, buf, (size_t)nv * n);
    for (int v = 0; v < nv; v++) {
        memcpy(vs[v].r, buf + (size_t)v * n, (size_t)n * sizeof(double));
        var_set_rowsums(&vs[v]);
    }
    free(buf);
}

// Pass 2: centred inner products of every pair, biased (sb) and U-centred (su), all-reduced.
static void pass_products(double sb[NP_MAX], double su[NP_MAX], Var *vs, int nv, const DcorOptions *o, Scratch *s) {
    int n = vs[0].n, T = s->T, np = nv == 3 ? 6 : 3;
    double mb[NV_MAX], mu[NV_MAX], acc[2 * NP_MAX] = { 0 };
    for (int v = 0; v < nv; v++) {
        mb[v] = vs[v].t / ((double)n * n);
        mu[v] = n > 2 ? vs[v].t / ((double)(n - 1) * (n - 2)) : 0;
    }
    TileIter it;
    tiles_begin(&it, n, T);
    while (tiles_next(&it, o->rank, o->nranks)) {
        int i0 = it.bi * T, j0 = it.bj * T, ni = DF_MIN(T, n - i0), nj = DF_MIN(T, n - j0), diag = i0 == j0;
        for (int v = 0; v < nv; v++) var_tile(s->D[v], &vs[v], NULL, i0, ni, j0, nj, s);
        double t[2 * NP_MAX] = { 0 };
        for (int i = 0; i < ni; i++) {
            for (int v = 0; v < nv; v++) {
                const Var *V = &vs[v];
                center_row(s->cb[v], s->cu[v], s->D[v] + (size_t)i * nj, V->rb[i0 + i], V->rb + j0, mb[v],
                           V->ru[i0 + i], V->ru + j0, mu[v], nj);
                if (diag) s->cu[v][i] = 0;  // U-centred matrices are 0 on the diagonal
            }
            for (int p = 0; p < np; p++) {
                t[p] += dot(s->cb[pair_u[p]], s->cb[pair_v[p]], nj);
                t[NP_MAX + p] += dot(s->cu[pair_u[p]], s->cu[pair_v[p]], nj);
            }
        }
        double w = diag ? 1.0 : 2.0;
        for (int p = 0; p < 2 * NP_MAX; p++) acc[p] += w * t[p];
        tile_done(s);
    }
    reduce_sum_f64(o->red, acc, 2 * NP_MAX);
    for (int p = 0; p < NP_MAX; p++) { sb[p] = acc[p]; su[p] = acc[NP_MAX + p]; }
}

// Permutation pass: stat[k] = <C_x, C_y o perm_k> (the chosen centring) for the batch of
// permutations perms (nperm, n), summed over this rank's tiles and all-reduced.
static void pass_permutations(double *stat, const int *perms, int nperm, Var *vx, Var *vy, int unbiased,
                              const DcorOptions *o, Scratch *s) {
    int n = vx->n, T = s->T;
    double mx = unbiased ? vx->t / ((double)(n - 1) * (n - 2)) : vx->t / ((double)n * n);
    double my = unbiased ? vy->t / ((double)(n - 1) * (n - 2)) : vy->t / ((double)n * n);
    const double *cx = unbiased ? vx->ru : vx->rb, *cy = unbiased ? vy->ru : vy->rb;
    memset(stat, 0, (size_t)nperm * sizeof(double));
    TileIter it;
    tiles_begin(&it, n, T);
    while (tiles_next(&it, o->rank, o->nranks)) {
        int i0 = it.bi * T, j0 = it.bj * T, ni = DF_MIN(T, n - i0), nj = DF_MIN(T, n - j0), diag = i0 == j0;
        double w = diag ? 1.0 : 2.0;
        var_tile(s->D[0], vx, NULL, i0, ni, j0, nj, s);
        for (int i = 0; i < ni; i++) {
            double *c = s->C + (size_t)i * nj;
            center_row(c, s->cu[0], s->D[0] + (size_t)i * nj, cx[i0 + i], cx + j0, mx, 0, cx + j0, 0, nj);
            if (diag && unbiased) c[i] = 0;
        }
        for (int k = 0; k < nperm; k++) {
            const int *p = perms + (size_t)k * n;
            var_tile(s->D[1], vy, p, i0, ni, j0, nj, s);
            for (int j = 0; j < nj; j++) s->gj[j] = cy[p[j0 + j]];
            double t = 0;
            for (int i = 0; i < ni; i++) {
                center_row(s->cb[1], s->cu[1], s->D[1] + (size_t)i * nj, cy[p[i0 + i]], s->gj, my, 0, s->gj, 0, nj);
                if (diag && unbiased) s->cb[1][i] = 0;
                t += dot(s->C + (size_t)i * nj, s->cb[1], nj);
            }
            stat[k] += w * t;
        }
        tile_done(s);
    }
    reduce_sum_f64(o->red, stat, (size_t)nperm);
}

// ---- one-dimensional path ----------------------------------------------------------------

typedef struct { double v; int i; } ValIdx;
static int cmp_validx(const void *a, const void *b) {
    const ValIdx *p = a, *q = b;
    if (p->v < q->v) return -1;
    if (p->v > q->v) return 1;
    return p->i - q->i;  // a total order: sorting is deterministic
}

// r_i = sum_j |x_i - x_j| from one sort and prefix sums. x (n).
static void rowsums_1d(double *r, const double *x, int n) {
    ValIdx *s = xmalloc((size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) { s[i].v = x[i]; s[i].i = i; }
    qsort(s, (size_t)n, sizeof *s, cmp_validx);
    double total = 0, below = 0;
    for (int k = 0; k < n; k++) total += s[k].v;
    for (int k = 0; k < n; k++) {
        double v = s[k].v;
        double above = total - below - v;
        r[s[k].i] = (v * k - below) + (above - v * (n - k - 1));
        below += v;
    }
    free(s);
}

// S = sum_{i,j} |x_i - x_j| |y_i - y_j| in O(n log n): visit samples in increasing x; a
// Fenwick tree over the ranks of y holds count, sum x, sum y, sum xy of the samples visited,
// so the pairs with y_j <= y_i and with y_j > y_i each expand into four sums.
static double cross_1d(const double *x, const double *y, int n) {
    ValIdx *sx = xmalloc((size_t)n * sizeof *sx), *sy = xmalloc((size_t)n * sizeof *sy);
    int *rank = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) { sx[i].v = x[i]; sx[i].i = i; sy[i].v = y[i]; sy[i].i = i; }
    qsort(sx, (size_t)n, sizeof *sx, cmp_validx);
    qsort(sy, (size_t)n, sizeof *sy, cmp_validx);
    int m = 0;  // dense ranks 1..m of y (ties share a rank)
    for (int k = 0; k < n; k++) {
        if (k == 0 || sy[k].v != sy[k - 1].v) m++;
        rank[sy[k].i] = m;
    }
    double *fw = xcalloc((size_t)(m + 1) * 4, sizeof(double));  // (m+1, 4): cnt, sx, sy, sxy
    double tot[4] = { 0 }, S = 0;
    for (int k = 0; k < n; k++) {
        int i = sx[k].i;
        double xi = x[i], yi = y[i], L[4] = { 0 };
        for (int q = rank[i]; q > 0; q -= q & -q)
            for (int c = 0; c < 4; c++) L[c] += fw[(size_t)q * 4 + c];
        double H[4];
        for (int c = 0; c < 4; c++) H[c] = tot[c] - L[c];
        // sum_{j in L} (xi - xj)(yi - yj) - sum_{j in H} (xi - xj)(yi - yj)
        double pl = L[0] * xi * yi - xi * L[2] - yi * L[1] + L[3];
        double ph = H[0] * xi * yi - xi * H[2] - yi * H[1] + H[3];
        S += pl - ph;
        double add[4] = { 1, xi, yi, xi * yi };
        for (int q = rank[i]; q <= m; q += q & -q)
            for (int c = 0; c < 4; c++) fw[(size_t)q * 4 + c] += add[c];
        for (int c = 0; c < 4; c++) tot[c] += add[c];
    }
    free(fw); free(rank); free(sx); free(sy);
    return 2 * S;
}

// Centred products of the pair (u, v) from S = sum a b and the row sums.
static void products_from_sums(double *pb, double *pu, double S, const Var *u, const Var *v) {
    int n = u->n;
    double rr = 0;
    for (int i = 0; i < n; i++) rr += u->r[i] * v->r[i];
    *pb = S - 2.0 / n * rr + u->t * v->t / ((double)n * n);
    *pu = n > 3 ? S - 2.0 / (n - 2) * rr + u->t * v->t / ((double)(n - 1) * (n - 2)) : NAN;
}

static double self_1d(const Var *u) {  // sum_ij (x_i - x_j)^2 = 2n sum x^2 - 2 (sum x)^2
    double s1 = 0, s2 = 0;
    for (int i = 0; i < u->n; i++) { s1 += u->x[i]; s2 += u->x[i] * u->x[i]; }
    return 2.0 * u->n * s2 - 2.0 * s1 * s1;
}

// ---- fused path: x multivariate, y one-dimensional ---------------------------------------
// The usual call (features against one confounder). One sweep over the tiles of x instead of
// two, and no tiles of y at all:
// - y's row sums s come from the sort (rowsums_1d), its self-product from the closed form
//   (self_1d, as on the O(n log n) path), so its centred values B_ij = b_ij - s_i/n - s_j/n
//   + u/n^2 (and the U-centred B~) are known before the sweep and made on the fly from the
//   1-D values (b_ij = |y_i - y_j|, two operations).
// - Cross term: B's rows sum to 0 (B~'s rows too, off the diagonal), so every row or
//   column constant in x's centring drops out: <A,B> = sum_ij a_ij B_ij and
//   <A~,B~> = sum_{i!=j} a_ij B~_ij. x's row sums are not needed for it.
// - x's self term from the same sweep with the shift e_ij = a_ij - c (c = the RMS distance,
//   a constant: centring removes it exactly) by the identities
//     <A,A>   = sum e^2 - (2/n) sum rho_i^2 + tau^2/n^2,                     rho_i = sum_j e_ij
//     <A~,A~> = sum' e^2 - (2/(n-2)) sum rho'_i^2 + tau'^2/((n-1)(n-2)),     rho'_i = rho_i + c
//   (sum' and rho' without the diagonal, where e_ii = -c). Because e is nearly centred
//   (c is close to the mean distance), sum e^2 is within a small factor of <A,A>: nothing
//   large cancels, unlike the raw sum a^2 (which at d = 64 is ~400x <A,A>). The same shift
//   keeps the cross term's row sums small: sum_j c B_ij = 0.
// Per element: the distance from the Gram, e, |y_i - y_j|, four multiply-adds and a column
// sum; the Gram tile is written once by the GEMM and read once. Half the GEMM work of the
// two-pass path, and about a third of its element work.

// Row i of a tile: from the Gram row g and the norms, e_j = |x_i - x_j| - c and
//   out[0] = sum_j e_j, out[1] = sum_j e_j^2,
//   out[2] = sum_j e_j (|y_i - y_j| - yb[j]), out[3] = sum_j e_j (|y_i - y_j| - yu[j]);
//   col[j] += e_j.
// SQ(j) is the squared distance from the Gram (double or float).
#define FUSED_ROW_BODY(SQ)                                                                             \
    double r1[8] = { 0 }, r2[8] = { 0 }, pb[8] = { 0 }, pu[8] = { 0 };                                \
    int j = 0;                                                                                         \
    for (; j + 8 <= m; j += 8)                                                                         \
        for (int k = 0; k < 8; k++) {                                                                  \
            double s = SQ(j + k);                                                                      \
            double e = sqrt(s > 0 ? s : 0) - c, b = fabs(yi - yj[j + k]);                              \
            col[j + k] += e;                                                                           \
            r1[k] += e;                                                                                \
            r2[k] += e * e;                                                                            \
            pb[k] += e * (b - yb[j + k]);                                                              \
            pu[k] += e * (b - yu[j + k]);                                                              \
        }                                                                                              \
    double t1 = 0, t2 = 0, tb = 0, tu = 0;                                                             \
    for (; j < m; j++) {                                                                               \
        double s = SQ(j);                                                                              \
        double e = sqrt(s > 0 ? s : 0) - c, b = fabs(yi - yj[j]);                                      \
        col[j] += e;                                                                                   \
        t1 += e;                                                                                       \
        t2 += e * e;                                                                                   \
        tb += e * (b - yb[j]);                                                                         \
        tu += e * (b - yu[j]);                                                                         \
    }                                                                                                  \
    out[0] = sum8(r1) + t1;                                                                            \
    out[1] = sum8(r2) + t2;                                                                            \
    out[2] = sum8(pb) + tb;                                                                            \
    out[3] = sum8(pu) + tu;

static inline double sum8(const double *s) { return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])); }

#define SQ_F64(j) (ni + nj[j] + g[j])
DCOR_CLONES static void fused_row_f64(double out[4], double *restrict col, const double *restrict g, double ni,
                                      const double *restrict nj, double c, double yi, const double *restrict yj,
                                      const double *restrict yb, const double *restrict yu, int m) {
    FUSED_ROW_BODY(SQ_F64)
}
#define SQ_F32(j) (ni + (double)nj[j] - 2.0 * (double)g[j])
DCOR_CLONES static void fused_row_f32(double out[4], double *restrict col, const float *restrict g, double ni,
                                      const float *restrict nj, double c, double yi, const double *restrict yj,
                                      const double *restrict yb, const double *restrict yu, int m) {
    FUSED_ROW_BODY(SQ_F32)
}

// sb, su: every centred product of x (multivariate) and y (one-dimensional); vx->r, vy->r
// set as after pass 1 (the permutation test uses them). Collective: one all-reduce of n + 3.
static void pass_fused_1d_y(double sb[NP_MAX], double su[NP_MAX], Var *vx, Var *vy, const DcorOptions *o, Scratch *s) {
    int n = vx->n, T = s->T, d = vx->d;
    rowsums_1d(vy->r, vy->x, n);
    var_set_rowsums(vy);
    products_from_sums(&sb[P_YY], &su[P_YY], self_1d(vy), vy, vy);
    double ybm = vy->t / ((double)n * n), yum = n > 2 ? vy->t / ((double)(n - 1) * (n - 2)) : 0;
    // c: the RMS distance sqrt(2 mean |x_i|^2) (columns are centred), close to the mean distance.
    double c = 0;
    for (int i = 0; i < n; i++) c += vx->nrm[i];
    c = sqrt(2 * c / n);
    double *buf = xcalloc((size_t)n + 3, sizeof(double));  // rho (n), sum e^2, <a,B>, <a,B~>
    double *rho = buf, *acc = buf + n, *col = s->cb[0];
    TileIter it;
    tiles_begin(&it, n, T);
    while (tiles_next(&it, o->rank, o->nranks)) {
        int i0 = it.bi * T, j0 = it.bj * T, ni = DF_MIN(T, n - i0), nj = DF_MIN(T, n - j0), diag = i0 == j0;
        double t[3] = { 0 };
        memset(col, 0, (size_t)nj * sizeof(double));
        const double *yj = vy->x + j0, *yb = vy->rb + j0, *yu = vy->ru + j0;
        // The whole Gram tile at once: splitting it into strips that fit in L2 repacks the
        // j block for every strip, which cost more than reading the tile from L3 (measured).
        if (vx->src) gram_src(s->D[0], vx, NULL, i0, ni, j0, nj, s);  // float input: s->G with single
        else if (vx->xf)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, d, 1.0f, vx->xf + (size_t)i0 * d, d,
                        vx->xf + (size_t)j0 * d, d, 0.0f, s->G, nj);
        else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, d, -2.0, vx->x + (size_t)i0 * d, d,
                        vx->x + (size_t)j0 * d, d, 0.0, s->D[0], nj);
        if (diag && vx->single)  // a row's distance to itself is exactly 0: ni + ni - 2 ni
            for (int i = 0; i < ni; i++) s->G[(size_t)i * nj + i] = vx->nrmf[i0 + i];
        else if (diag)  // (ni + ni) + -(ni + ni) = 0 exactly
            for (int i = 0; i < ni; i++) s->D[0][(size_t)i * nj + i] = -(vx->nrm[i0 + i] + vx->nrm[i0 + i]);
        for (int i = 0; i < ni; i++) {
            int gi = i0 + i;
            double r[4], yi = vy->x[gi];
            if (vx->single)
                fused_row_f32(r, col, s->G + (size_t)i * nj, vx->nrmf[gi], vx->nrmf + j0, c, yi, yj, yb, yu, nj);
            else
                fused_row_f64(r, col, s->D[0] + (size_t)i * nj, vx->nrm[gi], vx->nrm + j0, c, yi, yj, yb, yu, nj);
            rho[gi] += r[0];
            t[0] += r[1];
            t[1] += r[2] + (ybm - vy->rb[gi]) * r[0];
            t[2] += r[3] + (yum - vy->ru[gi]) * r[0];
            if (diag) t[2] += c * (yum - 2 * vy->ru[gi]);  // the U form leaves out e_ii = -c (b_ii = 0)
        }
        if (!diag)
            for (int j = 0; j < nj; j++) rho[j0 + j] += col[j];
        double w = diag ? 1.0 : 2.0;
        for (int k = 0; k < 3; k++) acc[k] += w * t[k];
        tile_done(s);
    }
    reduce_sum_f64(o->red, buf, (size_t)n + 3);
    double tau = 0, rr = 0, tau1 = 0, rr1 = 0;
    for (int i = 0; i < n; i++) {
        tau += rho[i];
        rr += rho[i] * rho[i];
        double r1 = rho[i] + c;
        tau1 += r1;
        rr1 += r1 * r1;
        vx->r[i] = rho[i] + n * c;
    }
    var_set_rowsums(vx);
    sb[P_XX] = acc[0] - 2.0 / n * rr + tau * tau / ((double)n * n);
    su[P_XX] = n > 3 ? acc[0] - n * c * c - 2.0 / (n - 2) * rr1 + tau1 * tau1 / ((double)(n - 1) * (n - 2)) : NAN;
    sb[P_XY] = acc[1];
    su[P_XY] = n > 3 ? acc[2] : NAN;
    free(buf);
}

// ---- statistics from the inner products ----------------------------------------------------

static double ratio(double num, double a, double b) { return a * b > 0 ? num / sqrt(a * b) : 0; }

static void finish(DcorResult *out, int n, const double sb[NP_MAX], const double su[NP_MAX], int has_z) {
    double nn = (double)n * n;
    out->n = n;
    out->dcov2 = sb[P_XY] / nn;
    out->dcor2 = ratio(sb[P_XY], sb[P_XX], sb[P_YY]);
    out->dcov2_u = out->dcor2_u = out->pdcor2_u = NAN;
    if (n >= 4) {
        out->dcov2_u = su[P_XY] / ((double)n * (n - 3));
        out->dcor2_u = ratio(su[P_XY], su[P_XX], su[P_YY]);
        if (has_z) {
            // Szekely & Rizzo (2014), as R energy's partial_dcor: 0 when x or y is (nearly)
            // a function of z in the U-centred inner product (a zero denominator).
            double rxy = out->dcor2_u, rxz = ratio(su[P_XZ], su[P_XX], su[P_ZZ]), ryz = ratio(su[P_YZ], su[P_YY], su[P_ZZ]);
            double den = (1 - rxz * rxz) * (1 - ryz * ryz);
            out->pdcor2_u = den > 1e-12 ? (rxy - rxz * ryz) / sqrt(den) : 0;
        }
    }
}

// ---- driver ---------------------------------------------------------------------------------

// rows: the source rows of samples 0..n-1 (NULL: the same).
static int check_var(const DcorVar *v, const int *rows, const char *name, int n, DfError *err) {
    if (!v->x == !v->xf) return df_err(err, "dcor: %s must be given in exactly one of double (x) and float (xf)", name);
    if (v->d < 1) return df_err(err, "dcor: %s has no columns", name);
    if (v->n != n) return df_err(err, "dcor: %s has %d samples but x has %d", name, v->n, n);
    for (int i = 0; i < v->n; i++) {
        const double *row = v->x ? in_row(v, rows, i) : NULL;
        const float *rowf = v->x ? NULL : in_row_f(v, rows, i);
        for (int k = 0; k < v->d; k++)
            if (!isfinite(row ? row[k] : rowf[k]))
                return df_err(err, "dcor: %s has a non-finite value at sample %d, column %d", name, i, k);
    }
    return 0;
}

static void make_perm(int *p, int n, uint64_t seed, int k) {
    Rng r;
    rng_seed_stream(&r, seed, (uint64_t)k, 7);
    rng_permutation(&r, p, n);
}

// p-value = (1 + #{k : T_k >= T_0 - margin}) / (1 + P), T_0 the observed statistic (as R
// energy's dcov.test, with ties made ties: DCOR_TIE in dcor.h).
static double p_value_from(int ge, int P) { return (1.0 + ge) / (1.0 + P); }

// The tie margin: sqrt(S_xx S_yy) of the test statistic's centring (sb biased, su U-centred)
// times DCOR_TIE, or DCOR_TIE_SINGLE when a Gram is in float.
static double margin(const double sb[NP_MAX], const double su[NP_MAX], const DcorOptions *o) {
    const double *s = o->unbiased ? su : sb;
    return (o->single ? DCOR_TIE_SINGLE : DCOR_TIE) * sqrt(fabs(s[P_XX] * s[P_YY]));
}

static int permutation_test_tiles(double *p_value, Var *vx, Var *vy, double margin, const DcorOptions *o,
                                  Scratch *s) {
    int n = vx->n, P = o->permutations;
    // Permutations in batches of about 64 MB of indices; each batch is one more sweep over
    // the tiles of x. Batch 0 starts with the identity (the observed statistic, computed by
    // exactly the same arithmetic as the replicates, so ties compare exactly).
    int batch = (int)DF_MAX(1, DF_MIN((long)P + 1, (64L << 20) / (4L * n)));
    int *perms = xmalloc((size_t)batch * n * sizeof(int));
    double *stat = xmalloc((size_t)batch * sizeof(double)), t0 = 0;
    int ge = 0;
    // Progress in permutations: a tile of a batch is its share of the batch's (the observed
    // statistic, one more sweep's worth, spread over them).
    double scale = (double)P / (P + 1), tiles = (double)DF_MAX(1, tiles_of_rank(n, s->T, o->rank, o->nranks));
    if (s->progress) progress_begin("dcor permutation test", "permutations", 0, P);
    for (int k0 = 0; k0 <= P; k0 += batch) {
        int nb = DF_MIN(batch, P + 1 - k0);
        s->done = k0 * scale;
        s->step = nb * scale / tiles;
        for (int k = 0; k < nb; k++) {
            int *p = perms + (size_t)k * n;
            if (k0 + k == 0) for (int i = 0; i < n; i++) p[i] = i;
            else make_perm(p, n, o->seed, k0 + k);
        }
        pass_permutations(stat, perms, nb, vx, vy, o->unbiased, o, s);
        for (int k = 0; k < nb; k++) {
            if (k0 + k == 0) t0 = stat[k];
            else ge += stat[k] >= t0 - margin;
        }
    }
    if (s->progress) progress_end();
    free(perms);
    free(stat);
    *p_value = p_value_from(ge, P);
    return 0;
}

// One-dimensional test: permutations are shared out over ranks (k % nranks == rank).
static double permutation_test_1d(Var *vx, Var *vy, double margin, const DcorOptions *o) {
    int n = vx->n, P = o->permutations, *p = xmalloc((size_t)n * sizeof(int));
    double *yp = xmalloc((size_t)n * sizeof(double));
    Var vp = *vy;
    double *rp = xmalloc((size_t)n * sizeof(double));
    vp.x = yp;
    vp.r = rp;
    double pb, pu, t0, cnt = 0;
    products_from_sums(&pb, &pu, cross_1d(vx->x, vy->x, n), vx, vy);
    t0 = o->unbiased ? pu : pb;
    if (o->progress) progress_begin("dcor permutation test", "permutations", 0, P);
    for (int k = 1; k <= P; k++) {
        if ((k - 1) % o->nranks != o->rank) continue;
        make_perm(p, n, o->seed, k);
        for (int i = 0; i < n; i++) { yp[i] = vy->x[p[i]]; rp[i] = vy->r[p[i]]; }
        products_from_sums(&pb, &pu, cross_1d(vx->x, yp, n), vx, &vp);
        cnt += (o->unbiased ? pu : pb) >= t0 - margin;
        if (o->progress) progress_update(k);  // every rank is about as far
    }
    if (o->progress) progress_end();
    reduce_sum_f64(o->red, &cnt, 1);
    free(p); free(yp); free(rp);
    return p_value_from((int)cnt, P);
}

// dcor_compute on the samples rows[0 .. x->n) of x, y and z (NULL: all): a group of
// dcor_by_group reads its rows in place, not from a copy.
static int compute(DcorResult *out, const DcorVar *x, const DcorVar *y, const DcorVar *z, const int *rows,
                   const DcorOptions *opt, DfError *err) {
    DcorOptions o = opt ? *opt : dcor_options_default();
    if (o.nranks < 1) o.nranks = 1;
    if (o.tile <= 0) o.tile = DCOR_DEFAULT_TILE;
    int n = x->n;
    if (check_var(x, rows, "x", n, err) || check_var(y, rows, "y", n, err) || (z && check_var(z, rows, "given", n, err)))
        return -1;
    if (n < 2) return df_err(err, "dcor: %d sample%s: distance correlation needs at least 2", n, n == 1 ? "" : "s");
    if (n < 4 && (o.unbiased || z))
        return df_err(err, "dcor: %d samples: the bias-corrected (U-centred) %s needs at least 4 samples", n,
                      z ? "partial distance correlation" : "distance correlation");
    const DcorVar *in[NV_MAX] = { x, y, z };
    int nv = z ? 3 : 2, one_d = !o.no_fast, dmax = 1, dsrc = 0;
    for (int v = 0; v < nv; v++) one_d &= in[v]->d == 1;
    Var vs[NV_MAX];
    for (int v = 0; v < nv; v++) {
        var_init(&vs[v], in[v], rows, o.single);
        if (vs[v].src) dsrc = DF_MAX(dsrc, vs[v].d);
        else dmax = DF_MAX(dmax, vs[v].d);
    }
    double sb[NP_MAX] = { 0 }, su[NP_MAX] = { 0 };
    memset(out, 0, sizeof *out);
    out->p_value = NAN;
    if (one_d) {
        // Every rank computes the same O(n log n) sums: no communication.
        for (int v = 0; v < nv; v++) { rowsums_1d(vs[v].r, vs[v].x, n); var_set_rowsums(&vs[v]); }
        int np = nv == 3 ? 6 : 3;
        for (int p = 0; p < np; p++) {
            const Var *u = &vs[pair_u[p]], *w = &vs[pair_v[p]];
            double S = u == w ? self_1d(u) : cross_1d(u->x, w->x, n);
            products_from_sums(&sb[p], &su[p], S, u, w);
        }
        finish(out, n, sb, su, z != NULL);
        if (o.permutations > 0) out->p_value = permutation_test_1d(&vs[0], &vs[1], margin(sb, su, &o), &o);
    } else {
        int T = DF_MIN(o.tile, n);
        // One variable multivariate, the other one-dimensional (and no z): the fused sweep.
        int fused = nv == 2 && in[0]->d > 1 && in[1]->d == 1 ? 1 : nv == 2 && in[0]->d == 1 && in[1]->d > 1 ? 2 : 0;
        Scratch s;
        scratch_init(&s, T, dmax, dsrc, nv, o.single, o.permutations > 0);
        s.progress = o.progress;
        s.step = 1;
        if (o.progress)  // one sweep over the tiles, or two (row sums, then products)
            progress_begin("dcor distances", "tiles", 0, (double)tiles_of_rank(n, T, o.rank, o.nranks) * (fused ? 1 : 2));
        if (fused == 1) pass_fused_1d_y(sb, su, &vs[0], &vs[1], &o, &s);
        else if (fused == 2) {  // y is the multivariate one: the statistics are symmetric
            pass_fused_1d_y(sb, su, &vs[1], &vs[0], &o, &s);
            double b = sb[P_XX], u = su[P_XX];
            sb[P_XX] = sb[P_YY]; su[P_XX] = su[P_YY]; sb[P_YY] = b; su[P_YY] = u;
        } else {
            pass_rowsums(vs, nv, &o, &s);
            pass_products(sb, su, vs, nv, &o, &s);
        }
        if (o.progress) progress_end();
        finish(out, n, sb, su, z != NULL);
        if (o.permutations > 0) permutation_test_tiles(&out->p_value, &vs[0], &vs[1], margin(sb, su, &o), &o, &s);
        scratch_free(&s);
    }
    for (int v = 0; v < nv; v++) var_free(&vs[v]);
    return 0;
}

double *dcor_one_hot(const double *v, int n, int *n_levels) {
    // Levels by a sort of the distinct values, then each sample's level by binary search:
    // O(n log n) for any number of levels. A NaN (a missing value) makes its row NaN, so
    // that dcor_compute reports it as it would the code itself.
    double *sorted = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) sorted[m++] = v[i];
    qsort(sorted, (size_t)m, sizeof(double), df_cmp_double);
    int L = 0;
    for (int i = 0; i < m; i++)
        if (i == 0 || sorted[i] != sorted[L - 1]) sorted[L++] = sorted[i];
    const int cols = L ? L : 1;
    int *col = xmalloc(sizeof(int) * (size_t)cols), next = 0;  // a level's column: order of first appearance
    for (int q = 0; q < cols; q++) col[q] = -1;
    double *Y = xcalloc((size_t)(n ? n : 1) * (size_t)cols, sizeof(double));
    for (int i = 0; i < n; i++) {
        if (isnan(v[i])) {
            for (int q = 0; q < cols; q++) Y[(size_t)i * cols + q] = NAN;
            continue;
        }
        int lo = 0, hi = L - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (sorted[mid] < v[i]) lo = mid + 1;
            else hi = mid;
        }
        if (col[lo] < 0) col[lo] = next++;
        Y[(size_t)i * cols + col[lo]] = 1.0;
    }
    free(col);
    free(sorted);
    *n_levels = cols;
    return Y;
}

double *dcor_one_hot_columns(const double *x, int n, int d, const int *categorical, int *d_out) {
    // The output's width first, then each column copied or expanded into its place.
    double **hot = xcalloc((size_t)d, sizeof(double *));
    double *col = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    int *width = xmalloc(sizeof(int) * (size_t)d), w = 0;
    for (int j = 0; j < d; j++) {
        width[j] = 1;
        if (categorical && categorical[j]) {
            for (int i = 0; i < n; i++) col[i] = x[(size_t)i * d + j];
            hot[j] = dcor_one_hot(col, n, &width[j]);
        }
        w += width[j];
    }
    double *Y = xmalloc(sizeof(double) * (size_t)(n ? n : 1) * (size_t)w);
    for (int i = 0; i < n; i++) {
        double *row = Y + (size_t)i * w;
        for (int j = 0; j < d; j++) {
            if (hot[j]) memcpy(row, hot[j] + (size_t)i * width[j], sizeof(double) * (size_t)width[j]);
            else row[0] = x[(size_t)i * d + j];
            row += width[j];
        }
    }
    for (int j = 0; j < d; j++) free(hot[j]);
    free(hot); free(col); free(width);
    *d_out = w;
    return Y;
}

int dcor_compute(DcorResult *out, const DcorVar *x, const DcorVar *y, const DcorVar *z, const DcorOptions *opt,
                 DfError *err) {
    return compute(out, x, y, z, NULL, opt, err);
}

// ---- groups ----------------------------------------------------------------------------------

int dcor_by_group(DcorGroups *out, const DcorVar *x, const DcorVar *y, const DcorVar *z, const double *by,
                  const DcorOptions *opt, DfError *err) {
    int n = x->n;
    // A group is computed on its rows in place (compute's rows), so y and z must have x's n.
    if (y->n != n) return df_err(err, "dcor: y has %d samples but x has %d", y->n, n);
    if (z && z->n != n) return df_err(err, "dcor: given has %d samples but x has %d", z->n, n);
    double *vals = xmalloc((size_t)n * sizeof(double) + 1);
    for (int i = 0; i < n; i++) {
        if (!isfinite(by[i])) { free(vals); return df_err(err, "dcor: the group variable has a non-finite value at sample %d", i); }
        vals[i] = by[i];
    }
    qsort(vals, (size_t)n, sizeof(double), df_cmp_double);
    int g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && vals[i] == vals[i - 1]) continue;
        if (g == DCOR_MAX_GROUPS) {
            free(vals);
            return df_err(err, "dcor: the group variable has more than %d distinct values (is it continuous?)", DCOR_MAX_GROUPS);
        }
        out->value[g++] = vals[i];
    }
    out->n_groups = g;
    free(vals);
    int *idx = xmalloc((size_t)n * sizeof(int) + 1), rc = 0;
    int need_u = (opt && opt->unbiased) || z;
    for (int k = 0; k < g && !rc; k++) {
        int m = 0;
        for (int i = 0; i < n; i++) if (by[i] == out->value[k]) idx[m++] = i;
        DcorResult *r = &out->r[k];
        if (m < 2 || (m < 4 && need_u)) {
            if (need_u) { rc = df_err(err, "dcor: group %g has %d sample%s: the bias-corrected form needs at least 4", out->value[k], m, m == 1 ? "" : "s"); break; }
            memset(r, 0, sizeof *r);
            r->n = m;
            r->dcov2 = r->dcor2 = r->dcov2_u = r->dcor2_u = r->pdcor2_u = r->p_value = NAN;
            continue;
        }
        // The group's m samples, read through idx: no copy of its rows (a float (n, d)
        // matrix of the training report stays the only one).
        DcorVar sx = *x, sy = *y, sz = z ? *z : *x;
        sx.n = sy.n = sz.n = m;
        rc = compute(r, &sx, &sy, z ? &sz : NULL, idx, opt, err);
    }
    free(idx);
    return rc;
}

// ---- naive reference ------------------------------------------------------------------------

static double *naive_dist(const DcorVar *v) {
    int n = v->n, d = v->d;
    double *D = xmalloc((size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) { double e = v->x[(size_t)i * d + k] - v->x[(size_t)j * d + k]; s += e * e; }
            D[(size_t)i * n + j] = sqrt(s);
        }
    return D;
}

// In place: double-centred (u = 0) or U-centred (u = 1) copy of D into C.
static void naive_center(double *C, const double *D, int n, int u) {
    double *r = xcalloc((size_t)n, sizeof(double)), t = 0;
    for (int i = 0; i < n; i++) { for (int j = 0; j < n; j++) r[i] += D[(size_t)i * n + j]; t += r[i]; }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            C[(size_t)i * n + j] = u ? (i == j ? 0 : D[(size_t)i * n + j] - r[i] / (n - 2) - r[j] / (n - 2) + t / ((double)(n - 1) * (n - 2)))
                                     : D[(size_t)i * n + j] - r[i] / n - r[j] / n + t / ((double)n * n);
    free(r);
}

void dcor_naive(DcorResult *out, const DcorVar *x, const DcorVar *y, const DcorVar *z) {
    DF_ASSERT(x->x && y->x && (!z || z->x));
    int n = x->n, nv = z ? 3 : 2;
    const DcorVar *in[3] = { x, y, z };
    double *C[2][3], sb[NP_MAX] = { 0 }, su[NP_MAX] = { 0 };
    for (int v = 0; v < nv; v++) {
        double *D = naive_dist(in[v]);
        for (int u = 0; u < 2; u++) {
            C[u][v] = xmalloc((size_t)n * n * sizeof(double));
            if (u == 0 || n >= 4) naive_center(C[u][v], D, n, u);
        }
        free(D);
    }
    for (int p = 0; p < (z ? 6 : 3); p++)
        for (size_t k = 0; k < (size_t)n * n; k++) {
            sb[p] += C[0][pair_u[p]][k] * C[0][pair_v[p]][k];
            if (n >= 4) su[p] += C[1][pair_u[p]][k] * C[1][pair_v[p]][k];
        }
    memset(out, 0, sizeof *out);
    finish(out, n, sb, su, z != NULL);
    out->p_value = NAN;
    for (int v = 0; v < nv; v++) { free(C[0][v]); free(C[1][v]); }
}
