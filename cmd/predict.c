// predict.c: `deconfound predict`: logits of every sample of a shard, in eval mode, in
// input order (run/infer.h); rank 0 gathers and writes.
#include <stdlib.h>
#include <string.h>
#include "cmd/apply.h"
#include "cmd/commands.h"
#include "data/predictions.h"
#include "mpi/comm.h"
#include "run/infer.h"

static const char *predict_help =
    "usage: deconfound predict CONFIG.ini --checkpoint FILE.h5 --data SHARD.h5[,SHARD.h5...] --out OUT.h5\n"
    "                          [--batch N] [--threads N] [--set section.key=value ...]\n"
    "       deconfound predict CONFIG.ini --checkpoint FILE.h5 --split train|val|test --out OUT.h5 ...\n"
    "\n"
    "Builds the network of CONFIG.ini, loads the parameters and BatchNorm statistics of the\n"
    "checkpoint, and writes OUT.h5 with dataset `logits` [N, outputs] (eval mode, input order)\n"
    "and `labels` [N] of every sample of the shards (files or directories, in the order given).\n"
    "Samples are split over the MPI ranks. OUT.h5 is written atomically; it may not be one of\n"
    "the inputs (the shards, the checkpoint, CONFIG.ini).\n"
    "Metadata levels and classes are matched to the model's by name; one the model never saw\n"
    "is an error. A sample's logits are the same bits at any --batch and any rank count.\n"
    "CONFIG's network must be the one the checkpoint stores (the same layers, every setting\n"
    "equal: an activation, stride or pad too); its [train] and [data] may differ. A key\n"
    "nothing reads is an error, as in train.\n"
    "\n"
    "  --split S     instead of --data: the samples of split S of CONFIG's own [data] (its\n"
    "                source, split settings and seeds, with --set), split as training split\n"
    "                them, in the order of the data\n"
    "  --batch N     samples per forward pass (default 32)\n"
    "  --threads N   OpenBLAS threads per rank (default 1: use ranks for more cores; other\n"
    "                thread counts may change the last bits of the results)\n";

int cmd_predict(int argc, char **argv) {
    ApplyArgs a;
    if (apply_args_parse(&a, argc, argv, "predict", predict_help, 0)) { apply_args_free(&a); return 0; }
    DfError err;
    dist_set_blas_threads(a.threads);
    InferSetup in;
    if (infer_setup(&in, a.config, a.sets, a.n_sets, a.checkpoint, a.data, a.split, a.batch, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    apply_check_out(&a, &in.ds, "predict");
    int out_act = in.net.n_layers, K = (int)shape_numel(in.net.out_shape);
    InferOutputs o;
    infer_outputs_init(&o, &in.net, &out_act, 1, in.n);
    if (infer_run(&in.net, in.loader, infer_outputs_visit, &o, &err))  // agreed by every rank (loader.h)
        df_die_collective(loader_failed(in.loader), "predict: %s", err.msg);
    infer_outputs_gather(&o);
    if (dist_rank() == 0) {
        int32_t *labels = infer_labels(&in);
        if (predictions_write(a.out, o.all[0], in.n, K, labels, a.checkpoint, &err)) df_die(DF_EXIT_INPUT, "predict: %s", err.msg);
        printf("wrote %s: logits [%d, %d]\n", a.out, in.n, K);
        free(labels);
    }
    infer_outputs_free(&o);
    infer_setup_free(&in);
    apply_args_free(&a);
    return 0;
}
