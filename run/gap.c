// gap.c: the train/eval gap of layers with batch statistics (see gap.h).
#include "run/gap.h"
#include "mpi/comm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void gap_init(GapMeter *g, Net *net, int max) {
    memset(g, 0, sizeof *g);
    if (max > GAP_MAX_LAYERS) max = GAP_MAX_LAYERS;
    size_t widest = 1;
    for (int i = 0; i < net->n_layers && g->n < max; i++)
        if (net->layers[i].ops->batch_statistics) {
            net_observe(net, i + 1);  // its output is read here, so the network stores it
            g->layer[g->n++] = i;
            widest = DF_MAX(widest, shape_numel(net->layers[i].out_shape));
        }
    g->eval = xcalloc((size_t)g->n + 1, sizeof(float *));
    for (int j = 0; j < g->n; j++)
        g->eval[j] = df_alloc_floats((size_t)net->ctx.max_batch * shape_numel(net->layers[g->layer[j]].out_shape));
    g->out = df_alloc_floats((size_t)net->ctx.max_batch * widest);
    g->state = df_alloc_floats(net->n_state + 1);
}

void gap_free(GapMeter *g) {
    for (int j = 0; j < g->n; j++) free(g->eval[j]);
    free(g->eval);
    free(g->out);
    free(g->state);
    memset(g, 0, sizeof *g);
}

static void add(double *sums, const float *train, const float *eval, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double t = train[i], e = eval[i];
        sums[0] += (t - e) * (t - e);
        sums[1] += t * t;
    }
}

void gap_visit(GapMeter *g, Net *net, const Batch *b) {
    if (!g->n) return;
    memcpy(g->state, net->state, net->n_state * sizeof(float));
    // own: each layer in training mode on its eval-mode input (layer order: collective calls
    // in the same order on every rank), its eval-mode output kept for the next reading
    for (int j = 0; j < g->n; j++) {
        Layer *L = &net->layers[g->layer[j]];
        size_t n = (size_t)b->n * shape_numel(L->out_shape);
        memcpy(g->eval[j], L->out, n * sizeof(float));
        L->ops->forward(L, b, 1);
        memcpy(g->out, L->out, n * sizeof(float));
        memcpy(L->out, g->eval[j], n * sizeof(float));
        add(g->sums + 4 * j, g->out, g->eval[j], n);
    }
    // in context: the whole network in training mode
    net_forward(net, b, 1);
    memcpy(net->state, g->state, net->n_state * sizeof(float));
    for (int j = 0; j < g->n; j++) {
        const Layer *L = &net->layers[g->layer[j]];
        add(g->sums + 4 * j + 2, L->out, g->eval[j], (size_t)b->n * shape_numel(L->out_shape));
    }
}

void gap_epoch_end(GapMeter *g, double *gap) {
    if (!g->n) return;
    dist_allreduce_sum_f64(g->sums, 4 * (size_t)g->n);
    for (int k = 0; k < 2 * g->n; k++) gap[k] = g->sums[2 * k + 1] > 0 ? sqrt(g->sums[2 * k] / g->sums[2 * k + 1]) : NAN;
    memset(g->sums, 0, sizeof g->sums);
}
