// voxels.h: shards seen as a subjects x voxels matrix, for the voxel-wise baselines that
// rewrite images before any network sees them (prep/residualize.c, prep/harmonize.c):
// which voxels take part (all, or a mask's), reading a range of them for one subject, and
// writing rewritten shards that keep everything else (labels, metadata, masks, subjects).
//
// Columns. The matrix's column j is sample position index[j] (C*D*H*W positions per sample,
// channel-major as the shard stores them). A mask selects positions; without one every
// position is a column. Column ranges map to position *spans* that tile the sample:
// span(j0, j1) = [start(j0), start(j1)) with start(0) = 0, start(m) = positions and
// start(j) = index[j] otherwise, so writers that each own some column ranges together write
// every position exactly once (positions outside the mask are written as 0).
//
// Reading bypasses HDF5 when the shard stores its images raw (shard_layout: what
// shard_write writes); each subject's span is then one pread. Other shards are read through
// HDF5 a whole sample at a time.
#ifndef DF_VOXELS_H
#define DF_VOXELS_H
#include "data/cohort.h"
#include "data/shard.h"

typedef struct {
    long positions;   // values per sample (C*D*H*W)
    long m;           // columns (voxels taking part)
    long *index;      // [m] ascending sample positions
} VoxelSet;

// Every position a column.
void voxels_all(VoxelSet *vs, Shape shape);
// The nonzero voxels of a NIfTI mask whose (x, y, z) dims equal the samples' (W, H, D), in
// every channel. -1 with "MASK: ..." in err for a missing file, other dims, or an empty mask.
int voxels_from_mask(VoxelSet *vs, const char *path, Shape shape, DfError *err);
void voxels_free(VoxelSet *vs);
long voxels_start(const VoxelSet *vs, long j);

// Shards read as one list of rows (their samples in order). Every rank opens the same list.
typedef struct {
    int n_shards;
    char **paths;
    long *first;          // [n_shards + 1] first row of each shard; first[n_shards] = n
    long n;
    Shape shape;
    Cohort header;        // every shard's labels, metadata and names (cohort_append), no images
    ShardLayout *layout;  // per shard; image_off NULL when read through HDF5
    int *fd;              // per shard, raw reads
    float *sample;        // one sample, for reads through HDF5
    long sample_row;      // which row `sample` holds (-1: none)
    float *span;          // a read's positions, reused (a fresh buffer per read was mostly page faults)
    size_t span_cap;
} ShardRows;

// Opens a source list of shards as training takes it ("a.h5, b.h5" or a folder of them;
// shard_list_source). -1 with "PATH: ..." in err.
int shard_rows_open(ShardRows *s, const char *list, DfError *err);
void shard_rows_close(ShardRows *s);
// out[0 .. j1-j0) = columns [j0, j1) of row r (as double). -1 with err on a read error.
int shard_rows_read(ShardRows *s, const VoxelSet *vs, long r, long j0, long j1, double *out, DfError *err);

// Rewritten copies of the shards of a ShardRows, one per input, named DIR/<input's base name>.
// Protocol (each step by the ranks named; the caller puts barriers between them):
//   1. one rank:   shard_out_create   -- every output as a temporary file, images unwritten
//   2. every rank: shard_out_open     -- opens them for writing
//                  shard_out_put ...  -- writes its spans
//                  shard_out_close    -- flushes (fsync) and closes
//   3. one rank:   shard_out_commit   -- renames every temporary file into place
// or, on failure, shard_out_abandon (one rank) removes the temporary files: an output exists
// whole or not at all. `tag` makes the temporary names unique to the job (".NAME.TAG.tmp").
typedef struct {
    int n_shards;
    char **final, **tmp;
    long *first;
    int *fd;
    ShardLayout *layout;
    float *span;          // a write's positions, reused
    size_t span_cap;
} ShardOut;

// The output paths; -1 when two inputs share a base name, an output is one of the inputs
// (the same file however spelt: `--out .` among them), or DIR is not a writable folder.
int shard_out_init(ShardOut *o, const ShardRows *in, const char *dir, const char *tag, DfError *err);
void shard_out_free(ShardOut *o);
int shard_out_create(const ShardOut *o, const ShardRows *in, const char *what, DfError *err);
int shard_out_open(ShardOut *o, DfError *err);
// Writes row r's span of columns [j0, j1) from vals[0 .. j1-j0) (as float32).
int shard_out_put(ShardOut *o, const VoxelSet *vs, long r, long j0, long j1, const double *vals, DfError *err);
int shard_out_close(ShardOut *o, DfError *err);
int shard_out_commit(const ShardOut *o, DfError *err);
void shard_out_abandon(const ShardOut *o);
#endif
