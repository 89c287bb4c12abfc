// synth_brain_model.h: the anatomy behind `deconfound synth brain` (data/synth_brain.c): a
// real T1 template brought onto a model grid with its tissue classes, label regions and
// ventricles, and the rendering of one synthetic subject -- ageing, the label effect, a
// smooth deformation, the site's scanner -- into that site's voxel grid.
// docs/formats.md, "Synthetic brain cohort", describes the model.
#ifndef DF_SYNTH_BRAIN_MODEL_H
#define DF_SYNTH_BRAIN_MODEL_H
#include "base/common.h"
#include "base/rng.h"

#define BRAIN_MAX_REGIONS 32
#define BRAIN_PI 3.14159265358979323846  // M_PI is not in strict C11

// Where the model comes from. Without a mask the template is taken as brain-extracted (its
// nonzero voxels are the brain); without an atlas the label regions are two 12 mm spheres at
// the hippocampi of MNI space (AAL's centroids), which fits MNI templates such as Colin27.
typedef struct {
    const char *template_path, *mask_path, *atlas_path;
    int regions[BRAIN_MAX_REGIONS], n_regions;  // atlas values making up the label region
    double scale;                               // (0, 1]: the model grid's voxel = template voxel / scale
} BrainModelSpec;

// The model grid: RAS (x fastest), isotropic voxels of h mm, n[0..2] voxels along x, y, z
// (each a multiple of 6, so that voxels of 1, 1.2 and 1.5 h tile the same field of view);
// voxel (0,0,0)'s centre at `origin` (world mm, the template's coordinates). label_region.nii.gz
// is written on this grid.
typedef struct {
    int n[3];
    size_t V;
    double h, origin[3];
    double centre[3], fov[3];  // world centre and extent (mm) of the field of view
    float *t;       // template intensity, scaled so that white matter is 1000
    float *brain;   // brain fraction of each voxel, 0..1
    float *region;  // fraction of each voxel in the label regions, 0..1
    float *gm;      // p_GM(t) (t - mu_csf) brain: the intensity ageing can take from a voxel
    double mu[3];   // mean intensity of CSF, grey and white matter (3-means over the brain)
    double vent_centre[3], vent_radius[3];  // the ventricles' centre and extent (mm)
} BrainModel;

int brain_model_build(BrainModel *m, const BrainModelSpec *spec, DfError *err);
void brain_model_free(BrainModel *m);

// One site's scanner: its voxel grid (orientation, voxel size) and its appearance.
typedef struct {
    const char *orient;     // axis codes of voxel axes i, j, k, e.g. "LPI"
    double vox[3];          // voxel size along i, j, k in units of the model's h
    double gain;            // intensity scale
    double noise;           // Rician noise sd, relative to white matter
    double bias[4];         // log bias field: x, y, z slopes and a quadratic term (coordinates in [-1, 1])
    double tex_amp;         // background texture amplitude outside the brain, relative to white matter
    int tex_axis[2];        // the texture's stripes: two world axes (0 x, 1 y, 2 z; -1 none) ...
    double tex_cycles[2];   // ... and their number of cycles across the field of view
} SiteStyle;

// A site's grid: voxel axis a runs along world axis axis[a] in direction sign[a]; centred on
// the model's field of view, which it covers with n[a] = fov / vox voxels.
typedef struct {
    int axis[3], sign[3], n[3];
    double vox[3];       // mm
    double affine[16];   // voxel -> world, row-major (sform and qform of the written file)
} SiteGrid;
void brain_site_grid(SiteGrid *g, const BrainModel *m, const SiteStyle *st);

// One subject's draws (data/synth_brain.c makes them).
typedef struct {
    int label, sex, site;
    double age;           // years
    double strength;      // d: fraction of the label regions' tissue contrast lost (0..1)
    double size;          // head size factor (sex-dependent)
    double rot[3];        // pose: rotations about x, y, z (radians) ...
    double shift[3];      // ... and translation (mm)
    double dct[3][27];    // smooth displacement: coefficients (mm) of cosines of order 0-2 per axis
} BrainSubject;

// Renders subject s as site st would scan it: out holds g->n[0] * n[1] * n[2] values, i
// fastest. age_effect scales ageing (1: the documented rates, 0: none); noise draws from
// the subject's own stream.
void brain_render(float *out, const BrainModel *m, const BrainSubject *s, const SiteGrid *g, const SiteStyle *st,
                  double age_effect, double noise_scale, Rng *noise);
#endif
