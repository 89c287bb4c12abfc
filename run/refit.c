// refit.c: the refit pass (see refit.h).
#include "run/refit.h"
#include <stdlib.h>
#include <string.h>

// One pass over the training split in the given mode; the state is restored after it.
static int refit_pass(Net *net, Loader *train, int epoch, int mode, DfError *err) {
    float *state = df_alloc_floats(net->n_state + 1);
    memcpy(state, net->state, net->n_state * sizeof(float));
    net->ctx.refitting = mode;
    loader_begin_epoch_at(train, epoch, 0);
    const Batch *b;
    while ((b = loader_next(train, err))) net_forward(net, b, mode == REFIT_TRAINING);
    net->ctx.refitting = 0;
    memcpy(net->state, state, net->n_state * sizeof(float));
    free(state);
    return loader_failed(train) ? -1 : 0;
}

int refit_run(Net *net, Loader *train, Loader *plain, int epoch, DfError *err) {
    int want = net_refit_begin(net);  // the same answer on every rank: it is the configuration's
    if (!want) return 0;
    // The training-mode layers' new estimates first, so the evaluation-mode pass computes
    // what evaluation will: through them (a layer refitted in evaluation mode still sees the
    // previous estimates of such layers before it).
    if (want & REFIT_TRAINING) {
        if (refit_pass(net, train, epoch, REFIT_TRAINING, err)) return -1;
        net_refit_finish(net, REFIT_TRAINING);
    }
    if (want & REFIT_EVALUATION) {
        if (refit_pass(net, plain, epoch, REFIT_EVALUATION, err)) return -1;
        net_refit_finish(net, REFIT_EVALUATION);
    }
    return 0;
}
