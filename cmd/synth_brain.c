// synth_brain.c: `deconfound synth brain`: the options, messages and exit status of the
// synthetic brain cohort (the cohort is data/synth_brain.c, its anatomy data/synth_brain_model.c).
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "data/synth_brain.h"

static const char *help =
    "usage: deconfound synth brain --template FILE --out DIR [--n N] [--seed S] [--brain-mask FILE]\n"
    "                              [--atlas FILE] [--regions ID,ID,...] [--sites K] [--scale F]\n"
    "                              [--label-effect F] [--age-effect F] [--site-rho R] [--deform MM]\n"
    "                              [--noise F] [--effect-label 0|1] [--quiet]\n"
    "\n"
    "Makes N synthetic subjects from a real T1-weighted template (Debian's mricron-data:\n"
    "/usr/share/mricron/templates/ch2.nii.gz, --brain-mask ch2bet.nii.gz, --atlas aal.nii.gz):\n"
    "each smoothly deformed and posed, aged (grey matter fainter, ventricles wider), with a label\n"
    "effect (tissue loss) in the atlas regions, and scanned at one of K sites (voxel size,\n"
    "orientation, gain, bias field, noise, background texture). Writes DIR/sub-XXXX/anat/\n"
    "sub-XXXX_T1w.nii.gz, participants.tsv and .json, dataset_description.json, subjects.csv (a\n"
    "manifest for `deconfound pack`) and label_region.nii.gz (the label regions, template space).\n"
    "Under mpirun the subjects are split over the ranks; a seed gives the same bytes at any rank\n"
    "count. DIR must not exist; it appears when complete. docs/formats.md has the model.\n"
    "\n"
    "  --template FILE     T1-weighted template, one 3-D NIfTI volume (required)\n"
    "  --brain-mask FILE   its brain, the nonzero voxels (default: the template's nonzero voxels,\n"
    "                      for a brain-extracted template)\n"
    "  --atlas FILE        a label image in the template's world space (any grid)\n"
    "  --regions IDS       atlas values carrying the label effect (default 37-42, AAL's medial\n"
    "                      temporal lobes: hippocampus, parahippocampal gyrus, amygdala, left\n"
    "                      and right); without --atlas, two 12 mm spheres at MNI's hippocampi\n"
    "  --out DIR           the folder to create (required)\n"
    "  --n N               subjects (default 100)\n"
    "  --seed S            generator seed (default 1)\n"
    "  --sites K           sites, 1-6 (default 3): 0 RAS 1 mm, 1 LAS 1.2 mm, 2 LPI 1.5 mm,\n"
    "                      3 PIR, 4 ASL, 5 RSP (voxel sizes at --scale 1 for a 1 mm template)\n"
    "  --scale F           downsample the template first, 0.05-1 (default 1): voxels / F\n"
    "  --label-effect F    label 1's tissue loss in the regions: a fraction ~ U(F/2, F) of their\n"
    "                      contrast to CSF, 0-1 (default 0.8); label 0 has none\n"
    "  --age-effect F      ageing, 0-2 (default 1: at 80 years grey matter has lost 20% of its\n"
    "                      contrast and the ventricles are ~40% wider than at 20; 0: none)\n"
    "  --site-rho R        P(site = the label's own: 0 for label 0, K-1 for label 1), 0-1;\n"
    "                      default -1: a weak ramp P(site | label)\n"
    "  --deform MM         RMS of the smooth random displacement per axis, 0-20 (default 3);\n"
    "                      the pose scales with it (3: rotations 2 degrees, shifts 2 mm, head\n"
    "                      size 3%, each sd); 0: the template's geometry, sized by sex alone\n"
    "  --noise F           multiplies every site's noise level, 0-10 (default 1)\n"
    "  --effect-label L    0 or 1: every subject gets the label effect of label L, all else as\n"
    "                      drawn (two runs then differ by the label effect alone)\n"
    "  --quiet             no progress lines\n";

