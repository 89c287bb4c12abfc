// combat.h: ComBat site harmonisation (Johnson, Li & Rabinovic 2007; DESIGN.md 3.7) as
// Bioconductor sva 3.46's ComBat computes it, fitted over voxels split between ranks.
//
// Voxels are columns: y is (n, v) with voxel j of subject i at y[i * v + j]. Each rank holds
// every subject for its share of the voxels (v_offset .. v_offset + v of v_total); the only
// coupling between voxels is through the empirical-Bayes priors (sums over voxels, through the
// Reducer) and the non-parametric prior (every voxel's estimates, gathered).
#ifndef DF_PREP_COMBAT_H
#define DF_PREP_COMBAT_H
#include "base/common.h"
#include "base/reduce.h"
#include "data/combat_model.h"

// The parametric prior's convergence tolerance (sva's it.sol: conv = 1e-4, relative).
#define COMBAT_CONV 1e-4
// sva iterates without a bound; this one stops a run that does not converge with an error.
#define COMBAT_MAX_ITER 1000

// Fits ComBat on y (n, v): this rank's voxels v_offset .. v_offset + v of v_total; site (n) in
// 0..S-1; cov (n, kc): the covariates to keep, without intercept (NULL when kc = 0). m is
// allocated here (combat_model_free it after success; after an error it is empty). Sums over
// voxels go through r (NULL: one rank), so every split of the voxels gives the same model up to
// the order of additions; every rank must call it with the same subjects, sites and covariates.
// Returns 0, or -1 with err (on every rank alike): a site with fewer than 2 subjects, a
// singular design (naming the covariate column), non-finite data, fewer than 2 voxels to
// estimate the priors from, or a parametric prior that does not converge.
int combat_fit(CombatModel *m, const double *y, int n, long v, long v_offset, long v_total, const int *site, int S,
               const double *cov, int kc, CombatPrior prior, Reducer *r, DfError *err);

// out (n, v) = y (n, v) adjusted with the model: any subjects (a held-out set too), site (n)
// coded as in training (0..S-1; the caller maps or refuses a site the model never saw), cov
// (n, k_cov) as in training (NULL when k_cov = 0). out may equal y. Voxels the model passes
// through (m->pass) are copied unchanged.
void combat_apply(double *out, const CombatModel *m, const double *y, int n, const int *site, const double *cov);
#endif
