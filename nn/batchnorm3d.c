// batchnorm3d.c: synchronised batch normalisation (see batchnorm3d.h) and its layer table.
// Per-channel statistics are sums in double; each forward and each backward makes exactly
// one reduce_sum_f64 call (every rank makes the same calls, so the reduction is collective),
// with the local element count inside the buffer so ranks with different (even zero) local
// batch sizes agree on the global count.
#include "nn/batchnorm3d.h"
#include "nn/layer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// The sums are taken around a shift K per channel: sum (x-K) and sum (x-K)^2. With K close
// to the mean, var = E[(x-K)^2] - (E[x-K])^2 does not cancel catastrophically (raw intensities
// with a large mean and a small spread). K must be the same on every rank for the shifted sums
// to add up; the running mean is (all ranks update it identically from the same global
// statistics), and after a few steps it is close to the batch mean.
void batchnorm3d_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                               float *running_var, const float *inp, const float *weight,
                               const float *bias, int B, int C, size_t S, float eps,
                               float momentum, Reducer *red) {
    // inp, out are (B,C,S)
    double *buf = xcalloc((size_t)2 * C + 1, sizeof(double));  // [sum(x-K) (C), sum (x-K)^2 (C), count]
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * S;
            double k = running_mean[c], s1 = 0.0, s2 = 0.0;
            for (size_t i = 0; i < S; i++) {
                double d = (double)x[i] - k;
                s1 += d;
                s2 += d * d;
            }
            buf[c] += s1;
            buf[C + c] += s2;
        }
    }
    buf[2 * C] = (double)B * (double)S;
    reduce_sum_f64(red, buf, (size_t)2 * C + 1);
    double n = buf[2 * C];
    for (int c = 0; c < C; c++) {
        double m = 0.0, var = 0.0;
        if (n > 0.0) {
            double dm = buf[c] / n;  // mean of (x - K)
            m = running_mean[c] + dm;
            var = buf[C + c] / n - dm * dm;
            if (var < 0.0) var = 0.0;  // rounding only
        }
        mean[c] = (float)m;
        rstd[c] = (float)(1.0 / sqrt(var + (double)eps));
        if (n > 0.0) {
            // PyTorch: running_var uses the unbiased variance; with a single value per
            // channel (PyTorch refuses to train then) the biased one is kept.
            double unbiased = n > 1.0 ? var * n / (n - 1.0) : var;
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
    free(buf);
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * S;
            float *o = out + ((size_t)b * C + c) * S;
            // (x - mean) first: exact-ish when x is near a large mean, unlike x*a + (b - mean*a)
            float m = mean[c], a = rstd[c] * weight[c], bb = bias[c];
            for (size_t i = 0; i < S; i++) o[i] = (x[i] - m) * a + bb;
        }
    }
}

void batchnorm3d_forward_eval(float *out, const float *inp, const float *weight, const float *bias,
                              const float *running_mean, const float *running_var, int B, int C,
                              size_t S, float eps) {
    for (int c = 0; c < C; c++) {
        float m = running_mean[c];
        float a = (float)(weight[c] / sqrt((double)running_var[c] + (double)eps)), bb = bias[c];
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * S;
            float *o = out + ((size_t)b * C + c) * S;
            for (size_t i = 0; i < S; i++) o[i] = (x[i] - m) * a + bb;
        }
    }
}

// With xhat = (x - mean) rstd, y = w xhat + b and n the global count:
//   dL/dx = w rstd (dy - sum(dy)/n - xhat sum(dy xhat)/n)
// where both sums run over the global batch, hence the one reduction.
void batchnorm3d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *mean, const float *rstd,
                          const float *weight, int B, int C, size_t S, Reducer *red) {
    double *buf = xcalloc((size_t)2 * C + 1, sizeof(double));  // [sum dy (C), sum dy xhat (C), count]
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * S;
            const float *dy = dout + ((size_t)b * C + c) * S;
            float m = mean[c], r = rstd[c];
            double s1 = 0.0, s2 = 0.0;
            for (size_t i = 0; i < S; i++) {
                s1 += dy[i];
                s2 += (double)dy[i] * (double)((x[i] - m) * r);
            }
            buf[c] += s1;
            buf[C + c] += s2;
        }
    }
    // The parameter gradients are this rank's share (the trainer all-reduces all grads).
    for (int c = 0; c < C; c++) {
        dbias[c] += (float)buf[c];
        dweight[c] += (float)buf[C + c];
    }
    // Without dinp (first layer, identical on every rank) no rank needs the global sums.
    if (dinp) {
        buf[2 * C] = (double)B * (double)S;
        reduce_sum_f64(red, buf, (size_t)2 * C + 1);
        double n = buf[2 * C];
        for (int c = 0; c < C; c++) {
            float m = mean[c], r = rstd[c];
            float mdy = n > 0.0 ? (float)(buf[c] / n) : 0.0f;
            float mdyx = n > 0.0 ? (float)(buf[C + c] / n) : 0.0f;
            float k = weight[c] * r;
            for (int b = 0; b < B; b++) {
                const float *x = inp + ((size_t)b * C + c) * S;
                const float *dy = dout + ((size_t)b * C + c) * S;
                float *dx = dinp + ((size_t)b * C + c) * S;
                for (size_t i = 0; i < S; i++) dx[i] += k * (dy[i] - mdy - (x[i] - m) * r * mdyx);
            }
        }
    }
    free(buf);
}

