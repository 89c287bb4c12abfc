// h5util.h: checked HDF5 calls. Every HDF5 call's return is checked; on failure the
// wrappers produce a message naming the file and the object.
#ifndef DF_H5UTIL_H
#define DF_H5UTIL_H
#include <hdf5.h>
#include "base/common.h"

// Silences HDF5's automatic error stack printing (we report errors ourselves). Idempotent.
void h5_quiet(void);

// Dataset helpers on an open file or group. All return 0 or -1 with "path: object: problem".
// Intermediate groups in `name` ("params/conv1/weight") are created as needed.
int h5_write_f32(hid_t loc, const char *path, const char *name, const float *data, int ndim, const hsize_t *dims, DfError *err);
int h5_write_f64(hid_t loc, const char *path, const char *name, const double *data, int ndim, const hsize_t *dims, DfError *err);
int h5_write_i32(hid_t loc, const char *path, const char *name, const int32_t *data, int ndim, const hsize_t *dims, DfError *err);
int h5_write_u64(hid_t loc, const char *path, const char *name, const uint64_t *data, int ndim, const hsize_t *dims, DfError *err);
int h5_write_string(hid_t loc, const char *path, const char *name, const char *text, DfError *err);
// Reads a whole dataset whose element count must equal `count` (shape mismatch is an error).
int h5_read_f32(hid_t loc, const char *path, const char *name, float *data, size_t count, DfError *err);
int h5_read_f64(hid_t loc, const char *path, const char *name, double *data, size_t count, DfError *err);
int h5_read_i32(hid_t loc, const char *path, const char *name, int32_t *data, size_t count, DfError *err);
int h5_read_u64(hid_t loc, const char *path, const char *name, uint64_t *data, size_t count, DfError *err);
char *h5_read_string(hid_t loc, const char *path, const char *name, DfError *err);  // caller frees
// Dataset shape: fills dims (up to max) and returns ndim, or -1 with err.
int h5_dims(hid_t loc, const char *path, const char *name, hsize_t *dims, int max, DfError *err);
int h5_exists(hid_t loc, const char *name);  // 1 if the link path exists
// Scalar attributes on an object.
int h5_attr_write_i64(hid_t obj, const char *path, const char *name, int64_t v, DfError *err);
int h5_attr_read_i64(hid_t obj, const char *path, const char *name, int64_t *v, DfError *err);
int h5_attr_write_string(hid_t obj, const char *path, const char *name, const char *v, DfError *err);
char *h5_attr_read_string(hid_t obj, const char *path, const char *name, DfError *err);  // caller frees
int h5_attr_exists(hid_t obj, const char *name);  // 1 if the attribute exists on obj

// Strings (datasets and attributes) are written as scalar variable-length UTF-8 strings
// (what h5py writes for a Python str); the readers also accept fixed-length strings.

// As h5_write_f32, with the dataset chunked by `chunk` (ndim entries, no compression).
int h5_write_f32_chunked(hid_t loc, const char *path, const char *name, const float *data, int ndim,
                         const hsize_t *dims, const hsize_t *chunk, DfError *err);
// The same dataset with its chunks allocated in the file but never written (no fill either):
// for writers that put the values at the chunks' offsets themselves (data/voxels.c).
int h5_create_f32_unwritten(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                            const hsize_t *chunk, DfError *err);
// Reads rows [start, start+count) along the first axis of a float dataset into data
// (count * product of the other dims floats); the range must lie inside the dataset.
int h5_read_f32_rows(hid_t loc, const char *path, const char *name, hsize_t start, hsize_t count,
                     float *data, DfError *err);

// Files. Opening for reading distinguishes "cannot open" (with errno text) from "not an HDF5
// file". Atomic creation: h5_create_atomic makes "<dir>/.<base>.tmp.<pid>" (*tmp, caller
// frees), h5_finish_atomic closes the file and, when ok, fsyncs and renames it over `path`;
// when !ok (or anything fails) the temporary file is removed and `path` is untouched.
hid_t h5_open_read(const char *path, DfError *err);
hid_t h5_create_atomic(const char *path, char **tmp, DfError *err);
int h5_finish_atomic(hid_t file, const char *tmp, const char *path, int ok, DfError *err);
int h5_close_file(hid_t file, const char *path, DfError *err);
// Closes a file created in place at `path` (not through h5_create_atomic) and removes it when
// !ok or the close fails -- the one safe way to give up a file HDF5 is writing (h5util.c).
int h5_close_created(hid_t file, const char *path, int ok, DfError *err);
// Root attributes format (string) and version (integer), written / checked with clear errors.
int h5_write_format(hid_t file, const char *path, const char *format, int64_t version, DfError *err);
int h5_check_format(hid_t file, const char *path, const char *format, int64_t version, DfError *err);
#endif
