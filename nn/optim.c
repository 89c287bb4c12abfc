// optim.c: SGD, Adam and AdamW with PyTorch's update rules (torch.optim, single-tensor path,
// dampening 0, amsgrad off), and the per-epoch learning-rate schedules (see optim.h).
// The element-wise arithmetic is float with the hyper-parameters cast to float, in the same
// order as PyTorch's kernels, so trajectories track PyTorch's closely; the bias corrections
// are computed in double (PyTorch evaluates them as Python floats).
#include "nn/optim.h"
#include "base/common.h"
#include <math.h>
#include <stdlib.h>

const char *const opt_kind_names[] = { "sgd", "adam", "adamw", NULL };
const char *const sched_kind_names[] = { "constant", "step", "cosine", NULL };

void optim_init(Optimizer *o, const OptConfig *cfg, size_t n) {
    o->cfg = *cfg;
    o->n = n;
    o->m = df_alloc_floats(n);  // always allocated (zero), so checkpoints can store it as is
    o->v = cfg->kind == OPT_SGD ? NULL : df_alloc_floats(n);
    o->step = 0;
}

void optim_free(Optimizer *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

static void sgd_step(Optimizer *o, float *p, const float *g, double lr) {
    float wd = (float)o->cfg.weight_decay, mom = (float)o->cfg.momentum, neg_lr = (float)-lr;
    int first = o->step == 0, nesterov = o->cfg.nesterov;
    float *buf = o->m;
    for (size_t i = 0; i < o->n; i++) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * p[i];
        if (mom != 0.0f) {
            // torch: buf = clone(d) on the first step, then buf = momentum * buf + d
            buf[i] = first ? d : buf[i] * mom + d;
            d = nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] = p[i] + neg_lr * d;
    }
}

static void adam_step(Optimizer *o, float *p, const float *g, double lr, int decoupled) {
    const OptConfig *c = &o->cfg;
    long t = o->step + 1;
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    float neg_step = (float)(-lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float eps = (float)c->eps;
    float w1 = (float)(1.0 - c->beta1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
    float b2 = (float)c->beta2, w2 = (float)(1.0 - c->beta2);
    float wd = (float)c->weight_decay;
    float decay = (float)(1.0 - lr * c->weight_decay);  // AdamW: param.mul_(1 - lr * wd)
    float *m = o->m, *v = o->v;
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i];
        if (decoupled) {
            if (wd != 0.0f) p[i] = p[i] * decay;
        } else if (wd != 0.0f) {
            gi = gi + wd * p[i];
        }
        // torch's lerp: self + w (end - self) for w < 0.5, else end - (end - self)(1 - w)
        m[i] = w1 < 0.5f ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * (1.0f - w1);
        v[i] = v[i] * b2 + w2 * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] + neg_step * m[i] / denom;
    }
}

void optim_step(Optimizer *o, float *params, const float *grads, double lr) {
    switch (o->cfg.kind) {
    case OPT_SGD: sgd_step(o, params, grads, lr); break;
    case OPT_ADAM: adam_step(o, params, grads, lr, 0); break;
    case OPT_ADAMW: adam_step(o, params, grads, lr, 1); break;
    }
    o->step++;
}

double schedule_lr(const Schedule *s, int epoch) {
    int W = s->warmup_epochs > 0 ? s->warmup_epochs : 0;
    if (epoch < 0) epoch = 0;
    // torch.optim.lr_scheduler.LinearLR(start_factor = 1/(W+1), total_iters = W)
    if (epoch < W) return s->base_lr * (double)(epoch + 1) / (double)(W + 1);
    int e = epoch - W;
    switch (s->kind) {
    case SCHED_CONSTANT: return s->base_lr;
    case SCHED_STEP: {
        int step_size = s->step_size > 0 ? s->step_size : 1;
        return s->base_lr * pow(s->gamma, (double)(e / step_size));
    }
    case SCHED_COSINE: {
        int T = s->total_epochs - W;
        if (T < 1) T = 1;
        const double pi = 3.14159265358979323846;  // M_PI is not in strict C11
        return s->min_lr + (s->base_lr - s->min_lr) * (1.0 + cos(pi * (double)e / (double)T)) / 2.0;
    }
    }
    return s->base_lr;
}
