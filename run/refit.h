// refit.h: the refit pass -- evaluation statistics fitted over the whole training split at
// an epoch's end, for the layers that ask for it (LayerOps.refit; [mdn] eval_beta = epoch).
// A layer with batch statistics normalises in training with the global batch's estimate and
// in evaluation with a stored one; a momentum average of the per-batch estimates trails the
// features as the network learns and keeps the batches' noise. The pass runs the training
// split once more through the network in training mode -- the inputs the layers after each
// refitted layer saw in training -- with no backward and no optimiser step; each refitting
// layer sums what it needs over every rank's share, and one reduction per layer at the end
// gives its estimate on the whole split, identical on every rank and at any rank count up to
// float summation order. The rest of the network's state (BatchNorm's running statistics,
// R-MDN's estimate) is restored afterwards, so the pass changes nothing else. Cost: one
// forward over the training split per epoch (about a third of an epoch's compute).
#ifndef DF_RUN_REFIT_H
#define DF_RUN_REFIT_H
#include "data/loader.h"
#include "nn/net.h"

// Collective. Returns 0 when no layer wants the pass or it ran; -1 with err on a read error.
// train is the training loader; its epoch `epoch` is read again from the start.
int refit_run(Net *net, Loader *train, int epoch, DfError *err);
#endif
