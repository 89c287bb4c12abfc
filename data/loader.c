// loader.c: distributed sampler, raw shard reads, prefetch thread, MPI-IO reads, augmentation
// (loader.h).
#include "data/loader.h"
#include "base/rng.h"
#include "mpi/comm.h"
#include "mpi/h5mpi.h"
#include "data/h5util.h"
#include "data/paste.h"
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUG_STREAM 0xa06e17ULL
#define POSITIVE_STREAM 0x9051717eULL

typedef struct {
    Batch b;
} Slot;

struct Loader {
    const Dataset *ds;
    LoaderConfig cfg;
    const int *split_idx;
    int n_split;
    int *own_idx;            // SPLIT_ALL: the identity order, owned
    Shape shape;
    size_t per, V;  // floats per sample, voxels per channel
    int k, has_masks, max_local;
    // Positives: the global batch's labels and partners, and a partner's raw image (only the
    // thread filling a batch uses them: the producer, or the main thread without prefetch).
    int *glabels, *partner;
    float *bg, *bg_only;
    uint8_t *bg_mask;
    // Samples on disk: one descriptor and layout per shard (raw) or HDF5 reads (!raw).
    int on_disk, raw;
    int *fds;
    ShardLayout *layouts;
    // [data] read = mpiio: every shard open on every rank through the MPI-IO driver, its
    // /images (and /masks) datasets, their file spaces (hyperslab selected per read), the
    // one-sample memory spaces and the independent-transfer property list. -1: not open.
    int mpiio;
    hid_t *h5f, *h5img, *h5mask, *img_space, *mask_space;
    hid_t img_mem, mask_mem, dxpl;
    // The epoch.
    int epoch, steps, *order;
    // The ring of prefetched batches and the thread filling it.
    int depth;  // slots
    Slot *slots;
    int *ready;  // ready[slot] = the step it holds, -1 when none
    int threaded, stop, busy, active, gen;
    int produce_next, released, handed;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int failed;              // 0, or the exit status of the failure (loader_failed)
    DfError err;
    double wait;
    long served;
};

void loader_share(int Bg, int rank, int nranks, int *lo, int *hi) {
    *lo = (int)((long)Bg * rank / nranks);
    *hi = (int)((long)Bg * (rank + 1) / nranks);
}

void loader_epoch_order(int *order, const int *split_idx, int n, uint64_t seed, int epoch, int shuffle) {
    if (!shuffle) {
        memcpy(order, split_idx, sizeof(int) * (size_t)n);
        return;
    }
    int *perm = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    Rng r;
    rng_seed_stream(&r, seed, (uint64_t)epoch, LOADER_STREAM);
    rng_permutation(&r, perm, n);
    for (int i = 0; i < n; i++) order[i] = split_idx[perm[i]];
    free(perm);
}

// ---- augmentation ------------------------------------------------------------------------

static void flip_axis(float *x, int C, int D, int H, int W, int axis) {
    for (int c = 0; c < C; c++)
        for (int z = 0; z < D; z++)
            for (int y = 0; y < H; y++) {
                float *row = x + (((size_t)c * D + z) * H + y) * W;
                if (axis == 2) {
                    for (int a = 0, b = W - 1; a < b; a++, b--) { float t = row[a]; row[a] = row[b]; row[b] = t; }
                } else if (axis == 1 && y < H / 2) {
                    float *other = x + (((size_t)c * D + z) * H + (H - 1 - y)) * W;
                    for (int i = 0; i < W; i++) { float t = row[i]; row[i] = other[i]; other[i] = t; }
                } else if (axis == 0 && z < D / 2) {
                    float *other = x + (((size_t)c * D + (D - 1 - z)) * H + y) * W;
                    for (int i = 0; i < W; i++) { float t = row[i]; row[i] = other[i]; other[i] = t; }
                }
            }
}

