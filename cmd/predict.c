// predict.c: `deconfound predict`: logits of every sample of a shard, in eval mode, in
// input order. Ranks take contiguous blocks of samples; rank 0 gathers and writes.
#include <stdlib.h>
#include <string.h>
#include "data/checkpoint.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "data/predictions.h"
#include "data/shard.h"
#include "run/train.h"
#include "run/infer.h"
#include "nn/metadata.h"

static const char *predict_help =
    "usage: deconfound predict CONFIG.ini --checkpoint FILE.h5 --data SHARD.h5 --out OUT.h5\n"
    "                          [--batch N] [--threads N] [--set section.key=value ...]\n"
    "\n"
    "Builds the network of CONFIG.ini, loads the parameters and BatchNorm statistics of the\n"
    "checkpoint, and writes OUT.h5 with dataset `logits` [N, outputs] (eval mode, input order)\n"
    "and `labels` [N]. Samples are split over the MPI ranks. OUT.h5 is written atomically.\n"
    "Metadata levels and classes are matched to the model's by name; one the model never saw\n"
    "is an error. A sample's logits are the same bits at any --batch and any rank count.\n"
    "\n"
    "  --batch N     samples per forward pass (default 32)\n"
    "  --threads N   OpenBLAS threads per rank (default 1: use ranks for more cores; other\n"
    "                thread counts may change the last bits of the results)\n";

int cmd_predict(int argc, char **argv) {
    const char *cmd = "predict", *config = NULL, *ckpt = NULL, *data = NULL, *out = NULL, *v;
    const char **sets = xcalloc((size_t)argc, sizeof(char *));  // --set values, in order
    int n_sets = 0, batch = 32, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(predict_help, stdout); free(sets); return 0; }
        else if (cli_opt(argc, argv, &i, "--checkpoint", &v, cmd)) ckpt = v;
        else if (cli_opt(argc, argv, &i, "--data", &v, cmd)) data = v;
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) out = v;
        else if (cli_opt(argc, argv, &i, "--batch", &v, cmd)) batch = (int)cli_long(cmd, "--batch", v, 1, 1 << 16);
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_opt(argc, argv, &i, "--set", &v, cmd)) sets[n_sets++] = v;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!config) config = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!config) cli_usage_error(cmd, "missing CONFIG.ini");
    if (!ckpt) cli_usage_error(cmd, "missing --checkpoint FILE");
    if (!data) cli_usage_error(cmd, "missing --data SHARD");
    if (!out) cli_usage_error(cmd, "missing --out OUT.h5");

    DfError err;
    Ini ini;
    if (ini_load(&ini, config, sets, n_sets, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    free(sets);
    Cohort c;
    if (shard_read(data, &c, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    dist_set_blas_threads(threads);
    // Layers that use metadata (MDN) see it coded as in training: levels matched by name.
    MetaSchema *schema = xmalloc(sizeof *schema);
    if (infer_schema(schema, &c, ckpt, data, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    Net net;
    if (net_build_meta(&net, &ini, c.shape, batch, dist_reducer(), schema, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (checkpoint_load(ckpt, &net, NULL, NULL, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);

    int P = dist_size(), r = dist_rank(), K = (int)shape_numel(net.out_shape);
    int lo = (int)((long)c.n * r / P), hi = (int)((long)c.n * (r + 1) / P);
    size_t per = shape_numel(c.shape);
    float *mine = df_alloc_floats((size_t)(hi - lo) * K);
    for (int s = lo; s < hi; s += batch) {
        int B = DF_MIN(batch, hi - s);
        net.ctx.batch_meta = c.meta + (size_t)s * c.k;
        net.ctx.batch_labels = (const int *)c.labels + s;
        net.ctx.first_sample = s;
        const float *logits = net_forward(&net, c.images + (size_t)s * per, B, 0);
        memcpy(mine + (size_t)(s - lo) * K, logits, (size_t)B * K * sizeof(float));
    }
    float *all = r == 0 ? df_alloc_floats((size_t)c.n * K) : NULL;
    dist_gather_f32(all, mine, (size_t)(hi - lo) * K);
    if (r == 0) {
        if (predictions_write(out, all, c.n, K, c.labels, ckpt, &err)) df_die(DF_EXIT_INPUT, "predict: %s", err.msg);
        printf("wrote %s: logits [%d, %d]\n", out, c.n, K);
    }
    free(all);
    free(mine);
    net_free(&net);
    free(schema);
    cohort_free(&c);
    ini_free(&ini);
    return 0;
}
