// eval_cmd.c: `deconfound eval`: the features of every sample at named layers, in eval
// mode and input order, with labels and metadata beside them -- the input of
// `deconfound dcor`. Ranks take contiguous blocks of samples (as predict.c); rank 0
// gathers each layer in rank order (= input order) and writes the file atomically.
#include <stdlib.h>
#include <string.h>
#include "data/checkpoint.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "data/cohort.h"
#include "run/infer.h"
#include "nn/metadata.h"
#include "mpi/comm.h"
#include "data/feature_file.h"
#include "nn/net.h"
#include "data/shard.h"

#define EVAL_MAX_SHARDS 4096
#define EVAL_MAX_LAYERS 32

static const char *eval_help =
    "usage: deconfound eval CONFIG.ini --checkpoint FILE.h5 --data SHARD.h5[,SHARD.h5...]\n"
    "                       --features LAYER[,LAYER...] --out FEATS.h5 [--batch N] [--threads N]\n"
    "                       [--set section.key=value ...]\n"
    "\n"
    "Builds the network of CONFIG.ini, loads the checkpoint and runs every sample of the shards\n"
    "(concatenated in the order given) through it in eval mode. FEATS.h5 holds, in input order,\n"
    "/features/<LAYER> float32 [N, C*D*H*W] (each named layer's output, flattened), /labels and\n"
    "/meta (the shards', coded as the model was trained: levels and classes matched by name,\n"
    "the model's columns first; docs/formats.md). A level or class the model never saw is\n"
    "an error. Samples are split over the MPI ranks; a sample's features are the same bits at\n"
    "any --batch and any rank count; the file is written atomically.\n"
    "  --threads N   OpenBLAS threads per rank (default 1: use ranks for more cores; other\n"
    "                thread counts may change the last bits)\n"
    "Then, e.g.:\n"
    "  deconfound dcor --x FEATS.h5:features/fc1 --y FEATS.h5:meta:age --by FEATS.h5:labels\n";

