// plot.c: `deconfound plot RUNDIR... [--out FILE.png]`: one PNG of training runs' curves
// (run/plot.h), drawn by gnuplot on rank 0.
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "run/plot.h"

static const char *plot_help =
    "usage: deconfound plot RUNDIR... [--out FILE.png]\n"
    "\n"
    "One PNG (1400 x 1000, four panels) of training runs, from each run directory's\n"
    "metrics.csv and dcor.csv (docs/formats.md, \"Plots\"):\n"
    "  (a) train and validation loss per epoch\n"
    "  (b) train, validation, balanced and worst-group validation accuracy per epoch\n"
    "  (c) dCor^2 of each dCor layer's features and each confounder (scope 'all') per epoch\n"
    "  (d) validation accuracy per confounder group at the last epoch, the worst group marked\n"
    "Several runs overlay, one colour per run, named by the folder's basename; dashed lines\n"
    "are training, solid ones validation.\n"
    "\n"
    "  --out FILE.png   the image (default RUNDIR/plot.png; required for several runs). It is\n"
    "                   written under a temporary name and renamed: a failure leaves nothing.\n"
    "\n"
    "Needs gnuplot (Debian: apt-get install gnuplot-nox), or the program named by the\n"
    "environment variable DECONFOUND_GNUPLOT. Exit status: 0 written; 1 gnuplot missing or\n"
    "failed; 2 bad input (a folder that is not a run directory, a malformed metrics.csv).\n";

int cmd_plot(int argc, char **argv) {
    const char *cmd = "plot", *out = NULL;
    const char **dirs = xmalloc(sizeof(char *) * (size_t)argc);
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            if (dist_rank() == 0) fputs(plot_help, stdout);
            free(dirs);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--out", &out, cmd)) {
            if (!*out) cli_usage_error(cmd, "--out needs a file name");
        } else if (argv[i][0] == '-') {
            cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else {
            dirs[n++] = argv[i];
        }
    }
    if (n == 0) cli_usage_error(cmd, "missing RUNDIR");
    if (n > 1 && !out) cli_usage_error(cmd, "several run directories need --out FILE.png");
    char *deflt = NULL;
    if (!out) {
        size_t len = strlen(dirs[0]) + 16;
        deflt = xmalloc(len);
        snprintf(deflt, len, "%s/plot.png", dirs[0]);
        out = deflt;
    }
    // Rank 0 draws; every rank then leaves with its status, and only rank 0 has a message.
    DfError err = { "" };
    int rc = dist_rank() == 0 ? plot_runs(dirs, n, out, &err) : 0;
    dist_bcast(&rc, sizeof rc, 0);
    if (rc == PLOT_BAD_INPUT) df_die_collective(DF_EXIT_INPUT, "plot: %s", err.msg);
    if (rc != 0) df_die_collective(DF_EXIT_FAIL, "plot: %s", err.msg);
    if (dist_rank() == 0) printf("plot: wrote %s\n", out);
    free(deflt);
    free(dirs);
    return 0;
}
