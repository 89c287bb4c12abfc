// export.h: samples of shards back out as NIfTI files, each in the space of the image `pack`
// made it from (the dimensions and affine of that file, recorded in the shard: data/cohort.h,
// Cohort.sources), so a rewritten image -- residualized, harmonized -- opens over the
// subject's scan in any viewer. Samples of shards without that record (synthetic data) are
// written on the shard's own grid with unit voxels.
#ifndef DF_EXPORT_H
#define DF_EXPORT_H
#include "base/common.h"
#include "data/cohort.h"

// File names for the n samples of shards taken in order: the subject id, then _2, _3, ...
// for the same subject's further samples ("sample-00012" when a shard has no ids; '/' in an
// id becomes '_'). subjects may be NULL. names is (n, 200).
void export_sample_names(char (*names)[200], char *const *subjects, int n, int first);

// One image on a packed grid, x (C, D, H, W) of shape sh, as a NIfTI file: with the packed
// grid's affine and the source's (affine, dims), resampled back onto the source's grid and
// written with its affine; with source_affine NULL, the packed grid as it is (its affine, or
// unit voxels when affine is NULL too). A sample of several channels is a 4D file.
int export_grid(const char *file, const float *x, Shape sh, const double *affine, const double *source_affine,
                const int *source_dims, DfError *err);

// Writes sample i of shard `path` (0-based within it) as <dir>/<name><suffix>.nii.gz; header
// is the shard's (shard_read_header). A sample of C channels is a 4D file of C volumes.
int export_sample(const char *dir, const char *name, const char *suffix, const char *path, const Cohort *header, int i,
                  DfError *err);

// Every shard readable as one (its header) and every sample's geometry usable: source
// dimensions of at least one voxel, a packed grid's affine that can be inverted (as
// prep_to_source needs). What export_shards would otherwise find only after its output
// folder exists. -1 with err naming the shard (and the sample).
int export_check(char *const *paths, int n_paths, DfError *err);

// This rank's share of every sample of the shards (sample k of all, in order, when k % nranks
// == rank) into dir, named by export_sample_names over all of them; subjects, if any are
// given (n_subjects > 0), restrict the samples written. *written gets this rank's count.
int export_shards(const char *dir, const char *suffix, char *const *paths, int n_paths, const char *const *subjects,
                  int n_subjects, int rank, int nranks, long *written, DfError *err);
#endif
