// loader_bench.c: loader throughput against a training step's consumption (bench/loader.sh).
// usage: loader_bench SHARD_DIR PREFETCH STEP_SECONDS [BATCH] [EPOCHS]
// Reads the shards from disk (cache = disk) through io/loader.c with flip augmentation; the
// "training step" is a busy wait of STEP_SECONDS per batch (0: measure the loader alone).
// Prints samples/s and the share of the run the consumer spent waiting for data.
#include <stdio.h>
#include <stdlib.h>
#include "loader.h"

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s SHARD_DIR PREFETCH STEP_SECONDS [BATCH] [EPOCHS]\n", argv[0]); return 2; }
    int prefetch = atoi(argv[2]), batch = argc > 4 ? atoi(argv[4]) : 16, epochs = argc > 5 ? atoi(argv[5]) : 2;
    double step = atof(argv[3]);
    Ini ini;
    DfError err;
    Dataset ds;
    char text[1024];
    snprintf(text, sizeof text, "[data]\nsource = %s\ncache = disk\nprefetch = %d\nflip = w\n", argv[1], prefetch);
    if (ini_parse_string(&ini, text, "bench", &err) || dataset_from_config(&ds, &ini, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    LoaderConfig c = { .split = SPLIT_TRAIN, .global_batch = batch, .rank = 0, .nranks = 1, .seed = 1, .shuffle = 1,
                       .augment = 1, .prefetch = prefetch };
    Loader *L = loader_create(&ds, &c, &err);
    if (!L) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double t0 = df_now();
    long n = 0;
    for (int e = 0; e < epochs; e++) {
        loader_begin_epoch(L, e);
        const Batch *b;
        while ((b = loader_next(L, &err))) {
            n += b->n;
            double t = df_now();
            while (df_now() - t < step) {}
        }
    }
    double el = df_now() - t0, mb = (double)shape_numel(ds.cohort.shape) * 4 / 1e6;
    printf("prefetch %d, step %.3f s: %ld samples in %.2f s = %.0f samples/s (%.0f MB/s); waited for data %.3f s = %.1f%% of the run\n",
           prefetch, step, n, el, n / el, n / el * mb, loader_wait_seconds(L), 100 * loader_wait_seconds(L) / el);
    loader_free(L);
    dataset_free(&ds);
    ini_free(&ini);
    return 0;
}
