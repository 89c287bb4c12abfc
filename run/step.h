// step.h: one training step -- the unit the loop repeats and the tests drive directly.
#ifndef DF_RUN_STEP_H
#define DF_RUN_STEP_H
#include "run/terms.h"

// On batch b (this rank's share of a global batch): forward, the loss on the output and the
// joint loss terms, backward with the gradient sum over ranks started during it, the
// optimiser at lr; then the alternating terms' steps and the adversaries' fits. ls gets this
// rank's loss sum, correct count and samples. Collective.
void step_run(const Stepper *s, const Batch *b, int epoch, double lr, LossStats *ls);
#endif
