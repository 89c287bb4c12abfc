// nifti.h: NIfTI-1 and NIfTI-2 volumes through the NIfTI C library (libnifti2, which reads
// both versions), with our own header sanity checks first so bad files get one clear
// message ("x.nii: header dim[2] = -3: must be >= 1") instead of the library's stderr noise.
//
// Reading: .nii or .nii.gz (and .hdr/.img pairs, which the library handles), either byte
// order, datatypes uint8, int8, int16, uint16, int32, uint32, float32, float64. Voxel values
// are returned as float32 with scl_slope / scl_inter applied (as nibabel does: a slope of 0
// or NaN means "no scaling"). Data are in NIfTI's own order, i fastest: element
// [t][k][j][i] of a (nt, nz, ny, nx) C array -- which is exactly a [C, D, H, W] sample
// with C = nt (docs/formats.md, "Axis order and NIfTI").
#ifndef DF_NIFTI_H
#define DF_NIFTI_H
#include <stdint.h>
#include "base/common.h"

// Largest volume we accept: 2^31 voxels (8 GiB as float32). Anything bigger in a header is
// far more likely a corrupt header than a real scan.
#define NII_MAX_VOXELS ((int64_t)1 << 31)

typedef struct {
    int version;          // 1 or 2
    int big_endian;       // byte order on disk
    int ndim;             // dim[0]
    int64_t dim[8];       // dim[1..ndim] >= 1; dims past ndim are 1
    double pixdim[8];     // pixdim[1..3] voxel size (mm), pixdim[4] time step
    int datatype;         // NIfTI DT_* code
    double slope, inter;  // scaling applied to the data (1, 0 when the header has none)
    int64_t nvox;         // product of dim[1..ndim]
    // Voxel -> world (mm) affine: sform when sform_code > 0, else qform when qform_code > 0,
    // else the scaling diag(pixdim[1..3]) (NIfTI "method 1").
    double affine[4][4];
    char orient[4];       // axis codes of i, j, k, e.g. "RAS" ("LPI" ...), as nibabel's aff2axcodes
    float *data;          // nvox floats (scaled), or NULL when read without data
} NiiVolume;

// Reads the header (with_data = 0) or header and data. Checks: the file exists and is a
// NIfTI-1/2 header in either byte order; dim[0] in 1..7; every dim >= 1; at most
// NII_MAX_VOXELS voxels; a supported datatype whose bitpix matches; vox_offset sane (in a
// single-file .nii past the header and its 4 extension bytes: >= 352, NIfTI-2 >= 544); for an
// uncompressed file, that it holds all the voxel data the header describes (truncation);
// for a compressed file, that the data decompress completely.
int nii_read(const char *path, NiiVolume *v, int with_data, DfError *err);
void nii_free(NiiVolume *v);
// NULL when v->affine is finite and invertible, else what is wrong with it ("is not finite",
// "is singular"): such a volume has no place in world space (its orient has '?' letters).
// Singular means |det| <= 1e-6 x the product of the column lengths (Hadamard's bound): the
// voxel axes are (nearly) coplanar or one has length 0, whatever the voxel size.
const char *nii_affine_problem(const NiiVolume *v);
// "uint8", "int16", ... or NULL for an unsupported code.
const char *nii_datatype_name(int datatype);

// Writes a NIfTI file for tests and demos: version 1 or 2, .nii or .nii.gz by the name,
// datatype any supported one, values = round/cast of (data - inter) / slope for integer
// types (slope 0 means 1), big_endian chooses the byte order written. dims[0] = ndim.
// pixdim may be zeros (1 mm). The affine is the qform diag(pixdim) unless `affine` (4x4
// row-major, NULL allowed) is given, which goes into the sform and the qform (as its
// rotation, offset and qfac); pixdim left at zero then takes the affine's column lengths.
// Written to a temporary name beside `path`, renamed when complete.
#define NII_DT_FLOAT32 16  // NIfTI's DT_FLOAT32, for callers outside data/ (which do not include the library)
typedef struct {
    int version, datatype, big_endian;
    int64_t dims[8];
    double pixdim[8];
    double slope, inter;
    const double *affine;  // 16 values or NULL
} NiiWriteSpec;
int nii_write(const char *path, const NiiWriteSpec *spec, const float *data, DfError *err);
#endif