// In eval mode the layer is a fixed per-channel affine map: no batch terms, no reduction.
static void batchnorm3d_backward_eval(float *dinp, float *dweight, float *dbias, const float *dout,
                                      const float *inp, const float *running_mean,
                                      const float *running_var, const float *weight, int B, int C,
                                      size_t S, float eps) {
    for (int c = 0; c < C; c++) {
        float m = running_mean[c], r = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        double s1 = 0.0, s2 = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * S;
            const float *dy = dout + ((size_t)b * C + c) * S;
            for (size_t i = 0; i < S; i++) {
                s1 += dy[i];
                s2 += (double)dy[i] * (double)((x[i] - m) * r);
            }
            if (dinp) {
                float *dx = dinp + ((size_t)b * C + c) * S;
                float k = weight[c] * r;
                for (size_t i = 0; i < S; i++) dx[i] += k * dy[i];
            }
        }
        dbias[c] += (float)s1;
        dweight[c] += (float)s2;
    }
}

// ---- layer table --------------------------------------------------------------------------

typedef struct {
    float eps, momentum;
    float *mean, *rstd;  // (C) batch statistics of the last training forward
    int trained;         // the last forward used batch statistics (selects the backward)
} BnImpl;

static int bn_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    double eps, momentum;
    if (ini_double(ini, sec, "eps", 1e-5, 0.0, 1.0, &eps, err)) return -1;
    if (ini_double(ini, sec, "momentum", 0.1, 0.0, 1.0, &momentum, err)) return -1;
    int C = L->in_shape.c;
    BnImpl *impl = xcalloc(1, sizeof *impl);
    impl->eps = (float)eps;
    impl->momentum = (float)momentum;
    impl->mean = df_alloc_floats((size_t)C);
    impl->rstd = df_alloc_floats((size_t)C);
    L->impl = impl;
    L->out_shape = L->in_shape;
    int dims[1] = { C };
    layer_add_param(L, "weight", 1, dims);
    layer_add_param(L, "bias", 1, dims);
    layer_add_state(L, "running_mean", 1, dims);
    layer_add_state(L, "running_var", 1, dims);
    return 0;
}

static void bn_init(Layer *L, Rng *rng) {
    int C = L->in_shape.c;
    float *w = layer_param(L, 0), *b = layer_param(L, 1), *rm = layer_state(L, 0), *rv = layer_state(L, 1);
    for (int c = 0; c < C; c++) {
        w[c] = 1.0f;
        b[c] = 0.0f;
        rm[c] = 0.0f;
        rv[c] = 1.0f;
    }
}

static void bn_forward(Layer *L, const Batch *batch, int training) {
    const int B = batch->n;
    BnImpl *impl = L->impl;
    int C = L->in_shape.c;
    size_t S = shape_spatial(L->in_shape);
    const float *w = layer_param(L, 0), *b = layer_param(L, 1);
    float *rm = layer_state(L, 0), *rv = layer_state(L, 1);
    impl->trained = training;
    if (training)
        batchnorm3d_forward_train(L->out, impl->mean, impl->rstd, rm, rv, L->in, w, b, B, C, S,
                                  impl->eps, impl->momentum, L->ctx ? L->ctx->reducer : NULL);
    else
        batchnorm3d_forward_eval(L->out, L->in, w, b, rm, rv, B, C, S, impl->eps);
}

static void bn_backward(Layer *L, const Batch *batch) {
    const int B = batch->n;
    BnImpl *impl = L->impl;
    int C = L->in_shape.c;
    size_t S = shape_spatial(L->in_shape);
    float *dw = layer_grad(L, 0), *db = layer_grad(L, 1);
    if (impl->trained)
        batchnorm3d_backward(L->din, dw, db, L->dout, L->in, impl->mean, impl->rstd, layer_param(L, 0), B, C, S,
                             L->ctx ? L->ctx->reducer : NULL);
    else
        batchnorm3d_backward_eval(L->din, dw, db, L->dout, L->in, layer_state(L, 0), layer_state(L, 1), layer_param(L, 0), B, C,
                                  S, impl->eps);
}

static void bn_destroy(Layer *L) {
    BnImpl *impl = L->impl;
    if (impl) { free(impl->mean); free(impl->rstd); free(impl); }
    L->impl = NULL;
}

const LayerOps batchnorm3d_ops = { "batchnorm3d", bn_build, bn_init, bn_forward, bn_backward, bn_destroy, .batch_statistics = 1 };
