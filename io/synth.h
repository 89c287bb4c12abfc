// synth.h: built-in synthetic data sets (same seed -> same bytes).
#ifndef DF_SYNTH_H
#define DF_SYNTH_H
#include "shard.h"

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
} SynthMri3dConfig;

void synth_mri3d(Cohort *out, const SynthMri3dConfig *cfg);
#endif
