// synth.h: built-in synthetic data sets (same seed -> same bytes).
#ifndef DF_SYNTH_H
#define DF_SYNTH_H
#include "base/rng.h"
#include "data/shard.h"

// mri3d: n volumes of shape (1, D, H, W) -- a brain-like ellipsoid with noise -- with a
// binary label and confounders age (continuous), sex (categorical 0/1) and site
// (categorical 0..2). As in the MDN paper's synthetic design, in 3D: a label-driven effect
// in two regions (blob intensity ~ U(1,4) for label 0, U(3,6) for label 1 -- overlapping),
// a confounder-driven effect in other regions (a blob scaled by age, a site-specific
// intensity offset and texture), and age correlated with the label, so a network can
// shortcut through the confounder. Columns: age, sex, site.
typedef struct {
    int n, D, H, W;
    uint64_t seed;
    int masks;  // 1: also the brain masks, M >= 0.5 (the same for every volume)
    // The site as a background shortcut (pipelines/background). Zeros give the design above,
    // byte for byte.
    int tie_site;            // 1: the site is the label's (0 for y=0, 2 for y=1) with
    double site_rho;         //    probability site_rho, else one of the other two
    int site_outside_only;   // 1: the site changes nothing inside the brain (scale, offset, noise)
    double site_background;  // plus (1 - M) * site_background * (0, 0.5, 1)[site] outside the brain
} SynthMri3dConfig;

void synth_mri3d(Cohort *out, const SynthMri3dConfig *cfg);

// mdn2d: the MDN paper's 32x32 synthetic set (mlu355/MetadataNorm). Samples [0, n/2) have
// label 0, the rest label 1. Each image (1, 1, 32, 32) holds three 16x16 Gaussian kernels
// (gkern(16, nsig = 5): differences of the normal CDF on 17 points of [-5, 5], outer
// product, normalised to sum 1): top-left and bottom-right scaled by the label effect mf,
// bottom-left by the confounder cf, mf and cf drawn independently from U(1,4) for label 0
// and U(3,6) for label 1; plus N(0, 0.01^2) noise per pixel (numpy's normal(0, 0.01)).
// Metadata column: `cf` (continuous).
typedef struct {
    int n;  // total images (the paper: 1000 per group, n = 2000)
    uint64_t seed;
} SynthMdn2dConfig;
void synth_mdn2d(Cohort *out, const SynthMdn2dConfig *cfg);

// video: clips (3, T, H, W) of one foreground object moving in a straight line (bouncing off
// the borders) over a background scene. The class is the object's shape; the background
// scene is the class's own with probability rho, else one of the others -- a shortcut a
// network can take. Masks mark the object. Metadata: `background` (categorical scene).
// brightness > 0 adds a continuous confounder tied to the class: the whole clip is
// multiplied by 1 + g, g = brightness * (c_y + e / 2) with c_y = 2y/(classes-1) - 1 in
// [-1, 1] and e ~ N(0,1) of the clip's own stream; metadata column `brightness` holds g.
// With brightness 0 (the default) the clips are the same bytes as without the option.
typedef struct {
    int n, T, H, W, classes;  // classes <= 8
    double rho;
    uint64_t seed;
    double brightness;
} SynthVideoConfig;
void synth_video(Cohort *out, const SynthVideoConfig *cfg);

// biased-fmnist: Fashion-MNIST coloured as Biased MNIST (ReBias, Bahng et al. 2020): stroke
// pixels (value != 0) white, every other pixel the background colour, which is the class's
// colour with probability rho and otherwise one of the other nine, uniformly. Images
// (3, 1, 28, 28) in [0, 1]; masks = stroke pixels; metadata `colour` (categorical 0-9).
// The cohort is n_train training images at rho followed by n_test test images at rho_test
// (0.1: unbiased). Reads the IDX files of Debian's dataset-fashion-mnist.
#define SYNTH_FMNIST_DIR "/usr/share/datasets/fashion-mnist"
typedef struct {
    const char *dir;      // holding train-images-idx3-ubyte(.gz) etc.
    int n_train, n_test;  // first n of each file
    double rho, rho_test;
    uint64_t seed;
} SynthFmnistConfig;
int synth_biased_fmnist(Cohort *out, const SynthFmnistConfig *cfg, DfError *err);
// The ten background colours (RGB 0-255), ReBias's COLOUR_MAP.
extern const uint8_t synth_fmnist_colours[10][3];
#endif
