// test_loader_mpiio.c: [data] read = mpiio (HDF5's MPI-IO driver, independent transfers) gives
// the same batches as read = pread, byte for byte: indices, images, labels, metadata, masks
// and CLAD's positives, for the training split (shuffled, augmented) and the validation
// split, with global batches that leave ranks uneven shares and, at 2 and 3 ranks, no sample
// at all in the last batch.
// Also: the images equal the ones written, prefetch is forced off, a bad value is rejected.
//
// Run under mpirun by tests/loader_mpiio.sh at 1, 2 and 3 ranks (each rank checks its own
// shares; MPI-IO opens are collective, so every rank creates and frees its loaders in the
// same order). usage: test_loader_mpiio [SHARED_DIR] -- rank 0 writes the shards into
// SHARED_DIR (a fresh temporary directory when omitted, one rank only).
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"
#include "mpi/comm.h"
#include "data/h5util.h"
#include "data/loader.h"

static char dir[512];
static Cohort src;  // what the shards hold, in data-set order (every rank builds it)

// 41 samples (2,3,4,5) with 3 metadata columns and masks, split over 3 shards of 14, 13, 14.
static void build_cohort(void) {
    Shape s = { 2, 3, 4, 5 };
    int n = 41;
    cohort_alloc(&src, n, s, 3);
    cohort_alloc_masks(&src);
    Rng r;
    rng_seed(&r, 7);
    size_t per = shape_numel(s), V = shape_spatial(s);
    tu_fill_uniform(src.images, (size_t)n * per, -3.0f, 3.0f, &r);
    for (int i = 0; i < n; i++) {
        src.labels[i] = i % 3 == 0;
        src.meta[i * 3 + 0] = 20.0 + 0.5 * i;
        src.meta[i * 3 + 1] = i % 2;
        src.meta[i * 3 + 2] = i % 4;
        for (size_t v = 0; v < V; v++) src.masks[(size_t)i * V + v] = (uint8_t)((i + v) % 3 == 0);
    }
    const char *cols[3] = { "age", "sex", "site" };
    for (int j = 0; j < 3; j++) src.columns[j] = xstrdup(cols[j]);
    src.kinds[0] = META_CONTINUOUS;
    src.kinds[1] = src.kinds[2] = META_CATEGORICAL;
}

// Samples [first, first + n) of src as one shard.
static int write_part(const char *path, int first, int n, DfError *err) {
    Cohort c;
    cohort_alloc(&c, n, src.shape, src.k);
    cohort_alloc_masks(&c);
    size_t per = shape_numel(src.shape), V = shape_spatial(src.shape);
    memcpy(c.images, src.images + (size_t)first * per, sizeof(float) * per * (size_t)n);
    memcpy(c.masks, src.masks + (size_t)first * V, V * (size_t)n);
    memcpy(c.labels, src.labels + first, sizeof(int32_t) * (size_t)n);
    memcpy(c.meta, src.meta + (size_t)first * src.k, sizeof(double) * (size_t)n * (size_t)src.k);
    for (int j = 0; j < src.k; j++) { c.columns[j] = xstrdup(src.columns[j]); c.kinds[j] = src.kinds[j]; }
    int rc = shard_write(path, &c, err);
    cohort_free(&c);
    return rc;
}

static Dataset *load(const char *read, DfError *err) {
    char text[1024];
    snprintf(text, sizeof text, "[data]\nsource = %s\ncache = disk\nval_fraction = 0.25\nflip = w\nshift = 1\nprefetch = 2\nread = %s\n", dir, read);
    Ini ini;
    Dataset *ds = xcalloc(1, sizeof *ds);
    if (ini_parse_string(&ini, text, "test.ini", err) || dataset_from_config(ds, &ini, err)) {
        free(ds);
        ds = NULL;
    }
    ini_free(&ini);
    return ds;
}

