// end.c: EnD's pair terms and its loss-term table (see end.h).
#include "nn/end.h"
#include "nn/term.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define END_EPS 1e-12

void end_normalize(double *z, double *norm, const float *f, int B, int d) {
    for (int i = 0; i < B; i++) {
        const float *fi = f + (size_t)i * d;
        double s = 0.0;
        for (int k = 0; k < d; k++) s += (double)fi[k] * fi[k];
        double n = sqrt(s), inv = 1.0 / (n > END_EPS ? n : END_EPS);
        norm[i] = n;
        for (int k = 0; k < d; k++) z[(size_t)i * d + k] = fi[k] * inv;
    }
}

static double dot(const double *a, const double *b, int d) {
    double s = 0.0;
    for (int k = 0; k < d; k++) s += a[k] * b[k];
    return s;
}

static double clamp1(double g) { return g < -1.0 ? -1.0 : g > 1.0 ? 1.0 : g; }

EndTerms end_forward(const double *z, const int *c, const int *y, int B, int d) {
    EndTerms v;
    memset(&v, 0, sizeof v);
    double par = 0.0;
    for (int i = 0; i < B; i++)
        for (int j = i + 1; j < B; j++) {
            if (c[i] == c[j]) {
                v.class_sum[c[i]] += clamp1(dot(z + (size_t)i * d, z + (size_t)j * d, d));
                v.m_perp++;
            } else if (y[i] == y[j]) {
                par += (1.0 + clamp1(dot(z + (size_t)i * d, z + (size_t)j * d, d))) / 2.0;
                v.m_par++;
            }
        }
    if (v.m_perp) {
        for (int k = 0; k < BIAS_MAX_CLASSES; k++) v.r_perp += fabs(v.class_sum[k]);
        v.r_perp /= (double)v.m_perp;
    }
    if (v.m_par) v.r_par = 1.0 - par / (double)v.m_par;
    return v;
}

// d clamp(g)/dg: 1 inside [-1, 1] (torch passes the gradient at the bounds too), else 0.
static double clamp_pass(double g) { return g >= -1.0 && g <= 1.0 ? 1.0 : 0.0; }

void end_backward(double *dz, const double *z, const int *c, const int *y, int B, int d, int lo, int hi, double alpha, double beta,
                  const EndTerms *v) {
    // dR_perp/dg_ij = sign(class_sum[c]) / M_perp for a same-class pair; dR_par/dg_ij = -1 / (2 M_par).
    for (int i = lo; i < hi; i++) {
        const double *zi = z + (size_t)i * d;
        double *gi = dz + (size_t)(i - lo) * d;
        for (int j = 0; j < B; j++) {
            if (j == i) continue;
            double w = 0.0;
            if (c[i] == c[j] && v->m_perp) {
                double s = v->class_sum[c[i]];
                w = alpha * (double)((s > 0) - (s < 0)) / (double)v->m_perp;
            } else if (c[i] != c[j] && y[i] == y[j] && v->m_par) {
                w = -beta / (2.0 * (double)v->m_par);
            }
            if (w == 0.0) continue;
            const double *zj = z + (size_t)j * d;
            w *= clamp_pass(dot(zi, zj, d));
            for (int k = 0; k < d; k++) gi[k] += w * zj[k];
        }
    }
}

void end_normalize_backward(float *df, const double *dz, const double *z, const double *norm, int n, int d) {
    for (int i = 0; i < n; i++) {
        const double *zi = z + (size_t)i * d, *gi = dz + (size_t)i * d;
        double nrm = norm[i];
        if (nrm > END_EPS) {
            double p = dot(zi, gi, d);
            for (int k = 0; k < d; k++) df[(size_t)i * d + k] += (float)((gi[k] - zi[k] * p) / nrm);
        } else {  // z = f / eps: linear
            for (int k = 0; k < d; k++) df[(size_t)i * d + k] += (float)(gi[k] / END_EPS);
        }
    }
}

// ---- the loss term: [debias] method = end ---------------------------------------------------

typedef struct {
    BiasCoding bias;
    double alpha, beta;
    int max_global;   // largest global batch seen so far (buffers grow to it)
    float *f;         // (G, d) the global batch's features
    double *z, *norm, *dz;
    int *c, *y;
} End;