static void flip_axis_u8(uint8_t *m, int D, int H, int W, int axis) {
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++) {
            uint8_t *row = m + ((size_t)z * H + y) * W;
            if (axis == 2) {
                for (int a = 0, b = W - 1; a < b; a++, b--) { uint8_t t = row[a]; row[a] = row[b]; row[b] = t; }
            } else if (axis == 1 && y < H / 2) {
                uint8_t *o = m + ((size_t)z * H + (H - 1 - y)) * W;
                for (int i = 0; i < W; i++) { uint8_t t = row[i]; row[i] = o[i]; o[i] = t; }
            } else if (axis == 0 && z < D / 2) {
                uint8_t *o = m + ((size_t)(D - 1 - z) * H + y) * W;
                for (int i = 0; i < W; i++) { uint8_t t = row[i]; row[i] = o[i]; o[i] = t; }
            }
        }
}

// out[z][y][x] = in[z - dz][y - dy][x - dx] (zero outside), one channel of bytes or floats.
#define SHIFT_BODY(T)                                                                          \
    do {                                                                                       \
        T *tmp = xmalloc(sizeof(T) * (size_t)D * H * W);                                       \
        memset(tmp, 0, sizeof(T) * (size_t)D * H * W);                                         \
        for (int z = 0; z < D; z++) {                                                          \
            int sz = z - dz;                                                                   \
            if (sz < 0 || sz >= D) continue;                                                   \
            for (int y = 0; y < H; y++) {                                                      \
                int sy = y - dy;                                                               \
                if (sy < 0 || sy >= H) continue;                                               \
                int x0 = DF_MAX(0, dx), x1 = DF_MIN(W, W + dx);                                \
                if (x1 > x0)                                                                   \
                    memcpy(tmp + ((size_t)z * H + y) * W + x0, x + ((size_t)sz * H + sy) * W + x0 - dx, \
                           sizeof(T) * (size_t)(x1 - x0));                                     \
            }                                                                                  \
        }                                                                                      \
        memcpy(x, tmp, sizeof(T) * (size_t)D * H * W);                                         \
        free(tmp);                                                                             \
    } while (0)
static void shift_f32(float *x, int D, int H, int W, int dz, int dy, int dx) { SHIFT_BODY(float); }
static void shift_u8(uint8_t *x, int D, int H, int W, int dz, int dy, int dx) { SHIFT_BODY(uint8_t); }

void loader_augment(float *x, uint8_t *mask, Shape s, const Augment *aug, uint64_t seed, int epoch, long position) {
    Rng r;
    rng_seed_stream(&r, seed ^ AUG_STREAM, (uint64_t)epoch, (uint64_t)position);
    // Always the same draws in the same order, whatever is enabled.
    int coin[3], d[3];
    for (int a = 0; a < 3; a++) coin[a] = (int)rng_below(&r, 2);
    for (int a = 0; a < 3; a++) d[a] = aug->shift > 0 ? (int)rng_below(&r, (uint64_t)(2 * aug->shift + 1)) - aug->shift : 0;
    double a_scale = 1.0 + aug->scale * (2.0 * rng_uniform(&r) - 1.0);
    double b_off = aug->offset * (2.0 * rng_uniform(&r) - 1.0);
    int dims[3] = { s.d, s.h, s.w };
    for (int a = 0; a < 3; a++)
        if (aug->flip[a] && coin[a] && dims[a] > 1) {
            flip_axis(x, s.c, s.d, s.h, s.w, a);
            if (mask) flip_axis_u8(mask, s.d, s.h, s.w, a);
        }
    if (d[0] || d[1] || d[2]) {
        size_t V = shape_spatial(s);
        for (int c = 0; c < s.c; c++) shift_f32(x + (size_t)c * V, s.d, s.h, s.w, d[0], d[1], d[2]);
        if (mask) shift_u8(mask, s.d, s.h, s.w, d[0], d[1], d[2]);
    }
    if (aug->scale > 0 || aug->offset > 0) {
        size_t n = shape_numel(s);
        float fa = (float)a_scale, fb = (float)b_off;
        for (size_t i = 0; i < n; i++) x[i] = x[i] * fa + fb;
    }
    // Last, so the draws above stay what they were before this option existed. A level
    // drawn per sample, so the network cannot learn any one noise level (scanner sites
    // differ in theirs: a variance effect no linear MDN regresses out, docs/mdn.md).
    if (aug->noise > 0) {
        size_t n = shape_numel(s);
        float sd = (float)(aug->noise * rng_uniform(&r));
        for (size_t i = 0; i < n; i++) x[i] += sd * rng_normal_fast(&r);
    }
}

