// refit.h: the refit passes -- evaluation statistics fitted over the whole training split
// at an epoch's end, for the layers that ask for them (LayerOps.refit; [mdn] eval_beta =
// epoch or epoch_eval). A layer with batch statistics normalises in training with the global
// batch's estimate and in evaluation with a stored one; a momentum average of the per-batch
// estimates trails the features as the network learns and keeps the batches' noise. A pass
// runs the training split once more through the network, with no backward and no optimiser
// step: in training mode (REFIT_TRAINING, eval_beta = epoch) each refitting layer sees the
// inputs it saw in training, batch statistics of the layers before it included; in
// evaluation mode (REFIT_EVALUATION, eval_beta = epoch_eval) the inputs evaluation will give
// it: the training volumes without augmentation, through the stored statistics of the layers
// before it (this epoch's for layers refitted in training mode, whose pass runs and finishes
// first; the previous epoch's for those refitted in evaluation mode, as all of a pass's
// layers are fitted at once). Each refitting layer sums what it needs over every rank's share,
// and one reduction per layer after its pass gives its estimate on the whole split, identical on every
// rank and at any rank count up to float summation order. The rest of the network's state
// (BatchNorm's running statistics, R-MDN's estimate) is restored after each pass, so the
// passes change nothing else. Cost: one forward over the training split per pass and epoch
// (about a third of an epoch's compute each).
#ifndef DF_RUN_REFIT_H
#define DF_RUN_REFIT_H
#include "data/loader.h"
#include "nn/net.h"

// Collective. Returns 0 when no layer wants the pass or it ran; -1 with err on a read error.
// train is the training loader, whose epoch `epoch` the training-mode pass reads again from
// the start, augmentation included (what training saw); plain reads the same split without
// augmentation for the evaluation-mode pass (what evaluation sees: fitting there to augmented
// volumes left site in the features of fresh ones, pipelines/mdn-placement). plain may be train
// when nothing is augmented.
int refit_run(Net *net, Loader *train, Loader *plain, int epoch, DfError *err);
#endif
