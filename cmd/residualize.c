// residualize.c: `deconfound residualize`: voxel-wise confound regression of the images
// (prep/residualize.c), fitted on the training shards, applied to every shard given.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/blas_core.h"
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/export.h"
#include "mpi/comm.h"
#include "prep/residualize.h"

static const char *residualize_help =
    "usage: deconfound residualize --train SHARDS --remove COLS [--keep COLS] [--apply SHARDS]...\n"
    "                              --out DIR [--mask MASK.nii] [--grid RxC] [--block B] [--memory MB]\n"
    "                              [--threads T] [--nifti] [--quiet]\n"
    "\n"
    "Voxel-wise confound regression, the baseline from before learned debiasing: every voxel is\n"
    "fitted by least squares on the design X = [kept columns, confounders, 1] over the training\n"
    "subjects, and every shard is rewritten with the confounders' part removed:\n"
    "    out = y - sum over confounder columns c of (x_c - training mean of x_c) * b_c\n"
    "with the training coefficients b, for the training shards and every --apply set alike. The\n"
    "kept columns' part (say the label's) and each voxel's training mean stay.\n"
    "\n"
    "  --train SHARDS    the training shards (the fit): files or folders of them, comma-separated\n"
    "  --remove COLS     confounder columns (categorical ones dummy-coded by level name;\n"
    "                    NAME:splineN for a natural cubic spline of a continuous column)\n"
    "  --keep COLS       columns kept in the fit but not removed ('label' is the class)\n"
    "  --apply SHARDS    a held-out set, adjusted with the training fit (repeatable)\n"
    "  --out DIR         an existing folder; each shard is written as DIR/<its file name>\n"
    "                    (not the inputs' own folder: an input is never replaced)\n"
    "  --mask MASK.nii   fit only the mask's nonzero voxels (others are written as 0)\n"
    "  --grid RxC        ScaLAPACK process grid (default 1 x ranks, or more rows when a rank\n"
    "                    cannot hold 256 voxel columns of every subject)\n"
    "  --block B         subjects per row block (default 64, fewer to give every row some)\n"
    "  --memory MB       image memory per rank; the voxels go in chunks that fit (default 256)\n"
    "  --threads T       OpenBLAS threads per rank (default: cores / ranks on the node)\n"
    "  --nifti           also write every rewritten image as DIR/nifti/<subject>.nii.gz, in the\n"
    "                    space of the NIfTI file it was packed from (deconfound export --help)\n"
    "  --quiet           no progress (on a terminal an updating line, in a file a line every\n"
    "                    DECONFOUND_PROGRESS_EVERY seconds, default 30); the plan and results stay\n"
    "\n"
    "The least squares is ScaLAPACK's QR: X = QR once (PDGEQRF, PDORGQR), then per chunk of\n"
    "voxels b = R^-1 Q^T Y (PDGEMM, PDTRSM) and Y - X~ b (PDGEMM). A design that is not of full rank over the\n"
    "training subjects (a constant column, a level no training subject has) stops with exit\n"
    "status 2 naming the column; so does a held-out shard with a level training never saw.\n"
    "Outputs are written under temporary names and renamed when every one is complete.\n";

static void parse_grid(const char *v, int *r, int *c) {
    char *x = strchr(v, 'x');
    long a, b;
    char buf[64];
    if (!x || (size_t)(x - v) >= sizeof buf) cli_usage_error("residualize", "--grid expects RxC (e.g. 2x2), got '%s'", v);
    memcpy(buf, v, (size_t)(x - v));
    buf[x - v] = 0;
    if (df_parse_long(buf, &a) || df_parse_long(x + 1, &b) || a < 1 || b < 1 || a > 4096 || b > 4096)
        cli_usage_error("residualize", "--grid expects RxC with R, C >= 1, got '%s'", v);
    *r = (int)a;
    *c = (int)b;
}

int cmd_residualize(int argc, char **argv) {
    const char *cmd = "residualize", *v;
    ResidualizeOptions o = { 0 };
    o.memory_mb = 256;  // larger chunks were slower: first touching the buffer costs more (docs/baselines.md)
    o.apply = xcalloc((size_t)argc, sizeof(char *));
    int threads = 0, quiet = 0, nifti = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(residualize_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--train", &v, cmd)) o.train = v;
        else if (cli_opt(argc, argv, &i, "--apply", &v, cmd)) o.apply[o.n_apply++] = v;
        else if (cli_opt(argc, argv, &i, "--remove", &v, cmd)) o.remove = v;
        else if (cli_opt(argc, argv, &i, "--keep", &v, cmd)) o.keep = v;
        else if (cli_opt(argc, argv, &i, "--mask", &v, cmd)) o.mask = v;
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) o.out_dir = v;
        else if (cli_opt(argc, argv, &i, "--grid", &v, cmd)) parse_grid(v, &o.nprow, &o.npcol);
        else if (cli_opt(argc, argv, &i, "--block", &v, cmd)) o.block = (int)cli_long(cmd, "--block", v, 1, 1 << 20);
        else if (cli_opt(argc, argv, &i, "--memory", &v, cmd)) {
            if (df_parse_double(v, &o.memory_mb) || !(o.memory_mb > 0) || o.memory_mb > 1e8)
                cli_usage_error(cmd, "--memory expects megabytes > 0, got '%s'", v);
        }
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else if (cli_flag(argv, i, "--nifti")) nifti = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!o.train) cli_usage_error(cmd, "missing --train SHARDS");
    if (!o.remove || !o.remove[0]) cli_usage_error(cmd, "missing --remove COLS (the confounders)");
    if (!o.out_dir) cli_usage_error(cmd, "missing --out DIR");
    int nt = dist_set_blas_threads(threads);
    progress_enable(dist_rank() == 0 && !quiet);
    ResidualizeReport r;
    DfError err;
    if (nifti) export_nifti_check(o.out_dir, cmd);
    if (residualize_run(&o, &r, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    double peak = df_peak_rss_mb();  // the largest rank's
    dist_allreduce_max_f64(&peak, 1);
    if (dist_rank() == 0) {
        char blas[160];
        blas_core_describe(blas, sizeof blas);
        printf("residualize: done in %.2f s (read %.2f, solve %.2f, write %.2f); %.2f GFLOP at %.2f GFLOP/s in the solve; "
               "peak memory %.0f MB per rank; %d rank%s x %d BLAS thread%s; %s\n", r.seconds_total, r.seconds_read, r.seconds_solve,
               r.seconds_write, r.flops / 1e9, r.seconds_solve > 0 ? r.flops / 1e9 / r.seconds_solve : 0.0, peak, dist_size(),
               dist_size() == 1 ? "" : "s", nt, nt == 1 ? "" : "s", blas);
        printf("residualize: wrote %ld training and %ld held-out subjects into %s\n", r.n_train, r.n_apply, o.out_dir);
    }
    if (nifti) export_nifti_after(o.out_dir, cmd);
    free(o.apply);
    return 0;
}
