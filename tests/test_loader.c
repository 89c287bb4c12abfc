// test_loader.c: the batch loader (data/loader.c) driven exactly as the trainer drives it, the
// [data] splits (data/dataset.c) and the new generators (data/synth.c).
//   - sampler invariance: 1, 2 and 4 simulated ranks (one loader per rank) see the same
//     global batches -- indices, images (augmented too), labels, metadata -- and their
//     shares are disjoint and cover each epoch's permutation; deterministic by seed+epoch;
//   - on-disk shards read with pread (prefetch thread) and through HDF5 (compressed shard,
//     synchronous) give the same bytes as the in-memory cohort;
//   - subject-level splits, stratified k-fold, a test split;
//   - mdn2d / video / biased-fmnist generators (the latter skipped without the IDX files).
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"
#include "data/h5util.h"
#include "data/loader.h"
#include "data/paste.h"
#include "data/synth.h"

static char tmpdir[256];
static char *tp(const char *name) {
    static char bufs[16][512];
    static int k;
    char *b = bufs[k++ % 16];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static Dataset *load(const char *text) {
    Ini ini;
    DfError err = { "" };
    Dataset *ds = xcalloc(1, sizeof *ds);
    if (ini_parse_string(&ini, text, "test.ini", &err) || dataset_from_config(ds, &ini, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        CU_FAIL("dataset_from_config");
        ini_free(&ini);
        free(ds);
        return NULL;
    }
    ini_free(&ini);
    return ds;
}

// dataset_from_config fails with a message holding every one of the NULL-ended strings.
static void expect_load_error(const char *text, ...) {
    Ini ini;
    DfError err = { "" };
    Dataset ds;
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, text, "bad.ini", &err), 0);
    CU_ASSERT_EQUAL(dataset_from_config(&ds, &ini, &err), -1);
    ini_free(&ini);
    va_list ap;
    va_start(ap, text);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(err.msg, want)) {
            fprintf(stderr, "\n  '%s' not in: %s\n", want, err.msg);
            CU_FAIL("message");
        }
    va_end(ap);
}

static void drop(Dataset *ds) {
    if (ds) dataset_free(ds);
    free(ds);
}

// Everything one epoch delivers, concatenated over ranks in rank order per step.
typedef struct {
    int steps, n;
    int *index, *bg;  // per sample: its index; per step: its global batch size
    float *images;
    int32_t *labels;
    double *meta;
} Epoch;

static void epoch_free(Epoch *e) { free(e->index); free(e->bg); free(e->images); free(e->labels); free(e->meta); memset(e, 0, sizeof *e); }

