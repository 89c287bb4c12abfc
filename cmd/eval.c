// eval.c: `deconfound eval`: the features of every sample at named layers, in eval mode and
// input order (run/infer.h), with labels and metadata beside them -- the input of
// `deconfound dcor`. Rank 0 writes the file atomically.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "cmd/apply.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "data/feature_file.h"
#include "nn/loss.h"
#include "mpi/comm.h"
#include "run/infer.h"

static const char *eval_help =
    "usage: deconfound eval CONFIG.ini --checkpoint FILE.h5 --data SHARD.h5[,SHARD.h5...]\n"
    "                       --features LAYER[,LAYER...] --out FEATS.h5 [--batch N] [--threads N]\n"
    "                       [--set section.key=value ...] [--quiet]\n"
    "       deconfound eval CONFIG.ini --checkpoint FILE.h5 --split train|val|test --features ... \n"
    "\n"
    "Builds the network of CONFIG.ini, loads the checkpoint and runs every sample of the shards\n"
    "(concatenated in the order given) through it in eval mode. FEATS.h5 holds, in input order,\n"
    "/features/<LAYER> float32 [N, C*D*H*W] (each named layer's output, flattened), /labels and\n"
    "/meta (the shards', coded as the model was trained: levels and classes matched by name,\n"
    "the model's columns first; docs/formats.md). A level or class the model never saw is\n"
    "an error. Samples are split over the MPI ranks; a sample's features are the same bits at\n"
    "any --batch and any rank count; the file is written atomically and may not be one of the\n"
    "inputs (the shards, the checkpoint, CONFIG.ini). CONFIG's network must be the one the\n"
    "checkpoint stores (the same layers, every setting equal: an activation, stride or pad\n"
    "too); its [train] and [data] may differ. A key nothing reads is an error, as in train.\n"
    "  --split S     instead of --data: the samples of split S of CONFIG's own [data] (its\n"
    "                source, split settings and seeds, with --set), split as training split\n"
    "                them, in the order of the data; e.g. a confounder's dCor on the training\n"
    "                samples against the validation ones\n"
    "  --threads N   OpenBLAS threads per rank (default 1: use ranks for more cores; other\n"
    "                thread counts may change the last bits)\n"
    "  --accuracy-by COLUMN   also print the classification accuracy over all samples, over\n"
    "                the bias-aligned ones (COLUMN, categorical, equals the class index, as\n"
    "                colour k is class k's in Biased MNIST) and over the bias-conflicting ones\n"
    "  --quiet       no progress (on a terminal an updating line, in a file a line every\n"
    "                DECONFOUND_PROGRESS_EVERY seconds, default 30); the results stay\n"
    "Then, e.g.:\n"
    "  deconfound dcor --x FEATS.h5:features/fc1 --y FEATS.h5:meta:age --by FEATS.h5:labels\n";

// "a,b,c" into the layers' activation indices; a usage error for an unknown or repeated one.
static int layer_outputs(Net *net, const char *list, const char *config, int *act, char names[][64]) {
    char *copy = xstrdup(list), *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == INFER_MAX_OUTPUTS) cli_usage_error("eval", "--features: at most %d layers", INFER_MAX_OUTPUTS);
        for (int m = 0; m < n; m++)
            if (strcmp(names[m], tok) == 0) cli_usage_error("eval", "--features: layer '%s' is named twice", tok);
        if ((act[n] = net_layer_output_index(net, tok)) < 0) {
            char known[1024] = "";
            for (int i = 0; i < net->n_layers && strlen(known) < sizeof known - 80; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", net->layers[i].name);
            df_die_collective(DF_EXIT_INPUT, "eval: --features: %s has no layer named '%s' (layers: %s)", config, tok, known);
        }
        snprintf(names[n++], 64, "%s", tok);
    }
    free(copy);
    if (n == 0) cli_usage_error("eval", "--features: expected LAYER[,LAYER...]");
    return n;
}

// --accuracy-by: argmax hits over all samples, the bias-aligned (the column's value is the
// class index) and the bias-conflicting ones, beside the outputs the file keeps.
typedef struct {
    InferOutputs *o;
    int col;              // metadata column
    double tally[6];      // n, correct: all, aligned, conflicting
    long n, batch;        // samples, and the global batch: for the progress (rank 0's)
} EvalVisit;

static void eval_visit(void *arg, const Net *net, const Batch *b) {
    EvalVisit *v = arg;
    infer_outputs_visit(v->o, net, b);
    if (v->col >= 0 && b->labels) accuracy_by_tally(v->tally, net->acts[net->n_layers], (int)shape_numel(net->out_shape), b, v->col);
    progress_update((double)DF_MIN(v->n, (b->step + 1) * v->batch));  // rank 0's share ends each global batch
}

