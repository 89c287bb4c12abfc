// loader_bench.c: loader throughput against a training step's consumption (bench/loader.sh;
// built by `make` as bench/loader_bench, never installed).
// usage: loader_bench SHARD_DIR PREFETCH STEP_SECONDS [BATCH] [EPOCHS] [EVICT]
// Reads the shards from disk (cache = disk) through data/loader.c with flip augmentation; the
// "training step" is a busy wait of STEP_SECONDS per batch (0: measure the loader alone).
// EVICT = 1 drops the shard files from the page cache (posix_fadvise POSIX_FADV_DONTNEED)
// before every epoch, so every epoch reads from the disk as it would for a data set larger
// than the page cache; run `sync; echo 3 > /proc/sys/vm/drop_caches` before the program
// as well when allowed (bench/loader.sh does, and says which worked).
// Prints samples/s, the share of the run the consumer spent waiting for data and, with a
// step, the share of step time spent waiting.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "data/loader.h"

// Evicts every shard file of the data set from the page cache; returns the number of files
// the kernel accepted the advice for.
static int evict(const Dataset *ds) {
    int ok = 0;
    for (int f = 0; f < ds->n_files; f++) {
        int fd = open(ds->files[f].path, O_RDONLY);
        if (fd < 0) { perror(ds->files[f].path); continue; }
        if (fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0) ok++;
        close(fd);
    }
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s SHARD_DIR PREFETCH STEP_SECONDS [BATCH] [EPOCHS] [EVICT]\n", argv[0]);
        return 2;
    }
    int prefetch = atoi(argv[2]), batch = argc > 4 ? atoi(argv[4]) : 16, epochs = argc > 5 ? atoi(argv[5]) : 2;
    int cold = argc > 6 ? atoi(argv[6]) : 0;
    double step = atof(argv[3]);
    Ini ini;
    DfError err;
    Dataset ds;
    char text[1024];
    snprintf(text, sizeof text, "[data]\nsource = %s\ncache = disk\nprefetch = %d\nflip = w\nval_fraction = 0\n", argv[1], prefetch);
    if (ini_parse_string(&ini, text, "bench", &err) || dataset_from_config(&ds, &ini, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    LoaderConfig c = { .split = SPLIT_TRAIN, .global_batch = batch, .rank = 0, .nranks = 1, .seed = 1, .shuffle = 1,
                       .augment = 1, .prefetch = prefetch };
    Loader *L = loader_create(&ds, &c, &err);
    if (!L) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double t_run = 0, t_evict = 0;
    long n = 0, steps = 0;
    int evicted = 0;
    for (int e = 0; e < epochs; e++) {
        if (cold) {  // outside the timed part: eviction is not the loader's cost
            double t = df_now();
            evicted = evict(&ds);
            t_evict += df_now() - t;
        }
        double t0 = df_now();
        loader_begin_epoch(L, e);
        const Batch *b;
        while ((b = loader_next(L, &err))) {
            n += b->n;
            steps++;
            double t = df_now();
            while (df_now() - t < step) {}
        }
        t_run += df_now() - t0;
    }
    if (loader_failed(L)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double mb = (double)shape_numel(ds.cohort.shape) * 4 / 1e6, wait = loader_wait_seconds(L);
    printf("prefetch %d, step %.3f s, %s: %ld samples in %.2f s = %.1f samples/s (%.0f MB/s); waited for data %.3f s = %.1f%% of the run",
           prefetch, step, cold ? (evicted == ds.n_files ? "cold (fadvise)" : "cold (fadvise FAILED)") : "page cache as is", n, t_run,
           n / t_run, n / t_run * mb, wait, 100 * wait / t_run);
    if (step > 0) printf(", %.1f ms per step", 1e3 * wait / steps);
    printf("\n");
    loader_free(L);
    dataset_free(&ds);
    ini_free(&ini);
    return 0;
}
