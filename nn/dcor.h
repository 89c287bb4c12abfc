// dcor.h: distance covariance and correlation (DESIGN.md section 3.5) at scale: never an
// n x n matrix. Pairwise distances are computed tile by tile with a GEMM (norms + Gram),
// accumulated in double, in two passes (row sums, then centred inner products); tiles are
// spread over ranks by (rank, nranks) and partial sums combined through a Reducer, so
// memory per rank is O(n*d + tile^2). When every variable is one-dimensional an
// O(n log n) path (sorting + Fenwick trees) is taken instead; when one of x, y is 1-D (and
// there is no z), a single fused sweep over the other's tiles. docs/dcor.md has the details.
#ifndef DF_DCOR_H
#define DF_DCOR_H
#include <stdint.h>
#include "base/common.h"
#include "base/reduce.h"

#define DCOR_DEFAULT_TILE 512
#define DCOR_MAX_GROUPS 64

// n observations of a d-dimensional variable, row-major (n, d), in double (x) or in float
// (xf): exactly one of the two is set. Float input is never copied whole: the tiles convert
// its rows to centred double (centred float with `single`) a block of columns at a time, so
// a float (n, d) matrix costs its own n*d*4 bytes and O(tile * 4096) more, where double input
// costs a centred double copy (n*d*8) on top of itself. xf is last so that { x, n, d }
// initialisers still mean double input.
typedef struct { const double *x; int n, d; const float *xf; } DcorVar;

typedef struct {
    int tile;          // tile edge in rows (0: DCOR_DEFAULT_TILE)
    int single;        // Gram matrices in float (sgemm): ~2x faster, distances to ~1e-7 relative
    int unbiased;      // the bias-corrected form is required (n < 4 is an error) and is the
                       // permutation-test statistic; otherwise the test uses the V-statistic
    int permutations;  // permutation-test replicates (0: no test)
    uint64_t seed;     // permutation k is rng_permutation of rng_seed_stream(seed, k, 7)
    int rank, nranks;  // this process's share of the tiles / permutations (0, 1: all)
    Reducer *red;      // combines partial sums across ranks (NULL: one process)
    int no_fast;       // never take the O(n log n) path (tests compare the two)
    int progress;      // 1: report the tile sweeps and the permutations (base/progress.h);
                       // `deconfound dcor` does, training's dCor report not (its line is the training's)
} DcorOptions;
// The permutation test counts replicate k when T_k >= T_0 - tie * sqrt(S_xx S_yy), i.e. when
// its dCor^2 is at least the observed's minus `tie` (S_uu = <C_u, C_u>, the same for every
// permutation, bounds |T| by Cauchy-Schwarz). Statistics that are mathematically equal (ties,
// the rule with discrete data: one-hot sites, balanced tables) are summed in an order that
// depends on the permutation, the tiles and the ranks, and land either side of T_0 by
// rounding (measured 1e-19..4e-17 of the scale in double); the margin makes them ties at any
// rank count and tile size. It is orders above that rounding, and as far below any difference
// in dCor^2 that means something. With `single` the distances themselves move by ~1e-7 with
// the tiling, hence the wider margin.
#define DCOR_TIE 1e-9
#define DCOR_TIE_SINGLE 1e-6

// Defaults: tile 512, double precision, biased test statistic, no permutations, one rank.
DcorOptions dcor_options_default(void);

typedef struct {
    int n;
    double dcov2, dcor2;      // biased (V-statistics): dCov^2_n and dCor^2_n
    double dcov2_u, dcor2_u;  // bias-corrected (U-centred); NAN when n < 4. dcor2_u is R energy's bcdcor
    double pdcor2_u;          // partial dCor given z (R energy's pdcor); NAN without z
    double p_value;           // permutation test of independence of x and y; NAN without --permutations
} DcorResult;

// Every statistic of x and y (and of x and y given z, when z is non-NULL). A variable of
// zero distance variance (a constant) has dCor 0, as in R energy. Collective when
// opt->nranks > 1: every rank calls it with the same data and options.
// Errors (returned, message in err; identical on every rank): n mismatch, n < 2, n < 4 when
// the bias-corrected form is required (opt->unbiased or z given), non-finite values, a
// variable with both or neither of x and xf.
int dcor_compute(DcorResult *out, const DcorVar *x, const DcorVar *y, const DcorVar *z,
                 const DcorOptions *opt, DfError *err);

// Per-group statistics: the samples whose `by` value is equal form a group (the MDN paper's
// per-class dCor). Groups are listed in ascending order of value (at most DCOR_MAX_GROUPS).
// A group of fewer than 4 samples gets NAN bias-corrected values (an error when they are
// required); fewer than 2, NAN everywhere.
typedef struct {
    int n_groups;
    double value[DCOR_MAX_GROUPS];
    DcorResult r[DCOR_MAX_GROUPS];
} DcorGroups;
int dcor_by_group(DcorGroups *out, const DcorVar *x, const DcorVar *y, const DcorVar *z, const double *by,
                  const DcorOptions *opt, DfError *err);

// A categorical variable as distance correlation needs it: one indicator column per
// distinct value of v (n), in order of first appearance, so the codes' order and spacing
// mean nothing. Returns the (n, *n_levels) matrix, caller frees.
double *dcor_one_hot(const double *v, int n, int *n_levels);
// x (n, d) with every column whose categorical[j] is 1 replaced, in place, by its one-hot
// columns (dcor_one_hot); other columns kept. Returns the (n, *d_out) matrix, caller frees.
double *dcor_one_hot_columns(const double *x, int n, int d, const int *categorical, int *d_out);

// Naive reference (O(n^2) memory: full distance matrices, explicit double and U-centring),
// for tests only; double input (x) only.
void dcor_naive(DcorResult *out, const DcorVar *x, const DcorVar *y, const DcorVar *z);
#endif
