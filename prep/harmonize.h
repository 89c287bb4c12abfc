// harmonize.h: ComBat site harmonisation of shards' images (prep/combat.c does the math),
// learned on training shards and applied with the training estimates to any other shards,
// now or later through the saved model -- neuroHarmonize's learn/apply split.
//
// Distribution: the voxels are split into contiguous shares, one per rank; each rank reads
// every subject for its share, fits its voxels (the empirical-Bayes priors are sums over all
// voxels, all-reduced), and writes its spans of every output shard. Memory per rank: the
// training subjects x its share, in double.
#ifndef DF_HARMONIZE_H
#define DF_HARMONIZE_H
#include "data/combat_model.h"

typedef struct {
    const char *train;        // comma-separated shards, or NULL to apply a saved model
    const char **apply;       // n_apply comma-separated shard lists
    int n_apply;
    const char *site;         // the site column (categorical)
    const char *keep;         // covariates whose effects are kept (e.g. "label,age"), or NULL
    const char *mask;         // NIfTI mask, or NULL for every voxel (fitting only)
    const char *out_dir;
    const char *model;        // written after fitting; read when train is NULL; or NULL
    CombatPrior prior;
} HarmonizeOptions;

typedef struct {
    long n_train, n_apply, voxels, passed;  // subjects; voxels harmonised; voxels left as they were
    int n_sites, k_cov;
    double bytes_per_rank;
    double seconds_read, seconds_fit, seconds_write, seconds_total;
} HarmonizeReport;

// Collective. Prints the plan and the priors (rank 0). Returns 0, or -1 with err (the same
// on every rank), in which case no output file is left behind.
int harmonize_run(const HarmonizeOptions *o, HarmonizeReport *rep, DfError *err);
#endif
