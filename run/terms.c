// terms.c: driving the loss terms through a training run (see terms.h and nn/term.h).
#include "run/terms.h"
#include "mpi/comm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIDE (1 + 2 * TERM_MAX_LOGS)

void terms_setup(TermRunner *r, LossTerm *terms, int n, Net *net, const OptConfig *main_opt) {
    memset(r, 0, sizeof *r);
    r->terms = terms;
    r->n = n;
    r->alt = xcalloc((size_t)n + 1, sizeof *r->alt);
    r->alt_steps = xcalloc((size_t)n + 1, sizeof *r->alt_steps);
    r->enc = xcalloc((size_t)n + 1, sizeof *r->enc);
    r->n_acc = (size_t)n * STRIDE;
    r->acc = xcalloc(r->n_acc + 1, sizeof *r->acc);
    r->step_acc = xcalloc(r->n_acc + 1, sizeof *r->step_acc);
    r->blobs = xcalloc(3 * (size_t)n + 1, sizeof *r->blobs);
    size_t max_enc = 0;
    for (int j = 0; j < n; j++) {
        LossTerm *lt = &terms[j];
        // an alternating step runs two backwards after one forward (alternating_step)
        if (lt->alternating) net_allow_repeated_backward(net);
        const Layer *top = &net->layers[lt->act - 1];
        r->enc[j] = (size_t)(top->grads - net->grads) + top->n_params;
        r->n_columns += 1 + lt->n_logs;
        if (lt->n_state) {
            CheckpointBlob *b = &r->blobs[r->n_blobs++];
            *b = (CheckpointBlob){ .data = lt->state, .n = lt->n_state, .counters = lt->counters, .n_counters = lt->n_counters };
            snprintf(b->name, sizeof b->name, "term%d_%s", j, lt->ops->type);
        }
        if (!lt->alternating) continue;
        // The term's own optimiser: the main one's kind and moments, without weight decay (the
        // main step applies it once per step already).
        OptConfig oc = *main_opt;
        oc.weight_decay = 0.0;
        optim_init(&r->alt[j], &oc, r->enc[j]);
        max_enc = DF_MAX(max_enc, r->enc[j]);
        const char *what[2] = { "m", "v" };
        float *bufs[2] = { r->alt[j].m, r->alt[j].v };
        for (int k = 0; k < 2; k++) {
            if (!bufs[k]) continue;
            CheckpointBlob *b = &r->blobs[r->n_blobs++];
            *b = (CheckpointBlob){ .data = bufs[k], .n = r->enc[j], .counters = &r->alt_steps[j], .n_counters = 1 };
            snprintf(b->name, sizeof b->name, "term%d_%s_optimizer_%s", j, lt->ops->type, what[k]);
        }
    }
    r->gu = df_alloc_floats(max_enc + 1);
}

int terms_need_positives(const TermRunner *r) {
    for (int j = 0; j < r->n; j++)
        if (r->terms[j].positives) return 1;
    return 0;
}

void terms_set_twin(TermRunner *r, Net *twin) {
    r->twin = twin;
    for (int j = 0; j < r->n; j++) net_observe(twin, r->terms[j].act);  // the twin's outputs the terms read
    free(r->zeros);
    r->zeros = xcalloc((size_t)twin->ctx.max_batch * shape_numel(twin->out_shape), sizeof(float));
}

void terms_free(TermRunner *r) {
    for (int j = 0; j < r->n; j++)
        if (r->alt[j].m) optim_free(&r->alt[j]);
    free(r->alt);
    free(r->alt_steps);
    free(r->enc);
    free(r->acc);
    free(r->step_acc);
    free(r->blobs);
    free(r->gu);
    free(r->zeros);
    memset(r, 0, sizeof *r);
}

void terms_before_save(TermRunner *r) {
    for (int j = 0; j < r->n; j++) r->alt_steps[j] = r->alt[j].step;
}

void terms_after_load(TermRunner *r) {
    for (int j = 0; j < r->n; j++) r->alt[j].step = (long)r->alt_steps[j];
}

void terms_prepare(TermRunner *r, const double *meta, const int *labels, int n_local, long lo, long n_total, Reducer *red) {
    DfError err;
    for (int j = 0; j < r->n; j++) {
        LossTerm *lt = &r->terms[j];
        if (lt->ops->prepare && lt->ops->prepare(lt, meta, labels, n_local, lo, n_total, red, &err))
            df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    }
}