enum { LOG_R_PERP, LOG_R_PAR, LOG_ALPHA, LOG_BETA, LOG_SINGLE };

static int end_build(LossTerm *t, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err) {
    End *e = xcalloc(1, sizeof *e);
    t->impl = e;
    if (bias_coding_build(&e->bias, ini, sec, schema, err)) return -1;
    // the reference's defaults (its configs.py), which its README's example run uses
    if (ini_double(ini, sec, "alpha", 0.1, 0.0, 1e6, &e->alpha, err)) return -1;
    if (ini_double(ini, sec, "beta", 0.1, 0.0, 1e6, &e->beta, err)) return -1;
    t->weight = 1.0;
    loss_term_add_log(t, "R_perp", TERM_LOG_MEAN);
    loss_term_add_log(t, "R_par", TERM_LOG_MEAN);
    loss_term_add_log(t, "alpha", TERM_LOG_MEAN);
    loss_term_add_log(t, "beta", TERM_LOG_MEAN);
    loss_term_add_log(t, "single_class_batches", TERM_LOG_COUNT);
    return 0;
}

static int end_prepare(LossTerm *t, const double *meta, const int *labels, int n_local, long lo, long n_total, Reducer *red,
                       DfError *err) {
    End *e = t->impl;
    (void)labels;
    return bias_coding_prepare(&e->bias, meta, n_local, lo, n_total, red, err);
}

static void end_reserve(End *e, int G, int d) {
    if (G <= e->max_global) return;
    free(e->f); free(e->z); free(e->norm); free(e->dz); free(e->c); free(e->y);
    e->max_global = G;
    e->f = xmalloc((size_t)G * d * sizeof(float));
    e->z = xmalloc((size_t)G * d * sizeof(double));
    e->dz = xmalloc((size_t)G * d * sizeof(double));
    e->norm = xmalloc((size_t)G * sizeof(double));
    e->c = xmalloc((size_t)G * sizeof(int));
    e->y = xmalloc((size_t)G * sizeof(int));
}

static double end_forward_backward(LossTerm *t, const float *feat, const Batch *b, float *dfeat, float scale, Reducer *red,
                                   double *logs) {
    End *e = t->impl;
    int G = b->global_n, d = t->d;
    (void)scale;  // the terms are means over pairs already: their gradient is exact as it is
    end_reserve(e, G, d);
    int distinct = bias_gather(e->c, e->y, &e->bias, b, red);
    reduce_gather_f32(red, e->f, (size_t)G * d, feat, (size_t)b->offset * d, (size_t)b->n * d);
    logs[LOG_ALPHA] = e->alpha;
    logs[LOG_BETA] = e->beta;
    logs[LOG_SINGLE] = distinct < 2;
    if (distinct < 2) {  // nothing to disentangle the features from: the batch contributes 0
        logs[LOG_R_PERP] = logs[LOG_R_PAR] = 0.0;
        return 0.0;
    }
    end_normalize(e->z, e->norm, e->f, G, d);
    EndTerms v = end_forward(e->z, e->c, e->y, G, d);
    logs[LOG_R_PERP] = v.r_perp;
    logs[LOG_R_PAR] = v.r_par;
    if (dfeat && b->n > 0) {
        int lo = b->offset;
        memset(e->dz, 0, (size_t)b->n * d * sizeof(double));
        end_backward(e->dz, e->z, e->c, e->y, G, d, lo, lo + b->n, e->alpha, e->beta, &v);
        end_normalize_backward(dfeat, e->dz, e->z + (size_t)lo * d, e->norm + lo, b->n, d);
    }
    return (e->alpha * v.r_perp + e->beta * v.r_par) * b->n;
}

static void end_destroy(LossTerm *t) {
    End *e = t->impl;
    if (!e) return;
    free(e->f); free(e->z); free(e->norm); free(e->dz); free(e->c); free(e->y);
    free(e);
    t->impl = NULL;
}

const LossTermOps end_ops = { "end", end_build, end_prepare, end_forward_backward, NULL, end_destroy };
