// infer.h: running a trained network over data -- the one inference routine behind `predict`,
// `eval`, the validation pass of training and the dCor report. Every rank takes its share of
// each global batch from a loader over one split, in the split's order (no shuffle, no
// augmentation); the network runs in eval mode, where a sample's outputs do not depend on
// the batch it is in or the rank that computes it (docs/distributed.md, "Reproducibility").
#ifndef DF_INFER_H
#define DF_INFER_H
#include "data/cohort.h"
#include "data/loader.h"
#include "nn/metadata.h"
#include "nn/net.h"

// Called on every rank for each of its batches, after the forward pass: net->acts holds
// every layer's output for the batch b.
typedef void (*InferVisit)(void *arg, const Net *net, const Batch *b);

// Runs the loader's split through `net` in eval mode, calling visit for each local batch.
// Collective (the layers' reductions, the loader's reads). -1 with err on a read error.
int infer_run(Net *net, Loader *l, InferVisit visit, void *arg, DfError *err);

// A visitor that keeps the outputs of chosen layers for every sample of the split and
// gathers them on rank 0 in the split's order.
#define INFER_MAX_OUTPUTS 32
typedef struct {
    int n_outputs;
    int act[INFER_MAX_OUTPUTS];     // net->acts index of each output
    int dims[INFER_MAX_OUTPUTS];    // values per sample
    int n;                          // samples of the split
    float *mine[INFER_MAX_OUTPUTS]; // this rank's rows, in the order it saw them
    long *pos;                      // their positions in the split
    int count, cap;
    float *all[INFER_MAX_OUTPUTS];  // (n, dims) on rank 0 after infer_outputs_gather
} InferOutputs;
void infer_outputs_init(InferOutputs *o, const Net *net, const int *act, int n_outputs, int n);
void infer_outputs_visit(void *arg, const Net *net, const Batch *b);
// Collective: every rank's rows to rank 0, placed by position.
void infer_outputs_gather(InferOutputs *o);
void infer_outputs_free(InferOutputs *o);

// A checkpoint's network applied to the samples of shards: what `predict` and `eval` set up.
typedef struct {
    Ini ini;              // CONFIG.ini (with --set), whose layers make the network
    Dataset ds;           // the shards' samples, metadata recoded to the model's schema
    MetaSchema *schema;   // the schema the network is built with (absent columns marked)
    Net net;              // with the checkpoint's parameters and state
    Loader *loader;       // the samples run, in data order, each rank its share
    int n;                // samples run
    const int *rows;      // the cohort index of each (ds's split), or NULL: every sample, rows[i] = i
} InferSetup;
// Collective; `batch` samples per rank and forward pass. The samples are every one of the
// shards `data`, or, with data NULL, one split (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST) of
// CONFIG's own [data], split as training splits it. -1 with err naming the file and the
// problem: a config or data error, a level the model never saw, a checkpoint of another
// network or design, an empty split.
int infer_setup(InferSetup *s, const char *config, const char *const *sets, int n_sets, const char *checkpoint,
                const char *data, int split, int batch, DfError *err);
// The cohort index of the i-th sample run.
static inline int infer_row(const InferSetup *s, int i) { return s->rows ? s->rows[i] : i; }
// The labels of the samples run, in their order (s->n), caller frees; NULL when the data
// have no labels.
int32_t *infer_labels(const InferSetup *s);
void infer_setup_free(InferSetup *s);

// The schema to build the checkpoint's network with for data c (from `origin`): the one the
// checkpoint stores, with c recoded to it by level and class name (data/cohort.h) -- a level
// or class the model never saw is an error naming origin, the column and the level; or, for
// a checkpoint that stores none (written before schemas were stored), c's own.
int infer_schema(MetaSchema *schema, Cohort *c, const char *checkpoint, const char *origin, DfError *err);
#endif
