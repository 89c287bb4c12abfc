// terms.h: the loss terms of a training run (nn/term.h), as the trainer drives them: their
// gradients in the step (joint terms), their own step after it (alternating terms, MI), their
// adversaries' fits, the fit pass before each epoch, what they log per epoch, and the state a
// checkpoint keeps. Every function here is collective: every rank calls it in the same order.
#ifndef DF_RUN_TERMS_H
#define DF_RUN_TERMS_H
#include "data/checkpoint.h"
#include "mpi/gradsync.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/term.h"

typedef struct {
    LossTerm *terms;  // not owned
    int n;
    Optimizer *alt;   // (n): the optimiser of an alternating term's step (zeroed for others)
    int64_t *alt_steps;  // (n): their step counts as the checkpoint keeps them
    size_t *enc;      // (n): parameters of the layers up to the term's layer (a prefix of the flat buffer)
    float *gu;        // scratch: the main loss's gradient (alternating steps)
    double *acc;      // (n, 1 + 2 * TERM_MAX_LOGS): the epoch's value sum, then (sum, samples) per log, over all ranks
    double *step_acc; // the same, this rank's, since the last terms_sync
    size_t n_acc;
    CheckpointBlob *blobs;  // the terms' state and their optimisers', for the checkpoint
    int n_blobs;
    int n_columns;    // report columns: per term its value then its logs
    // Terms on two views (CLAD): the network's twin, on its parameters (net_share_tensors),
    // runs the batch's positives; its backward is due after the main loss's gradients are
    // zeroed and before the main backward (terms_backward_positives).
    Net *twin;        // not owned; NULL when no term reads positives
    float *zeros;     // (max_batch, outputs): the twin's gradient at its output
    Batch pos;        // this step's positives as a batch
    int twin_due;     // 1: the twin ran forward with gradients to carry down
} TermRunner;

// What a training step works with (run/step.h builds the step from it).
typedef struct {
    Net *net;
    Optimizer *opt;
    const LossConfig *loss;
    int K;                     // network outputs
    float *dlogits, *scratch;  // (max_batch, K) and 2 (max_batch, K)
    GradSync *gs;              // sums gradients over ranks (a no-op on one)
    TermRunner *terms;
    // Per-class tallies of this rank's samples (nn/loss.h class_tally), or NULL: taken from
    // the logits the loss saw, before any alternating term runs the network again.
    double *class_tally;
    int tally_classes;
} Stepper;

void terms_setup(TermRunner *r, LossTerm *terms, int n, Net *net, const OptConfig *main_opt);
void terms_free(TermRunner *r);
// 1 when some term reads the batch's positives (then the loader makes them, and the trainer
// hands a twin of the network to terms_set_twin).
int terms_need_positives(const TermRunner *r);
void terms_set_twin(TermRunner *r, Net *twin);
// The checkpoint holds r->blobs (TrainState.blobs): the alternating optimisers' step counts
// are copied into them before a save and back after a load.
void terms_before_save(TermRunner *r);
void terms_after_load(TermRunner *r);
// The terms' own fitting to the training split (quantile bins); this rank's share [lo, lo +
// n_local) of n_total rows. Dies with status 2 on an error.
void terms_prepare(TermRunner *r, const double *meta, const int *labels, int n_local, long lo, long n_total, Reducer *red);
// Every rank takes rank 0's term state (as the network's parameters are broadcast).
void terms_bcast(TermRunner *r);
// In a step, after the main loss and before the backward: joint terms add their gradients at
// their layers (or, in their warm-up epochs, are only computed and logged). A term on two
// views first has the batch's positives run through the twin (training mode).
void terms_joint(TermRunner *r, Net *net, const Batch *b, int epoch, float scale);
// After the gradients are zeroed and before the main backward: the positives' pass down the
// twin, adding into the shared gradients (a no-op when no term read positives this step).
void terms_backward_positives(TermRunner *r);
// After the step's optimiser update: alternating terms' steps, then every adversary's fits.
void terms_after_step(TermRunner *r, const Stepper *c, const Batch *b, int epoch, double lr);
// 1 when some term fits its adversary in a pass over the training data before each epoch.
int terms_want_fit_pass(const TermRunner *r);
// One batch of that pass: the network's training-mode features (batch statistics, as the
// steps see them; its running statistics are kept as they were), on which those adversaries
// take one step.
void terms_fit_batch(TermRunner *r, Net *net, const Batch *b);
// Adds every rank's sums since the last call into the epoch's (after each step and after
// the fit pass), so the epoch's sums are the same on every rank -- and a checkpoint taken
// mid-epoch keeps them (TrainState.term_sums: r->acc, r->n_acc).
// Forgets what the terms logged during the step in progress (a skipped batch, run/train.c).
void terms_discard_step(TermRunner *r);
void terms_sync(TermRunner *r);
// Report columns, in order: "<type>(<layer>)" then "<type>(<layer>).<log>" for each log.
void terms_column_name(const TermRunner *r, int col, char *buf, size_t n);
// The epoch's means (and counts) per column; samples: the epoch's global sample count. Then
// the sums start again for the next epoch.
void terms_epoch_end(TermRunner *r, double samples, double *columns);
#endif
