// mi.c: MI's statistics network, its bound, and the loss-term table (see mi.h).
#include "nn/mi.h"
#include "nn/layer.h"
#include "nn/optim.h"
#include "nn/term.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- the statistics network -----------------------------------------------------------------

typedef struct { size_t w1, b1, w2, b2, w3, b3, w4, b4, n; } MiLayout;

static MiLayout layout(const MiNet *m) {
    MiLayout o;
    size_t in = (size_t)m->n_bias + m->d, h = (size_t)m->h;
    o.w1 = 0;
    o.b1 = o.w1 + h * in;
    o.w2 = o.b1 + h;
    o.b2 = o.w2 + h * h;
    o.w3 = o.b2 + h;
    o.b3 = o.w3 + h * h;
    o.w4 = o.b3 + h;
    o.b4 = o.w4 + h;
    o.n = o.b4 + 1;
    return o;
}

size_t mi_net_n_params(const MiNet *m) { return layout(m).n; }

void mi_net_init(float *p, const MiNet *m, Rng *rng) {
    MiLayout o = layout(m);
    int in = m->n_bias + m->d, h = m->h;
    memset(p, 0, o.n * sizeof(float));
    init_weight(p + o.w1, (size_t)h * in, in, h, INIT_XAVIER_UNIFORM, rng);
    init_weight(p + o.w2, (size_t)h * h, h, h, INIT_XAVIER_UNIFORM, rng);
    init_weight(p + o.w3, (size_t)h * h, h, h, INIT_XAVIER_UNIFORM, rng);
    init_weight(p + o.w4, (size_t)h, h, 1, INIT_XAVIER_UNIFORM, rng);
}

static double leaky(double x) { return x > 0 ? x : MI_LEAK * x; }
static double leaky_grad(double x) { return x > 0 ? 1.0 : MI_LEAK; }

// y (h) = W (h, k) x (k) + b, x given as the leaky ReLU of pre-activations when act is set.
static void dense(double *y, const float *W, const float *b, const double *x, int h, int k, int act) {
    for (int o = 0; o < h; o++) {
        const float *w = W + (size_t)o * k;
        double s = b[o];
        for (int j = 0; j < k; j++) s += (double)w[j] * (act ? leaky(x[j]) : x[j]);
        y[o] = s;
    }
}

void mi_net_forward(double *out, double *pre, const float *p, const MiNet *m, const int *c, const float *z, int n) {
    MiLayout o = layout(m);
    int h = m->h, in = m->n_bias + m->d;
    for (int i = 0; i < n; i++) {
        double *p1 = pre + (size_t)i * 3 * h, *p2 = p1 + h, *p3 = p2 + h;
        const float *zi = z + (size_t)i * m->d;
        for (int u = 0; u < h; u++) {  // W1 [one-hot(c), z] + b1
            const float *w = p + o.w1 + (size_t)u * in;
            double s = (double)p[o.b1 + u] + w[c[i]];
            for (int j = 0; j < m->d; j++) s += (double)w[m->n_bias + j] * zi[j];
            p1[u] = s;
        }
        dense(p2, p + o.w2, p + o.b2, p1, h, h, 1);
        dense(p3, p + o.w3, p + o.b3, p2, h, h, 1);
        double y;
        dense(&y, p + o.w4, p + o.b4, p3, 1, h, 1);
        out[i] = y;
    }
}

// Back through y = W leaky(x) + b for one sample: dW += dy leaky(x)^T, db += dy, dx = (W^T dy) * leaky'(x).
static void dense_back(double *dx, double *dW, double *db, const double *dy, const float *W, const double *x, int h, int k) {
    for (int j = 0; j < k; j++) dx[j] = 0.0;
    for (int o = 0; o < h; o++) {
        const float *w = W + (size_t)o * k;
        if (dW) {
            double *g = dW + (size_t)o * k;
            for (int j = 0; j < k; j++) g[j] += dy[o] * leaky(x[j]);
            db[o] += dy[o];
        }
        for (int j = 0; j < k; j++) dx[j] += (double)w[j] * dy[o];
    }
    for (int j = 0; j < k; j++) dx[j] *= leaky_grad(x[j]);
}

