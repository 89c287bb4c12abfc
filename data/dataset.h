// dataset.h: the [data] section of an experiment: where samples come from (a built-in
// synthetic generator, one or more HDF5 shards, a directory of shards, a manifest of
// NIfTI files, or a BIDS dataset) and the subject-level train/validation/test (or k-fold) split.
//
// Labels, metadata and subject ids of every sample are always in memory (small). Images
// are in memory (cohort.images) when the data set fits in [data] cache_mb (or cache =
// memory); otherwise they stay in the shards (`files`); data/loader.c reads batches either way.
#ifndef DF_DATASET_H
#define DF_DATASET_H
#include "base/ini.h"
#include "data/shard.h"

// Training-time augmentation ([data] flip, shift, intensity_scale, intensity_shift, noise).
typedef struct {
    int enabled;          // any of the below
    int flip[3];          // flip along D, H, W, each with probability 1/2
    int shift;            // random translation by up to +-shift voxels per axis, zero padded
    float scale;          // intensities times U(1 - scale, 1 + scale)
    float offset;         // plus U(-offset, offset)
    float noise;          // plus Gaussian noise per voxel, its sd U(0, noise) per sample
} Augment;

typedef struct {
    char *path;
    int first, n;         // samples [first, first + n) of the data set live in this shard
    int subjects;         // the shard has subject ids (/subject)
} DatasetFile;

typedef struct {
    Cohort cohort;
    int *train_idx, n_train;  // indices into the cohort, each split in cohort order
    int *val_idx, n_val;
    int *test_idx, n_test;
    char source[512];         // "synth:mri3d", the shard path, ... for logs
    int in_memory;            // cohort.images holds every sample
    int n_files;              // shards backing the data set (0 for generators/manifests)
    DatasetFile *files;
    Augment aug;
    int prefetch;             // [data] prefetch: batches the loader reads ahead
    int read;                 // [data] read: DATA_READ_PREAD or DATA_READ_MPIIO (samples on disk)
} Dataset;

// [data] read: how the loader reads samples that stay on disk. pread: raw reads at HDF5's
// chunk offsets, from a prefetch thread. mpiio: HDF5 with the MPI-IO driver (mpi/h5mpi.h),
// independent transfers on the main thread, no prefetch (docs/formats.md, "Loader").
enum { DATA_READ_PREAD = 0, DATA_READ_MPIIO = 1 };

// [data] keys (docs/config.md): source; synth: n, shape, seed, rho, ...; manifest
// preprocessing: shape, spacing, fit, normalize, reorient, 4d; bids:DIR: label,
// confounders, bids_suffix, bids_session, drop_missing; splits: val_fraction,
// test_fraction, split_seed, stratify, kfold, fold; cache, cache_mb; augmentation: flip,
// shift, intensity_scale, intensity_shift, noise; prefetch; read (pread | mpiio). A seeded permutation of the subjects,
// stratified by label (and optionally a categorical column), puts test_fraction of each
// stratum in the test split, then val_fraction (or, with kfold = K, fold `fold` of K) in
// validation; all samples of a subject land in the same split.
int dataset_from_config(Dataset *ds, const Ini *ini, DfError *err);
void dataset_free(Dataset *ds);
// Where sample idx of the data set comes from, for messages: path gets its shard (or the
// source: a generator, a manifest), who its index there and subject id, when it has one
// ("sample 3 (subject sub-04)").
void dataset_sample_name(const Dataset *ds, int idx, char *path, size_t np, char *who, size_t nw);
// The samples of shards alone, for inference (predict, eval): `sources` as [data] source
// takes them (files or directories, comma-separated; metadata combined by level name), no
// split (the loader's SPLIT_ALL covers them in order); in memory up to 4 GiB, else read
// from the shards as needed.
int dataset_from_shards(Dataset *ds, const char *sources, DfError *err);

// The split on its own (also used by tests): fills ds->train_idx/val_idx/test_idx from
// ds->cohort's labels, subjects and the stratify column (-1 for none).
typedef struct {
    double val_fraction, test_fraction;
    uint64_t seed;
    int stratify_column;  // cohort meta column (categorical) stratified on besides the label, or -1
    int kfold, fold;      // kfold >= 2: validation = fold `fold` (0-based) of kfold
} SplitConfig;
// -1 (err: "kfold = K, but the data hold N subjects ...") when kfold exceeds the subjects
// outside the test split: a validation fold would be empty.
int dataset_split(Dataset *ds, const SplitConfig *sc, DfError *err);
// A fixed, published split ([data] split_file): a CSV (data/csv.h dialect) with columns
// `subject` and `split` (train, val -- or validation -- or test; other columns ignored)
// assigns each subject of ds->cohort, all its samples together. Errors name the file and
// row: a subject of the file not in the data, a subject listed twice, an unknown split
// value; a subject of the data missing from the file names the subject and its first
// sample; data without subject ids, or a split with no training subject, are errors too.
int dataset_split_file(Dataset *ds, const char *path, DfError *err);
#endif
