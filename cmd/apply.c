// apply.c: the options of `predict` and `eval` (see apply.h).
#include "cmd/apply.h"
#include "base/common.h"
#include "cmd/cli.h"
#include "data/loader.h"
#include "mpi/comm.h"
#include <stdlib.h>
#include <string.h>

int apply_args_parse(ApplyArgs *a, int argc, char **argv, const char *cmd, const char *help, int features) {
    *a = (ApplyArgs){ .sets = xcalloc((size_t)argc, sizeof(char *)), .batch = 32, .threads = 1,
                    .split = SPLIT_ALL };
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(help, stdout); return 1; }
        else if (cli_opt(argc, argv, &i, "--checkpoint", &v, cmd)) a->checkpoint = v;
        else if (cli_opt(argc, argv, &i, "--data", &v, cmd)) a->data = v;
        else if (cli_opt(argc, argv, &i, "--split", &v, cmd)) {
            a->split = !strcmp(v, "train") ? SPLIT_TRAIN : !strcmp(v, "val") ? SPLIT_VAL : !strcmp(v, "test") ? SPLIT_TEST : -1;
            if (a->split < 0) cli_usage_error(cmd, "--split %s: expected train, val or test", v);
        } else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) a->out = v;
        else if (features && cli_opt(argc, argv, &i, "--features", &v, cmd)) a->features = v;
        else if (features && cli_opt(argc, argv, &i, "--accuracy-by", &v, cmd)) a->accuracy_by = v;
        else if (features && cli_flag(argv, i, "--quiet")) a->quiet = 1;
        else if (cli_opt(argc, argv, &i, "--batch", &v, cmd)) a->batch = (int)cli_long(cmd, "--batch", v, 1, 1 << 16);
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) a->threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_opt(argc, argv, &i, "--set", &v, cmd)) a->sets[a->n_sets++] = v;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!a->config) a->config = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!a->config) cli_usage_error(cmd, "missing CONFIG.ini");
    if (!a->checkpoint) cli_usage_error(cmd, "missing --checkpoint FILE");
    if (!a->data && a->split == SPLIT_ALL) cli_usage_error(cmd, "missing --data SHARD[,SHARD...] (or --split train|val|test)");
    if (a->data && a->split != SPLIT_ALL) cli_usage_error(cmd, "--data and --split exclude each other");
    if (features && !a->features) cli_usage_error(cmd, "missing --features LAYER[,LAYER...]");
    if (!a->out) cli_usage_error(cmd, "missing --out FILE.h5");
    return 0;
}

void apply_args_free(ApplyArgs *a) { free(a->sets); a->sets = NULL; }

void apply_check_out(const ApplyArgs *a, const Dataset *ds, const char *cmd) {
    // OUT.h5 is renamed over its path at the end: one of the inputs there would be lost, and
    // a run's checkpoint with it. By file identity, so "./s.h5" or a symlink is caught too.
    const char *hit = df_same_file(a->out, a->checkpoint) ? a->checkpoint : df_same_file(a->out, a->config) ? a->config : NULL;
    for (int f = 0; f < ds->n_files && !hit; f++)
        if (df_same_file(a->out, ds->files[f].path)) hit = ds->files[f].path;
    double any = hit != NULL;
    dist_allreduce_max_f64(&any, 1);  // every rank stops, even where the file system said otherwise
    if (any != 0.0)
        df_die_collective(DF_EXIT_INPUT, "%s: --out %s: the output would overwrite an input, %s (choose another --out)", cmd,
                          a->out, hit ? hit : "one of them");
}
