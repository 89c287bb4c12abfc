// nonfinite.h: where a training step went non-finite (NaN or infinity).
//
// The trainer checks the gradients every step, once they are summed over ranks (so every rank
// decides the same), and the layers' stored outputs every [train] check_every steps (run/step.h).
// When either holds a NaN or infinity the step's optimiser update is not applied, and this
// finds where it started, so the one message the run stops with names it: an input sample
// (a NaN voxel in the data), the first layer whose output went non-finite (a divergence: the
// learning rate), or -- when the whole forward is finite -- the layer whose gradient did.
#ifndef DF_RUN_NONFINITE_H
#define DF_RUN_NONFINITE_H
#include <stddef.h>
#include "nn/net.h"

// Runs batch b forward again in training mode (the caller restores the network's state, which
// this forward updates), then finds the earliest non-finite value on every rank -- an input
// sample, then the stored outputs in layer order, then the parameter gradients in backward
// order -- and agrees on the earliest over ranks. `subjects` (the data set's subject ids, by
// b->index) names the sample when given. The same text lands in msg on every rank. Collective.
void nonfinite_diagnose(Net *net, const Batch *b, char *const *subjects, char *msg, size_t n);
#endif
