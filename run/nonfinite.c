// nonfinite.c: where a training step went non-finite (see nonfinite.h).
#include "run/nonfinite.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "mpi/comm.h"

// The name of the layer whose output is acts[a]: a fused group (nn/fused.h) stores only its
// last layer's output, so the group is named whole.
static void output_name(const Net *net, int a, char *out, size_t n) {
    int i = a - 1;
    if (i >= 2 && net->fused[i] == -1 && net->fused[i - 2] == 3)
        snprintf(out, n, "%s+%s+%s", net->layers[i - 2].name, net->layers[i - 1].name, net->layers[i].name);
    else
        snprintf(out, n, "%s", net->layers[i].name);
}

static void sample_name(const Batch *b, char *const *subjects, int i, char *out, size_t n) {
    if (b->index && subjects) snprintf(out, n, "sample %d of the data (subject %s)", b->index[i], subjects[b->index[i]]);
    else if (b->index) snprintf(out, n, "sample %d of the data", b->index[i]);
    else snprintf(out, n, "sample %ld of the epoch", b->first_sample + i);
}

// This rank's earliest non-finite value: a key ordering the places (input 0, the output of
// layer i i + 1, the gradient of layer i 2 n_layers - i: backward order) and its text; the
// key is INT32_MAX when everything is finite.
// The first layer (in order, below layer `below`) whose state -- BatchNorm's running statistics --
// the forward made non-finite, or -1: a batch variance beyond float's range is finite in every
// output and gradient but not in the state.
static int state_finding(const Net *net, int below, char *what, size_t n) {
    for (int i = 0; i < below && i < net->n_layers; i++) {
        const Layer *L = &net->layers[i];
        for (int t = 0; t < L->n_state_info; t++) {
            long k = df_first_nonfinite(layer_state(L, t), L->state_info[t].count);
            if (k >= 0) {
                snprintf(what, n, "%s[%ld] = %g", L->state_info[t].name, k, (double)layer_state(L, t)[k]);
                return i;
            }
        }
    }
    return -1;
}

static long local_finding(Net *net, const Batch *b, char *const *subjects, char *msg, size_t n) {
    int sample = 0, a = net_find_nonfinite_output(net, b->n, &sample);
    char who[256], name[200], what[200];
    if (a == 0) {
        sample_name(b, subjects, sample, who, sizeof who);
        snprintf(msg, n, "the input: %s has a NaN or infinite voxel", who);
        return 0;
    }
    int s = state_finding(net, a > 0 ? a : net->n_layers, what, sizeof what);
    if (s >= 0) {
        snprintf(msg, n, "the state of layer %s, %s (its input's variance overflows float: the weights below it have grown too large)",
                 net->layers[s].name, what);
        return s + 1;
    }
    if (a > 0) {
        sample_name(b, subjects, sample, who, sizeof who);
        output_name(net, a, name, sizeof name);
        snprintf(msg, n, "the output of layer %s (first for %s; the input and the layers below are finite)", name, who);
        return a;
    }
    for (int i = net->n_layers - 1; i >= 0; i--) {
        const Layer *L = &net->layers[i];
        if (L->n_params && df_first_nonfinite(L->grads, L->n_params) >= 0) {
            snprintf(msg, n, "the gradient of layer %s (the forward is finite; the layers above it have finite gradients)",
                     L->name);
            return 2L * net->n_layers - i;
        }
    }
    snprintf(msg, n, "the loss (every layer's output and gradient is finite here)");
    return 2L * net->n_layers + 1;
}

void nonfinite_diagnose(Net *net, const Batch *b, char *const *subjects, char *msg, size_t n) {
    // The gradients are the step's (summed over ranks); the outputs are recomputed, since the
    // backward may have overwritten some (nn/fused.h).
    net_forward(net, b, 1);
    long key = local_finding(net, b, subjects, msg, n);
    // The earliest over ranks, ties to the lowest rank: max of -(key * P + rank).
    const int P = dist_size();
    double v = -((double)key * P + dist_rank());
    dist_allreduce_max_f64(&v, 1);
    int root = (int)((long long)(-v) % P);
    dist_bcast(msg, n, root);
    msg[n - 1] = '\0';
}
