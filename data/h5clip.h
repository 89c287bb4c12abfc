// h5clip.h: video clips stored as HDF5 arrays, as video tools write them (h5py, PyAV /
// decord / torchvision dumps), read into the shard layout (C, D = T, H, W) float32.
//
// A reference is `FILE.h5:DATASET` (or `.hdf5`; DATASET an HDF5 path such as `video` or
// `/clips/rgb`), or a bare `FILE.h5` whose file holds exactly one dataset (anywhere in its
// group tree) -- that one is used; a file with none or several is an error asking for
// `FILE.h5:DATASET`.
//
// The dataset must be 4-D, in one of two layouts (the caller says which):
//   CLIP_THWC  (T, H, W, C): frames, rows, columns, colour -- what numpy/OpenCV/PyAV/decord
//              give (`np.stack(frames)` of HxWxC images); the default;
//   CLIP_CTHW  (C, T, H, W): what PyTorch video models take (torchvision's read_video
//              permuted to C,T,H,W), i.e. already the shard layout.
// C is the colour planes, 1 to 4 (3 for RGB). Element types: uint8 (divided by 255 into
// [0, 1] unless raw_uint8, which keeps 0..255), float32 and float64 (taken as they are; NaN
// or infinity is an error). Any byte order; HDF5 converts.
#ifndef DF_H5CLIP_H
#define DF_H5CLIP_H
#include "base/common.h"

typedef enum { CLIP_THWC, CLIP_CTHW } ClipLayout;
extern const char *const clip_layout_names[];  // "THWC", "CTHW", NULL

typedef struct {
    int C, T, H, W;
    int is_uint8;   // element type on disk was uint8
    float *data;    // (C, T, H, W), or NULL when read without data
} H5Clip;

// 1 when `ref` names an HDF5 clip: its file part ends in .h5 / .hdf5 (optionally followed by
// ":DATASET"), else 0 (a NIfTI file).
int h5clip_is_ref(const char *ref);
// Reads the clip's geometry (with_data = 0) or geometry and data. Errors name the file and
// the dataset: a missing file, not HDF5, a missing dataset, none or several datasets in a
// bare FILE.h5, rank other than 4, C outside 1..4, an unsupported element type,
// non-finite values.
int h5clip_read(const char *ref, ClipLayout layout, int raw_uint8, int with_data, H5Clip *clip, DfError *err);
// A clip's foreground mask, named like a clip (FILE.h5:DATASET): (T, H, W), or 4-D with one
// plane in the clip's layout ((T,H,W,1) for THWC, (1,T,H,W) for CTHW). Elements: any integer
// type, booleans as h5py writes them (an enum over int8), float32/64 (NaN is an error); a
// nonzero value is foreground. data: (1, T, H, W) of 0 and 1.
int h5clip_read_mask(const char *ref, ClipLayout layout, int with_data, H5Clip *mask, DfError *err);
void h5clip_free(H5Clip *clip);
#endif