static void drop(Dataset *ds) {
    if (ds) dataset_free(ds);
    free(ds);
}

// One epoch of this rank's shares from both loaders, compared batch by batch. Returns the
// number of batches in which this rank held no sample.
static int compare_epoch(const Dataset *a, const Dataset *b, int split, int B, int epoch, int augment) {
    int rank = dist_rank(), P = dist_size(), empty = 0;
    LoaderConfig cfg = { .split = split, .global_batch = B, .rank = rank, .nranks = P, .seed = 9, .shuffle = split == SPLIT_TRAIN,
                         .augment = augment, .prefetch = 2, .positives = split == SPLIT_TRAIN };
    DfError err = { "" };
    // Same creation order on every rank (b's MPI-IO open is collective).
    Loader *la = loader_create(a, &cfg, &err), *lb = loader_create(b, &cfg, &err);
    CU_ASSERT_PTR_NOT_NULL(la);
    CU_ASSERT_PTR_NOT_NULL(lb);
    if (!la || !lb) { fprintf(stderr, "  %s\n", err.msg); loader_free(la); loader_free(lb); return 0; }
    int sa = loader_begin_epoch(la, epoch), sb = loader_begin_epoch(lb, epoch);
    CU_ASSERT_EQUAL(sa, sb);
    size_t per = shape_numel(a->cohort.shape), V = shape_spatial(a->cohort.shape);
    int k = a->cohort.k;
    for (int s = 0; s < sa; s++) {
        const Batch *x = loader_next(la, &err), *y = loader_next(lb, &err);
        CU_ASSERT_PTR_NOT_NULL(x);
        CU_ASSERT_PTR_NOT_NULL(y);
        if (!x || !y) { fprintf(stderr, "  %s\n", err.msg); break; }
        CU_ASSERT_EQUAL(x->n, y->n);
        CU_ASSERT_EQUAL(x->global_n, y->global_n);
        CU_ASSERT_EQUAL(x->first_sample, y->first_sample);
        if (x->n != y->n) continue;
        empty += y->n == 0;
        int n = y->n;
        CU_ASSERT_EQUAL(memcmp(x->index, y->index, sizeof(int) * (size_t)n), 0);
        CU_ASSERT_EQUAL(memcmp(x->images, y->images, sizeof(float) * per * (size_t)n), 0);
        CU_ASSERT_EQUAL(memcmp(x->labels, y->labels, sizeof(int32_t) * (size_t)n), 0);
        CU_ASSERT_EQUAL(memcmp(x->meta, y->meta, sizeof(double) * (size_t)k * (size_t)n), 0);
        CU_ASSERT_PTR_NOT_NULL(y->masks);
        if (x->masks && y->masks) CU_ASSERT_EQUAL(memcmp(x->masks, y->masks, V * (size_t)n), 0);
        // CLAD's positives (training): partners read through either path, the same bits
        CU_ASSERT_EQUAL(x->positives != NULL, cfg.positives);
        CU_ASSERT_EQUAL(y->positives != NULL, cfg.positives);
        if (x->positives && y->positives) {
            CU_ASSERT_EQUAL(memcmp(x->positives, y->positives, sizeof(float) * per * (size_t)n), 0);
            CU_ASSERT_EQUAL(memcmp(x->positive_bg, y->positive_bg, sizeof(int32_t) * (size_t)n), 0);
        }
        // Without augmentation the images and masks are the ones written.
        for (int j = 0; j < n && !augment; j++) {
            CU_ASSERT_EQUAL(memcmp(y->images + (size_t)j * per, src.images + (size_t)y->index[j] * per, sizeof(float) * per), 0);
            CU_ASSERT_EQUAL(memcmp(y->masks + (size_t)j * V, src.masks + (size_t)y->index[j] * V, V), 0);
            CU_ASSERT_EQUAL(y->labels[j], src.labels[y->index[j]]);
        }
    }
    CU_ASSERT_PTR_NULL(loader_next(lb, &err));
    CU_ASSERT_FALSE(loader_failed(lb));
    CU_ASSERT_EQUAL(loader_batches(lb), sb);
    loader_free(la);  // same order on every rank (H5Fclose is collective)
    loader_free(lb);
    return empty;
}

