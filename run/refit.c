// refit.c: the refit pass (see refit.h).
#include "run/refit.h"
#include <stdlib.h>
#include <string.h>

int refit_run(Net *net, Loader *train, int epoch, DfError *err) {
    if (!net_refit_begin(net)) return 0;  // the same answer on every rank: it is the configuration's
    float *state = df_alloc_floats(net->n_state + 1);
    memcpy(state, net->state, net->n_state * sizeof(float));
    net->ctx.refitting = 1;
    loader_begin_epoch_at(train, epoch, 0);
    const Batch *b;
    while ((b = loader_next(train, err))) net_forward(net, b, 1);
    net->ctx.refitting = 0;
    memcpy(net->state, state, net->n_state * sizeof(float));
    free(state);
    if (loader_failed(train)) return -1;
    net_refit_finish(net);
    return 0;
}
