// cohort.h: a cohort in memory -- samples, labels, metadata and their names -- as every
// source fills it (shards, manifests, generators); and its metadata by name: checking values
// as they are read, combining shards whose categorical levels were numbered differently,
// building the network's metadata schema (nn/metadata.h) from training data, and recoding
// data evaluated later to the schema a model was trained with.
//
// Names. A categorical value is a number in the file. When the shard names the column's
// levels (the `levels` attribute `pack` writes), the value indexes that list and the name is
// the level's name ("B", "Siemens"); otherwise the number itself is the name ("2"). Class
// labels likewise: the shard's label `names`, else the class number. Levels and classes are
// matched by these names, never by their numbers.
#ifndef DF_COHORT_H
#define DF_COHORT_H
#include <stdint.h>
#include "base/shape.h"
#include "nn/metadata.h"

typedef enum { META_CONTINUOUS, META_CATEGORICAL } MetaKind;

typedef struct {
    int n;               // samples
    Shape shape;         // per-sample (C, D, H, W)
    float *images;       // (n, C, D, H, W)
    int32_t *labels;     // (n)
    int k;               // metadata columns
    double *meta;        // (n, k), row-major
    char *columns[META_MAX_COLS];
    MetaKind kinds[META_MAX_COLS];
    // Optional parts (NULL / 0 when absent; cohort_free frees them):
    int has_masks;       // the shard has /masks (masks itself is NULL after shard_read_header)
    uint8_t *masks;      // (n, 1, D, H, W), 1 = foreground
    char **subjects;     // (n) subject ids
    int n_label_names;   // class index -> name
    char **label_names;
    int n_levels[META_MAX_COLS];  // categorical column j: level index -> name
    char **levels[META_MAX_COLS];
    char *derived_by;    // a shard's `derived_by` attribute: how residualize/harmonize made its images
    char *source;        // a shard's `source` attribute: where pack found the samples ("bids:DIR ...")
    char *preprocessing; // a shard's `preprocessing` attribute: pack's steps ("reorient=1 spacing=8 ...")
    // Where each sample came from, when `pack` made it from NIfTI files (else NULL): the source
    // image, its grid, and the packed grid's place in the same world space. 4x4 affines are
    // row-major, voxel index (i, j, k, 1) -> world millimetres; for the packed grid the index is
    // (w, h, d). Outputs in image space (saliency maps) go back to the source's grid through them.
    char **sources;          // (n)
    int32_t *source_dims;    // (n, 3): the source's nx, ny, nz
    double *source_affine;   // (n, 16)
    double *affine;          // (n, 16): the packed sample's
} Cohort;

void cohort_alloc(Cohort *c, int n, Shape shape, int k);
void cohort_free(Cohort *c);
// Allocates zeroed masks (n, 1, D, H, W) and sets has_masks.
void cohort_alloc_masks(Cohort *c);
// Column index by name, -1 if absent.
int cohort_column(const Cohort *c, const char *name);

// Sorts level (or class) names as they are numbered in a cohort: in numeric order when every
// name is a number ("2" before "10"), else by strcmp. `pack` numbers a manifest's this way.
void cohort_sort_names(char **names, int n);

// The name of value v of categorical column `col`; of class `label`.
void cohort_level_name(const Cohort *c, int col, double v, char buf[META_NAME_LEN]);
void cohort_class_name(const Cohort *c, int label, char buf[META_NAME_LEN]);

// How messages name a sample: "sample 12 (subject sub-07)", or "sample 12" without an id
// (subject NULL). index: the sample's place in the file the message names.
void cohort_sample_name(char *buf, size_t n, int index, const char *subject);

// Checks the values read from `path`: every metadata value finite; every categorical value a
// level number (a whole number indexing the column's level names, or, for a column without
// names, one from 0 below 10^6); every label a class index >= 0 (below the number of class
// names, when the labels have names). -1 with one message naming the file, the sample (its
// index from 0 and its subject id when there are ids) and the column otherwise:
// "a.h5: sample 12 (subject sub-07), meta column 'age': NaN; metadata must be finite numbers".
int cohort_check_values(const Cohort *c, const char *path, DfError *err);
// Metadata column names (k of them, from `path`): each non-empty, without a comma, and unique.
int cohort_check_columns(char *const *columns, int k, const char *path, DfError *err);
// One sample's image x (shape s): every voxel finite. A NaN or infinity stops with "PATH:
// WHO, images: channel 0 voxel (d 3, h 4, w 5) is NaN; ..." (who: as cohort_sample_name
// names it). One vectorised pass over x (df_first_nonfinite), meant for a sample just read.
int cohort_check_image(const float *x, Shape s, const char *path, const char *who, DfError *err);

// Appends the samples of shard h (read from `path`) to `all` (its first shard was
// `first_path`): labels, metadata and subject ids, not images. The first call (all->n = 0)
// copies h's columns. Later shards must have the same sample shape, columns and kinds.
// Levels and classes are matched by name: when both sides name them, the union of the
// names (sorted as `pack` sorts them) becomes the combined list and both sides' values are
// renumbered to it; when neither does, the numbers are the names and stay; when only one
// side names them, it is an error naming both files.
int cohort_append(Cohort *all, const char *first_path, const Cohort *h, const char *path, DfError *err);

// The network's schema from the data it trains on (the whole cohort, so every level of
// every split is known). -1 with err when a name is too long or a categorical column has
// more than META_MAX_LEVELS levels.
int meta_schema_build(MetaSchema *s, const Cohort *c, DfError *err);

// Recodes c in place to the schema `model` of a trained network, by name: c's metadata
// columns become the model's columns in the model's order (values coded as in training),
// followed by c's columns the model does not have; labels become the model's class
// numbers. A model column c lacks is filled with NaN and marked absent in *mapped (a copy
// of model that the network is then built with, so a layer that needs the column refuses
// to build). Errors name `origin`: a level or class the model never saw (with the sample
// and the model's levels), or a column whose kind differs.
int cohort_map_to_schema(Cohort *c, const MetaSchema *model, MetaSchema *mapped, const char *origin, DfError *err);
#endif