static void print_accuracy(const EvalVisit *v, const char *column) {
    const double *t = v->tally;
    printf("accuracy %.4f (%.0f samples); %s = class (bias-aligned) %.4f (%.0f); %s != class (bias-conflicting) %.4f (%.0f)\n",
           t[0] > 0 ? t[1] / t[0] : NAN, t[0], column, t[2] > 0 ? t[3] / t[2] : NAN, t[2], column, t[4] > 0 ? t[5] / t[4] : NAN, t[4]);
}

// Writes FEATS.h5 on rank 0: the features, labels and the metadata as the model codes it,
// without the model's columns these data lack.
static void write_features(const char *out, const char *ckpt, const InferSetup *in, const InferOutputs *o, char names[][64]) {
    const Cohort *c = &in->ds.cohort;
    int n = in->n, k = 0, keep[META_MAX_COLS];
    for (int j = 0; j < c->k; j++)
        if (j >= in->schema->n_cols || !in->schema->absent[j]) keep[k++] = j;
    double *meta = xmalloc(sizeof(double) * (size_t)(n ? n : 1) * (size_t)(k ? k : 1));
    int32_t *labels = infer_labels(in);
    for (long i = 0; i < n; i++) {
        long row = infer_row(in, (int)i);
        for (int j = 0; j < k; j++) meta[i * k + j] = c->meta[row * c->k + keep[j]];
    }
    char cols[META_MAX_COLS * (META_NAME_LEN + 1) + 1] = "", kinds[META_MAX_COLS * 13 + 1] = "";
    for (int j = 0; j < k; j++) {
        if (j) { strcat(cols, ","); strcat(kinds, ","); }
        strcat(cols, c->columns[keep[j]]);
        strcat(kinds, c->kinds[keep[j]] == META_CATEGORICAL ? "categorical" : "continuous");
    }
    const char *lnames[INFER_MAX_OUTPUTS];
    for (int l = 0; l < o->n_outputs; l++) lnames[l] = names[l];
    FeaturesFile ff = { .n = n, .n_layers = o->n_outputs, .names = lnames, .feats = (const float *const *)o->all,
                        .dims = o->dims, .labels = labels, .meta = meta, .k = k, .columns = cols, .kinds = kinds,
                        .checkpoint = ckpt };
    DfError err;
    if (features_write(out, &ff, &err)) df_die(DF_EXIT_INPUT, "eval: %s", err.msg);
    printf("wrote %s: %d samples;", out, n);
    for (int l = 0; l < o->n_outputs; l++) printf(" features/%s [%d, %d]", names[l], n, o->dims[l]);
    printf("; labels; meta (%s)\n", k ? cols : "no columns");
    free(meta);
    free(labels);
}

int cmd_eval(int argc, char **argv) {
    ApplyArgs a;
    if (apply_args_parse(&a, argc, argv, "eval", eval_help, 1)) { apply_args_free(&a); return 0; }
    progress_enable(dist_rank() == 0 && !a.quiet);
    DfError err;
    dist_set_blas_threads(a.threads);
    InferSetup in;
    if (infer_setup(&in, a.config, a.sets, a.n_sets, a.checkpoint, a.data, a.split, a.batch, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    apply_check_out(&a, &in.ds, "eval");
    int act[INFER_MAX_OUTPUTS];
    char names[INFER_MAX_OUTPUTS][64];
    int n_outputs = layer_outputs(&in.net, a.features, a.config, act, names);
    InferOutputs o;
    infer_outputs_init(&o, &in.net, act, n_outputs, in.n);
    EvalVisit v = { &o, -1, { 0 }, in.n, (long)a.batch * dist_size() };
    if (a.accuracy_by) {
        v.col = meta_column(in.schema, a.accuracy_by);
        if (v.col < 0 || in.schema->absent[v.col])
            df_die_collective(DF_EXIT_INPUT, "eval: --accuracy-by %s: %s has no such metadata column", a.accuracy_by,
                               a.data ? a.data : a.config);
        if (!in.ds.cohort.labels) df_die_collective(DF_EXIT_INPUT, "eval: --accuracy-by: %s has no labels", a.data ? a.data : a.config);
        if (!in.schema->categorical[v.col])
            df_die_collective(DF_EXIT_INPUT, "eval: --accuracy-by %s: a continuous column; it takes a categorical one whose "
                              "value is the class a sample is biased towards (e.g. colour, background)", a.accuracy_by);
    }
    progress_begin("eval", "samples", 0, (double)v.n);
    if (infer_run(&in.net, in.loader, eval_visit, &v, &err))  // agreed by every rank (loader.h)
        df_die_collective(loader_failed(in.loader), "eval: %s", err.msg);
    progress_end();
    dist_allreduce_sum_f64(v.tally, 6);
    infer_outputs_gather(&o);
    if (dist_rank() == 0) write_features(a.out, a.checkpoint, &in, &o, names);
    if (dist_rank() == 0 && a.accuracy_by) print_accuracy(&v, a.accuracy_by);
    infer_outputs_free(&o);
    infer_setup_free(&in);
    apply_args_free(&a);
    return 0;
}
