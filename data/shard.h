// shard.h: the HDF5 shard, format version 1 (docs/formats.md):
//   /images  float32 [N, C, D, H, W], chunked one sample per chunk
//   /labels  int32   [N]
//   /meta    float64 [N, k], attributes `columns` (comma-separated names) and `kinds`
//            (comma-separated "continuous" / "categorical")
//   root attributes: format = "deconfound-shard", version = 1
// Optional (version 1 readers that predate them ignore them; docs/formats.md):
//   /masks   uint8   [N, 1, D, H, W], chunked one sample per chunk (foreground = 1)
//   /subject string  [N] (variable-length UTF-8) subject ids
//   /labels attribute `names` ("AD|CN": class index -> name), /meta attribute `levels`
//   (per column, comma-separated: "|"-separated level names of a categorical column, empty
//   for a continuous one)
//   root attributes `derived_by` (how residualize/harmonize made the images) and `source`
//   (where pack found the samples: "bids:DIR suffix=T1w ..."; shard_write writes c->source)
// Written to a temporary name and renamed, so a crash never leaves a half shard.
#ifndef DF_SHARD_H
#define DF_SHARD_H
#include "base/common.h"
#include "data/cohort.h"

#define SHARD_FORMAT "deconfound-shard"
#define SHARD_VERSION 1



int shard_write(const char *path, const Cohort *c, DfError *err);
// A shard holding everything of c but the image values, written to `path` itself (the caller
// names it temporarily and renames it): /images is allocated, one sample per chunk, and left
// for writers that put each sample's bytes at shard_layout's offsets (data/voxels.c). The
// root attribute `derived_by` records how the images were made (NULL: none); c->source, when
// set, goes to the root attribute `source` (where pack found the samples), as with shard_write.
int shard_create_unwritten(const char *path, const Cohort *c, const char *derived, DfError *err);
// Reads the whole shard into memory; checks the format attribute, version and shapes.
int shard_read(const char *path, Cohort *c, DfError *err);
// Reads everything except the images (n, shape, columns, kinds, labels, meta -- all small);
// images left NULL.
int shard_read_header(const char *path, Cohort *c, DfError *err);
// Reads samples [start, start+count) of /images into images (count * C*D*H*W floats; the
// shape comes from shard_read_header). For loaders that keep only some samples in memory.
int shard_read_images(const char *path, int start, int count, float *images, DfError *err);
// Same for /masks (count * D*H*W bytes); an error when the shard has none.
int shard_read_masks(const char *path, int start, int count, uint8_t *masks, DfError *err);

// The shard files of a source list ("a.h5, dir, b.h5"): each item a file, or a directory's
// *.h5 files in name order (hidden ones -- temporary files -- skipped). *paths (n of them;
// the caller frees each and the array). -1 with err naming the item that is missing, an
// empty directory, an empty item ("a.h5,,b.h5") or list, or a file listed twice (compared by
// device and inode: another spelling, a link, a file also inside a listed directory).
int shard_list_source(const char *source, char ***paths, int *n, DfError *err);

// Where each sample's bytes lie in the file, for a reader that bypasses HDF5 (the loader's
// prefetch thread: Debian's parallel HDF5 is not thread-safe, so that thread reads with
// pread). Available when /images is stored the way shard_write stores it -- little-endian
// float32, no filters, one sample per chunk (or contiguous) -- and likewise /masks (uint8).
// Returns 0 and fills the layout, 1 when the layout is not raw-readable (another writer's
// chunking, compression, big-endian...: read through HDF5 instead), -1 on error.
typedef struct {
    int n;
    size_t image_bytes, mask_bytes;  // per sample
    int64_t *image_off;              // n file offsets
    int64_t *mask_off;               // n offsets, or NULL when the shard has no masks
} ShardLayout;
int shard_layout(const char *path, ShardLayout *l, DfError *err);
void shard_layout_free(ShardLayout *l);
#endif
