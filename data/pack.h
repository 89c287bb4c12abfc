// pack.h: NIfTI cohorts (a manifest, data/csv.h) into HDF5 shards, and the per-volume
// preprocessing that `deconfound pack` and training straight from a manifest share.
//
// Per volume, in this order (each step optional except the layout):
//   1. layout: a 3D image is one channel; a 4D image is C = dim[4] channels of the same
//      (dim[3], dim[2], dim[1]) = (D, H, W) volume ("channels", the default), or a clip
//      ("frames"): dim[4] = T frames of dim[3] = C colour planes, giving (C, D = T, H, W);
//   2. reorientation to RAS+ (reorient): voxel axes permuted and flipped so that W runs
//      left->right, H posterior->anterior, D inferior->superior, judged from the affine
//      (sform, else qform) as nibabel's as_closest_canonical does; not for clips;
//   3. resampling to isotropic voxels of `spacing` mm (trilinear; 0 keeps the grid);
//   4. fitting to `shape` (D,H,W): centred crop / zero pad ("crop", default) or trilinear
//      resize of the whole field of view ("resize");
//   5. intensity normalisation per channel: none, zscore (mean 0, sd 1) or minmax ([0,1]),
//      statistics over the foreground mask's voxels when a mask is given, else all voxels.
// A mask (manifest column `mask`) goes through steps 2-4 (trilinear, then >= 0.5).
//
// HDF5 clips (data/h5clip.h): a path `FILE.h5:DATASET` (or a bare FILE.h5 holding one
// dataset) is a video clip, (T, H, W, C) or (C, T, H, W) by `clip_layout`, giving
// (C, D = T, H, W). Step 1 is the layout conversion, plus uint8 -> [0, 1] (x / 255) unless
// clip_raw; steps 2 (reorientation) and 3 (spacing: a clip has no millimetres) do not
// apply; steps 4 (crop/pad, or trilinear resize of frames and pixels) and 5 do. Masks are
// not supported for HDF5 clips (an error).
#ifndef DF_PACK_H
#define DF_PACK_H
#include "base/common.h"
#include "base/ini.h"
#include "base/shape.h"
#include "data/bids.h"
#include "data/h5clip.h"
#include "data/nifti.h"

typedef enum { PACK_NORM_NONE, PACK_NORM_ZSCORE, PACK_NORM_MINMAX } PackNorm;
typedef enum { PACK_FIT_CROP, PACK_FIT_RESIZE } PackFit;
typedef enum { PACK_4D_CHANNELS, PACK_4D_FRAMES } Pack4D;

typedef struct {
    int shape[3];          // D, H, W; 0 = keep (then every volume must come out the same)
    double spacing;        // mm; 0 = keep the voxel grid
    int reorient;          // 1 = to RAS+
    PackFit fit;
    PackNorm norm;
    Pack4D four_d;
    ClipLayout clip_layout;  // HDF5 clips: (T,H,W,C) (default) or (C,T,H,W)
    int clip_raw;            // HDF5 clips: 1 keeps uint8 values 0..255 (default: / 255)
} PrepConfig;

extern const char *const pack_norm_names[];  // "none", "zscore", "minmax", NULL
extern const char *const pack_fit_names[];   // "crop", "resize", NULL
extern const char *const pack_4d_names[];    // "channels", "frames", NULL

// A manifest's settings: its preprocessing, the confounder columns whose kind is declared
// (comma lists, or NULL), and a subject list file (or NULL). `[data]` (training from a
// manifest) and `deconfound pack` (its options --shape ... become these keys, '-' read as
// '_') both read them here: one parser, one set of defaults (docs/config.md).
typedef struct {
    PrepConfig prep;
    const char *categorical, *continuous;
    const char *subjects;
} ManifestSettings;
int manifest_settings_from_ini(ManifestSettings *m, const Ini *ini, IniSection *s, DfError *err);
// A BIDS dataset's query ([data] source = bids:DIR; `pack --bids DIR`, whose --suffix,
// --session, --label, --confounders and --drop-missing become these keys): bids_suffix
// (T1w), bids_session (every session), label (required), confounders, drop_missing (false);
// categorical, continuous and subjects from ms. q's strings point into the INI and ms.
int bids_query_from_ini(BidsQuery *q, const char *dir, const ManifestSettings *ms, const Ini *ini, IniSection *s, DfError *err);

