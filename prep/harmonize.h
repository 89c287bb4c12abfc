// harmonize.h: ComBat site harmonisation of shards' images (prep/combat.c does the math),
// learned on training shards and applied with the training estimates to any other shards,
// now or later through the saved model -- neuroHarmonize's learn/apply split.
//
// Distribution: the voxels are split into contiguous shares, one per rank, and each share into
// chunks of columns that fit --memory (the same number of chunks on every rank). Pass 1 reads
// every training subject for one chunk at a time and fits what is per voxel (prep/combat.h);
// then the empirical-Bayes priors (sums over all voxels, all-reduced) and the site estimates;
// pass 2 reads every set a chunk at a time, adjusts it and writes the rank's spans of every
// output shard. Memory per rank: the largest set's subjects x one chunk in double, the fit's
// per-chunk scratch, and the model's per-voxel arrays for the share.
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
    double memory_mb;         // budget per rank for the image chunk (> 0); the voxels go in chunks that fit
} HarmonizeOptions;

typedef struct {
    long n_train, n_apply, voxels, passed;  // subjects; voxels harmonised; voxels left as they were
    int n_sites, k_cov;
    long chunk, chunks;                     // voxel columns per chunk, and chunks per rank
    double bytes_chunk, bytes_per_rank;     // the image chunk (with the fit's scratch); all of it
    double seconds_read, seconds_fit, seconds_write, seconds_total;
} HarmonizeReport;

// Collective. Prints the plan (chunks, memory) and the priors (rank 0). Returns 0, or -1 with
// err (the same on every rank; a read or write failure on any rank fails every rank), in which
// case no output file is left behind.
int harmonize_run(const HarmonizeOptions *o, HarmonizeReport *rep, DfError *err);
#endif