static int parse_regions(BrainModelSpec *m, const char *cmd, const char *value) {
    char *copy = xstrdup(value), *save = NULL;
    m->n_regions = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (m->n_regions == BRAIN_MAX_REGIONS) cli_usage_error(cmd, "--regions: at most %d values", BRAIN_MAX_REGIONS);
        m->regions[m->n_regions++] = (int)cli_long(cmd, "--regions", tok, 1, 2147483647L);
    }
    free(copy);
    if (m->n_regions == 0) cli_usage_error(cmd, "--regions needs at least one atlas value");
    return 0;
}

int cmd_synth_brain(int argc, char **argv) {
    const char *cmd = "synth brain", *v;
    SynthBrainConfig c = { .n = 100, .sites = 3, .seed = 1, .label_effect = 0.8, .age_effect = 1, .site_rho = -1,
                           .deform = 3, .noise = 1, .effect_label = -1, .verbose = 1 };
    c.model.scale = 1;
    int quiet = 0, regions_given = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(help, stdout); return 0; }
        else if (!strcmp(argv[i], "brain") && i == 1) continue;
        else if (cli_opt(argc, argv, &i, "--template", &v, cmd)) c.model.template_path = v;
        else if (cli_opt(argc, argv, &i, "--brain-mask", &v, cmd)) c.model.mask_path = v;
        else if (cli_opt(argc, argv, &i, "--atlas", &v, cmd)) c.model.atlas_path = v;
        else if (cli_opt(argc, argv, &i, "--regions", &v, cmd)) regions_given = parse_regions(&c.model, cmd, v) == 0;
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) c.out = v;
        else if (cli_opt(argc, argv, &i, "--n", &v, cmd)) c.n = (int)cli_long(cmd, "--n", v, 1, 1000000);
        else if (cli_opt(argc, argv, &i, "--seed", &v, cmd)) c.seed = (uint64_t)cli_long(cmd, "--seed", v, 0, 4611686018427387903L);
        else if (cli_opt(argc, argv, &i, "--sites", &v, cmd)) c.sites = (int)cli_long(cmd, "--sites", v, 1, SYNTH_BRAIN_MAX_SITES);
        else if (cli_opt(argc, argv, &i, "--scale", &v, cmd)) c.model.scale = cli_double(cmd, "--scale", v, 0.05, 1);
        else if (cli_opt(argc, argv, &i, "--label-effect", &v, cmd)) c.label_effect = cli_double(cmd, "--label-effect", v, 0, 1);
        else if (cli_opt(argc, argv, &i, "--age-effect", &v, cmd)) c.age_effect = cli_double(cmd, "--age-effect", v, 0, 2);
        else if (cli_opt(argc, argv, &i, "--site-rho", &v, cmd)) {
            c.site_rho = cli_double(cmd, "--site-rho", v, -1, 1);
            if (c.site_rho < 0 && c.site_rho != -1) cli_usage_error(cmd, "--site-rho %s: expected -1 or a probability", v);
        } else if (cli_opt(argc, argv, &i, "--deform", &v, cmd)) c.deform = cli_double(cmd, "--deform", v, 0, 20);
        else if (cli_opt(argc, argv, &i, "--noise", &v, cmd)) c.noise = cli_double(cmd, "--noise", v, 0, 10);
        else if (cli_opt(argc, argv, &i, "--effect-label", &v, cmd)) c.effect_label = (int)cli_long(cmd, "--effect-label", v, 0, 1);
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!c.model.template_path) cli_usage_error(cmd, "missing --template FILE (a T1-weighted NIfTI volume)");
    if (!c.out) cli_usage_error(cmd, "missing --out DIR");
    if (regions_given && !c.model.atlas_path) cli_usage_error(cmd, "--regions needs --atlas");
    if (!regions_given) {  // AAL's Hippocampus, ParaHippocampal and Amygdala, L and R: 37-42
        c.model.n_regions = 6;
        for (int r = 0; r < 6; r++) c.model.regions[r] = 37 + r;
    }
    progress_enable(dist_rank() == 0 && !quiet);
    DfError err;
    if (synth_brain_run(&c, &err)) df_die_collective(DF_EXIT_INPUT, "synth brain: %s", err.msg);
    return 0;
}