// ---- reading -----------------------------------------------------------------------------

static int file_of(const Loader *l, int idx) {
    int lo = 0, hi = l->ds->n_files - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->ds->files[mid].first <= idx) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int pread_all(int fd, void *buf, size_t n, int64_t off) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r; n -= (size_t)r; off += r;
    }
    return 0;
}

// Sample `local` of shard f through the MPI-IO driver: a one-sample hyperslab of /images
// (and /masks), an independent transfer (this rank alone; others may read more, fewer or
// no samples of this batch). Main thread only.
static int read_sample_mpiio(Loader *l, int f, int local, float *x, uint8_t *mask, DfError *err) {
    const char *path = l->ds->files[f].path;
    hsize_t off[5] = { (hsize_t)local, 0, 0, 0, 0 };
    hsize_t icnt[5] = { 1, (hsize_t)l->shape.c, (hsize_t)l->shape.d, (hsize_t)l->shape.h, (hsize_t)l->shape.w };
    if (H5Sselect_hyperslab(l->img_space[f], H5S_SELECT_SET, off, NULL, icnt, NULL) < 0 ||
        H5Dread(l->h5img[f], H5T_NATIVE_FLOAT, l->img_mem, l->img_space[f], l->dxpl, x) < 0)
        return df_err(err, "%s: images: cannot read sample %d through MPI-IO", path, local);
    if (!mask) return 0;
    hsize_t mcnt[5] = { 1, 1, (hsize_t)l->shape.d, (hsize_t)l->shape.h, (hsize_t)l->shape.w };
    if (H5Sselect_hyperslab(l->mask_space[f], H5S_SELECT_SET, off, NULL, mcnt, NULL) < 0 ||
        H5Dread(l->h5mask[f], H5T_NATIVE_UINT8, l->mask_mem, l->mask_space[f], l->dxpl, mask) < 0)
        return df_err(err, "%s: masks: cannot read sample %d through MPI-IO", path, local);
    return 0;
}

// One sample into x (per floats) and mask (V bytes, or NULL).
static int read_sample(Loader *l, int idx, float *x, uint8_t *mask, DfError *err) {
    const Cohort *c = &l->ds->cohort;
    if (!l->on_disk) {
        memcpy(x, c->images + (size_t)idx * l->per, l->per * sizeof(float));
        if (mask) memcpy(mask, c->masks + (size_t)idx * l->V, l->V);
        return 0;
    }
    int f = file_of(l, idx), local = idx - l->ds->files[f].first;
    const char *path = l->ds->files[f].path;
    if (l->mpiio) return read_sample_mpiio(l, f, local, x, mask, err);
    if (l->raw) {
        const ShardLayout *lay = &l->layouts[f];
        if (pread_all(l->fds[f], x, lay->image_bytes, lay->image_off[local]) != 0)
            return df_err(err, "%s: images: cannot read sample %d: %s", path, local, errno ? strerror(errno) : "short read");
        if (mask && pread_all(l->fds[f], mask, lay->mask_bytes, lay->mask_off[local]) != 0)
            return df_err(err, "%s: masks: cannot read sample %d: %s", path, local, errno ? strerror(errno) : "short read");
        return 0;  // little-endian float32 on a little-endian host (checked in loader_create)
    }
    if (shard_read_images(path, local, 1, x, err)) return -1;
    if (mask && shard_read_masks(path, local, 1, mask, err)) return -1;
    return 0;
}

