// feature_file.h: numeric arrays for `deconfound dcor`, and the file `deconfound eval` writes.
// (Not "features.h": under -I io that name would shadow glibc's <features.h>.)
//
// Reading: FILE:DATASET[:COLUMN] names a 1-D [N] or 2-D [N, D] dataset of any integer or
// float type in an HDF5 file; it is read as float64 (N, D) (a 1-D dataset is (N, 1)).
// COLUMN picks one column of a 2-D dataset, by 0-based index or by name from the dataset's
// `columns` attribute (comma-separated, as a shard's /meta has): "shard.h5:meta:age".
//
// Writing (format `deconfound-features`, version 1; docs/formats.md):
//   /features/<layer>  float32 [N, F]  the layer's output per sample, flattened (C*D*H*W), eval mode
//   /labels            int32   [N]
//   /meta              float64 [N, k]  with attributes `columns` and `kinds` as in a shard
//   root attributes: format, version, checkpoint (path), layers (comma-separated, in order)
// Rows are the samples in input order. Written to a temporary name and renamed.
#ifndef DF_FEATURE_FILE_H
#define DF_FEATURE_FILE_H
#include <stdint.h>
#include "base/common.h"

#define FEATURES_FORMAT "deconfound-features"
#define FEATURES_VERSION 1

// Reads the array named by `spec` into a new buffer *x (n, d), caller frees. Errors name
// the spec and the problem (missing file or dataset, wrong rank or type, bad column).
int features_read_spec(const char *spec, double **x, int *n, int *d, DfError *err);
// The same, and (when categorical is non-NULL) *categorical, a new (d) array, caller frees:
// 1 for a column the dataset's `kinds` attribute calls "categorical" (a shard's or features
// file's /meta), else 0 -- the picked COLUMN's, or every column's of a whole 2-D dataset.
int features_read_spec_kind(const char *spec, double **x, int *n, int *d, int **categorical, DfError *err);

typedef struct {
    int n;                     // samples
    int n_layers;
    const char *const *names;  // (n_layers) layer names
    const float *const *feats; // (n_layers) each (n, dims[l])
    const int *dims;           // (n_layers) features per sample
    const int32_t *labels;     // (n)
    const double *meta;        // (n, k)
    int k;
    const char *columns, *kinds;  // comma-separated, k each ("" when k = 0)
    const char *checkpoint;
} FeaturesFile;
int features_write(const char *path, const FeaturesFile *ff, DfError *err);
#endif
