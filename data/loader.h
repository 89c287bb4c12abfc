// loader.h: the training/evaluation batch loader: a distributed sampler, reads of only this
// rank's samples, a background prefetch thread and seeded augmentation.
//
// Sampler. Epoch e of a split of N samples visits a permutation of the split drawn from
// rng_seed_stream(seed, e, LOADER_STREAM) (no shuffle: split order). Global batch s is
// positions [s*B, min(N, (s+1)*B)) of that order (the last one may be partial unless
// drop_last); rank r of P takes positions [lo, hi) of each global batch with
// lo = Bg*r/P, hi = Bg*(r+1)/P (Bg the batch's actual size) -- the split run/train.c
// uses. So the global batches depend on (seed, epoch) only, never on P, and the ranks'
// shares are disjoint and cover each batch. Resuming at epoch e needs no RNG state.
//
// Augmentation (training only, when enabled) is drawn per sample from
// rng_seed_stream(seed ^ AUG, epoch, global position in the epoch): the same sample at the
// same position gets the same flips/shift/intensity change whatever P is.
//
// Reading. Samples held in memory (Dataset.cohort.images) are copied; samples on disk
// (shards listed in Dataset.files) are read with pread() at the byte offsets HDF5 reports
// for each sample's chunk (shard_layout), so the prefetch thread never calls HDF5 -- the
// Debian HDF5 builds are not thread-safe and MPI runs without MPI_THREAD_MULTIPLE, so the
// main thread may go on calling HDF5 and MPI while the thread reads. A shard whose layout
// is not raw-readable (compressed, other chunking, big-endian) is read through HDF5 on the
// main thread instead, without prefetch (docs/formats.md, "Loader").
// With [data] read = mpiio (Dataset.read) every shard is instead opened on every rank through
// HDF5's MPI-IO driver (mpi/h5mpi.h) at loader_create and closed at loader_free -- both
// collective: create and free loaders in the same order on every rank -- and each local
// sample is read as a hyperslab with an independent transfer (shares differ between ranks,
// may be empty), on the main thread in loader_next, never prefetched.
//
// Positives (LoaderConfig.positives, CLAD's: nn/clad.h). Each sample of a training batch also
// gets a positive: its foreground (by its mask) pasted onto the raw background of a partner
// (its own object removed, data/paste.h) -- a sample of another class in the same global batch, drawn uniformly among them from
// rng_seed_stream(seed ^ POSITIVE, epoch, global position) -- then given the sample's own
// augmentation (the same flips, shift and intensity change as the anchor). The pairs depend on
// (seed, epoch, position) alone, so every rank count makes the same positives. A global batch
// of one class gives a sample no partner: its positive is the sample itself, its background
// class its own (the reference pairs within the batch too).
//
// Values. Every sample read (and every partner of a positive) is checked for NaN or infinite
// voxels right after its read (cohort_check_image): one vectorised pass over a sample still
// in cache, a fraction of the read's cost, so no pass over the data set is added at start-up.
// A bad voxel fails the batch as bad input (loader_failed: status 2), naming the shard, the
// sample's index there and its subject id. A training run reads every sample of its
// training and validation splits in its first epoch, before it writes an epoch's records.
//
// Prefetch. A pthread fills a ring of `prefetch` batches ahead of the consumer for the
// current epoch and then waits; loader_next() hands out batches in order and accumulates
// the time it spent waiting for one (loader_wait_seconds).
#ifndef DF_LOADER_H
#define DF_LOADER_H
#include "data/dataset.h"
#include "nn/batch.h"

// SPLIT_ALL: every sample of the data set in data order, whatever the split (inference).
enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1, SPLIT_TEST = 2, SPLIT_ALL = 3 };
#define LOADER_STREAM 0x10ade5ULL

typedef struct {
    int split;          // SPLIT_TRAIN / SPLIT_VAL / SPLIT_TEST
    int global_batch;   // B, the global batch size (>= 1)
    int rank, nranks;   // this rank and the number of ranks
    uint64_t seed;      // shuffle and augmentation seed
    int shuffle;        // 1: per-epoch permutation (training); 0: split order
    int drop_last;      // 1: skip a final partial global batch
    int augment;        // 1: apply Dataset.aug (training)
    int prefetch;       // batches to read ahead (0: read synchronously in loader_next; always 0 with read = mpiio)
    int positives;      // 1: make CLAD's positives (Batch.positives, .positive_bg); needs masks
} LoaderConfig;

// Batches are nn/batch.h's: the local share of one global batch. Its arrays belong to the
// loader and stay valid until the next loader_next / loader_begin_epoch / loader_free;
// first_sample is the position of the first local sample in the epoch order (s*B + lo).

typedef struct Loader Loader;

// Creates a loader over one split of ds (ds must outlive it). Errors: an empty split, a bad
// configuration, or unreadable shards.
Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg, DfError *err);
// Starts epoch `epoch` (any order, e.g. resuming); returns its number of global batches.
int loader_begin_epoch(Loader *l, int epoch);
// Same, resuming inside the epoch: the first batch served is step first_step (a run
// resumed from a mid-epoch checkpoint). Returns the epoch's total number of batches.
int loader_begin_epoch_at(Loader *l, int epoch, int first_step);
// The next batch of the epoch, or NULL after the last, or on a failure: then err is set and
// loader_failed() is its exit status. Collective when several ranks run: every rank serves
// every step (its share may be empty), and a failure reading one rank's share -- a sample
// with a bad voxel, a disk error -- fails the step on every rank, with the message of the
// lowest failing rank, so callers end the run with df_die_collective.
const Batch *loader_next(Loader *l, DfError *err);
// 0, or why the last loader_next failed: DF_EXIT_INPUT (2) for a NaN or infinite voxel in
// the data, DF_EXIT_FAIL (1) for a read error (a disk error mid-run, not bad input).
int loader_failed(const Loader *l);
// Seconds loader_next spent waiting for data since creation, and the batches it served.
double loader_wait_seconds(const Loader *l);
long loader_batches(const Loader *l);
void loader_free(Loader *l);

// The epoch order of a split (n_split positions -> sample index): what the sampler visits.
// For tests and for tools that need the order without reading data.
void loader_epoch_order(int *order, const int *split_idx, int n_split, uint64_t seed, int epoch, int shuffle);
// The positives' partners of one global batch: partner[g] = the position within the batch
// (0..Bg-1) whose background sample g's positive takes, given the batch's labels (Bg); g
// itself when no sample of another class is in the batch. first: the batch's first position
// in the epoch.
void loader_positive_partners(int *partner, const int *labels, int Bg, uint64_t seed, int epoch, long first);
// Rank r's share [lo, hi) of a global batch of Bg samples.
void loader_share(int Bg, int rank, int nranks, int *lo, int *hi);
// The augmentation of one sample in place: x (C,D,H,W) and mask (1,D,H,W) or NULL.
void loader_augment(float *x, uint8_t *mask, Shape s, const Augment *aug, uint64_t seed, int epoch, long position);
#endif
