// fuzz_checkpoint.c: the checkpoint reader (data/checkpoint.c) on arbitrary bytes as an HDF5
// file, as `deconfound info`, `predict` and `--resume` use it: probe, the stored config and
// metadata schema, describe (text and JSON), and a full load -- parameters, Adam state, train
// state and one loss term's blob -- into a small network built once (FUZZ_NET below; the
// seed corpus holds checkpoints of it, tests/fuzz/gen_seeds.c).
#include "tests/fuzz/fuzz_util.h"
#include "data/checkpoint.h"
#include "base/ini.h"
#include "nn/metadata.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NET "[conv3d]\nname = conv1\nout = 2\nkernel = 3\n[batchnorm3d]\nname = bn1\n[relu]\n" \
                 "[global_avgpool]\n[flatten]\n[linear]\nname = fc1\nout = 2\n"
static Net net;
static Optimizer opt;
static FILE *devnull;
static MetaSchema *schema;
static float blob_data[5];
static int64_t blob_counters[2];

// The network, Adam over its parameters, and a train state with one blob ("adv", 5 values,
// 2 counters). Shared with gen_seeds.c, which writes the seed checkpoints from them.
void fuzz_checkpoint_setup(Net **n, Optimizer **o, TrainState *ts);
void fuzz_checkpoint_setup(Net **n, Optimizer **o, TrainState *ts) {
    static int done;
    static CheckpointBlob blob = { .name = "adv", .data = blob_data, .n = 5, .counters = blob_counters, .n_counters = 2 };
    if (!done) {
        Ini ini;
        DfError err;
        FUZZ_CHECK(ini_parse_string(&ini, FUZZ_NET, "fuzz-net.ini", &err) == 0);
        if (net_build(&net, &ini, (Shape){ 1, 4, 4, 4 }, 2, NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); FUZZ_CHECK(0); }
        ini_free(&ini);
        OptConfig oc = { .kind = OPT_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
        optim_init(&opt, &oc, net.n_params);
        done = 1;
    }
    *n = &net;
    *o = &opt;
    memset(ts, 0, sizeof *ts);
    ts->blobs = &blob;
    ts->n_blobs = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    Net *n; Optimizer *o; TrainState ts;
    fuzz_checkpoint_setup(&n, &o, &ts);
    devnull = fopen("/dev/null", "w");
    schema = xmalloc(sizeof *schema);
    fuzz_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("in.h5", data, size);
    DfError err;
    if (checkpoint_probe(path, &err) == 1) {
        char *config = checkpoint_read_config(path, &err);
        free(config);
        checkpoint_read_schema(path, schema, &err);
        checkpoint_describe(path, devnull, 0, &err);
        checkpoint_describe(path, devnull, 1, &err);
        Net *n; Optimizer *o; TrainState ts;
        fuzz_checkpoint_setup(&n, &o, &ts);
        double term_sums[3];
        ts.term_sums = term_sums;
        ts.n_term_sums = 3;
        checkpoint_load(path, n, o, &ts, &err);
        checkpoint_load(path, n, NULL, NULL, &err);
    }
    free(path);
    return 0;
}
