// clad.c: CLAD's InfoNCE term and its per-class queues (see clad.h). Everything per row is
// computed in double from the float features, so a row's value and gradient depend only on
// that row and the queues: the same bits at any rank count.
#include "nn/clad.h"
#include "base/common.h"
#include "nn/term.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CLAD_EPS 1e-8  // torch's cosine_similarity: u.v / max(|u| |v|, eps)

void clad_queues_alloc(CladQueues *q, int n_classes, int length, int d) {
    q->n_classes = n_classes;
    q->length = length;
    q->d = d;
    q->feat = xcalloc((size_t)n_classes * length * d, sizeof(float));
}

void clad_queues_free(CladQueues *q) {
    free(q->feat);
    q->feat = NULL;
}

void clad_queues_init(CladQueues *q, const float *a, const int *y, int B) {
    size_t d = (size_t)q->d;
    for (int k = 0; k < q->n_classes; k++) {
        float *queue = q->feat + (size_t)k * q->length * d;
        memset(queue, 0, (size_t)q->length * d * sizeof(float));
        int m = 0, any = 0;
        do {  // in batch order, again from the first while the queue is not full
            for (int i = 0; i < B && m < q->length; i++)
                if (y[i] != k) memcpy(queue + (size_t)m++ * d, a + (size_t)i * d, d * sizeof(float)), any = 1;
        } while (any && m < q->length);  // no anchor of another class: keep zeros
    }
}

void clad_queues_push(CladQueues *q, const float *p, const int *bg, int B) {
    size_t d = (size_t)q->d, row = d * sizeof(float);
    for (int i = 0; i < B; i++) {
        float *queue = q->feat + (size_t)bg[i] * q->length * d;
        memmove(queue, queue + d, (size_t)(q->length - 1) * row);  // drop the oldest
        memcpy(queue + (size_t)(q->length - 1) * d, p + (size_t)i * d, row);
    }
}

static double norm2(const float *u, int d) {
    double s = 0.0;
    for (int k = 0; k < d; k++) s += (double)u[k] * u[k];
    return s;
}

// s(u, v), with |u|^2 = nu, |v|^2 = nv given; *den receives max(|u| |v|, eps).
static double cosine(double *den, const float *u, double nu, const float *v, double nv, int d) {
    double dot = 0.0;
    for (int k = 0; k < d; k++) dot += (double)u[k] * v[k];
    double den_ = sqrt(nu * nv);
    *den = den_ > CLAD_EPS ? den_ : CLAD_EPS;
    return dot / *den;
}

// g (d) += coef * ds(u, v)/du = coef (v / den - s u / |u|^2), the second part only when the
// denominator is not clamped (then den = |u| |v| depends on u).
static void cosine_grad(double *g, double coef, const float *u, double nu, const float *v, double s, double den, int d) {
    double cu = den > CLAD_EPS && nu > 0.0 ? s / nu : 0.0;
    for (int k = 0; k < d; k++) g[k] += coef * ((double)v[k] / den - cu * u[k]);
}

// The similarities of row i: s[0] = s(a, p), s[1 + m] = s(a, q_m) over the queue of its class;
// den[] their denominators. Returns log sum_m exp(s[m] / tau).
static double row_similarities(double *s, double *den, const float *a, double na, const float *p, const float *queue,
                               int length, int d, double tau) {
    s[0] = cosine(&den[0], a, na, p, norm2(p, d), d);
    double mx = s[0];
    for (int m = 0; m < length; m++) {
        const float *qm = queue + (size_t)m * d;
        s[1 + m] = cosine(&den[1 + m], a, na, qm, norm2(qm, d), d);
        if (s[1 + m] > mx) mx = s[1 + m];
    }
    double sum = 0.0;
    for (int m = 0; m <= length; m++) sum += exp((s[m] - mx) / tau);
    return mx / tau + log(sum);
}

double clad_forward(double *loss_rows, const float *a, const float *p, const int *y, int n, const CladQueues *q,
                    double tau) {
    int d = q->d, L = q->length;
    double *s = xmalloc((size_t)(L + 1) * 2 * sizeof(double)), total = 0.0;
    double *den = s + L + 1;
    for (int i = 0; i < n; i++) {
        const float *ai = a + (size_t)i * d;
        const float *queue = q->feat + (size_t)y[i] * L * d;
        double lse = row_similarities(s, den, ai, norm2(ai, d), p + (size_t)i * d, queue, L, d, tau);
        double li = lse - s[0] / tau;
        if (loss_rows) loss_rows[i] = li;
        total += li;
    }
    free(s);
    return total;
}

