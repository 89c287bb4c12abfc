// layer.h: what every layer is. A layer file under nn/ holds
//   1. a pair of plain C functions, `<layer>_forward` and `<layer>_backward`, on raw float
//      arrays (outputs first, shapes in comments) -- these are what tests call; and
//   2. a small `LayerOps` table that adapts them to the network: it parses the layer's INI
//      section, infers the output shape, declares parameters in PyTorch's shapes, and calls
//      the plain functions on the network's buffers.
// Tensors are float32, NCDHW, contiguous. A 1D feature vector of n values is the shape
// (c = n, d = h = w = 1). The batch size B is passed per call (it may be smaller than the
// maximum for a partial batch).
//
// Gradient convention (as llm.c): backward ACCUMULATES (+=) into parameter gradients and into
// the gradient with respect to its input; the network zeroes the activation gradients before
// a backward pass and the trainer zeroes parameter gradients before each step. A layer's
// din is NULL when nothing upstream needs it (the first layer).
//
// Batch statistics (BatchNorm, MDN) are summed over the global batch through ctx->reducer;
// a layer never calls MPI. A layer gets the batch (nn/batch.h) with every call: whatever it
// needs of the samples besides their inputs (MDN: metadata and labels) comes with it.
#ifndef DF_LAYER_H
#define DF_LAYER_H
#include <stdint.h>
#include "base/common.h"
#include "base/ini.h"
#include "base/reduce.h"
#include "base/rng.h"
#include "base/shape.h"
#include "nn/batch.h"


// A named tensor inside the flat parameter (or state) buffer, with PyTorch's shape, so the
// checkpoint can store params/<layer>/<name> as [out,in,kd,kh,kw] etc.
typedef struct {
    char name[32];
    size_t offset;   // offset within the layer's own block (params or state)
    size_t count;
    int ndim;
    int dims[5];
} TensorInfo;

#define DF_MAX_TENSORS 6

// Shared by every layer of one network.
typedef struct {
    Reducer *reducer;     // global-batch sums (identity on one rank)
    float *workspace;     // scratch shared by all layers (e.g. conv3d's column buffers):
    size_t workspace_floats;  // workspace_threads slices of workspace_floats, one per thread
    int workspace_threads;    // (base/threads.h); the network grows it to df_threads()
    int max_batch;        // largest local batch any call will use
    uint64_t seed;        // run seed (dropout masks derive from it)
    uint64_t step;        // global optimiser step, set by the trainer before forward
    // The metadata schema the network codes per-sample metadata with (MDN builds its design
    // from it), or NULL when the data have none. The metadata themselves come with each
    // batch (Batch.meta).
    const struct MetaSchema *meta_schema;
    // While the trainer's refit pass runs (LayerOps.refit), the pass: REFIT_TRAINING (the
    // training split forward in training mode, no backward, the network's state restored
    // afterwards) or REFIT_EVALUATION (the same in evaluation mode); 0 otherwise.
    int refitting;
} NetCtx;
enum { REFIT_TRAINING = 1, REFIT_EVALUATION = 2 };  // NetCtx.refitting, LayerOps.refit

typedef struct Layer Layer;

