// dataset.h: the [data] section of an experiment: where samples come from (a built-in
// synthetic generator or an HDF5 shard) and the train/validation split. This first loader
// holds the cohort in memory; every rank holds the same cohort and reads its own samples.
#ifndef DF_DATASET_H
#define DF_DATASET_H
#include "ini.h"
#include "shard.h"

typedef struct {
    Cohort cohort;
    int *train_idx, n_train;  // indices into the cohort
    int *val_idx, n_val;
    char source[512];         // "synth:mri3d" or the shard path, for logs
} Dataset;

// [data] keys: source = synth:mri3d | PATH.h5; for synth: n, shape (D,H,W), seed;
// val_fraction (default 0.2), split_seed (default 1): a seeded permutation, stratified by
// label, puts val_fraction of each class in the validation split.
int dataset_from_config(Dataset *ds, const Ini *ini, DfError *err);
// Copies samples idx[0..n) into images (n, C,D,H,W) and labels (n).
void dataset_gather(const Cohort *c, const int *idx, int n, float *images, int *labels);
void dataset_free(Dataset *ds);
#endif