void mi_net_backward(double *dp, double *dz, const double *dout, const double *pre, const float *p, const MiNet *m, const int *c,
                     const float *z, int n) {
    MiLayout o = layout(m);
    int h = m->h, in = m->n_bias + m->d;
    double *d3 = xmalloc(3 * (size_t)h * sizeof(double)), *d2 = d3 + h, *d1 = d2 + h;
    for (int i = 0; i < n; i++) {
        const double *p1 = pre + (size_t)i * 3 * h, *p2 = p1 + h, *p3 = p2 + h;
        double dy = dout[i];
        if (dy == 0.0) continue;
        dense_back(d3, dp ? dp + o.w4 : NULL, dp ? dp + o.b4 : NULL, &dy, p + o.w4, p3, 1, h);
        dense_back(d2, dp ? dp + o.w3 : NULL, dp ? dp + o.b3 : NULL, d3, p + o.w3, p2, h, h);
        dense_back(d1, dp ? dp + o.w2 : NULL, dp ? dp + o.b2 : NULL, d2, p + o.w2, p1, h, h);
        const float *zi = z + (size_t)i * m->d;
        for (int u = 0; u < h; u++) {  // d1 = dL/d(pre1): into W1, b1 and z
            const float *w = p + o.w1 + (size_t)u * in;
            if (dp) {
                double *g = dp + o.w1 + (size_t)u * in;
                g[c[i]] += d1[u];
                for (int j = 0; j < m->d; j++) g[m->n_bias + j] += d1[u] * zi[j];
                dp[o.b1 + u] += d1[u];
            }
            if (dz)
                for (int j = 0; j < m->d; j++) dz[(size_t)i * m->d + j] += (double)w[m->n_bias + j] * d1[u];
        }
    }
    free(d3);
}

double mi_dv_bound(double *dtj, double *dtm, const double *tj, const double *tm, int B) {
    double mean = 0.0, mx = -INFINITY, se = 0.0;
    for (int i = 0; i < B; i++) {
        mean += tj[i];
        if (tm[i] > mx) mx = tm[i];
    }
    mean /= B;
    for (int i = 0; i < B; i++) se += exp(tm[i] - mx);
    for (int i = 0; i < B; i++) {
        dtj[i] = 1.0 / B;
        dtm[i] = -exp(tm[i] - mx) / se;
    }
    return mean - (mx + log(se / B));
}

void mi_permutation(int *perm, int B, uint64_t seed, int64_t draw) {
    Rng r;
    rng_seed_stream(&r, seed, 0x4d49ULL /* "MI" */, (uint64_t)draw);
    rng_permutation(&r, perm, B);
}

// ---- the loss term: [debias] method = mi -----------------------------------------------------

typedef struct {
    BiasCoding bias;
    MiNet net;
    double lambda, est_lr;
    size_t P;                 // statistics-network parameters
    int cap_global, cap_local;
    int *c, *perm, *cj, *cm;  // global classes and permutation; local joint / permuted classes
    double *t, *all, *dt;     // local tj | tm (2n), gathered (2G), dI/dt (2G)
    double *pre_j, *pre_m, *dz, *dp;
} Mi;

enum { LOG_MI, LOG_MI_FIT, LOG_LAMBDA, LOG_SINGLE };
enum { COUNTER_DRAWS, COUNTER_STEPS };

