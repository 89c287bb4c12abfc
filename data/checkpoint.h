// checkpoint.h: HDF5 checkpoints (docs/formats.md):
//   /config                     string, the experiment INI text as run
//   /params/<layer>/<name>      float32 in PyTorch's shapes (conv weight [out,in,kd,kh,kw],
//                               linear [out,in], BN weight/bias; BN running_mean/running_var
//                               also live here, as in a PyTorch state_dict)
//   /optimizer/m, /optimizer/v  float32 flat, same order as the parameter buffer; attribute step
//   /train attributes: epoch, step (global optimiser steps), epoch_step (steps into an unfinished
//                               epoch); /train/rng uint64[4]; /train/epoch_sums float64[3] or
//                               [3 + 2 * TRAIN_TALLY_CLASSES] (with per-class tallies)
//   /train/extra/<name>         float32, with <name>_counters uint64: loss terms' state (below)
//   /schema                     string, the metadata schema (nn/metadata.h, text form), when the
//                               network was built with one
//   /params/<layer> attribute signature: for layers that have one (MDN: its design columns)
//   root attributes: format = "deconfound-checkpoint", version = 1; /optimizer attribute kind
// Written to "<dir>/.<name>.tmp.<pid>" then renamed: a crash never leaves a half checkpoint.
#ifndef DF_CHECKPOINT_H
#define DF_CHECKPOINT_H
#include "nn/net.h"
#include "nn/optim.h"
#include "base/rng.h"

#define CHECKPOINT_FORMAT "deconfound-checkpoint"
#define CHECKPOINT_VERSION 1

// Named state a run keeps beside the network and its optimiser: a loss term's adversary and
// optimisers (nn/term.h). Stored as /train/extra/<name> float32 [n] and
// /train/extra/<name>_counters uint64 [n_counters]. The caller owns the buffers.
#define CHECKPOINT_MAX_COUNTERS 4
typedef struct {
    char name[96];
    float *data;
    size_t n;
    int64_t *counters;  // n_counters of them
    int n_counters;
} CheckpointBlob;

#define TRAIN_TALLY_CLASSES 64
#define TRAIN_SUMS (3 + 2 * TRAIN_TALLY_CLASSES)

typedef struct {
    int epoch;          // epochs completed
    long step;          // optimiser steps completed
    Rng rng;            // trainer root RNG state (epoch order and dropout use seed-derived streams)
    int epoch_step;     // steps done in the current (unfinished) epoch: > 0 after a mid-epoch stop
    // that partial epoch's loss sum, correct count, sample count, then per class (up to
    // TRAIN_TALLY_CLASSES) its samples and how many were predicted right (balanced accuracy)
    double epoch_sums[TRAIN_SUMS];
    CheckpointBlob *blobs;  // extra state saved and loaded with the train state (not owned)
    int n_blobs;
    double *term_sums;      // the loss terms' sums over that partial epoch (not owned; /train/term_sums)
    size_t n_term_sums;
} TrainState;

// opt may be NULL (no optimiser state written).
int checkpoint_save(const char *path, const char *config_text, const Net *net, const Optimizer *opt,
                    const TrainState *ts, DfError *err);
// Loads parameters and state into an already built net (shapes must match: a mismatch names
// the layer and tensor), and optimiser/train state when opt/ts are non-NULL.
int checkpoint_load(const char *path, Net *net, Optimizer *opt, TrainState *ts, DfError *err);
// The metadata schema the network was trained with (/schema, nn/metadata.h): 1 and *s
// filled, 0 when the checkpoint has none (written before schemas were stored, or by a
// network trained without metadata), -1 with err.
struct MetaSchema;
int checkpoint_read_schema(const char *path, struct MetaSchema *s, DfError *err);
// The config text stored in a checkpoint (caller frees), NULL with err on failure.
char *checkpoint_read_config(const char *path, DfError *err);
// 1 if path is a checkpoint (root attribute format = "deconfound-checkpoint"), 0 if it is
// some other HDF5 file (e.g. a shard), -1 with err if it cannot be opened or is not HDF5.
int checkpoint_probe(const char *path, DfError *err);
// Prints epoch, step, optimiser and every stored tensor with its shape (layers in network
// order), as text or as one JSON object. 0, or -1 with err.
int checkpoint_describe(const char *path, FILE *out, int json, DfError *err);
#endif
