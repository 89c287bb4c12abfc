// combat_model.h: a fitted ComBat harmonisation model (prep/combat.c fits it), as one rank
// holds it for its voxels and as the model file stores it for all of them (docs/formats.md,
// "ComBat model"). Everything `deconfound harmonize --model FILE` needs to adjust new
// subjects with the training estimates: per voxel the pooled mean and variance, the
// covariates' coefficients, and per site the shrunken location and scale.
//
// Voxels are columns: a [rows, v] array holds voxel j of row r at [r * v + j].
#ifndef DF_COMBAT_MODEL_H
#define DF_COMBAT_MODEL_H
#include "base/common.h"

typedef enum { COMBAT_PARAMETRIC, COMBAT_NONPARAMETRIC, COMBAT_NO_EB } CombatPrior;

typedef struct {
    int n_sites;          // S: training sites, in the order of the site column's levels
    int k_cov;            // kept covariate columns (the design's, without intercept or sites)
    long v;               // voxels held (this rank's share, or all of them in a file)
    CombatPrior prior;
    double *grand_mean;   // [v] sum over sites of n_s / n * the site's fitted mean
    double *var_pooled;   // [v] mean squared residual of the full fit (divided by n, as sva)
    double *beta_cov;     // [k_cov, v] the covariates' coefficients
    double *gamma_star;   // [S, v] site location on the standardised scale (after shrinkage)
    double *delta_star;   // [S, v] site scale (variance) on the standardised scale
    unsigned char *pass;  // [v] 1: zero variance within some training site; left unchanged
    // Priors (the same on every rank; empirical-Bayes hyper-parameters over the voxels)
    double *gamma_bar, *tau2, *a_prior, *b_prior;  // [S] each
    int *iterations;                               // [S] parametric: EB iterations run
    // What the model file adds (harmonize sets them; combat_fit and combat_apply ignore them):
    // the training sites by name and their sizes, the site column, the kept covariates as
    // written (--keep) and the schema they are coded with (nn/metadata.h text), the voxels.
    char **site_names;    // [S]
    int *site_counts;     // [S]
    char *site_column, *keep, *schema_text;
    long *voxels;         // [v] sample positions (ascending)
    int shape[4];         // the samples' C, D, H, W
} CombatModel;

void combat_model_alloc(CombatModel *m, int n_sites, int k_cov, long v);
void combat_model_free(CombatModel *m);
// voxels [v0, v0 + count) of `all` (the estimates; the file's parts are not copied).
void combat_model_slice(CombatModel *part, const CombatModel *all, long v0, long count);

// The model file (HDF5, docs/formats.md "ComBat model"): every field above, all voxels.
// Written to a temporary name and renamed. Reading checks the format, the version and every
// array's shape; -1 with "PATH: ..." in err.
int combat_model_write(const char *path, const CombatModel *m, DfError *err);
int combat_model_read(const char *path, CombatModel *m, DfError *err);
#endif
