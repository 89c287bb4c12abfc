// shard.h: the HDF5 shard, format version 1 (docs/formats.md):
//   /images  float32 [N, C, D, H, W], chunked one sample per chunk
//   /labels  int32   [N]
//   /meta    float64 [N, k], attributes `columns` (comma-separated names) and `kinds`
//            (comma-separated "continuous" / "categorical")
//   root attributes: format = "deconfound-shard", version = 1
// Written to a temporary name and renamed, so a crash never leaves a half shard.
#ifndef DF_SHARD_H
#define DF_SHARD_H
#include "common.h"
#include "layer.h"

#define SHARD_FORMAT "deconfound-shard"
#define SHARD_VERSION 1
#define SHARD_MAX_META 32

typedef enum { META_CONTINUOUS, META_CATEGORICAL } MetaKind;

typedef struct {
    int n;               // samples
    Shape shape;         // per-sample (C, D, H, W)
    float *images;       // (n, C, D, H, W)
    int32_t *labels;     // (n)
    int k;               // metadata columns
    double *meta;        // (n, k), row-major
    char *columns[SHARD_MAX_META];
    MetaKind kinds[SHARD_MAX_META];
} Cohort;

void cohort_alloc(Cohort *c, int n, Shape shape, int k);
void cohort_free(Cohort *c);
// Column index by name, -1 if absent.
int cohort_column(const Cohort *c, const char *name);

int shard_write(const char *path, const Cohort *c, DfError *err);
// Reads the whole shard into memory; checks the format attribute, version and shapes.
int shard_read(const char *path, Cohort *c, DfError *err);
// Reads everything except the images (n, shape, columns, kinds, labels, meta -- all small);
// images left NULL.
int shard_read_header(const char *path, Cohort *c, DfError *err);
// Reads samples [start, start+count) of /images into images (count * C*D*H*W floats; the
// shape comes from shard_read_header). For loaders that keep only some samples in memory.
int shard_read_images(const char *path, int start, int count, float *images, DfError *err);
#endif