static int split_list(char *s, char **out, int max) {
    int k = 0;
    for (char *save = NULL, *tok; (tok = strtok_r(k ? NULL : s, ",", &save));) {
        if (k == max) return -1;
        out[k++] = tok;
    }
    return k;
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval", *config = NULL, *ckpt = NULL, *data = NULL, *layers = NULL, *out = NULL, *v;
    const char **sets = xcalloc((size_t)argc, sizeof(char *));
    int n_sets = 0, batch = 32, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(eval_help, stdout); free(sets); return 0; }
        else if (cli_opt(argc, argv, &i, "--checkpoint", &v, cmd)) ckpt = v;
        else if (cli_opt(argc, argv, &i, "--data", &v, cmd)) data = v;
        else if (cli_opt(argc, argv, &i, "--features", &v, cmd)) layers = v;
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
    if (!data) cli_usage_error(cmd, "missing --data SHARD[,SHARD...]");
    if (!layers) cli_usage_error(cmd, "missing --features LAYER[,LAYER...]");
    if (!out) cli_usage_error(cmd, "missing --out FEATS.h5");
    char *data_s = xstrdup(data), *layers_s = xstrdup(layers);
    char **paths = xcalloc(EVAL_MAX_SHARDS, sizeof(char *)), *lnames[EVAL_MAX_LAYERS];
    int n_shards = split_list(data_s, paths, EVAL_MAX_SHARDS), n_layers = split_list(layers_s, lnames, EVAL_MAX_LAYERS);
    if (n_shards < 1) cli_usage_error(cmd, "--data: expected SHARD[,SHARD...] (at most %d)", EVAL_MAX_SHARDS);
    if (n_layers < 1) cli_usage_error(cmd, "--features: expected LAYER[,LAYER...] (at most %d)", EVAL_MAX_LAYERS);
    for (int l = 0; l < n_layers; l++)
        for (int m = 0; m < l; m++)
            if (strcmp(lnames[l], lnames[m]) == 0) cli_usage_error(cmd, "--features: layer '%s' is named twice", lnames[l]);

    DfError err;
    Ini ini;
    if (ini_load(&ini, config, sets, n_sets, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    free(sets);
    // Headers of every shard (labels and metadata are small): every rank reads them all and
    // combines them, levels matched by name; then recodes them to the model's schema.
    Cohort *h = xcalloc((size_t)n_shards, sizeof(Cohort)), cohort;
    memset(&cohort, 0, sizeof cohort);
    for (int s = 0; s < n_shards; s++) {
        if (shard_read_header(paths[s], &h[s], &err) || cohort_append(&cohort, paths[0], &h[s], paths[s], &err))
            df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
        if (cohort.n > (1 << 30)) df_die_collective(DF_EXIT_INPUT, "%s: too many samples", paths[s]);
    }
    long n = cohort.n;
    dist_set_blas_threads(threads);
    MetaSchema *schema = xmalloc(sizeof *schema);
    if (infer_schema(schema, &cohort, ckpt, n_shards == 1 ? paths[0] : data, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    const int32_t *all_labels = cohort.labels;
    const double *all_meta = cohort.meta;
    Net net;
    if (net_build_meta(&net, &ini, cohort.shape, batch, dist_reducer(), schema, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (checkpoint_load(ckpt, &net, NULL, NULL, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    int idx[EVAL_MAX_LAYERS], dims[EVAL_MAX_LAYERS];
    for (int l = 0; l < n_layers; l++) {
        if ((idx[l] = net_layer_output_index(&net, lnames[l])) < 0) {
            char known[1024] = "";
            for (int i = 0; i < net.n_layers && strlen(known) < sizeof known - 80; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", net.layers[i].name);
            df_die_collective(DF_EXIT_INPUT, "eval: --features: %s has no layer named '%s' (layers: %s)", config, lnames[l], known);
        }
        dims[l] = (int)shape_numel(net.layers[idx[l] - 1].out_shape);
    }

    // This rank's contiguous block [lo, hi) of the concatenated shards.
    int P = dist_size(), r = dist_rank();
    long lo = n * r / P, hi = n * (r + 1) / P;
    size_t per = shape_numel(cohort.shape);
    float *mine[EVAL_MAX_LAYERS], *img = df_alloc_floats((size_t)batch * per);
    for (int l = 0; l < n_layers; l++) mine[l] = df_alloc_floats((size_t)(hi - lo) * dims[l] + 1);
    for (long s = lo; s < hi;) {
        // Fill up to `batch` samples, possibly from several shards.
        int B = (int)DF_MIN((long)batch, hi - s), got = 0;
        long base = 0;
        for (int k = 0; k < n_shards && got < B; k++) {
            long a = DF_MAX(s + got, base), e = DF_MIN(s + B, base + h[k].n);
            if (a < e) {
                if (shard_read_images(paths[k], (int)(a - base), (int)(e - a), img + (size_t)got * per, &err))
                    df_die(DF_EXIT_INPUT, "eval: %s", err.msg);
                got += (int)(e - a);
            }
            base += h[k].n;
        }
        DF_ASSERT(got == B);
        net.ctx.batch_meta = all_meta + (size_t)s * cohort.k;
        net.ctx.batch_labels = (const int *)all_labels + s;
        net.ctx.first_sample = s;
        net_forward(&net, img, B, 0);
        for (int l = 0; l < n_layers; l++)
            memcpy(mine[l] + (size_t)(s - lo) * dims[l], net.acts[idx[l]], (size_t)B * dims[l] * sizeof(float));
        s += B;
    }
    float *all[EVAL_MAX_LAYERS] = { 0 };
    for (int l = 0; l < n_layers; l++) {
        if (r == 0) all[l] = df_alloc_floats((size_t)n * dims[l] + 1);
        dist_gather_f32(all[l], mine[l], (size_t)(hi - lo) * dims[l]);
    }
    if (r == 0) {
        // The metadata as the model codes it, without the model's columns these data lack.
        int k = 0, keep[META_MAX_COLS];
        for (int j = 0; j < cohort.k; j++)
            if (j >= schema->n_cols || !schema->absent[j]) keep[k++] = j;
        double *meta = xmalloc(sizeof(double) * (size_t)n * (size_t)(k ? k : 1));
        for (long i = 0; i < n; i++)
            for (int j = 0; j < k; j++) meta[i * k + j] = cohort.meta[i * cohort.k + keep[j]];
        size_t cl = 2, kl = 2;
        for (int j = 0; j < k; j++) { cl += strlen(cohort.columns[keep[j]]) + 1; kl += 16; }
        char *cols = xcalloc(cl, 1), *kinds = xcalloc(kl, 1);
        for (int j = 0; j < k; j++) {
            if (j) { strcat(cols, ","); strcat(kinds, ","); }
            strcat(cols, cohort.columns[keep[j]]);
            strcat(kinds, cohort.kinds[keep[j]] == META_CATEGORICAL ? "categorical" : "continuous");
        }
        FeaturesFile ff = { .n = (int)n, .n_layers = n_layers, .names = (const char *const *)lnames,
                            .feats = (const float *const *)all, .dims = dims, .labels = all_labels, .meta = meta, .k = k,
                            .columns = cols, .kinds = kinds, .checkpoint = ckpt };
        if (features_write(out, &ff, &err)) df_die(DF_EXIT_INPUT, "eval: %s", err.msg);
        printf("wrote %s: %ld samples;", out, n);
        for (int l = 0; l < n_layers; l++) printf(" features/%s [%ld, %d]", lnames[l], n, dims[l]);
        printf("; labels; meta (%s)\n", k ? cols : "no columns");
        free(meta); free(cols); free(kinds);
    }
    for (int l = 0; l < n_layers; l++) { free(all[l]); free(mine[l]); }
    free(img);
    net_free(&net);
    free(schema);
    cohort_free(&cohort);
    for (int s = 0; s < n_shards; s++) cohort_free(&h[s]);
    free(h);
    free(paths);
    free(data_s);
    free(layers_s);
    ini_free(&ini);
    return 0;
}
