// clad.c: CLAD's InfoNCE term and its per-class queues (see clad.h). Everything per row is
// computed in double from the float features, so a row's value and gradient depend only on
// that row and the queues: the same bits at any rank count.
#include "nn/clad.h"
#include "base/common.h"
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
