// feature_l2.c: an L2 penalty on a layer's output, the simplest loss term (see term.h).
#include "nn/term.h"
#include <stdio.h>
#include <string.h>

double feature_l2_forward(const float *feat, int B, int d, double weight) {
    double s = 0.0;
    for (size_t i = 0; i < (size_t)B * d; i++) s += (double)feat[i] * feat[i];
    return weight * s;
}

void feature_l2_backward(float *dfeat, const float *feat, int B, int d, double weight, float scale) {
    float c = (float)(2.0 * weight) * scale;
    for (size_t i = 0; i < (size_t)B * d; i++) dfeat[i] += c * feat[i];
}

static int fl2_build(LossTerm *t, const Ini *ini, IniSection *sec, const MetaSchema *schema, DfError *err) {
    (void)schema;
    return ini_double(ini, sec, "weight", 1e-4, 0.0, 1e6, &t->weight, err);
}

static double fl2_forward_backward(LossTerm *t, const float *feat, const Batch *b, float *dfeat, float scale, Reducer *red,
                                   double *logs) {
    (void)red;
    (void)logs;
    double v = feature_l2_forward(feat, b->n, t->d, t->weight);
    if (dfeat) feature_l2_backward(dfeat, feat, b->n, t->d, t->weight, scale);
    return v;
}

const LossTermOps feature_l2_ops = { "feature_l2", fl2_build, NULL, fl2_forward_backward, NULL, NULL };