// Runs epoch `epoch` with P loaders (ranks 0..P-1) round-robin step by step, as P trainer
// processes would, and checks each step's shares are [Bg*r/P, Bg*(r+1)/P).
static Epoch run_epoch(const Dataset *ds, int split, int B, int P, int epoch, int shuffle, int augment, int prefetch, int drop_last) {
    Epoch out = { 0 };
    Loader **L = xcalloc((size_t)P, sizeof(Loader *));
    DfError err = { "" };
    int steps = -1;
    for (int r = 0; r < P; r++) {
        LoaderConfig cfg = { .split = split, .global_batch = B, .rank = r, .nranks = P, .seed = 42, .shuffle = shuffle,
                             .drop_last = drop_last, .augment = augment, .prefetch = prefetch };
        L[r] = loader_create(ds, &cfg, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(L[r]);
        int s = loader_begin_epoch(L[r], epoch);
        if (steps >= 0) CU_ASSERT_EQUAL(s, steps);
        steps = s;
    }
    size_t per = shape_numel(ds->cohort.shape);
    int k = ds->cohort.k, cap = ds->cohort.n + 1;
    out.index = xmalloc(sizeof(int) * (size_t)cap);
    out.bg = xmalloc(sizeof(int) * (size_t)(steps + 1));
    out.images = xmalloc(sizeof(float) * per * (size_t)cap);
    out.labels = xmalloc(sizeof(int32_t) * (size_t)cap);
    out.meta = xmalloc(sizeof(double) * (size_t)cap * (size_t)(k ? k : 1));
    out.steps = steps;
    for (int s = 0; s < steps; s++) {
        int start = out.n;
        for (int r = 0; r < P; r++) {
            const Batch *b = loader_next(L[r], &err);
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
            int lo, hi;
            loader_share(b->global_n, r, P, &lo, &hi);
            CU_ASSERT_EQUAL(b->n, hi - lo);
            CU_ASSERT_EQUAL(b->step, s);
            CU_ASSERT_EQUAL(b->first_sample, (long)s * B + lo);
            CU_ASSERT_EQUAL(out.n - start, lo);
            if (r == 0) out.bg[s] = b->global_n;
            else CU_ASSERT_EQUAL(b->global_n, out.bg[s]);
            for (int j = 0; j < b->n; j++, out.n++) {
                out.index[out.n] = b->index[j];
                out.labels[out.n] = b->labels[j];
                memcpy(out.images + (size_t)out.n * per, b->images + (size_t)j * per, per * sizeof(float));
                memcpy(out.meta + (size_t)out.n * k, b->meta + (size_t)j * k, sizeof(double) * (size_t)k);
            }
        }
    }
    for (int r = 0; r < P; r++) {
        CU_ASSERT_PTR_NULL(loader_next(L[r], &err));  // the epoch is over
        CU_ASSERT(loader_wait_seconds(L[r]) >= 0);
        CU_ASSERT_EQUAL(loader_batches(L[r]), steps);
        loader_free(L[r]);
    }
    free(L);
    return out;
}

static int epochs_equal(const Epoch *a, const Epoch *b, size_t per, int k) {
    if (a->steps != b->steps || a->n != b->n) return 0;
    if (memcmp(a->bg, b->bg, sizeof(int) * (size_t)a->steps)) return 0;
    if (memcmp(a->index, b->index, sizeof(int) * (size_t)a->n)) return 0;
    if (memcmp(a->labels, b->labels, sizeof(int32_t) * (size_t)a->n)) return 0;
    if (memcmp(a->meta, b->meta, sizeof(double) * (size_t)a->n * (size_t)k)) return 0;
    return memcmp(a->images, b->images, sizeof(float) * per * (size_t)a->n) == 0;
}

static const char *small_mri =
    "[data]\nsource = synth:mri3d\nn = 45\nshape = 8\nseed = 3\nval_fraction = 0.2\n";

static void test_sampler_invariance(void) {
    Dataset *ds = load(small_mri);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    size_t per = shape_numel(ds->cohort.shape);
    int k = ds->cohort.k;
    for (int epoch = 0; epoch < 3; epoch++) {
        Epoch ref = run_epoch(ds, SPLIT_TRAIN, 8, 1, epoch, 1, 0, 2, 0);
        // The epoch is a permutation of the training split.
        CU_ASSERT_EQUAL(ref.n, ds->n_train);
        CU_ASSERT_EQUAL(ref.steps, (ds->n_train + 7) / 8);
        int *seen = xcalloc((size_t)ds->cohort.n, sizeof(int));
        for (int i = 0; i < ref.n; i++) seen[ref.index[i]]++;
        for (int i = 0; i < ds->n_train; i++) CU_ASSERT_EQUAL(seen[ds->train_idx[i]], 1);
        free(seen);
        // Data match the cohort.
        for (int i = 0; i < ref.n; i++) {
            CU_ASSERT_EQUAL(memcmp(ref.images + (size_t)i * per, ds->cohort.images + (size_t)ref.index[i] * per, per * sizeof(float)), 0);
            CU_ASSERT_EQUAL(ref.labels[i], ds->cohort.labels[ref.index[i]]);
        }
        for (int P = 2; P <= 4; P *= 2) {
            Epoch e = run_epoch(ds, SPLIT_TRAIN, 8, P, epoch, 1, 0, P == 2 ? 2 : 0, 0);
            CU_ASSERT(epochs_equal(&ref, &e, per, k));
            epoch_free(&e);
        }
        // Deterministic by (seed, epoch): again, same order; next epoch, another order.
        Epoch again = run_epoch(ds, SPLIT_TRAIN, 8, 1, epoch, 1, 0, 3, 0);
        CU_ASSERT(epochs_equal(&ref, &again, per, k));
        epoch_free(&again);
        Epoch next = run_epoch(ds, SPLIT_TRAIN, 8, 1, epoch + 1, 1, 0, 2, 0);
        CU_ASSERT(memcmp(next.index, ref.index, sizeof(int) * (size_t)ref.n) != 0);
        epoch_free(&next);
        epoch_free(&ref);
    }
    // Validation: split order, no shuffle; drop_last drops the partial batch.
    Epoch v = run_epoch(ds, SPLIT_VAL, 4, 2, 0, 0, 0, 1, 0);
    CU_ASSERT_EQUAL(memcmp(v.index, ds->val_idx, sizeof(int) * (size_t)ds->n_val), 0);
    epoch_free(&v);
    Epoch d = run_epoch(ds, SPLIT_TRAIN, 8, 2, 0, 1, 0, 1, 1);
    CU_ASSERT_EQUAL(d.steps, ds->n_train / 8);
    CU_ASSERT_EQUAL(d.n, d.steps * 8);
    epoch_free(&d);
    // A batch smaller than the rank count: some ranks get 0 samples, nothing breaks.
    Epoch tiny = run_epoch(ds, SPLIT_TRAIN, 3, 4, 0, 1, 0, 2, 0);
    Epoch tiny1 = run_epoch(ds, SPLIT_TRAIN, 3, 1, 0, 1, 0, 2, 0);
    CU_ASSERT(epochs_equal(&tiny, &tiny1, per, k));
    epoch_free(&tiny);
    epoch_free(&tiny1);
    drop(ds);
}

static void test_augmentation_invariance(void) {
    char text[512];
    snprintf(text, sizeof text, "%sflip = d,h,w\nshift = 2\nintensity_scale = 0.1\nintensity_shift = 0.05\nnoise = 0.1\n", small_mri);
    Dataset *ds = load(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT(ds->aug.enabled);
    size_t per = shape_numel(ds->cohort.shape);
    Epoch a1 = run_epoch(ds, SPLIT_TRAIN, 8, 1, 2, 1, 1, 2, 0);
    Epoch a4 = run_epoch(ds, SPLIT_TRAIN, 8, 4, 2, 1, 1, 0, 0);
    Epoch plain = run_epoch(ds, SPLIT_TRAIN, 8, 1, 2, 1, 0, 2, 0);
    CU_ASSERT(epochs_equal(&a1, &a4, per, ds->cohort.k));
    CU_ASSERT(memcmp(a1.images, plain.images, per * sizeof(float) * (size_t)a1.n) != 0);  // it did something
    CU_ASSERT_EQUAL(memcmp(a1.index, plain.index, sizeof(int) * (size_t)a1.n), 0);       // same order
    epoch_free(&a1); epoch_free(&a4); epoch_free(&plain);
    drop(ds);

    // A flip alone is an exact permutation of the voxels: twice = identity.
    Shape s = { 2, 3, 4, 5 };
    float x[120], y[120];
    for (int i = 0; i < 120; i++) x[i] = y[i] = (float)i;
    uint8_t m[60], m0[60];
    for (int i = 0; i < 60; i++) m[i] = m0[i] = (uint8_t)(i % 7 == 0);
    Augment aug = { .enabled = 1, .flip = { 1, 1, 1 } };
    loader_augment(x, m, s, &aug, 5, 0, 9);
    loader_augment(x, m, s, &aug, 5, 0, 9);
    CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
    CU_ASSERT_EQUAL(memcmp(m, m0, sizeof m), 0);
    // A shift moves the mask with the image.
    Augment sh = { .enabled = 1, .shift = 1 };
    for (int i = 0; i < 120; i++) x[i] = i < 60 ? (float)m0[i] : 0.0f;
    memcpy(m, m0, sizeof m);
    for (long pos = 0; pos < 5; pos++) {
        float xx[120];
        uint8_t mm[60];
        memcpy(xx, x, sizeof xx);
        memcpy(mm, m, sizeof mm);
        loader_augment(xx, mm, s, &sh, 5, 0, pos);
        for (int i = 0; i < 60; i++) CU_ASSERT_EQUAL(xx[i], (float)mm[i]);
    }
}

// noise: per sample a level sd ~ U(0, noise), per voxel x + sd * N(0,1); the mask untouched;
// the same (seed, epoch, position) gives the same bytes, and the draws before it do not move.
static void test_augmentation_noise(void) {
    enum { V = 4096 };
    Shape s = { 1, 16, 16, 16 };
    static float x[V], again[V];
    uint8_t m[V], m0[V];
    for (int i = 0; i < V; i++) m[i] = m0[i] = (uint8_t)(i % 3 == 0);
    Augment aug = { .enabled = 1, .noise = 0.2f };
    double sd_lo = 1, sd_hi = 0;
    for (long pos = 0; pos < 40; pos++) {
        for (int i = 0; i < V; i++) x[i] = again[i] = 1.0f;
        loader_augment(x, m, s, &aug, 5, 3, pos);
        loader_augment(again, NULL, s, &aug, 5, 3, pos);
        CU_ASSERT_EQUAL(memcmp(x, again, sizeof x), 0);
        double sum = 0, sq = 0;
        for (int i = 0; i < V; i++) { sum += x[i] - 1.0; sq += (x[i] - 1.0) * (x[i] - 1.0); }
        double mean = sum / V, sd = sqrt(sq / V - mean * mean);
        // the sample sd of 4096 normals is within 5 % of the level (about 4 standard errors),
        // so the level is inside [0, 0.2] give or take that
        CU_ASSERT(sd <= 0.2 * 1.05);
        CU_ASSERT(fabs(mean) <= 5.0 * sd / sqrt((double)V) + 1e-7);
        sd_lo = fmin(sd_lo, sd);
        sd_hi = fmax(sd_hi, sd);
    }
    CU_ASSERT(sd_lo < 0.05 && sd_hi > 0.15);  // 40 levels drawn over [0, 0.2]: they spread
    CU_ASSERT_EQUAL(memcmp(m, m0, sizeof m), 0);
    // With noise on, a shift still moves the image exactly as without it: the earlier draws
    // are the same. Noise 0.2 with a level drawn as 0 would not tell, so compare the rounded.
    Augment sh = { .enabled = 1, .shift = 2 }, shn = { .enabled = 1, .shift = 2, .noise = 1e-4f };
    for (int i = 0; i < V; i++) x[i] = again[i] = (float)(i % 17);
    loader_augment(x, NULL, s, &sh, 5, 3, 7);
    loader_augment(again, NULL, s, &shn, 5, 3, 7);
    int differ = 0, far = 0;
    for (int i = 0; i < V; i++) { differ += x[i] != again[i]; far += fabsf(x[i] - again[i]) > 0.01f; }
    CU_ASSERT(differ > 0 && far == 0);
}

// Shards on disk, read with pread by the prefetch thread; a gzip-compressed shard read
// through HDF5 synchronously; both equal the in-memory path.
static void test_disk_reads(void) {
    Dataset *mem = load(small_mri);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
    Cohort *c = &mem->cohort;
    size_t per = shape_numel(c->shape);
    // Two shards: samples [0, 20) and [20, 45), with masks and subject ids.
    DfError err;
    for (int part = 0; part < 2; part++) {
        int a = part ? 20 : 0, b = part ? c->n : 20;
        Cohort p;
        cohort_alloc(&p, b - a, c->shape, c->k);
        cohort_alloc_masks(&p);
        p.subjects = xcalloc((size_t)(b - a), sizeof(char *));
        memcpy(p.images, c->images + (size_t)a * per, sizeof(float) * per * (size_t)(b - a));
        memcpy(p.labels, c->labels + a, sizeof(int32_t) * (size_t)(b - a));
        memcpy(p.meta, c->meta + (size_t)a * c->k, sizeof(double) * (size_t)(b - a) * (size_t)c->k);
        for (int i = 0; i < b - a; i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "s%03d", a + i);
            p.subjects[i] = xstrdup(buf);
            for (size_t v = 0; v < shape_spatial(c->shape); v++) p.masks[(size_t)i * shape_spatial(c->shape) + v] = (uint8_t)((a + i + v) % 3 == 0);
        }
        for (int j = 0; j < c->k; j++) { p.columns[j] = xstrdup(c->columns[j]); p.kinds[j] = c->kinds[j]; }
        char name[32];
        snprintf(name, sizeof name, "shards/shard-%05d.h5", part);
        if (part == 0) mkdir(tp("shards"), 0755);
        CU_ASSERT_EQUAL_FATAL(shard_write(tp(name), &p, &err), 0);
        cohort_free(&p);
    }
    char text[2048];  // three paths of up to 600 bytes in one source line
    snprintf(text, sizeof text, "[data]\nsource = %s\ncache = disk\nval_fraction = 0.2\n", tp("shards"));
    Dataset *disk = load(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(disk);
    CU_ASSERT_EQUAL(disk->in_memory, 0);
    CU_ASSERT_EQUAL(disk->n_files, 2);
    CU_ASSERT_EQUAL(disk->cohort.n, c->n);
    CU_ASSERT(disk->cohort.has_masks);
    CU_ASSERT_PTR_NOT_NULL(disk->cohort.subjects);
    snprintf(text, sizeof text, "[data]\nsource = %s/shard-00000.h5, %s/shard-00001.h5\ncache = memory\n", tp("shards"), tp("shards"));
    Dataset *mem2 = load(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mem2);
    CU_ASSERT_EQUAL(mem2->in_memory, 1);
    // A shard named twice -- twice as itself, by another spelling, through a symbolic link,
    // or also in a directory listed -- is refused, naming it: its samples would otherwise be
    // read twice and could sit in training and validation both. So is an empty item.
    char s0[600], s1[600], ln[600];
    snprintf(s0, sizeof s0, "%s/shard-00000.h5", tp("shards"));
    snprintf(s1, sizeof s1, "%s/shard-00001.h5", tp("shards"));
    snprintf(ln, sizeof ln, "%s", tp("link.h5"));
    CU_ASSERT_EQUAL(symlink(s1, ln), 0);
    snprintf(text, sizeof text, "[data]\nsource = %s, %s\n", s0, tp("shards"));
    expect_load_error(text, "bad.ini:2: [data] source: ", s0, "listed twice", NULL);
    snprintf(text, sizeof text, "[data]\nsource = %s,%s/./shard-00000.h5\n", s0, tp("shards"));
    expect_load_error(text, s0, "listed twice", "/./shard-00000.h5", NULL);
    snprintf(text, sizeof text, "[data]\nsource = %s,%s,%s\n", s0, s1, ln);
    expect_load_error(text, s1, "listed twice", "link.h5' in item 3", NULL);
    snprintf(text, sizeof text, "[data]\nsource = %s,%s\n", tp("shards"), tp("shards"));
    expect_load_error(text, s0, "listed twice", NULL);
    snprintf(text, sizeof text, "[data]\nsource = %s,,%s\n", s0, s1);
    expect_load_error(text, "bad.ini:2: [data] source: ", "item 2 of the list of shards is empty", NULL);
    snprintf(text, sizeof text, "[data]\nsource = %s,\n", s0);
    expect_load_error(text, "item 2 of the list of shards is empty", NULL);
    expect_load_error("[data]\nsource =\n", "bad.ini:2: [data] source: no shards named", NULL);
    expect_load_error("[data]\nsource = ,\n", "bad.ini:2: [data] source: ", "item 1 of the list of shards is empty", NULL);
    Dataset inf;  // the inference path (predict, eval --data) too
    CU_ASSERT_EQUAL(dataset_from_shards(&inf, tp("shards"), &err), 0);
    dataset_free(&inf);
    snprintf(text, sizeof text, "%s,%s", ln, tp("shards"));
    CU_ASSERT_EQUAL(dataset_from_shards(&inf, text, &err), -1);
    CU_ASSERT(strstr(err.msg, ln) && strstr(err.msg, "listed twice"));
    // Same split (unique subjects: the sample-level split), same epochs.
    CU_ASSERT_EQUAL(disk->n_train, mem->n_train);
    CU_ASSERT_EQUAL(memcmp(disk->train_idx, mem->train_idx, sizeof(int) * (size_t)mem->n_train), 0);
    Epoch em = run_epoch(mem, SPLIT_TRAIN, 8, 1, 1, 1, 0, 2, 0);
    Epoch ed = run_epoch(disk, SPLIT_TRAIN, 8, 2, 1, 1, 0, 2, 0);
    Epoch e2 = run_epoch(mem2, SPLIT_TRAIN, 8, 4, 1, 1, 0, 2, 0);
    CU_ASSERT(epochs_equal(&em, &ed, per, c->k));
    CU_ASSERT(epochs_equal(&em, &e2, per, c->k));
    epoch_free(&em); epoch_free(&ed); epoch_free(&e2);

    // Masks through the loader equal the shard's.
    LoaderConfig lc = { .split = SPLIT_TRAIN, .global_batch = 5, .rank = 0, .nranks = 1, .seed = 1, .prefetch = 2 };
    Loader *L = loader_create(disk, &lc, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(L);
    loader_begin_epoch(L, 0);
    const Batch *b = loader_next(L, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b->masks);
    size_t V = shape_spatial(c->shape);
    for (int j = 0; j < b->n; j++)
        for (size_t v = 0; v < V; v++) CU_ASSERT_EQUAL(b->masks[(size_t)j * V + v], (uint8_t)((b->index[j] + v) % 3 == 0));
    // Restarting an epoch mid-way is allowed (e.g. a resumed run): it starts over.
    CU_ASSERT_EQUAL(loader_begin_epoch(L, 0), (disk->n_train + 4) / 5);
    const Batch *b0 = loader_next(L, &err);
    CU_ASSERT_EQUAL(b0->step, 0);
    int idx1[8];
    const Batch *b1 = loader_next(L, &err);
    memcpy(idx1, b1->index, sizeof(int) * (size_t)b1->n);
    // Resuming mid-epoch serves exactly the batches from that step on.
    loader_begin_epoch_at(L, 0, 1);
    const Batch *r1 = loader_next(L, &err);
    CU_ASSERT_EQUAL(r1->step, 1);
    CU_ASSERT_EQUAL(memcmp(r1->index, idx1, sizeof(int) * (size_t)r1->n), 0);
    loader_free(L);

    // A compressed shard (another writer's choice) is read through HDF5, synchronously.
    hid_t f = H5Fcreate(tp("gz.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[5] = { (hsize_t)c->n, 1, (hsize_t)c->shape.d, (hsize_t)c->shape.h, (hsize_t)c->shape.w };
    hsize_t chunk[5] = { 1, 1, dims[2], dims[3], dims[4] };
    hid_t space = H5Screate_simple(5, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 5, chunk);
    H5Pset_deflate(dcpl, 4);
    hid_t ds = H5Dcreate2(f, "images", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CU_ASSERT(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, c->images) >= 0);
    H5Dclose(ds); H5Pclose(dcpl); H5Sclose(space);
    hsize_t ld[1] = { (hsize_t)c->n }, md[2] = { (hsize_t)c->n, (hsize_t)c->k };
    CU_ASSERT_EQUAL(h5_write_i32(f, "gz.h5", "labels", c->labels, 1, ld, &err), 0);
    CU_ASSERT_EQUAL(h5_write_f64(f, "gz.h5", "meta", c->meta, 2, md, &err), 0);
    CU_ASSERT_EQUAL(h5_write_format(f, "gz.h5", SHARD_FORMAT, SHARD_VERSION, &err), 0);
    hid_t meta = H5Dopen2(f, "meta", H5P_DEFAULT);
    h5_attr_write_string(meta, "gz.h5", "columns", "age,sex,site", &err);
    h5_attr_write_string(meta, "gz.h5", "kinds", "continuous,categorical,categorical", &err);
    H5Dclose(meta);
    H5Fclose(f);
    ShardLayout lay;
    CU_ASSERT_EQUAL(shard_layout(tp("gz.h5"), &lay, &err), 1);
    snprintf(text, sizeof text, "[data]\nsource = %s\ncache = disk\n", tp("gz.h5"));
    Dataset *gz = load(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gz);
    Epoch eg = run_epoch(gz, SPLIT_TRAIN, 8, 2, 1, 1, 0, 2, 0);
    Epoch em2 = run_epoch(mem, SPLIT_TRAIN, 8, 1, 1, 1, 0, 2, 0);
    CU_ASSERT(epochs_equal(&eg, &em2, per, c->k));
    epoch_free(&eg); epoch_free(&em2);
    drop(gz); drop(disk); drop(mem2); drop(mem);
}

// ---- splits ------------------------------------------------------------------------------

static Dataset *fake(int n, int subjects_per) {
    Dataset *ds = xcalloc(1, sizeof *ds);
    cohort_alloc(&ds->cohort, n, (Shape){ 1, 1, 1, 1 }, 1);
    ds->cohort.columns[0] = xstrdup("site");
    ds->cohort.kinds[0] = META_CATEGORICAL;
    ds->cohort.subjects = xcalloc((size_t)n, sizeof(char *));
    Rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < n; i++) {
        int subj = i / subjects_per;
        char buf[32];
        snprintf(buf, sizeof buf, "sub-%d", (subj * 7919) % 1000);  // not in index order
        ds->cohort.subjects[i] = xstrdup(buf);
        Rng rs;
        rng_seed_stream(&rs, 3, (uint64_t)subj, 0);
        ds->cohort.labels[i] = (int)rng_below(&rs, 3);
        ds->cohort.meta[i] = (double)rng_below(&rs, 2);
    }
    (void)r;
    return ds;
}

static void check_partition(const Dataset *ds) {
    int n = ds->cohort.n;
    int *where = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) where[i] = -1;
    for (int i = 0; i < ds->n_train; i++) where[ds->train_idx[i]] = 0;
    for (int i = 0; i < ds->n_val; i++) { CU_ASSERT_EQUAL(where[ds->val_idx[i]], -1); where[ds->val_idx[i]] = 1; }
    for (int i = 0; i < ds->n_test; i++) { CU_ASSERT_EQUAL(where[ds->test_idx[i]], -1); where[ds->test_idx[i]] = 2; }
    for (int i = 0; i < n; i++) CU_ASSERT(where[i] >= 0);
    // A subject's samples share a split.
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!strcmp(ds->cohort.subjects[i], ds->cohort.subjects[j])) CU_ASSERT_EQUAL(where[i], where[j]);
    free(where);
}

static void test_splits(void) {
    Dataset *ds = fake(300, 3);  // 100 subjects of 3 samples
    SplitConfig sc = { .val_fraction = 0.2, .test_fraction = 0.1, .seed = 5, .stratify_column = 0 };
    DfError err = { "" };
    CU_ASSERT_EQUAL(dataset_split(ds, &sc, &err), 0);
    check_partition(ds);
    CU_ASSERT(abs(ds->n_test - 30) <= 9);  // ~10 subjects, rounding per stratum
    CU_ASSERT(abs(ds->n_val - 54) <= 12);
    // k-fold: folds of the non-test subjects partition them, each ~1/5, same test split.
    int *test0 = xmalloc(sizeof(int) * (size_t)ds->n_test), nt = ds->n_test;
    memcpy(test0, ds->test_idx, sizeof(int) * (size_t)nt);
    int *in_val = xcalloc(300, sizeof(int));
    for (int fold = 0; fold < 5; fold++) {
        SplitConfig kf = { .test_fraction = 0.1, .seed = 5, .stratify_column = 0, .kfold = 5, .fold = fold };
        CU_ASSERT_EQUAL_FATAL(dataset_split(ds, &kf, &err), 0);
        check_partition(ds);
        CU_ASSERT_EQUAL(ds->n_test, nt);
        CU_ASSERT_EQUAL(memcmp(ds->test_idx, test0, sizeof(int) * (size_t)nt), 0);
        for (int i = 0; i < ds->n_val; i++) in_val[ds->val_idx[i]]++;
        CU_ASSERT(abs(ds->n_val - (300 - nt) / 5) <= 18);
        // Stratified: each label's share in val is close to its share overall.
        int cnt[3] = { 0 }, all[3] = { 0 };
        for (int i = 0; i < ds->n_val; i++) cnt[ds->cohort.labels[ds->val_idx[i]]]++;
        for (int i = 0; i < ds->n_train; i++) all[ds->cohort.labels[ds->train_idx[i]]]++;
        for (int y = 0; y < 3; y++) CU_ASSERT(abs(4 * cnt[y] - all[y]) <= 3 * 6 * 2);
    }
    int in_test = 0;
    for (int i = 0; i < 300; i++) {
        int t = 0;
        for (int j = 0; j < nt; j++) t |= test0[j] == i;
        in_test += t;
        CU_ASSERT_EQUAL(in_val[i], t ? 0 : 1);  // every non-test sample validates exactly once
    }
    free(in_val);
    free(test0);
    dataset_free(ds);
    free(ds);
    // k-fold sizes: the folds are dealt one stratum after another, the deal going on where the
    // last stratum stopped, so the folds' sizes differ by at most 1, and so do each stratum's
    // counts in the folds (6 strata here: 3 labels x 2 sites, of a few subjects each).
    static const int sizes[] = { 7, 16, 23, 100 }, ks[] = { 2, 3, 5, 7 };
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            Dataset *f = fake(sizes[a], 1);
            int K = ks[b], lo = sizes[a], hi = 0, slo[6], shi[6], seen = 0;
            for (int q = 0; q < 6; q++) slo[q] = sizes[a], shi[q] = 0;
            for (int fold = 0; fold < K; fold++) {
                SplitConfig kf = { .seed = 5, .stratify_column = 0, .kfold = K, .fold = fold };
                if (K > sizes[a]) {  // more folds than subjects: refused, none left empty
                    CU_ASSERT_EQUAL(dataset_split(f, &kf, &err), -1);
                    CU_ASSERT(strstr(err.msg, "kfold = ") && strstr(err.msg, "subjects") && strstr(err.msg, "empty"));
                    break;
                }
                CU_ASSERT_EQUAL_FATAL(dataset_split(f, &kf, &err), 0);
                check_partition(f);
                seen += f->n_val;
                lo = DF_MIN(lo, f->n_val), hi = DF_MAX(hi, f->n_val);
                int per[6] = { 0 };
                for (int i = 0; i < f->n_val; i++) {
                    int v = f->val_idx[i];
                    per[f->cohort.labels[v] * 2 + (int)f->cohort.meta[v]]++;
                }
                for (int q = 0; q < 6; q++) slo[q] = DF_MIN(slo[q], per[q]), shi[q] = DF_MAX(shi[q], per[q]);
            }
            if (K <= sizes[a]) {
                CU_ASSERT_EQUAL(seen, sizes[a]);
                CU_ASSERT(lo >= 1 && hi - lo <= 1);
                for (int q = 0; q < 6; q++) CU_ASSERT(shi[q] - slo[q] <= 1);
            }
            dataset_free(f);
            free(f);
        }
    // More folds than the subjects outside the test split.
    Dataset *few = fake(10, 2);  // 5 subjects
    SplitConfig k5 = { .test_fraction = 0.2, .seed = 5, .kfold = 5, .fold = 0, .stratify_column = -1 };
    CU_ASSERT_EQUAL(dataset_split(few, &k5, &err), -1);
    CU_ASSERT(strstr(err.msg, "kfold = 5, but the data hold ") && strstr(err.msg, "subjects outside the test split"));
    k5.test_fraction = 0;
    CU_ASSERT_EQUAL(dataset_split(few, &k5, &err), 0);
    CU_ASSERT_EQUAL(few->n_val, 2);  // one subject of 2 samples
    dataset_free(few);
    free(few);
    // Without subject ids and with val only, the split is the original sample-level one.
    Dataset *a = load("[data]\nsource = synth:mri3d\nn = 40\nshape = 8\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->n_val, 8);
    CU_ASSERT_EQUAL(a->n_test, 0);
    drop(a);
    // Bad split keys are rejected with file:line.
    Ini ini;
    Dataset d;
    ini_parse_string(&ini, "[data]\nsource = synth:mri3d\nkfold = 5\nfold = 5\n", "bad.ini", &err);
    CU_ASSERT_EQUAL(dataset_from_config(&d, &ini, &err), -1);
    CU_ASSERT(strstr(err.msg, "bad.ini:") && strstr(err.msg, "fold"));
    ini_free(&ini);
    expect_load_error("[data]\nsource = synth:mri3d\nn = 4\nshape = 8\nkfold = 5\nfold = 1\n", "bad.ini:5: [data] kfold = 5, but the data hold 4 samples",
                      "a validation fold would be empty (kfold can be at most 4)", NULL);
    // 16 samples stratified on label and site (6 strata) in 3 folds: 6, 5 and 5 validate
    // (each stratum used to start at fold 0: 8, 5 and 3).
    for (int fold = 0; fold < 3; fold++) {
        char text[160];
        snprintf(text, sizeof text, "[data]\nsource = synth:mri3d\nn = 16\nshape = 8\nstratify = label,site\nkfold = 3\nfold = %d\n", fold);
        Dataset *k3 = load(text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(k3);
        CU_ASSERT_EQUAL(k3->n_val, fold == 0 ? 6 : 5);
        drop(k3);
    }
    ini_parse_string(&ini, "[data]\nsource = synth:mri3d\nflip = x\n", "bad.ini", &err);
    CU_ASSERT_EQUAL(dataset_from_config(&d, &ini, &err), -1);
    CU_ASSERT(strstr(err.msg, "flip") != NULL);
    ini_free(&ini);
}

// ---- generators --------------------------------------------------------------------------

static void test_mdn2d(void) {
    Cohort c;
    SynthMdn2dConfig cfg = { 2000, 1 };
    synth_mdn2d(&c, &cfg);
    CU_ASSERT(c.n == 2000 && c.shape.c == 1 && c.shape.d == 1 && c.shape.h == 32 && c.shape.w == 32);
    CU_ASSERT(c.k == 1 && !strcmp(c.columns[0], "cf"));
    // Groups: the first half label 0; cf in [1,4) / [3,6).
    double mean_cf[2] = { 0, 0 };
    for (int i = 0; i < 2000; i++) {
        int y = c.labels[i];
        CU_ASSERT_EQUAL(y, i >= 1000);
        CU_ASSERT(c.meta[i] >= (y ? 3 : 1) && c.meta[i] < (y ? 6 : 4));
        mean_cf[y] += c.meta[i] / 1000;
    }
    CU_ASSERT(fabs(mean_cf[0] - 2.5) < 0.1 && fabs(mean_cf[1] - 4.5) < 0.1);
    // The bottom-left kernel is cf * gkern: its pixel sum is cf (kernel sums to 1) up to
    // noise (256 pixels of sd 0.01: sd 0.16); the top-right quadrant is noise only.
    double worst = 0, tr = 0;
    for (int i = 0; i < 2000; i++) {
        const float *img = c.images + (size_t)i * 1024;
        double s = 0, q = 0;
        for (int r = 16; r < 32; r++) for (int col = 0; col < 16; col++) s += img[r * 32 + col];
        for (int r = 0; r < 16; r++) for (int col = 16; col < 32; col++) q += img[r * 32 + col] * img[r * 32 + col];
        worst = fmax(worst, fabs(s - c.meta[i]));
        tr += q / 256;
    }
    CU_ASSERT(worst < 0.8);
    CU_ASSERT(fabs(sqrt(tr / 2000) - 0.01) < 0.001);
    Cohort d;
    synth_mdn2d(&d, &cfg);
    CU_ASSERT_EQUAL(memcmp(c.images, d.images, sizeof(float) * 2000 * 1024), 0);
    cohort_free(&c);
    cohort_free(&d);
}

static void test_video(void) {
    Cohort c;
    SynthVideoConfig cfg = { .n = 200, .T = 6, .H = 24, .W = 24, .classes = 4, .rho = 0.9, .seed = 2 };
    synth_video(&c, &cfg);
    CU_ASSERT(c.shape.c == 3 && c.shape.d == 6 && c.has_masks && c.masks);
    int agree = 0, n_moved = 0;
    size_t V = shape_spatial(c.shape);
    for (int i = 0; i < c.n; i++) {
        agree += (int)c.meta[i] == c.labels[i];
        // The object is visible in the first frame and (counted below) moves.
        size_t plane = 24 * 24;
        long first = 0, moved = 0;
        for (size_t p = 0; p < plane; p++) first += c.masks[(size_t)i * V + p];
        CU_ASSERT(first > 4);
        for (size_t p = 0; p < plane; p++) moved += c.masks[(size_t)i * V + p] != c.masks[(size_t)i * V + 5 * plane + p];
        n_moved += moved > 0;
    }
    // Speeds are U(-1.5, 1.5) pixels per frame on each axis: a few objects creep, by less than
    // a pixel over 5 frames, so their masks can come out the same.
    printf("\n  %d of %d objects moved between frames 0 and 5\n", n_moved, c.n);
    CU_ASSERT(n_moved >= 180);
    CU_ASSERT(agree > 160 && agree < 195);  // rho = 0.9
    // brightness: the same clips times 1 + g, g in a second metadata column whose class means
    // are brightness * (2y/3 - 1) and whose spread within a class is brightness / 2
    Cohort lit;
    SynthVideoConfig cl = cfg;
    cl.brightness = 0.3;
    synth_video(&lit, &cl);
    CU_ASSERT_FATAL(lit.k == 2 && c.k == 1);
    CU_ASSERT(strcmp(lit.columns[1], "brightness") == 0 && lit.kinds[1] == META_CONTINUOUS);
    double sum[4] = { 0 }, sq[4] = { 0 };
    int cnt[4] = { 0 }, exact = 1;
    for (int i = 0; i < c.n; i++) {
        double g = lit.meta[i * 2 + 1];
        CU_ASSERT(lit.meta[i * 2] == c.meta[i] && lit.labels[i] == c.labels[i]);
        for (size_t v = 0; v < 3 * V; v += 97) exact &= lit.images[(size_t)i * 3 * V + v] == c.images[(size_t)i * 3 * V + v] * (float)(1.0 + g);
        sum[c.labels[i]] += g; sq[c.labels[i]] += g * g; cnt[c.labels[i]]++;
    }
    CU_ASSERT(exact);
    for (int y = 0; y < 4; y++) {  // 50 clips a class: the mean within 4 standard errors (0.15/sqrt(50))
        double mean = sum[y] / cnt[y], sd = sqrt(sq[y] / cnt[y] - mean * mean);
        CU_ASSERT(fabs(mean - 0.3 * (2.0 * y / 3.0 - 1.0)) < 4 * 0.15 / sqrt(cnt[y]));
        CU_ASSERT(sd > 0.1 && sd < 0.2);
    }
    cohort_free(&lit);
    cohort_free(&c);
}

static void test_biased_fmnist(void) {
    struct stat st;
    if (stat(SYNTH_FMNIST_DIR "/t10k-images-idx3-ubyte.gz", &st) != 0) {
        tu_skip(SYNTH_FMNIST_DIR " absent (Debian package dataset-fashion-mnist not installed)");
        return;
    }
    Cohort c;
    DfError err;
    SynthFmnistConfig cfg = { .dir = SYNTH_FMNIST_DIR, .n_train = 2000, .n_test = 1000, .rho = 0.99, .rho_test = 0.1, .seed = 1 };
    CU_ASSERT_EQUAL_FATAL(synth_biased_fmnist(&c, &cfg, &err), 0);
    CU_ASSERT(c.n == 3000 && c.shape.c == 3 && c.shape.h == 28 && c.has_masks);
    int agree_train = 0, agree_test = 0;
    for (int i = 0; i < c.n; i++) {
        int b = (int)c.meta[i];
        if (i < 2000) agree_train += b == c.labels[i];
        else agree_test += b == c.labels[i];
        // Background pixels carry the colour, stroke pixels are white.
        const float *img = c.images + (size_t)i * 3 * 784;
        for (int p = 0; p < 784; p += 37) {
            for (int ch = 0; ch < 3; ch++) {
                float want = c.masks[(size_t)i * 784 + p] ? 1.0f : synth_fmnist_colours[b][ch] / 255.0f;
                CU_ASSERT_EQUAL(img[ch * 784 + p], want);
            }
        }
    }
    CU_ASSERT(agree_train >= 1960);                        // rho = 0.99
    CU_ASSERT(agree_test > 60 && agree_test < 140);        // rho = 0.1: about 100 of 1000
    cohort_free(&c);
    cfg.dir = "/nonexistent";
    CU_ASSERT_EQUAL(synth_biased_fmnist(&c, &cfg, &err), -1);
    CU_ASSERT(strstr(err.msg, "/nonexistent") != NULL);
}

// CLAD's positives. Every sample's positive holds its own foreground bit for bit and, at every
// other voxel, its partner's raw background (the partner's object removed, data/paste.h); the partner is a sample of another class in the same
// global batch and the positive's background class is the partner's label; 1, 2 and 3 ranks
// make the same positives; with augmentation the positive is transformed as its anchor (where
// the anchor's augmented mask is set the two agree bit for bit).
typedef struct {
    float *pos;   // (n, per) by global position in the epoch
    int32_t *bg;  // (n)
    float *img;   // (n, per) the anchors as delivered
    uint8_t *mask;
} PosEpoch;

static PosEpoch pos_epoch(const Dataset *ds, int B, int P, int epoch, int augment) {
    int n = ds->n_train;
    size_t per = shape_numel(ds->cohort.shape), V = shape_spatial(ds->cohort.shape);
    PosEpoch e = { xcalloc((size_t)n * per, sizeof(float)), xcalloc((size_t)n, sizeof(int32_t)), xcalloc((size_t)n * per, sizeof(float)),
                   xcalloc((size_t)n * V, 1) };
    DfError err = { "" };
    for (int r = 0; r < P; r++) {
        LoaderConfig cfg = { .split = SPLIT_TRAIN, .global_batch = B, .rank = r, .nranks = P, .seed = 7, .shuffle = 1,
                             .augment = augment, .prefetch = r % 2 ? 2 : 0, .positives = 1 };
        Loader *l = loader_create(ds, &cfg, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(l);
        loader_begin_epoch(l, epoch);
        const Batch *b;
        while ((b = loader_next(l, &err))) {
            CU_ASSERT_PTR_NOT_NULL_FATAL(b->positives);
            for (int j = 0; j < b->n; j++) {
                long g = b->first_sample + j;
                memcpy(e.pos + g * per, b->positives + j * per, per * sizeof(float));
                memcpy(e.img + g * per, b->images + j * per, per * sizeof(float));
                memcpy(e.mask + g * V, b->masks + j * V, V);
                e.bg[g] = b->positive_bg[j];
            }
        }
        CU_ASSERT(!loader_failed(l));
        loader_free(l);
    }
    return e;
}

static void pos_free(PosEpoch *e) { free(e->pos); free(e->bg); free(e->img); free(e->mask); }

static void test_positives(void) {
    Dataset *ds = load("[data]\nsource = synth:video\nn = 60\nshape = 4,8,8\nclasses = 3\nseed = 5\nval_fraction = 0.2\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    const Cohort *c = &ds->cohort;
    int n = ds->n_train, B = 10, epoch = 1;
    size_t per = shape_numel(c->shape), V = shape_spatial(c->shape);
    PosEpoch e1 = pos_epoch(ds, B, 1, epoch, 0);
    int *order = xmalloc(sizeof(int) * (size_t)n), glab[16], partner[16];
    float *bg_only = xmalloc(per * sizeof(float));
    loader_epoch_order(order, ds->train_idx, n, 7, epoch, 1);
    long fg = 0, bgv = 0, moved = 0;
    for (int start = 0; start < n; start += B) {
        int Bg = DF_MIN(B, n - start);
        for (int g = 0; g < Bg; g++) glab[g] = c->labels[order[start + g]];
        loader_positive_partners(partner, glab, Bg, 7, epoch, start);
        for (int g = 0; g < Bg; g++) {
            int idx = order[start + g], pidx = order[start + partner[g]];
            CU_ASSERT(c->labels[pidx] != c->labels[idx]);  // every batch here holds several classes
            CU_ASSERT_EQUAL(e1.bg[start + g], c->labels[pidx]);
            const float *pos = e1.pos + (size_t)(start + g) * per;
            paste_background_only(bg_only, c->images + (size_t)pidx * per, c->masks + (size_t)pidx * V, c->shape);
            for (size_t v = 0; v < per; v++) {
                int in_fg = c->masks[(size_t)idx * V + v % V] != 0;
                float want = in_fg ? c->images[(size_t)idx * per + v] : bg_only[v];
                if (memcmp(&pos[v], &want, sizeof want) != 0) { CU_FAIL("positive voxel"); break; }
                fg += in_fg;
                bgv += !in_fg;
                moved += !in_fg && pos[v] != c->images[(size_t)idx * per + v];
            }
        }
    }
    CU_ASSERT(fg > 0 && bgv > 0 && moved > bgv / 2);  // the scenes differ between classes
    free(bg_only);
    for (int P = 2; P <= 3; P++) {
        PosEpoch eP = pos_epoch(ds, B, P, epoch, 0);
        CU_ASSERT(memcmp(eP.pos, e1.pos, (size_t)n * per * sizeof(float)) == 0);
        CU_ASSERT(memcmp(eP.bg, e1.bg, (size_t)n * sizeof(int32_t)) == 0);
        pos_free(&eP);
    }
    pos_free(&e1);
    // the anchor's augmentation: where its (augmented) mask is set, anchor and positive agree
    dataset_free(ds);
    free(ds);
    ds = load("[data]\nsource = synth:video\nn = 60\nshape = 4,8,8\nclasses = 3\nseed = 5\nval_fraction = 0.2\n"
              "flip = h,w\nshift = 1\nintensity_scale = 0.2\nintensity_shift = 0.1\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    PosEpoch a1 = pos_epoch(ds, B, 1, epoch, 1), a3 = pos_epoch(ds, B, 3, epoch, 1), plain = pos_epoch(ds, B, 1, epoch, 0);
    CU_ASSERT(memcmp(a1.pos, a3.pos, (size_t)n * per * sizeof(float)) == 0);
    CU_ASSERT(memcmp(a1.pos, plain.pos, (size_t)n * per * sizeof(float)) != 0);  // augmented
    long agree = 0, set = 0;
    for (int i = 0; i < n; i++)
        for (size_t v = 0; v < per; v++)
            if (a1.mask[(size_t)i * V + v % V]) {
                set++;
                agree += memcmp(&a1.pos[(size_t)i * per + v], &a1.img[(size_t)i * per + v], sizeof(float)) == 0;
            }
    CU_ASSERT(set > 0 && agree == set);
    pos_free(&a1); pos_free(&a3); pos_free(&plain);
    free(order);
    drop(ds);
    // positives need masks; a batch of one class pairs each sample with itself
    ds = load(small_mri);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT(!ds->cohort.has_masks);
    LoaderConfig cfg = { .split = SPLIT_TRAIN, .global_batch = 4, .nranks = 1, .positives = 1 };
    DfError err = { "" };
    CU_ASSERT_PTR_NULL(loader_create(ds, &cfg, &err));
    CU_ASSERT(tu_contains(err.msg, "synth:mri3d") && tu_contains(err.msg, "no foreground masks"));
    drop(ds);
    int same[4] = { 2, 2, 2, 2 }, mixed[4] = { 0, 1, 1, 1 };
    loader_positive_partners(partner, same, 4, 1, 0, 0);
    for (int g = 0; g < 4; g++) CU_ASSERT_EQUAL(partner[g], g);
    loader_positive_partners(partner, mixed, 4, 1, 0, 0);
    CU_ASSERT(partner[0] >= 1 && partner[1] == 0 && partner[2] == 0 && partner[3] == 0);
}

int main(void) {
    h5_quiet();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/df-loader-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("loader", NULL, NULL);
    CU_add_test(s, "1, 2 and 4 ranks see the same global batches", test_sampler_invariance);
    CU_add_test(s, "augmentation: seeded per sample, rank-count invariant", test_augmentation_invariance);
    CU_add_test(s, "augmentation: noise, a level per sample", test_augmentation_noise);
    CU_add_test(s, "shards on disk (pread, HDF5 fallback) equal memory", test_disk_reads);
    CU_add_test(s, "CLAD's positives: foreground, partner's background, ranks, augmentation", test_positives);
    s = CU_add_suite("splits", NULL, NULL);
    CU_add_test(s, "subject-level, stratified, k-fold, test split", test_splits);
    s = CU_add_suite("generators", NULL, NULL);
    CU_add_test(s, "mdn2d", test_mdn2d);
    CU_add_test(s, "video", test_video);
    CU_add_test(s, "biased-fmnist", test_biased_fmnist);
    int rc = tu_run_all();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