static void mi_reserve(Mi *m, int G, int n, int d) {
    if (G > m->cap_global) {
        free(m->c); free(m->perm); free(m->all); free(m->dt);
        m->cap_global = G;
        m->c = xmalloc((size_t)G * sizeof(int));
        m->perm = xmalloc((size_t)G * sizeof(int));
        m->all = xmalloc(2 * (size_t)G * sizeof(double));
        m->dt = xmalloc(2 * (size_t)G * sizeof(double));
    }
    if (n > m->cap_local) {
        free(m->cj); free(m->cm); free(m->t); free(m->pre_j); free(m->pre_m); free(m->dz);
        m->cap_local = n;
        m->cj = xmalloc((size_t)n * sizeof(int));
        m->cm = xmalloc((size_t)n * sizeof(int));
        m->t = xmalloc(2 * (size_t)n * sizeof(double));
        m->pre_j = xmalloc((size_t)n * 3 * m->net.h * sizeof(double));
        m->pre_m = xmalloc((size_t)n * 3 * m->net.h * sizeof(double));
        m->dz = xmalloc((size_t)n * d * sizeof(double));
    }
}

// The bound on the global batch (this rank's samples `feat`): every rank gathers T's values
// and gets the same I and dI/dt (m->dt: joint then permuted, global order). -1 when the global
// batch holds a single bias class (nothing is drawn then, on every rank alike).
static int mi_bound(LossTerm *t, const float *feat, const Batch *b, Reducer *red, double *I) {
    Mi *m = t->impl;
    int G = b->global_n, n = b->n, off = b->offset;
    mi_reserve(m, G, n, t->d);
    if (bias_gather(m->c, NULL, &m->bias, b, red) < 2) return -1;
    mi_permutation(m->perm, G, t->seed, t->counters[COUNTER_DRAWS]++);
    for (int i = 0; i < n; i++) {
        m->cj[i] = m->c[off + i];
        m->cm[i] = m->c[m->perm[off + i]];
    }
    const float *p = t->state;
    mi_net_forward(m->t, m->pre_j, p, &m->net, m->cj, feat, n);
    mi_net_forward(m->t + n, m->pre_m, p, &m->net, m->cm, feat, n);
    // gather as [tj (G) | tm (G)]: two gathers into the halves
    reduce_gather_f64(red, m->all, (size_t)G, m->t, (size_t)off, (size_t)n);
    reduce_gather_f64(red, m->all + G, (size_t)G, m->t + n, (size_t)off, (size_t)n);
    *I = mi_dv_bound(m->dt, m->dt + G, m->all, m->all + G, G);
    return 0;
}

static int mi_build(LossTerm *t, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err) {
    Mi *m = xcalloc(1, sizeof *m);
    t->impl = m;
    if (bias_coding_build(&m->bias, ini, sec, schema, err)) return -1;
    if (ini_double(ini, sec, "lambda", 1.0, 0.0, 1e6, &m->lambda, err)) return -1;
    if (ini_int(ini, sec, "estimator_steps", 40, 0, 100000, &t->fit_steps, err)) return -1;
    if (ini_double(ini, sec, "estimator_lr", 1e-3, 0.0, 100.0, &m->est_lr, err)) return -1;
    if (ini_int(ini, sec, "estimator_hidden", 64, 1, 65536, &m->net.h, err)) return -1;
    if (ini_int(ini, sec, "warmup", 0, 0, 1000000, &t->warmup_epochs, err)) return -1;
    if (ini_bool(ini, sec, "estimator_pass", 1, &t->fit_pass, err)) return -1;
    t->weight = 1.0;
    t->alternating = 1;
    t->lr_scale = m->lambda;
    // The statistics network, initialised from the run's seed identically on every rank (a
    // checkpoint being resumed overwrites it): parameters, then Adam's m and v.
    m->net = (MiNet){ m->bias.n_classes, t->d, m->net.h };
    m->P = mi_net_n_params(&m->net);
    t->n_state = 3 * m->P;
    t->state = xcalloc(t->n_state, sizeof(float));
    t->n_counters = 2;
    Rng r;
    rng_seed_stream(&r, t->seed, 0x4d49ULL, 0x7e57ULL);
    mi_net_init(t->state, &m->net, &r);
    m->dp = xmalloc(m->P * sizeof(double));
    loss_term_add_log(t, "mi", TERM_LOG_MEAN);
    loss_term_add_log(t, "mi_estimator", TERM_LOG_MEAN);
    loss_term_add_log(t, "lambda", TERM_LOG_MEAN);
    loss_term_add_log(t, "single_class_batches", TERM_LOG_COUNT);
    return 0;
}

