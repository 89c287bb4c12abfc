// net.h: a network built layer by layer from the INI file. Every section whose header is a
// layer type (see layer_types_list()) is a layer, in file order; each layer's output shape is
// inferred from its input. Parameters, their gradients and the non-trainable state live in
// one flat buffer each, so the gradient all-reduce is one call and checkpoints are views.
#ifndef DF_NET_H
#define DF_NET_H
#include "nn/layer.h"

typedef struct {
    Shape in_shape;
    int n_layers;
    Layer *layers;
    NetCtx ctx;
    float *params, *grads;  // n_params each
    size_t n_params;
    float *state;           // n_state
    size_t n_state;
    float **acts;           // acts[0] is the input copy, acts[i+1] the output of layer i: (max_batch, shape)
    float **dacts;          // gradients of acts during net_backward (dacts[0] is NULL unless
                            // net_enable_input_grad; the others share two buffers, dbuf, so only
                            // dacts[0] outlives the layer that reads it)
    float *dbuf[2];
    size_t dbuf_floats[2];
    Shape out_shape;
    // Called during net_backward after each layer's backward with the offset into grads from
    // which every gradient is final (layers own contiguous blocks in layer order), so the
    // trainer can start reducing those gradients while earlier layers still run. Optional.
    void (*grads_ready)(void *arg, size_t final_from);
    void *grads_ready_arg;
    // Gradients added on a layer's output from outside the network (loss terms, nn/term.h):
    // NULL, or n_layers + 1 entries, NULL unless requested (net_output_grad).
    float **output_grads;
    // When set (n_layers each), net_forward / net_backward add each layer's seconds here
    // (`deconfound bench --profile`).
    double *seconds_fwd, *seconds_bwd;
    int borrowed;  // params, grads and state are another net's (net_share_tensors)
    // The execution plan (net.c): acts read from outside (net_observe), fused groups
    // (fused[i] = 3 at a group's first layer, -1 at its other two, 0 elsewhere).
    unsigned char *observed;
    int *fused;
    float **inmax;  // at a fused group's first layer: its input at the pooling's argmax (nn/fused.h)
    int planned, no_fuse;
    int repeat_backward;  // net_allow_repeated_backward: no backward may overwrite activations
    int acts_spent;       // a backward since the last forward overwrote activations
} Net;

// Builds the layers listed in `ini` for inputs of in_shape and at most max_batch samples per
// call. Returns 0, or -1 with "file:line: problem" in err (unknown layer key, impossible
// shape, no layers, ...). Keys are marked used; the caller runs ini_check_unused at the end.
int net_build(Net *net, const Ini *ini, Shape in_shape, int max_batch, Reducer *red, DfError *err);
// The same, for data with per-sample metadata: layers that use it (MDN) see `schema` at
// build time and each batch's metadata rows (coded as `schema`) in the Batch; the caller
// calls net_prepare once before training.
struct MetaSchema;
int net_build_meta(Net *net, const Ini *ini, Shape in_shape, int max_batch, Reducer *red,
                   const struct MetaSchema *schema, DfError *err);
// Runs every layer's LayerOps.prepare (collective) with this rank's share of the training
// split's raw metadata rows (n_local, schema columns; rows lo .. lo + n_local of n_total) and labels.
int net_prepare(Net *net, const double *meta, const int *labels, int n_local, long lo, long n_total, DfError *err);
// The refit passes' ends (LayerOps.refit): begin returns the passes the layers want
// (REFIT_TRAINING | REFIT_EVALUATION); after the caller has run the training split forward
// in a mode with ctx.refitting set to it, finish(pass) (collective) turns the sums of that
// pass's layers into their evaluation state (run/refit.h).
int net_refit_begin(Net *net);
void net_refit_finish(Net *net, int pass);
// Deterministic initialisation: layer i draws from rng_seed_stream(seed, i, 0).
void net_init(Net *net, uint64_t seed);
// Runs the batch b (b->images is (b->n, in_shape)) through every layer. Returns the output
// (b->n, out_shape), owned by the net; the outputs stored (see net_observe) stay in net->acts.
const float *net_forward(Net *net, const Batch *b, int training);
// dout is (b->n, out_shape), the gradient of the loss wrt the output, for the batch the last
// forward ran. Zeroes activation gradients, then accumulates parameter gradients into
// net->grads.
void net_backward(Net *net, const Batch *b, const float *dout);
void net_zero_grad(Net *net);
// A buffer (max_batch, shape of net->acts[act]) whose contents the next net_backward adds to
// the gradient of that layer output -- how a loss term on a named layer reaches the layers
// below it. Zero until written; net_backward clears it after use. act in 1..n_layers.
float *net_output_grad(Net *net, int act);
// Also compute the gradient with respect to the input (net->dacts[0]); off by default, since
// training never needs it. Used by tests and by input-attribution tools.
void net_enable_input_grad(Net *net);
// Makes twin -- built from the same configuration -- run on net's parameters, gradients and
// state, with activations of its own: a second forward and backward of the same network on
// other inputs in one step (CLAD's positives). twin's backward adds into net->grads; its
// training forward updates the shared running statistics, as a second call of the same
// module does in PyTorch. twin must not outlive net; net_free(twin) leaves the tensors.
void net_share_tensors(Net *twin, Net *net);
Layer *net_layer(Net *net, const char *name);  // by name, NULL if absent
// Index i such that net->acts[i] holds the named layer's output; -1 if absent. The output is
// then stored by every forward from the next one on (net_observe).
int net_layer_output_index(Net *net, const char *name);
// Declares that acts[act] (and its gradient) will be read or written from outside the
// network, so it is stored: the network fuses BatchNorm -> ReLU -> MaxPool into one kernel
// (nn/fused.h) and then keeps neither the BatchNorm's nor the ReLU's output, unless observed.
// Everything that reads a layer's output by index observes it first; net_layer_output_index
// does. The input and the final output are always stored.
void net_observe(Net *net, int act);
// By default a backward may overwrite activations it no longer needs (a fused group's input
// becomes its gradient, nn/fused.h), so each forward allows one backward. A caller that runs
// several backwards after one forward (an alternating loss term: run/terms.c) says so first.
void net_allow_repeated_backward(Net *net);
// Fusion on (the default) or off (the reference for tests and `bench --no-fuse`).
void net_set_fusion(Net *net, int on);
// One line per layer: name, type, output shape, parameter count (rank 0 prints it).
void net_print_summary(const Net *net, FILE *f);
// The first parameter or state tensor (grads = 0), or parameter gradient (grads = 1), holding
// a NaN or infinity: 1, with its checkpoint name and element ("params/conv1/weight[12] = nan",
// prefixed "the gradient of " for grads) in `what`; 0 when every value is finite.
int net_find_nonfinite(const Net *net, int grads, char *what, size_t n);
// The first stored output of the last forward (acts[0] the input, then the layers' in order;
// a fused group's inner outputs are not stored) with a NaN or infinity among the batch's B
// samples: its index in acts, and the sample in *sample; -1 when all are finite.
int net_find_nonfinite_output(const Net *net, int B, int *sample);
// The per-layer table of seconds_fwd / seconds_bwd summed over `steps` steps of
// step_seconds each: ms per step and share of the step, a fused group on one line.
void net_print_profile(const Net *net, const double *t_fwd, const double *t_bwd, int steps, double step_seconds, FILE *f);
void net_free(Net *net);
#endif