static void test_mpiio_equals_pread(void) {
    DfError err = { "" };
    Dataset *a = load("pread", &err);
    if (!a) fprintf(stderr, "  %s\n", err.msg);
    Dataset *b = load("mpiio", &err);
    if (!b) fprintf(stderr, "  %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    if (!a || !b) { drop(a); drop(b); return; }
    CU_ASSERT_EQUAL(a->in_memory, 0);
    CU_ASSERT_EQUAL(b->in_memory, 0);
    CU_ASSERT_EQUAL(a->n_files, 3);
    CU_ASSERT_EQUAL(a->read, DATA_READ_PREAD);
    CU_ASSERT_EQUAL(b->read, DATA_READ_MPIIO);
    CU_ASSERT_EQUAL(a->prefetch, 2);
    CU_ASSERT_EQUAL(b->prefetch, 0);  // forced: MPI-IO reads stay on the main thread
    CU_ASSERT_EQUAL(a->n_train, b->n_train);
    // B = n_train - 1: the last global batch holds one sample, so at 2 and 3 ranks some
    // ranks read nothing in it; B = 5 and 7: uneven shares (at 2 and 3 ranks).
    int Bs[3] = { 5, 7, a->n_train - 1 }, empty = 0;
    for (int i = 0; i < 3; i++)
        for (int e = 0; e < 2; e++) {
            empty += compare_epoch(a, b, SPLIT_TRAIN, Bs[i], e, 1);
            empty += compare_epoch(a, b, SPLIT_TRAIN, Bs[i], e, 0);
        }
    compare_epoch(a, b, SPLIT_VAL, 4, 0, 0);
    if (dist_size() > 1 && dist_rank() == 0) CU_ASSERT(empty > 0);  // rank 0's share of a 1-sample batch is empty
    drop(a);
    drop(b);
}

static void test_bad_read_value(void) {
    DfError err = { "" };
    Dataset *ds = load("mmap", &err);
    CU_ASSERT_PTR_NULL(ds);
    drop(ds);
    CU_ASSERT(tu_contains(err.msg, "read = 'mmap' is not one of: pread, mpiio"));
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    h5_quiet();
    int rank = dist_rank(), own = argc < 2;
    if (own && dist_size() > 1) {
        if (rank == 0) fprintf(stderr, "usage: mpirun -np P %s SHARED_DIR (one shared directory for every rank)\n", argv[0]);
        dist_finalize();
        return 2;
    }
    if (own) {
        if (tu_tmpdir_create("df-mpiio") != 0) return 1;
        snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    } else {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    }
    build_cohort();
    double bad = 0;
    if (rank == 0) {
        DfError err = { "" };
        char p[600];
        int first[4] = { 0, 14, 27, 41 };
        for (int f = 0; f < 3 && !bad; f++) {
            snprintf(p, sizeof p, "%s/part-%d.h5", dir, f);
            if (write_part(p, first[f], first[f + 1] - first[f], &err)) { fprintf(stderr, "%s\n", err.msg); bad = 1; }
        }
    }
    dist_allreduce_max_f64(&bad, 1);  // every rank waits for rank 0's shards
    if (bad) { dist_finalize(); return 1; }
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("loader mpiio", NULL, NULL);
    CU_add_test(s, "read = mpiio gives the batches of read = pread", test_mpiio_equals_pread);
    CU_add_test(s, "read = bad value", test_bad_read_value);
    int rc = tu_run_all();
    cohort_free(&src);
    dist_barrier();  // nobody removes the shards while another rank reads them
    if (own) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    dist_finalize();
    return rc;
}
