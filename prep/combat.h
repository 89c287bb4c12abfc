// combat.h: ComBat site harmonisation (Johnson, Li & Rabinovic 2007; DESIGN.md 3.7) as
// Bioconductor sva 3.46's ComBat computes it, fitted over voxels split between ranks.
//
// Voxels are columns: y is (n, v) with voxel j of subject i at y[i * v + j]. Each rank fits
// every subject for its share of the voxels (v_offset .. v_offset + v of v_total), which it may
// pass in chunks of columns (combat_fit_begin / _chunk / _finish); the only coupling between
// voxels is through the empirical-Bayes priors (sums over voxels, through the Reducer) and the
// non-parametric prior (every voxel's estimates, gathered).
#ifndef DF_PREP_COMBAT_H
#define DF_PREP_COMBAT_H
#include "base/common.h"
#include "base/reduce.h"
#include "data/combat_model.h"

// The parametric prior's convergence tolerance (sva's it.sol: conv = 1e-4, relative).
#define COMBAT_CONV 1e-4
// sva iterates without a bound; this one stops a run that does not converge with an error.
#define COMBAT_MAX_ITER 1000

// ---- the fit in pieces, for voxels streamed in chunks ----------------------------------------
//
//   combat_fit_begin   once: the sites and the design (no voxel data yet)
//   combat_fit_chunk   per chunk of this rank's voxels, all subjects: everything per voxel --
//                      the least-squares fit (grand mean, beta_cov, var_pooled), the pass-through
//                      flags, and per site the moments gamma_hat, delta_hat of the standardised
//                      data -- stored at the chunk's offset in the rank's arrays
//   combat_fit_finish  once, collective: the priors (sums over every rank's voxels) and the
//                      empirical-Bayes estimates, which need only gamma_hat, delta_hat and the
//                      site sizes; hands over the model
// Every per-voxel value is computed as it would be in one chunk (the same operations in the same
// order), so any chunking gives the same model bit for bit.

// A fit in progress over this rank's v voxels.
typedef struct {
    int n, n_sites, k_cov;
    const int *site;                // (n) the caller's, kept until finish
    const double *cov;              // (n, k_cov) the caller's, kept until finish; NULL when k_cov = 0
    int *n_s, *off, *rows;          // (S), (S + 1), (n): site s's subjects are rows[off[s] .. off[s+1])
    double *L;                      // (p, p), p = S + k_cov: the Cholesky factor of the design's X'X
    CombatModel m;                  // the rank's model: per-voxel parts filled chunk by chunk
    double *gamma_hat, *delta_hat;  // (S, v): per site the mean and sample variance (/ (n_s - 1)) of z
    long n_bad;                     // non-finite values in the chunks so far
} CombatFit;

// Checks the sites and the design, and allocates for v voxels. site (n) in 0..S-1; cov (n, kc):
// the covariates to keep, without intercept (NULL when kc = 0); both must stay valid until
// finish. Returns 0, or -1 with err (the same on every rank given the same subjects): a site
// with fewer than 2 subjects, a singular design (naming the covariate column), a non-finite
// covariate. f needs combat_fit_free either way.
int combat_fit_begin(CombatFit *f, int n, long v, const int *site, int S, const double *cov, int kc, CombatPrior prior,
                     DfError *err);
// y (n, w): every subject's values of the rank's voxels [c0, c0 + w). y is only read: the
// standardised data are made a row at a time in a buffer of w values (no (n, w) copy); the
// chunk's scratch is combat_chunk_bytes(S, kc, w) bytes. w may be 0.
void combat_fit_chunk(CombatFit *f, const double *y, long c0, long w);
// Scratch bytes of combat_fit_chunk for a chunk of w voxels (the caller's y aside).
double combat_chunk_bytes(int S, int kc, long w);
// Collective, after every chunk: the priors over all ranks' voxels (this rank's are
// v_offset .. v_offset + v of v_total; sums go through r, NULL: one rank) and the site
// estimates. On success m receives the model (combat_model_free it) and f keeps none. Returns 0,
// or -1 with err on every rank alike: non-finite data, fewer than 2 voxels to estimate the
// priors from, or a parametric prior that does not converge.
int combat_fit_finish(CombatModel *m, CombatFit *f, long v_offset, long v_total, Reducer *r, DfError *err);
void combat_fit_free(CombatFit *f);

// All of the above in one chunk: fits ComBat on y (n, v), this rank's voxels v_offset ..
// v_offset + v of v_total. m is allocated here (combat_model_free it after success; after an
// error it is empty). Every split of the voxels over ranks gives the same model up to the order
// of additions in the sums over voxels; every rank must call it with the same subjects, sites
// and covariates. Returns 0, or -1 with err (on every rank alike) for the errors of begin and
// finish.
int combat_fit(CombatModel *m, const double *y, int n, long v, long v_offset, long v_total, const int *site, int S,
               const double *cov, int kc, CombatPrior prior, Reducer *r, DfError *err);

// out (n, v) = y (n, v) adjusted with the model: any subjects (a held-out set too), site (n)
// coded as in training (0..S-1; the caller maps or refuses a site the model never saw), cov
// (n, k_cov) as in training (NULL when k_cov = 0). out may equal y. Voxels the model passes
// through (m->pass) are copied unchanged.
void combat_apply(double *out, const CombatModel *m, const double *y, int n, const int *site, const double *cov);
#endif
