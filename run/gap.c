// gap.c: the train/eval gap of layers with batch statistics (see gap.h).
#include "run/gap.h"
#include "mpi/comm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void gap_init(GapMeter *g, const Net *net, int max) {
    memset(g, 0, sizeof *g);
    if (max > GAP_MAX_LAYERS) max = GAP_MAX_LAYERS;
    for (int i = 0; i < net->n_layers && g->n < max; i++)
        if (net->layers[i].ops->batch_statistics) g->layer[g->n++] = i;
    g->eval = xcalloc((size_t)g->n + 1, sizeof(float *));
    for (int j = 0; j < g->n; j++)
        g->eval[j] = df_alloc_floats((size_t)net->ctx.max_batch * shape_numel(net->layers[g->layer[j]].out_shape));
    g->state = df_alloc_floats(net->n_state + 1);
}

void gap_free(GapMeter *g) {
    for (int j = 0; j < g->n; j++) free(g->eval[j]);
    free(g->eval);
    free(g->state);
    memset(g, 0, sizeof *g);
}

void gap_visit(GapMeter *g, Net *net, const Batch *b) {
    if (!g->n) return;
    for (int j = 0; j < g->n; j++) {
        const Layer *L = &net->layers[g->layer[j]];
        memcpy(g->eval[j], L->out, (size_t)b->n * shape_numel(L->out_shape) * sizeof(float));
    }
    memcpy(g->state, net->state, net->n_state * sizeof(float));
    net_forward(net, b, 1);
    memcpy(net->state, g->state, net->n_state * sizeof(float));
    for (int j = 0; j < g->n; j++) {
        const Layer *L = &net->layers[g->layer[j]];
        size_t n = (size_t)b->n * shape_numel(L->out_shape);
        double diff = 0.0, ref = 0.0;
        for (size_t i = 0; i < n; i++) {
            double t = L->out[i], e = g->eval[j][i];
            diff += (t - e) * (t - e);
            ref += t * t;
        }
        g->sums[2 * j] += diff;
        g->sums[2 * j + 1] += ref;
    }
}

void gap_epoch_end(GapMeter *g, double *gap) {
    if (!g->n) return;
    dist_allreduce_sum_f64(g->sums, 2 * (size_t)g->n);
    for (int j = 0; j < g->n; j++) gap[j] = g->sums[2 * j + 1] > 0 ? sqrt(g->sums[2 * j] / g->sums[2 * j + 1]) : NAN;
    memset(g->sums, 0, sizeof g->sums);
}
