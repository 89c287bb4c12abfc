// term.h: loss terms on a named layer -- what a method adds to the network's loss beyond the
// loss on its output. The debiasing losses (EnD, MI, CLAD) are such terms. A term reads one
// layer's output for the batch, returns its value and adds its gradient to that output's
// gradient (Net's output_grad); the network's backward carries it down through every layer
// below. The training loop runs every term the experiment configures without knowing which
// they are: a new term is a new file here and one line in the registry (nn/term.c).
//
// Values follow the main loss's convention (nn/loss.h): summed over the batch's samples, so
// the trainer can sum over ranks and divide by the global batch; `scale` (1 / the global
// batch) scales the gradient. A term whose value couples samples (pairs over the global
// batch) makes its sums global itself through `red`, as layers do.
#ifndef DF_TERM_H
#define DF_TERM_H
#include "base/ini.h"
#include "base/reduce.h"
#include "nn/batch.h"
#include "nn/metadata.h"

typedef struct LossTerm LossTerm;

typedef struct {
    const char *type;  // its INI section header, e.g. "feature_l2"
    // Reads the section's keys (through ini getters, so unknown keys are caught); sets
    // t->layer (the name of the layer whose output it reads) and t->weight. schema: the
    // data's metadata (NULL when none), for terms that use it. 0, or -1 with file:line.
    int (*build)(LossTerm *t, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err);
    // The term's value for the batch (feat: the layer's output, (b->n, t->d)), summed over the
    // samples, weight included; adds d(value)/d(feat) * scale into dfeat (b->n, t->d).
    double (*forward_backward)(LossTerm *t, const float *feat, const Batch *b, float *dfeat, float scale, Reducer *red);
    void (*destroy)(LossTerm *t);  // frees t->impl (may be NULL)
} LossTermOps;

struct LossTerm {
    const LossTermOps *ops;
    char layer[64];   // the layer it reads
    int act;          // that layer's output: an index into Net.acts (set by the trainer)
    int d;            // values per sample of that output (set by the trainer)
    double weight;
    void *impl;
};

// The term type of a section header, or NULL.
const LossTermOps *loss_term_ops_find(const char *type);
// Every term the experiment configures, one per section whose header is a term type, in file
// order. *n may be 0. -1 with file:line in err.
int loss_terms_build(LossTerm **terms, int *n, const Ini *ini, const MetaSchema *schema, DfError *err);
void loss_terms_free(LossTerm *terms, int n);

// ---- feature_l2: L2 penalty on a layer's output (activity regularisation) ------------------
// value = weight * sum_i ||f_i||^2 over the batch's samples (f_i the layer's output for
// sample i, flattened); gradient 2 * weight * f_i. As Keras' activity_regularizer = l2.
double feature_l2_forward(const float *feat, int B, int d, double weight);
// dfeat (B, d) += scale * 2 * weight * feat
void feature_l2_backward(float *dfeat, const float *feat, int B, int d, double weight, float scale);
extern const LossTermOps feature_l2_ops;
#endif