static int mi_prepare(LossTerm *t, const double *meta, const int *labels, int n_local, long lo, long n_total, Reducer *red,
                      DfError *err) {
    Mi *m = t->impl;
    (void)labels;
    return bias_coding_prepare(&m->bias, meta, n_local, lo, n_total, red, err);
}

static double mi_forward_backward(LossTerm *t, const float *feat, const Batch *b, float *dfeat, float scale, Reducer *red,
                                  double *logs) {
    Mi *m = t->impl;
    (void)scale;  // I is a mean over the global batch: its gradient is exact as it is
    double I = 0.0;
    int single = mi_bound(t, feat, b, red, &I) != 0;
    logs[LOG_MI] = I;
    logs[LOG_MI_FIT] = NAN;
    logs[LOG_LAMBDA] = m->lambda;
    logs[LOG_SINGLE] = single;
    if (single || !dfeat || b->n == 0) return I * b->n;
    int n = b->n, G = b->global_n, off = b->offset, d = t->d;
    memset(m->dz, 0, (size_t)n * d * sizeof(double));
    mi_net_backward(NULL, m->dz, m->dt + off, m->pre_j, t->state, &m->net, m->cj, feat, n);
    mi_net_backward(NULL, m->dz, m->dt + G + off, m->pre_m, t->state, &m->net, m->cm, feat, n);
    for (size_t j = 0; j < (size_t)n * d; j++) dfeat[j] += (float)m->dz[j];
    return I * b->n;
}

// One Adam step of the statistics network up the bound, with its gradient summed over ranks.
static void mi_fit(LossTerm *t, const float *feat, const Batch *b, Reducer *red, double *logs) {
    Mi *m = t->impl;
    for (int j = 0; j < t->n_logs; j++) logs[j] = NAN;
    double I;
    if (mi_bound(t, feat, b, red, &I)) return;
    logs[LOG_MI_FIT] = I;
    int n = b->n, G = b->global_n, off = b->offset;
    memset(m->dp, 0, m->P * sizeof(double));
    for (int i = 0; i < 2 * G; i++) m->dt[i] = -m->dt[i];  // ascend I: descend -I
    if (n > 0) {
        mi_net_backward(m->dp, NULL, m->dt + off, m->pre_j, t->state, &m->net, m->cj, feat, n);
        mi_net_backward(m->dp, NULL, m->dt + G + off, m->pre_m, t->state, &m->net, m->cm, feat, n);
    }
    reduce_sum_f64(red, m->dp, m->P);
    float *g = xmalloc(m->P * sizeof(float));
    for (size_t j = 0; j < m->P; j++) g[j] = (float)m->dp[j];
    OptConfig cfg = { .kind = OPT_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
    Optimizer adam = { cfg, m->P, t->state + m->P, t->state + 2 * m->P, (long)t->counters[COUNTER_STEPS] };
    optim_step(&adam, t->state, g, m->est_lr);
    t->counters[COUNTER_STEPS] = adam.step;
    free(g);
}

static void mi_destroy(LossTerm *t) {
    Mi *m = t->impl;
    if (!m) return;
    free(m->c); free(m->perm); free(m->cj); free(m->cm); free(m->t); free(m->all); free(m->dt);
    free(m->pre_j); free(m->pre_m); free(m->dz); free(m->dp);
    free(m);
    free(t->state);
    t->impl = NULL;
    t->state = NULL;
}

const LossTermOps mi_ops = { "mi", mi_build, mi_prepare, mi_forward_backward, mi_fit, mi_destroy };