void terms_bcast(TermRunner *r) {
    for (int j = 0; j < r->n; j++) {
        LossTerm *lt = &r->terms[j];
        if (lt->n_state) dist_bcast(lt->state, lt->n_state * sizeof(float), 0);
        if (lt->n_counters) dist_bcast(lt->counters, (size_t)lt->n_counters * sizeof(int64_t), 0);
    }
}

// The epoch's sums: the value (summed over samples, as returned) and each logged quantity:
// a mean is weighted by this rank's samples; a count enters as this rank's share of the global
// batch, so the ranks' shares add up to one per batch.
static void accumulate(TermRunner *r, int j, const double *value, const double *logs, const Batch *b) {
    const LossTerm *lt = &r->terms[j];
    double *a = r->step_acc + (size_t)j * STRIDE;
    if (value) a[0] += *value;
    for (int k = 0; k < lt->n_logs; k++) {
        if (isnan(logs[k])) continue;
        double w = lt->log_kind[k] == TERM_LOG_MEAN ? (double)b->n : (double)b->n / (double)b->global_n;
        a[1 + 2 * k] += logs[k] * w;
        a[2 + 2 * k] += w;
    }
}

// The positives of batch b through the twin, once per step.
static void forward_positives(TermRunner *r, const Batch *b, int *ran) {
    if (*ran) return;
    DF_ASSERT(r->twin && b->positives);  // the trainer asks the loader for positives
    r->pos = *b;
    r->pos.images = b->positives;
    net_forward(r->twin, &r->pos, 1);
    *ran = 1;
}

void terms_joint(TermRunner *r, Net *net, const Batch *b, int epoch, float scale) {
    int ran = 0;
    r->twin_due = 0;
    for (int j = 0; j < r->n; j++) {
        LossTerm *lt = &r->terms[j];
        if (lt->alternating) continue;
        double logs[TERM_MAX_LOGS], v;
        float *dfeat = epoch >= lt->warmup_epochs ? net_output_grad(net, lt->act) : NULL;
        if (lt->positives) {
            forward_positives(r, b, &ran);
            float *dpos = dfeat ? net_output_grad(r->twin, lt->act) : NULL;
            v = lt->ops->forward_backward_pair(lt, net->acts[lt->act], r->twin->acts[lt->act], b, dfeat, dpos, scale,
                                               net->ctx.reducer, logs);
            r->twin_due |= dfeat != NULL;
        } else {
            v = lt->ops->forward_backward(lt, net->acts[lt->act], b, dfeat, scale, net->ctx.reducer, logs);
        }
        accumulate(r, j, &v, logs, b);
    }
}

void terms_backward_positives(TermRunner *r) {
    if (!r->twin_due) return;
    net_backward(r->twin, &r->pos, r->zeros);
    r->twin_due = 0;
}

