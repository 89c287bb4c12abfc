// synth_brain.h: `deconfound synth brain`: a synthetic cohort of T1 volumes made from a real
// template (data/synth_brain_model.h), written as a BIDS-style folder with a manifest that
// `deconfound pack` reads. docs/formats.md, "Synthetic brain cohort", has the model.
#ifndef DF_SYNTH_BRAIN_H
#define DF_SYNTH_BRAIN_H
#include "data/synth_brain_model.h"

#define SYNTH_BRAIN_MAX_SITES 6

typedef struct {
    BrainModelSpec model;  // template, brain mask, atlas and regions, scale
    const char *out;       // the folder to create (must not exist)
    int n, sites;
    uint64_t seed;
    double label_effect;   // label 1's tissue loss in the regions: d ~ U(label_effect / 2, label_effect); label 0 none
    double age_effect;     // 1: grey-matter loss 20% and ventricles 30% wider at 80 than at 20; 0: none
    double site_rho;       // < 0: P(site | label) from the default ramp; else P(site = the label's own)
    double deform;         // RMS of the smooth displacement per axis, mm; the pose scales with it
    double noise;          // multiplies every site's noise level
    int effect_label;      // -1: as drawn; 0 or 1: every subject's label effect as for that label (the
                           // columns keep the drawn label): two runs differ by the label effect only
    int verbose;           // 1: rank 0 prints what it wrote
} SynthBrainConfig;

// The site table: orientation, voxel size (x the model's voxel), gain, noise, bias field and
// background texture of sites 0 .. SYNTH_BRAIN_MAX_SITES-1.
extern const SiteStyle synth_brain_sites[SYNTH_BRAIN_MAX_SITES];

// Collective over the MPI ranks (every rank calls it with the same config): subjects are
// split over the ranks, each drawn from its own streams, so the bytes do not depend on the
// number of ranks. Writes into a temporary folder beside cfg->out, renamed when complete.
// On any error every rank returns -1 with the same message and nothing is left.
int synth_brain_run(const SynthBrainConfig *cfg, DfError *err);
#endif