// The per-sample shape `path` will have after preprocessing, from its header alone.
int prep_shape(const PrepConfig *cfg, const char *path, Shape *out, DfError *err);
// Loads and preprocesses one volume: *x (C,D,H,W) floats and, when mask_path is given,
// *mask (1,D,H,W) bytes (else *mask = NULL). Caller frees both.
int prep_load(const PrepConfig *cfg, const char *path, const char *mask_path, float **x, uint8_t **mask, Shape *shape,
              DfError *err);

// Where a packed NIfTI volume's voxels are in the scanner's world space (the steps above are
// all affine: an axis permutation and flips, per-axis scaling, a shift). has = 0 for HDF5
// clips and 4D frames, which have no millimetres. Affines are row-major 4x4, voxel index ->
// world mm: affine takes the packed (w, h, d), source_affine the source's (i, j, k) (its
// sform, else qform, as NiiVolume.affine).
typedef struct {
    int has;
    double affine[16], source_affine[16];
    int source_dims[3];  // the source's nx, ny, nz
} PrepGeometry;
// From the header alone (cheap): rank 0 of `pack` records it for every sample.
int prep_geometry(const PrepConfig *cfg, const char *path, PrepGeometry *geo, DfError *err);

// The inverse of pack's geometry for one sample: a map on the packed grid (D, H, W) with
// affine `affine` taken back to the source image's own grid (nx, ny, nz = dims, affine
// `source_affine`): each source voxel's world position, found in the packed grid, sampled
// trilinearly; 0 where the packed grid does not reach (cropped away). out is (nz, ny, nx).
// -1 when the packed affine is singular.
int prep_to_source(float *out, const float *map, int D, int H, int W, const double affine[16], const double source_affine[16],
                   const int dims[3]);

// A NIfTI mask (any grid, any orientation: placed by its affine) on a packed grid (D, H, W)
// with affine `affine`: out[v] = 1 where the mask, sampled trilinearly at the voxel's world
// point, is >= 0.5. -1 with err naming the file when it cannot be read.
int prep_mask_on_grid(uint8_t *out, const char *mask_path, int D, int H, int W, const double affine[16], DfError *err);

// Trilinear resampling of a (C, D, H, W) grid to (C, D2, H2, W2), voxel centres aligned
// (PyTorch's interpolate(mode="trilinear", align_corners=False) without antialiasing).
void prep_resample(float *out, const float *in, int C, int D, int H, int W, int D2, int H2, int W2);

typedef struct {
    const char *manifest, *out;         // the manifest CSV (unless bids), the output directory
    const BidsQuery *bids;              // or a BIDS dataset (data/bids.h): its subjects list and kinds are its own
    PrepConfig prep;
    int shard_size;                     // samples per shard
    const char *categorical, *continuous;  // declared column kinds (comma lists) or NULL
    const char *subjects;               // a subject list file (one id per line): pack only those, or NULL
    int verbose;                        // 1: rank 0 prints what it wrote (the progress is base/progress.h's)
} PackConfig;

// Collective over the MPI ranks (every rank calls it with the same config): reads the
// manifest (or the BIDS dataset: rank 0 prints what it dropped, the shards record the
// query in their `source` attribute) and every header (errors here are found identically by every rank), then
// loads and preprocesses rows round-robin over the ranks, gathers each shard's samples on
// rank 0, which writes OUT/shard-00000.h5, ... into a temporary directory renamed to OUT
// at the end. The bytes written do not depend on the number of ranks. On any error every
// rank returns -1 with the same message (the first failing rank's), and nothing is left.
// OUT must not exist.
int pack_run(const PackConfig *cfg, DfError *err);
#endif
