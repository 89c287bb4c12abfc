// step.h: one training step -- the unit the loop repeats and the tests drive directly.
#ifndef DF_RUN_STEP_H
#define DF_RUN_STEP_H
#include "run/terms.h"

// On batch b (this rank's share of a global batch): forward, the loss on the output and the
// joint loss terms, backward with the gradient sum over ranks started during it, the
// optimiser at lr; then the alternating terms' steps and the adversaries' fits. ls gets this
// rank's loss sum, correct count and samples. Collective.
// Returns 0, or 1 when a value went non-finite: the gradients summed over ranks or the
// network's state hold a NaN or infinity (the same on every rank), or -- with check_outputs --
// some rank's stored layer outputs do (agreed over ranks). The optimiser has then not stepped and the alternating terms
// have not run; the network's state (BatchNorm's running statistics) has been updated by the
// forward, which the caller may restore (run/nonfinite.h finds where it started).
int step_run(const Stepper *s, const Batch *b, int epoch, double lr, int check_outputs, LossStats *ls);
#endif