// Sample idx as read into x: every voxel finite, else bad input (status 2) naming its shard,
// its index there and its subject. The pass runs over a sample just read (in cache), so it
// costs a fraction of the read, and every sample a run uses is checked the first time it is.
static int check_sample(const Loader *l, int idx, const float *x, DfError *err) {
    if (df_first_nonfinite(x, l->per) < 0) return 0;
    char path[512], who[256];
    dataset_sample_name(l->ds, idx, path, sizeof path, who, sizeof who);
    cohort_check_image(x, l->shape, path, who, err);
    return DF_EXIT_INPUT;
}

// A sample read and checked: 0, or the exit status of the failure (a read error: 1).
static int read_checked(Loader *l, int idx, float *x, uint8_t *mask, DfError *err) {
    if (read_sample(l, idx, x, mask, err)) return DF_EXIT_FAIL;
    return check_sample(l, idx, x, err);
}

void loader_positive_partners(int *partner, const int *labels, int Bg, uint64_t seed, int epoch, long first) {
    for (int g = 0; g < Bg; g++) {
        int others = 0;
        for (int h = 0; h < Bg; h++) others += labels[h] != labels[g];
        partner[g] = g;
        if (!others) continue;
        Rng r;
        rng_seed_stream(&r, seed ^ POSITIVE_STREAM, (uint64_t)epoch, (uint64_t)(first + g));
        int pick = (int)rng_below(&r, (uint64_t)others);
        for (int h = 0; h < Bg; h++)
            if (labels[h] != labels[g] && pick-- == 0) { partner[g] = h; break; }
    }
}

// Sample j's positive (the batch's slot j): its raw foreground on its partner's raw background
// (the partner's object removed, data/paste.h), then the anchor's augmentation. x and m: the
// anchor as read, before its augmentation.
static int make_positive(Loader *l, Batch *b, int j, int start, int lo, const float *x, const uint8_t *m, DfError *err) {
    int pg = l->partner[lo + j];
    int pidx = l->order[start + pg];
    float *pos = b->positives + (size_t)j * l->per;
    b->positive_bg[j] = l->ds->cohort.labels[pidx];
    if (pg == lo + j) memcpy(pos, x, l->per * sizeof(float));
    else {
        int rc = read_checked(l, pidx, l->bg, l->bg_mask, err);
        if (rc) return rc;
        paste_background_only(l->bg_only, l->bg, l->bg_mask, l->shape);
        paste_foreground(pos, x, m, l->bg_only, l->shape);
    }
    if (l->cfg.augment && l->ds->aug.enabled) loader_augment(pos, NULL, l->shape, &l->ds->aug, l->cfg.seed, l->epoch, (long)start + lo + j);
    return 0;
}

// Fills slot storage with step s of the current epoch: 0, or the failure's exit status.
static int fill(Loader *l, Batch *b, int s, DfError *err) {
    int B = l->cfg.global_batch, N = l->n_split;
    int start = s * B, Bg = DF_MIN(B, N - start), lo, hi;
    loader_share(Bg, l->cfg.rank, l->cfg.nranks, &lo, &hi);
    b->step = s;
    b->n = hi - lo;
    b->global_n = Bg;
    b->offset = lo;
    b->first_sample = (long)start + lo;
    b->n_meta = l->k;
    const Cohort *c = &l->ds->cohort;
    if (l->cfg.positives) {
        for (int g = 0; g < Bg; g++) l->glabels[g] = c->labels[l->order[start + g]];
        loader_positive_partners(l->partner, l->glabels, Bg, l->cfg.seed, l->epoch, start);
    }
    for (int j = 0; j < b->n; j++) {
        long pos = (long)start + lo + j;
        int idx = l->order[pos];
        b->index[j] = idx;
        b->labels[j] = c->labels[idx];
        memcpy(b->meta + (size_t)j * l->k, c->meta + (size_t)idx * l->k, sizeof(double) * (size_t)l->k);
        float *x = b->images + (size_t)j * l->per;
        uint8_t *m = l->has_masks ? b->masks + (size_t)j * l->V : NULL;
        int rc = read_checked(l, idx, x, m, err);
        if (!rc && l->cfg.positives) rc = make_positive(l, b, j, start, lo, x, m, err);
        if (rc) return rc;
        if (l->cfg.augment && l->ds->aug.enabled) loader_augment(x, m, l->shape, &l->ds->aug, l->cfg.seed, l->epoch, pos);
    }
    return 0;
}

