// harmonize.c: `deconfound harmonize`: ComBat site harmonisation of shards' images
// (prep/harmonize.c), learned on training shards, applied to others now or later.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/blas_core.h"
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/export.h"
#include "mpi/comm.h"
#include "prep/harmonize.h"

static const char *harmonize_help =
    "usage: deconfound harmonize --train SHARDS --site COL [--keep COLS] [--apply SHARDS]... --out DIR\n"
    "                            [--model FILE] [--mask MASK.nii] [--nonparametric | --no-eb] [--memory MB]\n"
    "                            [--nifti] [--quiet]\n"
    "       deconfound harmonize --model FILE --apply SHARDS [--apply SHARDS]... --out DIR [--memory MB] [--nifti] [--quiet]\n"
    "\n"
    "ComBat (Johnson et al. 2007; Fortin et al. 2017 for images), as R/Bioconductor sva::ComBat\n"
    "computes it: per voxel a least-squares fit on the site indicators and the kept covariates,\n"
    "standardisation, then per site a location and a scale, shrunk towards their distribution\n"
    "over all voxels by empirical Bayes. Learned on the training shards and applied with the\n"
    "training estimates to the training shards and every --apply set, each written as\n"
    "DIR/<its file name>.\n"
    "\n"
    "  --train SHARDS    the training shards (the fit): files or folders of them, comma-separated\n"
    "  --site COL        the site (scanner, batch) column, categorical\n"
    "  --keep COLS       covariates whose effects are kept, e.g. label,age (default: none;\n"
    "                    'label' is the class); ComBat leaves their part of each voxel alone\n"
    "  --apply SHARDS    a held-out set, adjusted with the training estimates (repeatable)\n"
    "  --out DIR         an existing folder for the harmonised shards, as DIR/<file name>\n"
    "                    (not the inputs' own folder: an input is never replaced)\n"
    "  --model FILE      with --train: save the fitted model there (HDF5); without: apply it\n"
    "  --mask MASK.nii   fit only the mask's nonzero voxels (others are written as 0)\n"
    "  --nonparametric   sva's non-parametric prior (cost: voxels^2 x subjects per site)\n"
    "  --no-eb           no empirical Bayes: each voxel's own site estimates\n"
    "  --memory MB       image memory per rank; the voxels go in chunks that fit (default 256)\n"
    "  --threads T       OpenBLAS threads per rank (default: cores / ranks on the node)\n"
    "  --nifti           also write every rewritten image as DIR/nifti/<subject>.nii.gz, in the\n"
    "                    space of the NIfTI file it was packed from (deconfound export --help)\n"
    "  --quiet           no progress (on a terminal an updating line, in a file a line every\n"
    "                    DECONFOUND_PROGRESS_EVERY seconds, default 30); the plan and results stay\n"
    "\n"
    "Voxels are split over the ranks, and each rank's share into chunks that fit --memory (the\n"
    "training subjects are read once per chunk to fit, every set once more to adjust); the\n"
    "priors need only sums over voxels (all-reduced), so any rank count and any chunking give\n"
    "the same model. A voxel with no variance within some training site\n"
    "(outside the brain, say) is left as it was, as sva does. A subject whose site the model was\n"
    "not fitted on stops the job with exit status 2 naming the site and the file; so does a\n"
    "training site with fewer than 2 subjects. Outputs are written under temporary names and\n"
    "renamed when every one is complete.\n";

int cmd_harmonize(int argc, char **argv) {
    const char *cmd = "harmonize", *v;
    HarmonizeOptions o = { 0 };
    o.prior = COMBAT_PARAMETRIC;
    o.memory_mb = 256;  // larger chunks were slower: first touching the buffer costs more (docs/baselines.md)
    o.apply = xcalloc((size_t)argc, sizeof(char *));
    int threads = 0, nonpar = 0, noeb = 0, quiet = 0, nifti = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(harmonize_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--train", &v, cmd)) o.train = v;
        else if (cli_opt(argc, argv, &i, "--apply", &v, cmd)) o.apply[o.n_apply++] = v;
        else if (cli_opt(argc, argv, &i, "--site", &v, cmd)) o.site = v;
        else if (cli_opt(argc, argv, &i, "--keep", &v, cmd)) o.keep = v;
        else if (cli_opt(argc, argv, &i, "--mask", &v, cmd)) o.mask = v;
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) o.out_dir = v;
        else if (cli_opt(argc, argv, &i, "--model", &v, cmd)) o.model = v;
        else if (cli_opt(argc, argv, &i, "--memory", &v, cmd)) {
            if (df_parse_double(v, &o.memory_mb) || !(o.memory_mb > 0) || o.memory_mb > 1e8)
                cli_usage_error(cmd, "--memory expects megabytes > 0, got '%s'", v);
        }
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else if (cli_flag(argv, i, "--nifti")) nifti = 1;
        else if (cli_flag(argv, i, "--nonparametric")) nonpar = 1;
        else if (cli_flag(argv, i, "--no-eb")) noeb = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (nonpar && noeb) cli_usage_error(cmd, "--nonparametric and --no-eb exclude each other");
    if (!o.train && !o.model) cli_usage_error(cmd, "missing --train SHARDS (or --model FILE to apply a saved model)");
    if (o.train && !o.site) cli_usage_error(cmd, "missing --site COL");
    if (!o.train && o.n_apply == 0) cli_usage_error(cmd, "--model FILE without --train applies it: give --apply SHARDS");
    if (!o.train && (nonpar || noeb || o.keep))
        cli_usage_error(cmd, "the prior and --keep belong to the fit; a saved model keeps its own");
    if (!o.out_dir) cli_usage_error(cmd, "missing --out DIR");
    o.prior = nonpar ? COMBAT_NONPARAMETRIC : noeb ? COMBAT_NO_EB : COMBAT_PARAMETRIC;
    int nt = dist_set_blas_threads(threads);
    progress_enable(dist_rank() == 0 && !quiet);
    HarmonizeReport r;
    DfError err;
    if (nifti) export_nifti_check(o.out_dir, cmd);
    if (harmonize_run(&o, &r, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    double peak = df_peak_rss_mb();  // the largest rank's
    dist_allreduce_max_f64(&peak, 1);
    if (dist_rank() == 0) {
        char blas[160];
        blas_core_describe(blas, sizeof blas);
        printf("harmonize: done in %.2f s (read %.2f, fit and adjust %.2f, write %.2f); %ld of %ld voxels left as "
               "they were (no variance within a site); peak memory %.0f MB per rank; %d rank%s x %d BLAS thread%s; %s\n",
               r.seconds_total, r.seconds_read, r.seconds_fit, r.seconds_write, r.passed, r.voxels, peak, dist_size(),
               dist_size() == 1 ? "" : "s",
               nt, nt == 1 ? "" : "s", blas);
        printf("harmonize: wrote %ld training and %ld held-out subjects into %s%s%s\n", r.n_train, r.n_apply, o.out_dir,
               o.train && o.model ? "; the model into " : "", o.train && o.model ? o.model : "");
    }
    if (nifti) export_nifti_after(o.out_dir, cmd);
    free(o.apply);
    return 0;
}
