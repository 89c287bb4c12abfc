// term.h: loss terms on a named layer -- what a method adds to the network's loss beyond the
// loss on its output. The debiasing losses (EnD, MI, CLAD) are such terms. A term reads one
// layer's output for the batch, returns its value and adds its gradient to that output's
// gradient (Net's output_grad); the network's backward carries it down through every layer
// below. The training loop runs every term the experiment configures without knowing which
// they are: a new term is a new file here and one line in the registry (nn/term.c).
//
// Values follow the main loss's convention (nn/loss.h): summed over the batch's samples, so
// the trainer can sum over ranks and divide by the global batch; `scale` (1 / the global
// batch) is the gradient of the mean. A term whose value is one number for the whole global
// batch (EnD's pair terms, MI's bound) computes it from global sums through `red`, returns it
// times b->n (so the trainer's mean is the number) and adds its exact gradient, unscaled.
//
// Two schedules (LossTerm.alternating):
//   joint        the term's gradient joins the main loss's in the one backward of a step
//                (feature_l2, EnD): loss = main + terms.
//   alternating  the term has its own step after the main one (MI, as its reference trains):
//                at the new parameters, the term's gradient on the layers up to its layer is
//                capped tensor by tensor at the norm of the main loss's gradient and applied
//                by a second optimiser (the main one's kind, lr x lr_scale).
// A term on two views (CLAD) reads the layer's output for the batch's images and for its
// positives (Batch.positives, made by the loader): the trainer runs the positives through a
// twin of the network sharing its parameters (nn/net.h, net_share_tensors) and calls
// forward_backward_pair instead, whose gradients go down both passes.
//
// A term may also own an adversary fitted on the layer's features, detached (MI's statistics
// network): `fit` updates it, fit_steps times after each step and, with fit_pass, once per
// batch of a pass over the training data before each epoch. Its parameters and optimiser
// state live in t->state (replicated on every rank, updated with gradients summed over
// ranks), which the checkpoint keeps.
#ifndef DF_TERM_H
#define DF_TERM_H
#include <stdint.h>
#include "base/ini.h"
#include "base/reduce.h"
#include "nn/batch.h"
#include "nn/metadata.h"
#include "nn/net.h"

typedef struct LossTerm LossTerm;

#define TERM_MAX_LOGS 6
#define TERM_MAX_COUNTERS 4
// How the trainer averages a logged quantity over an epoch: the mean over the epoch's samples
// of a per-global-batch number (R_perp, the MI estimate), or a count of global batches.
typedef enum { TERM_LOG_MEAN, TERM_LOG_COUNT } TermLogKind;

typedef struct {
    const char *type;  // its name: a section header ([feature_l2]), or a [debias] method (end, mi, clad)
    // Reads the section's keys (through ini getters, so unknown keys are caught) but
    // `layer`, which the registry has read and placed (t->layer, t->act, t->d are set, and
    // t->seed); sets t->weight, the schedule fields and the logs, allocates t->state.
    // schema: the data's metadata (NULL when none). 0, or -1 with file:line.
    int (*build)(LossTerm *t, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err);
    // Optional, collective: this rank's share [lo, lo + n_local) of the n_total training rows'
    // raw metadata (schema columns) and labels, before training (quantile bins of a bias).
    int (*prepare)(LossTerm *t, const double *meta, const int *labels, int n_local, long lo, long n_total, Reducer *red,
                   DfError *err);
    // The term's value for the batch (feat: the layer's output, (b->n, t->d)), weight
    // included, as above; adds its gradient into dfeat (b->n, t->d) unless dfeat is NULL;
    // writes the global batch's value of each logged quantity into logs (t->n_logs).
    // Collective when the term couples samples.
    double (*forward_backward)(LossTerm *t, const float *feat, const Batch *b, float *dfeat, float scale, Reducer *red,
                               double *logs);
    // Optional, collective: one update of the term's adversary on the batch's features
    // (detached: nothing flows back to the network). Writes logs like forward_backward.
    void (*fit)(LossTerm *t, const float *feat, const Batch *b, Reducer *red, double *logs);
    void (*destroy)(LossTerm *t);  // frees t->impl and t->state (may be NULL)
    // Instead of forward_backward, for a term on two views (LossTerm.positives): also the
    // layer's output for the batch's positives (feat_pos, (b->n, t->d)), and its gradient
    // (dfeat_pos, NULL exactly when dfeat is).
    double (*forward_backward_pair)(LossTerm *t, const float *feat, const float *feat_pos, const Batch *b, float *dfeat,
                                    float *dfeat_pos, float scale, Reducer *red, double *logs);
} LossTermOps;

struct LossTerm {
    const LossTermOps *ops;
    char section[32];  // the INI section it came from, for messages ("debias")
    char layer[64];    // the layer it reads
    int act;           // that layer's output: an index into Net.acts (set by the trainer)
    int d;             // values per sample of that output (set by the trainer)
    int n_classes;     // label values 0..n_classes-1 (the schema's; 0 without one)
    double weight;
    // schedule (see above)
    int alternating;
    int positives;       // 1: a term on two views (forward_backward_pair; the batches carry positives)
    double lr_scale;     // alternating: the term's optimiser runs at lr x lr_scale
    int warmup_epochs;   // epochs at the start during which the term does not act on the network
    int fit_steps;       // fit calls after each step
    int fit_pass;        // 1: a fit pass over the training data before each epoch
    uint64_t seed;       // the run's seed (set by the trainer): permutations derive from it
    // logged beside the value, each epoch
    int n_logs;
    char log_names[TERM_MAX_LOGS][32];
    TermLogKind log_kind[TERM_MAX_LOGS];
    // checkpointed state: floats (adversary parameters, optimiser moments) and counters
    float *state;
    size_t n_state;
    int64_t counters[TERM_MAX_COUNTERS];
    int n_counters;
    void *impl;
};

// The term type of a section header, or NULL ([debias] is not one: its `method` key names it).
const LossTermOps *loss_term_ops_find(const char *type);
// Every term the experiment configures, one per section whose header is a term type or
// [debias], in file order, placed on `net` (each section's `layer` key: t->act, t->d): a
// debiasing loss must read a layer below the output with parameters at or below it. *n may be
// 0. seed: the run's (the terms' own initialisation and permutations derive from it). -1
// with file:line in err.
int loss_terms_build(LossTerm **terms, int *n, const Ini *ini, Net *net, const MetaSchema *schema, uint64_t seed,
                     DfError *err);
void loss_terms_free(LossTerm *terms, int n);
// Adds a logged quantity (build uses it).
void loss_term_add_log(LossTerm *t, const char *name, TermLogKind kind);

// ---- feature_l2: L2 penalty on a layer's output (activity regularisation) ------------------
// value = weight * sum_i ||f_i||^2 over the batch's samples (f_i the layer's output for
// sample i, flattened); gradient 2 * weight * f_i. As Keras' activity_regularizer = l2.
double feature_l2_forward(const float *feat, int B, int d, double weight);
// dfeat (B, d) += scale * 2 * weight * feat
void feature_l2_backward(float *dfeat, const float *feat, int B, int d, double weight, float scale);
extern const LossTermOps feature_l2_ops;
// ---- the debiasing losses: nn/end.h, nn/mi.h, nn/clad.h -----------------------------------
extern const LossTermOps end_ops, mi_ops, clad_ops;
#endif