typedef struct LayerOps {
    const char *type;  // INI section header, e.g. "conv3d"
    // Parse the layer's keys from `sec` (via ini_* getters, so unknown keys are caught),
    // set L->out_shape, L->n_params, L->n_state, L->params_info / L->state_info,
    // L->workspace_floats (shared scratch needed per call at ctx->max_batch), and allocate
    // private per-batch scratch in L->impl. L->in_shape and L->ctx are set on entry.
    // Returns 0, or -1 with "file:line: problem" in err.
    int (*build)(Layer *L, const Ini *ini, IniSection *sec, DfError *err);
    // Initialise L->params and L->state (pointers set by the network) as PyTorch does.
    void (*init)(Layer *L, Rng *rng);
    // L->out = f(L->in) for the batch's b->n samples (L->in holds their inputs; the batch
    // brings what else belongs to them: labels, metadata, positions). `training` selects
    // batch statistics / dropout.
    void (*forward)(Layer *L, const Batch *b, int training);
    // L->din += ..., L->grads += ... from L->dout (and L->in / L->out / saved scratch), for
    // the batch the last forward saw.
    void (*backward)(Layer *L, const Batch *b);
    // Frees L->impl and anything build allocated.
    void (*destroy)(Layer *L);
    // Optional (NULL for most layers): called once before training on every rank with this
    // rank's share of the training split's raw metadata rows (n_local, schema columns) and
    // labels -- rows lo .. lo + n_local of the n_total -- so a layer can fit statistics of the
    // whole training set through ctx->reducer (MDN's kernel and spline knots). Collective.
    // Returns 0, or -1 with a message in err.
    int (*prepare)(Layer *L, const double *meta, const int *labels, int n_local, long lo, long n_total, DfError *err);
    // Optional: what the layer was built from that its tensor shapes do not show (MDN: its
    // design columns by name), as text of at most n bytes. A checkpoint records it beside
    // the layer's tensors and refuses to load into a layer whose signature differs.
    void (*signature)(const Layer *L, char *buf, size_t n);
    // 1 for a layer whose training-mode output uses statistics of the batch (BatchNorm, MDN):
    // its eval-mode output can drift from what the layers after it saw in training, which
    // [train] train_eval_gap measures (run/gap.h).
    int batch_statistics;
    // Optional: evaluation statistics fitted over the whole training split once per epoch
    // instead of a running average ([mdn] eval_beta = epoch or epoch_eval). refit(L, 0)
    // before the passes returns the passes the layer wants, REFIT_TRAINING and/or
    // REFIT_EVALUATION (0: none; the trainer may skip them); during its pass (ctx->refitting)
    // the layer's forwards add to sums of its own; refit(L, pass) after that pass is
    // collective on every rank and, in a layer of that pass, turns the sums into the layer's
    // evaluation state (returns 1; 0 for a layer of the other pass or none).
    int (*refit)(Layer *L, int pass);
} LayerOps;

struct Layer {
    const LayerOps *ops;
    char name[64];          // `name =` key, or "<type><k>" (k counts layers of that type from 1)
    Shape in_shape, out_shape;
    const float *in;        // (B, in_shape), owned by the network
    float *out;             // (B, out_shape)
    float *din;             // (B, in_shape) or NULL
    const float *dout;      // (B, out_shape)
    float *params, *grads;  // this layer's block of the flat buffers (n_params floats)
    size_t n_params;
    float *state;           // non-trainable buffers (BN running stats), n_state floats
    size_t n_state;
    TensorInfo params_info[DF_MAX_TENSORS];
    int n_params_info;
    TensorInfo state_info[DF_MAX_TENSORS];
    int n_state_info;
    size_t workspace_floats;
    NetCtx *ctx;
    void *impl;             // the layer's own small struct
};

// A layer's tensors by their place in its table, in the order build declared them: parameter
// t, its gradient, state tensor t. NULL when the layer has no such tensor (a layer built
// without a bias). The one way layers and checkpoints reach their data.
float *layer_param(const Layer *L, int t);
float *layer_grad(const Layer *L, int t);
float *layer_state(const Layer *L, int t);

// Registry (nn/layers.c): NULL when `type` is not a layer.
const LayerOps *layer_ops_find(const char *type);
// Comma-separated list of layer types, for messages and --help.
const char *layer_types_list(void);

// Helpers for LayerOps.build implementations.
// A 1- or 3-value key such as kernel = 3 or kernel = 3,1,2 (one value applies to d, h and w).
// def (3 values) when absent; def NULL makes the key required. Values must be >= lo.
int layer_read_dhw(const Ini *ini, IniSection *sec, const char *key, const int *def, int lo, int out[3], DfError *err);
void layer_add_param(Layer *L, const char *name, int ndim, const int *dims);  // appends to params
void layer_add_state(Layer *L, const char *name, int ndim, const int *dims);  // appends to state
// PyTorch's default init for conv/linear: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
// `init` (key "init") may also be kaiming_normal, kaiming_uniform, xavier_uniform, xavier_normal.
typedef enum { INIT_DEFAULT, INIT_KAIMING_UNIFORM, INIT_KAIMING_NORMAL, INIT_XAVIER_UNIFORM, INIT_XAVIER_NORMAL } InitKind;
extern const char *const init_kind_names[];  // NULL-terminated, indexed by InitKind
void init_weight(float *w, size_t n, int fan_in, int fan_out, InitKind kind, Rng *rng);
void init_bias(float *b, size_t n, int fan_in, Rng *rng);

// Every layer's ops table.
extern const LayerOps conv3d_ops, maxpool3d_ops, avgpool3d_ops, global_avgpool_ops,
    batchnorm3d_ops, relu_ops, leaky_relu_ops, tanh_ops, linear_ops, dropout_ops,
    flatten_ops, l2norm_ops, mdn_ops;
#endif