void clad_backward(float *da, float *dp, const float *a, const float *p, const int *y, int n, const CladQueues *q,
                   double tau, double scale) {
    int d = q->d, L = q->length;
    double *s = xmalloc(((size_t)(L + 1) * 2 + 2 * (size_t)d) * sizeof(double));
    double *den = s + L + 1, *ga = den + L + 1, *gp = ga + d;
    for (int i = 0; i < n; i++) {
        const float *ai = a + (size_t)i * d, *pi = p + (size_t)i * d;
        const float *queue = q->feat + (size_t)y[i] * L * d;
        double na = norm2(ai, d), np = norm2(pi, d);
        double lse = row_similarities(s, den, ai, na, pi, queue, L, d, tau);
        memset(ga, 0, 2 * (size_t)d * sizeof(double));
        // loss_i = lse - s_0 / tau: d loss_i / d s_m = (softmax(s / tau)_m - [m = 0]) / tau
        double c0 = (exp(s[0] / tau - lse) - 1.0) / tau;
        cosine_grad(ga, c0, ai, na, pi, s[0], den[0], d);
        cosine_grad(gp, c0, pi, np, ai, s[0], den[0], d);
        for (int m = 0; m < L; m++)
            cosine_grad(ga, exp(s[1 + m] / tau - lse) / tau, ai, na, queue + (size_t)m * d, s[1 + m], den[1 + m], d);
        for (int k = 0; k < d; k++) {
            da[(size_t)i * d + k] += (float)(scale * ga[k]);
            dp[(size_t)i * d + k] += (float)(scale * gp[k]);
        }
    }
    free(s);
}

// ---- the term on a network ([debias] method = clad) ---------------------------------------
// The queues live in t->state (checkpointed, identical on every rank): they are updated from
// the gathered global batch, in its order, whatever the rank count. counters[0] is 1 once the
// first batch has filled them.

typedef struct {
    double lambda, tau;
    CladQueues q;     // feat points into t->state
    int max_global;
    float *a, *p;     // (G, d) the global batch's anchor and positive features
    double *codes;    // (G, 2) gathered: each sample's label and its positive's background class
    int *y, *bg;      // (G)
    double *mine;     // this rank's codes
    double *sims;     // (2 (queue + 1)) one row's similarities and their denominators
} Clad;

// Logged: the mean cosine similarity of anchors and positives, and the fraction of anchors
// whose positive is more similar than every negative (the contrastive task's accuracy).
enum { LOG_POS_COS, LOG_TOP1 };

static int clad_build(LossTerm *t, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err) {
    (void)schema;
    Clad *c = xcalloc(1, sizeof *c);
    t->impl = c;
    int length;
    // the reference's defaults (DESIGN.md 3.4): lambda 1, temperature 0.2, 32 entries per queue
    if (ini_double(ini, sec, "lambda", 1.0, 0.0, 1e6, &c->lambda, err)) return -1;
    if (ini_double(ini, sec, "temperature", 0.2, 1e-3, 100.0, &c->tau, err)) return -1;
    if (ini_int(ini, sec, "queue", 32, 1, 65536, &length, err)) return -1;
    if (ini_int(ini, sec, "warmup", 0, 0, 1000000, &t->warmup_epochs, err)) return -1;
    if (t->n_classes < 2) {
        char where[512];
        ini_where_key(ini, sec, "method", where, sizeof where);
        return df_err(err, "%s = clad: CLAD contrasts classes, but the data have %d (a classification task is needed)", where,
                      t->n_classes);
    }
    t->weight = c->lambda;
    t->positives = 1;
    t->n_state = (size_t)t->n_classes * length * t->d;
    t->state = xcalloc(t->n_state, sizeof(float));
    t->n_counters = 1;
    c->q = (CladQueues){ t->n_classes, length, t->d, t->state };
    c->sims = xmalloc(2 * ((size_t)length + 1) * sizeof(double));
    loss_term_add_log(t, "pos_cos", TERM_LOG_MEAN);
    loss_term_add_log(t, "top1", TERM_LOG_MEAN);
    return 0;
}