static void *producer(void *arg) {
    Loader *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        if (l->active && !l->failed && l->produce_next < l->steps && l->produce_next < l->released + l->depth) {
            int s = l->produce_next, gen = l->gen;
            l->busy = 1;
            pthread_mutex_unlock(&l->mu);
            DfError e;
            int rc = fill(l, &l->slots[s % l->depth].b, s, &e);
            pthread_mutex_lock(&l->mu);
            l->busy = 0;
            if (gen == l->gen) {
                if (rc) { l->failed = rc; l->err = e; }
                else { l->ready[s % l->depth] = s; l->produce_next++; }
            }
            pthread_cond_broadcast(&l->cv);
        } else {
            pthread_cond_wait(&l->cv, &l->mu);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

// ---- MPI-IO ------------------------------------------------------------------------------

// Checks that dataset d of shard f has shape [n, c, D, H, W] (c = C for images, 1 for masks).
static int check_space(const Loader *l, int f, hid_t space, const char *name, int c, DfError *err) {
    hsize_t dims[5];
    const DatasetFile *df = &l->ds->files[f];
    if (H5Sget_simple_extent_ndims(space) != 5 || H5Sget_simple_extent_dims(space, dims, NULL) != 5 ||
        dims[0] != (hsize_t)df->n || dims[1] != (hsize_t)c || dims[2] != (hsize_t)l->shape.d ||
        dims[3] != (hsize_t)l->shape.h || dims[4] != (hsize_t)l->shape.w)
        return df_err(err, "%s: %s: shape changed since the data set was loaded (expected [%d,%d,%d,%d,%d])", df->path, name, df->n, c,
                      l->shape.d, l->shape.h, l->shape.w);
    return 0;
}

// Opens every shard on every rank with the MPI-IO driver, in file order. Collective:
// H5Fopen with an MPI-IO access list is, so all ranks call this in the same order (loader
// creation is). On failure what was opened stays recorded for close_mpiio.
static int open_mpiio(Loader *l, DfError *err) {
    int nf = l->ds->n_files;
    h5_quiet();
    l->h5f = xmalloc(sizeof(hid_t) * (size_t)nf);
    l->h5img = xmalloc(sizeof(hid_t) * (size_t)nf);
    l->h5mask = xmalloc(sizeof(hid_t) * (size_t)nf);
    l->img_space = xmalloc(sizeof(hid_t) * (size_t)nf);
    l->mask_space = xmalloc(sizeof(hid_t) * (size_t)nf);
    for (int f = 0; f < nf; f++) l->h5f[f] = l->h5img[f] = l->h5mask[f] = l->img_space[f] = l->mask_space[f] = -1;
    l->img_mem = l->mask_mem = l->dxpl = -1;
    hsize_t im[5] = { 1, (hsize_t)l->shape.c, (hsize_t)l->shape.d, (hsize_t)l->shape.h, (hsize_t)l->shape.w };
    hsize_t mm[5] = { 1, 1, (hsize_t)l->shape.d, (hsize_t)l->shape.h, (hsize_t)l->shape.w };
    if ((l->img_mem = H5Screate_simple(5, im, NULL)) < 0 || (l->mask_mem = H5Screate_simple(5, mm, NULL)) < 0)
        return df_err(err, "loader: cannot create HDF5 memory spaces");
    if ((l->dxpl = dist_h5_dxpl_independent(err)) < 0) return -1;
    hid_t fapl = dist_h5_fapl_mpio(err);
    if (fapl < 0) return -1;
    int rc = 0;
    for (int f = 0; f < nf && rc == 0; f++) {
        const char *path = l->ds->files[f].path;
        if ((l->h5f[f] = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) { rc = df_err(err, "%s: cannot open through HDF5's MPI-IO driver", path); break; }
        if ((l->h5img[f] = H5Dopen2(l->h5f[f], "images", H5P_DEFAULT)) < 0 || (l->img_space[f] = H5Dget_space(l->h5img[f])) < 0) {
            rc = df_err(err, "%s: images: cannot open", path);
            break;
        }
        if ((rc = check_space(l, f, l->img_space[f], "images", l->shape.c, err))) break;
        if (!l->has_masks) continue;
        if ((l->h5mask[f] = H5Dopen2(l->h5f[f], "masks", H5P_DEFAULT)) < 0 || (l->mask_space[f] = H5Dget_space(l->h5mask[f])) < 0) {
            rc = df_err(err, "%s: masks: cannot open", path);
            break;
        }
        rc = check_space(l, f, l->mask_space[f], "masks", 1, err);
    }
    if (H5Pclose(fapl) < 0 && rc == 0) rc = df_err(err, "loader: cannot close the MPI-IO file-access list");
    return rc;
}

// Closes what open_mpiio opened, shard by shard in file order: H5Fclose is collective, and
// every rank opened the same shards. A failed close cannot be returned from loader_free:
// it is reported on stderr.
static void close_mpiio(Loader *l) {
    int bad = 0;
    for (int f = 0; f < l->ds->n_files; f++) {
        if (l->mask_space[f] >= 0) bad |= H5Sclose(l->mask_space[f]) < 0;
        if (l->h5mask[f] >= 0) bad |= H5Dclose(l->h5mask[f]) < 0;
        if (l->img_space[f] >= 0) bad |= H5Sclose(l->img_space[f]) < 0;
        if (l->h5img[f] >= 0) bad |= H5Dclose(l->h5img[f]) < 0;
        if (l->h5f[f] >= 0 && H5Fclose(l->h5f[f]) < 0) {
            fprintf(stderr, "warning: %s: closing (MPI-IO) failed\n", l->ds->files[f].path);
        }
    }
    if (l->img_mem >= 0) bad |= H5Sclose(l->img_mem) < 0;
    if (l->mask_mem >= 0) bad |= H5Sclose(l->mask_mem) < 0;
    if (l->dxpl >= 0) bad |= H5Pclose(l->dxpl) < 0;
    if (bad) fprintf(stderr, "warning: loader: releasing HDF5 MPI-IO objects failed\n");
    free(l->h5f); free(l->h5img); free(l->h5mask); free(l->img_space); free(l->mask_space);
    l->h5f = NULL;
}

// ---- API ---------------------------------------------------------------------------------

Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg, DfError *err) {
    if (cfg->global_batch < 1) { df_err(err, "loader: global batch %d (must be >= 1)", cfg->global_batch); return NULL; }
    if (cfg->nranks < 1 || cfg->rank < 0 || cfg->rank >= cfg->nranks) { df_err(err, "loader: rank %d of %d", cfg->rank, cfg->nranks); return NULL; }
    static const char *const names[] = { "training", "validation", "test", "data" };
    if (cfg->split < 0 || cfg->split > SPLIT_ALL) { df_err(err, "loader: bad split %d", cfg->split); return NULL; }
    const int *idx = cfg->split == SPLIT_TRAIN ? ds->train_idx : cfg->split == SPLIT_VAL ? ds->val_idx : ds->test_idx;
    int n = cfg->split == SPLIT_TRAIN ? ds->n_train : cfg->split == SPLIT_VAL ? ds->n_val : ds->n_test;
    int *all = NULL;
    if (cfg->split == SPLIT_ALL) {  // every sample, in data order
        n = ds->cohort.n;
        all = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++) all[i] = i;
        idx = all;
    }
    if (n < 1) { free(all); df_err(err, "%s: the %s split is empty", ds->source, names[cfg->split]); return NULL; }
    if (cfg->positives && !ds->cohort.has_masks) {
        free(all);
        df_err(err, "%s: has no foreground masks, which CLAD's positives need (pack the data with a mask column; docs/formats.md)",
               ds->source);
        return NULL;
    }
    Loader *l = xcalloc(1, sizeof *l);
    l->own_idx = all;
    l->ds = ds;
    l->cfg = *cfg;
    l->split_idx = idx;
    l->n_split = n;
    l->shape = ds->cohort.shape;
    l->per = shape_numel(l->shape);
    l->V = shape_spatial(l->shape);
    l->k = ds->cohort.k;
    l->has_masks = ds->cohort.has_masks;
    l->max_local = (cfg->global_batch + cfg->nranks - 1) / cfg->nranks;
    l->on_disk = !ds->in_memory;
    l->order = xmalloc(sizeof(int) * (size_t)n);
    l->epoch = -1;
    l->mpiio = l->on_disk && ds->read == DATA_READ_MPIIO;
    if (l->mpiio) {
        if (open_mpiio(l, err)) { loader_free(l); return NULL; }
    } else if (l->on_disk) {
        const uint16_t one = 1;
        int little = *(const uint8_t *)&one == 1;
        l->raw = little;
        l->fds = xmalloc(sizeof(int) * (size_t)ds->n_files);
        l->layouts = xcalloc((size_t)ds->n_files, sizeof(ShardLayout));
        for (int f = 0; f < ds->n_files; f++) l->fds[f] = -1;
        for (int f = 0; f < ds->n_files && l->raw; f++) {
            int rc = shard_layout(ds->files[f].path, &l->layouts[f], err);
            if (rc < 0) { loader_free(l); return NULL; }
            if (rc == 1) { l->raw = 0; break; }
            if ((l->fds[f] = open(ds->files[f].path, O_RDONLY)) < 0) {
                df_err(err, "%s: cannot open: %s", ds->files[f].path, strerror(errno));
                loader_free(l);
                return NULL;
            }
        }
    }
    // Prefetch needs reads that avoid HDF5 (memory or raw); else synchronous. MPI-IO reads
    // are HDF5 and MPI calls: main thread only, so never a prefetch thread.
    l->threaded = cfg->prefetch > 0 && (!l->on_disk || (l->raw && !l->mpiio));
    l->depth = l->threaded ? cfg->prefetch + 1 : 1;  // + the batch the consumer holds
    l->slots = xcalloc((size_t)l->depth, sizeof(Slot));
    l->ready = xmalloc(sizeof(int) * (size_t)l->depth);
    for (int i = 0; i < l->depth; i++) {
        Batch *b = &l->slots[i].b;
        b->images = df_alloc_floats((size_t)l->max_local * l->per);
        b->labels = xcalloc((size_t)l->max_local, sizeof(int32_t));
        b->meta = xcalloc((size_t)l->max_local * (size_t)(l->k ? l->k : 1), sizeof(double));
        b->index = xcalloc((size_t)l->max_local, sizeof(int));
        if (l->has_masks) b->masks = xcalloc((size_t)l->max_local * l->V, 1);
        if (cfg->positives) {
            b->positives = df_alloc_floats((size_t)l->max_local * l->per);
            b->positive_bg = xcalloc((size_t)l->max_local, sizeof(int32_t));
        }
        l->ready[i] = -1;
    }
    if (cfg->positives) {
        l->glabels = xmalloc(sizeof(int) * (size_t)cfg->global_batch);
        l->partner = xmalloc(sizeof(int) * (size_t)cfg->global_batch);
        l->bg = df_alloc_floats(l->per);
        l->bg_only = df_alloc_floats(l->per);
        l->bg_mask = xmalloc(l->V);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (l->threaded && pthread_create(&l->thread, NULL, producer, l) != 0) {
        l->threaded = 0;  // no thread: fall back to synchronous reads (still correct)
    }
    return l;
}

int loader_begin_epoch(Loader *l, int epoch) { return loader_begin_epoch_at(l, epoch, 0); }

int loader_begin_epoch_at(Loader *l, int epoch, int first_step) {
    int B = l->cfg.global_batch, N = l->n_split;
    pthread_mutex_lock(&l->mu);
    l->gen++;
    while (l->busy) pthread_cond_wait(&l->cv, &l->mu);
    l->epoch = epoch;
    loader_epoch_order(l->order, l->split_idx, N, l->cfg.seed, epoch, l->cfg.shuffle);
    l->steps = l->cfg.drop_last ? N / B : (N + B - 1) / B;
    if (first_step < 0) first_step = 0;
    if (first_step > l->steps) first_step = l->steps;
    l->produce_next = l->released = first_step;
    l->handed = 0;
    l->failed = 0;
    for (int i = 0; i < l->depth; i++) l->ready[i] = -1;
    l->active = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return l->steps;
}

const Batch *loader_next(Loader *l, DfError *err) {
    double t0 = df_now();
    DF_ASSERT(l->epoch >= 0);  // loader_begin_epoch first
    pthread_mutex_lock(&l->mu);
    if (l->handed) { l->released++; l->handed = 0; pthread_cond_broadcast(&l->cv); }
    int s = l->released;
    if (s >= l->steps) { pthread_mutex_unlock(&l->mu); return NULL; }
    Batch *b = &l->slots[s % l->depth].b;
    int rc = 0;
    DfError e = { "" };
    if (l->threaded) {
        while (l->ready[s % l->depth] != s && !l->failed) pthread_cond_wait(&l->cv, &l->mu);
        if (l->ready[s % l->depth] != s) { rc = l->failed; e = l->err; }
        pthread_mutex_unlock(&l->mu);
    } else {
        pthread_mutex_unlock(&l->mu);
        rc = fill(l, b, s, &e);
    }
    // A sample read on one rank only -- a bad voxel, a read error -- must stop every rank at
    // this step, before the step's collectives: every rank serves every step (its share may
    // be empty), so every rank is here.
    rc = dist_agree(rc, &e);
    l->wait += df_now() - t0;
    if (rc) {
        pthread_mutex_lock(&l->mu);  // every rank stops here, also one whose own share read well
        l->failed = rc;
        l->err = e;
        pthread_mutex_unlock(&l->mu);
        if (err) *err = e;
        return NULL;
    }
    l->handed = 1;
    l->served++;
    return b;
}

int loader_failed(const Loader *l) { return l->failed; }
double loader_wait_seconds(const Loader *l) { return l->wait; }
long loader_batches(const Loader *l) { return l->served; }

void loader_free(Loader *l) {
    if (!l) return;
    if (l->slots) {  // fully created: the mutex exists
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        if (l->threaded) pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        for (int i = 0; i < l->depth; i++) {
            Batch *b = &l->slots[i].b;
            free(b->images); free(b->labels); free(b->meta); free(b->index); free(b->masks);
            free(b->positives); free(b->positive_bg);
        }
    }
    if (l->h5f) close_mpiio(l);
    if (l->fds) for (int f = 0; f < l->ds->n_files; f++) if (l->fds[f] >= 0) close(l->fds[f]);
    if (l->layouts) for (int f = 0; f < l->ds->n_files; f++) shard_layout_free(&l->layouts[f]);
    free(l->glabels); free(l->partner); free(l->bg); free(l->bg_only); free(l->bg_mask);
    free(l->fds); free(l->layouts); free(l->slots); free(l->ready); free(l->order); free(l->own_idx);
    free(l);
}
