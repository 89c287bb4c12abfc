// train.c: `deconfound train`: its options; the training itself is run/train.c.
#include <stdlib.h>
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "run/train.h"

static const char *train_help =
    "usage: deconfound train CONFIG.ini [--set section.key=value ...] [--resume CHECKPOINT.h5]\n"
    "                        [--threads N] [--quiet]\n"
    "\n"
    "Trains the network described by CONFIG.ini (layers in order, [data], [train], [loss];\n"
    "see docs/config.md) data-parallel over the MPI ranks it is started on. The global batch\n"
    "([train] batch) is split over the ranks; results do not depend on the rank count.\n"
    "Rank 0 prints progress and keeps the run directory ([train] out_dir, default\n"
    "runs/<config name>-<date>-<time>; a resumed run, its checkpoint's folder): run.json (command,\n"
    "code version, machine, ranks, threads), config.ini (every default filled in), log.txt,\n"
    "checkpoint.h5, metrics.csv / metrics.jsonl / metrics.json (per epoch), dcor.csv / dcor.json\n"
    "([train] dcor_layer) and plot.png (docs/formats.md, \"The run directory\").\n"
    "Progress: an updating line on a terminal; in a file, a line every 30 s\n"
    "(DECONFOUND_PROGRESS_EVERY=SECONDS; also every [train] log_every steps) and at the end.\n"
    "\n"
    "  --set s.k=v    override a config value (s is a section or a layer's name); repeatable\n"
    "  --resume FILE  continue from a checkpoint written by an earlier run of the same config\n"
    "                 (a changed network, global batch or data is refused: docs/config.md)\n"
    "  --threads N    OpenBLAS threads per rank (default: cores on the node / ranks on the node)\n"
    "  --quiet        no progress lines (the header, epoch lines and errors stay)\n";

int cmd_train(int argc, char **argv) {
    const char *cmd = "train", *v;
    const char **sets = xcalloc((size_t)argc, sizeof(char *));  // --set values, in order
    TrainArgs a = { .sets = sets, .argc = argc, .argv = argv };
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(train_help, stdout); free(sets); return 0; }
        else if (cli_opt(argc, argv, &i, "--set", &v, cmd)) sets[a.n_sets++] = v;
        else if (cli_opt(argc, argv, &i, "--resume", &v, cmd)) a.resume = v;
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) a.threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!a.config) a.config = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!a.config) cli_usage_error(cmd, "missing CONFIG.ini");
    progress_enable(dist_rank() == 0 && !quiet);
    int status = train_run(&a);
    free(sets);
    return status;
}