static void clad_reserve(Clad *c, int G, int n, int d) {
    if (G > c->max_global) {
        free(c->a); free(c->p); free(c->codes); free(c->y); free(c->bg); free(c->mine);
        c->max_global = G;
        c->a = xmalloc((size_t)G * d * sizeof(float));
        c->p = xmalloc((size_t)G * d * sizeof(float));
        c->codes = xmalloc(2 * (size_t)G * sizeof(double));
        c->y = xmalloc((size_t)G * sizeof(int));
        c->bg = xmalloc((size_t)G * sizeof(int));
        c->mine = xmalloc(2 * (size_t)G * sizeof(double));
    }
    DF_ASSERT(n <= G);
}

// The global batch's labels and background classes, in batch order.
static void gather_codes(Clad *c, const Batch *b, int n_classes, Reducer *red) {
    int G = b->global_n;
    for (int i = 0; i < b->n; i++) {
        int y = b->labels[i], bg = b->positive_bg[i];
        if (y < 0 || y >= n_classes || bg < 0 || bg >= n_classes)
            df_die(DF_EXIT_INPUT, "[debias] method = clad: sample %ld has class %d (or background class %d), not 0..%d",
                   b->first_sample + i, y, bg, n_classes - 1);
        c->mine[2 * i] = y;
        c->mine[2 * i + 1] = bg;
    }
    reduce_gather_f64(red, c->codes, 2 * (size_t)G, c->mine, 2 * (size_t)b->offset, 2 * (size_t)b->n);
    for (int g = 0; g < G; g++) {
        c->y[g] = (int)c->codes[2 * g];
        c->bg[g] = (int)c->codes[2 * g + 1];
    }
}

static double clad_forward_backward_pair(LossTerm *t, const float *feat, const float *feat_pos, const Batch *b, float *dfeat,
                                         float *dfeat_pos, float scale, Reducer *red, double *logs) {
    Clad *c = t->impl;
    int G = b->global_n, d = t->d, lo = b->offset, n = b->n;
    DF_ASSERT(b->labels && b->positive_bg);
    clad_reserve(c, G, n, d);
    gather_codes(c, b, t->n_classes, red);
    reduce_gather_f32(red, c->p, (size_t)G * d, feat_pos, (size_t)lo * d, (size_t)n * d);
    if (!t->counters[0]) {  // the first batch: queues from its anchors of other classes
        reduce_gather_f32(red, c->a, (size_t)G * d, feat, (size_t)lo * d, (size_t)n * d);
        clad_queues_init(&c->q, c->a, c->y, G);
        t->counters[0] = 1;
    }
    clad_queues_push(&c->q, c->p, c->bg, G);  // detached, before the loss (as the reference)
    const int *y = c->y + lo;
    double sum = clad_forward(NULL, feat, feat_pos, y, n, &c->q, c->tau);
    if (dfeat) clad_backward(dfeat, dfeat_pos, feat, feat_pos, y, n, &c->q, c->tau, (double)scale * c->lambda);
    // logs: this rank's means (the trainer weights them by its samples); top1: the positive is
    // more similar to the anchor than every negative of its queue
    int L = c->q.length;
    double cos_sum = 0.0, top1 = 0.0, *s = c->sims, *den = s + L + 1;
    for (int i = 0; i < n; i++) {
        const float *ai = feat + (size_t)i * d, *queue = c->q.feat + (size_t)y[i] * L * d;
        row_similarities(s, den, ai, norm2(ai, d), feat_pos + (size_t)i * d, queue, L, d, c->tau);
        int best = 1;
        for (int m = 1; m <= L; m++) best &= s[m] < s[0];
        cos_sum += s[0];
        top1 += best;
    }
    logs[LOG_POS_COS] = n ? cos_sum / n : 0.0;
    logs[LOG_TOP1] = n ? top1 / n : 0.0;
    return c->lambda * sum;
}

static void clad_destroy(LossTerm *t) {
    Clad *c = t->impl;
    if (c) {
        free(c->a); free(c->p); free(c->codes); free(c->y); free(c->bg); free(c->mine); free(c->sims);
        free(c);
    }
    free(t->state);
    t->impl = NULL;
    t->state = NULL;
}

const LossTermOps clad_ops = { .type = "clad", .build = clad_build, .forward_backward_pair = clad_forward_backward_pair,
                               .destroy = clad_destroy };