static double norm2(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

// gm, tensor by tensor over the layers below `top`: scaled to min(|gu|, |gm|) / |gm| (the
// reference's clipping of the MI gradient at the task gradient's norm). A tensor the term
// does not reach (|gm| = 0) stays zero.
static void cap_to_main(float *gm, const float *gu, const Net *net, int top) {
    for (int i = 0; i < top; i++) {
        const Layer *L = &net->layers[i];
        for (int t = 0; t < L->n_params_info; t++) {
            size_t off = (size_t)(layer_grad(L, t) - net->grads), cnt = L->params_info[t].count;
            double nu = norm2(gu + off, cnt), nm = norm2(gm + off, cnt);
            if (nm == 0.0) continue;
            float s = (float)((nu < nm ? nu : nm) / nm);
            for (size_t k = 0; k < cnt; k++) gm[off + k] *= s;
        }
    }
}

// An alternating term's step at the parameters the main step just produced: the main loss's
// gradient (for its norms), the term's own gradient, each summed over ranks; the term's capped
// and applied by the term's optimiser to the layers up to its layer.
static double alternating_step(TermRunner *r, int j, const Stepper *c, const Batch *b, double lr, double *logs) {
    LossTerm *lt = &r->terms[j];
    Net *net = c->net;
    float scale = 1.0f / (float)b->global_n;
    LossStats ls = { 0, 0, 0 };
    const float *logits = net_forward(net, b, 1);
    loss_batch(c->loss, logits, c->K, b, c->dlogits, scale, c->scratch, &ls);
    net_zero_grad(net);
    net_backward(net, b, c->dlogits);
    gradsync_finish(c->gs);
    memcpy(r->gu, net->grads, r->enc[j] * sizeof(float));
    double v = lt->ops->forward_backward(lt, net->acts[lt->act], b, net_output_grad(net, lt->act), scale, net->ctx.reducer, logs);
    memset(c->dlogits, 0, (size_t)b->n * c->K * sizeof(float));
    net_zero_grad(net);
    net_backward(net, b, c->dlogits);
    gradsync_finish(c->gs);
    cap_to_main(net->grads, r->gu, net, lt->act);
    optim_step(&r->alt[j], net->params, net->grads, lr * lt->lr_scale);
    return v;
}

void terms_after_step(TermRunner *r, const Stepper *c, const Batch *b, int epoch, double lr) {
    Net *net = c->net;
    for (int j = 0; j < r->n; j++) {
        LossTerm *lt = &r->terms[j];
        double logs[TERM_MAX_LOGS], v;
        if (lt->alternating) {
            if (epoch >= lt->warmup_epochs) v = alternating_step(r, j, c, b, lr, logs);
            else v = lt->ops->forward_backward(lt, net->acts[lt->act], b, NULL, 1.0f / (float)b->global_n, net->ctx.reducer, logs);
            accumulate(r, j, &v, logs, b);
        }
        // the adversary, on the features of the batch's last forward (detached)
        for (int s = 0; lt->ops->fit && s < lt->fit_steps; s++) {
            lt->ops->fit(lt, net->acts[lt->act], b, net->ctx.reducer, logs);
            accumulate(r, j, NULL, logs, b);
        }
    }
}

int terms_want_fit_pass(const TermRunner *r) {
    for (int j = 0; j < r->n; j++)
        if (r->terms[j].fit_pass && r->terms[j].ops->fit) return 1;
    return 0;
}

void terms_fit_batch(TermRunner *r, Net *net, const Batch *b) {
    float *saved = df_alloc_floats(net->n_state + 1);
    memcpy(saved, net->state, net->n_state * sizeof(float));
    net_forward(net, b, 1);
    memcpy(net->state, saved, net->n_state * sizeof(float));
    free(saved);
    for (int j = 0; j < r->n; j++) {
        LossTerm *lt = &r->terms[j];
        if (!lt->fit_pass || !lt->ops->fit) continue;
        double logs[TERM_MAX_LOGS];
        lt->ops->fit(lt, net->acts[lt->act], b, net->ctx.reducer, logs);
        accumulate(r, j, NULL, logs, b);
    }
}

void terms_column_name(const TermRunner *r, int col, char *buf, size_t n) {
    for (int j = 0; j < r->n; j++) {
        const LossTerm *lt = &r->terms[j];
        if (col == 0) { snprintf(buf, n, "%s(%s)", lt->ops->type, lt->layer); return; }
        if (col <= lt->n_logs) { snprintf(buf, n, "%s(%s).%s", lt->ops->type, lt->layer, lt->log_names[col - 1]); return; }
        col -= 1 + lt->n_logs;
    }
    snprintf(buf, n, "?");
}

void terms_discard_step(TermRunner *r) {
    if (r->n) memset(r->step_acc, 0, r->n_acc * sizeof(double));
}

void terms_sync(TermRunner *r) {
    if (!r->n) return;
    dist_allreduce_sum_f64(r->step_acc, r->n_acc);
    for (size_t i = 0; i < r->n_acc; i++) r->acc[i] += r->step_acc[i];
    memset(r->step_acc, 0, r->n_acc * sizeof(double));
}

void terms_epoch_end(TermRunner *r, double samples, double *columns) {
    int col = 0;
    for (int j = 0; j < r->n; j++) {
        const LossTerm *lt = &r->terms[j];
        const double *a = r->acc + (size_t)j * STRIDE;
        columns[col++] = samples > 0 ? a[0] / samples : NAN;
        for (int k = 0; k < lt->n_logs; k++) {
            double sum = a[1 + 2 * k], w = a[2 + 2 * k];
            columns[col++] = lt->log_kind[k] == TERM_LOG_COUNT ? round(sum) : w > 0 ? sum / w : NAN;
        }
    }
    memset(r->acc, 0, r->n_acc * sizeof(double));
}
