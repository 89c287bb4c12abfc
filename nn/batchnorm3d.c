// batchnorm3d.c: synchronised batch normalisation (see batchnorm3d.h) and its layer table.
// Per-channel statistics are sums in double; each forward and each backward makes exactly
// one reduce_sum_f64 call (every rank makes the same calls, so the reduction is collective),
// with the local element count inside the buffer so ranks with different (even zero) local
// batch sizes agree on the global count.
#include "nn/batchnorm3d.h"
#include "nn/layer.h"
#include "base/multiarch.h"
#include "base/threads.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Per-channel sums are the hot loops of this file (a BR-Net first block has 2M values per
// channel). A single running double sum is a chain of dependent additions the compiler may
// not reorder; instead each block of SUM_BLOCK values is summed in SUM_LANES independent float
// partial sums (spelled out as two 8-float vectors: left to the auto-vectoriser, the lanes
// were shuffled between registers), and the block totals are added in double. A lane adds
// SUM_BLOCK / SUM_LANES = 64 values, so the float partials lose at most ~64 ulps of the block
// sum, far below what the tests against PyTorch allow. Two 8-float halves, not one 16-float
// vector: GCC 12 moved a 16-float vector through the stack and integer registers on AVX2
// (two ymm registers), and BR-Net's first statistics pass took 33 ms there against 14 ms with
// SSE (Zen 3, 2026-12-03).
#define SUM_LANES 16
#define SUM_BLOCK 1024

// s[0] += sum (x - k), s[1] += sum (x - k)^2 over x[0 .. n).
DF_INLINE void sums_shifted_body(double s[2], const float *restrict x, size_t n, float k) {
    for (size_t i0 = 0; i0 < n; i0 += SUM_BLOCK) {
        const size_t m = DF_MIN((size_t)SUM_BLOCK, n - i0);
        df_v8 a1[2] = { 0 }, a2[2] = { 0 };  // lane j is a[j / 8][j % 8]
        size_t i = 0;
        for (; i + SUM_LANES <= m; i += SUM_LANES)
            for (int h = 0; h < 2; h++) {
                df_v8 d = DF_LOAD8(x + i0 + i + 8 * h) - k;
                a1[h] += d;
                a2[h] += d * d;
            }
        double t1 = 0.0, t2 = 0.0;
        for (; i < m; i++) {
            double d = (double)x[i0 + i] - k;
            t1 += d;
            t2 += d * d;
        }
        for (int j = 0; j < SUM_LANES; j++) { t1 += a1[j / 8][j % 8]; t2 += a2[j / 8][j % 8]; }
        s[0] += t1;
        s[1] += t2;
    }
}

// s[0] += sum dy, s[1] += sum dy (x - m) r over n values.
DF_INLINE void sums_dy_xhat_body(double s[2], const float *restrict dy, const float *restrict x, size_t n, float m, float r) {
    for (size_t i0 = 0; i0 < n; i0 += SUM_BLOCK) {
        const size_t len = DF_MIN((size_t)SUM_BLOCK, n - i0);
        df_v8 a1[2] = { 0 }, a2[2] = { 0 };
        size_t i = 0;
        for (; i + SUM_LANES <= len; i += SUM_LANES)
            for (int h = 0; h < 2; h++) {
                df_v8 g = DF_LOAD8(dy + i0 + i + 8 * h);
                a1[h] += g;
                a2[h] += g * ((DF_LOAD8(x + i0 + i + 8 * h) - m) * r);
            }
        double t1 = 0.0, t2 = 0.0;
        for (; i < len; i++) {
            t1 += dy[i0 + i];
            t2 += (double)dy[i0 + i] * (double)((x[i0 + i] - m) * r);
        }
        for (int j = 0; j < SUM_LANES; j++) { t1 += a1[j / 8][j % 8]; t2 += a2[j / 8][j % 8]; }
        s[0] += t1;
        s[1] += t2;
    }
}

// Compiled for each vector width (base/multiarch.h); the lanes make the sums the same on every one.
DF_MULTIARCH_FN(sums_shifted, (double s[2], const float *restrict x, size_t n, float k), (s, x, n, k))
DF_MULTIARCH_FN(sums_dy_xhat, (double s[2], const float *restrict dy, const float *restrict x, size_t n, float m, float r),
                (s, dy, x, n, m, r))

// The sums are taken around a shift K per channel: sum (x-K) and sum (x-K)^2. With K close
// to the mean, var = E[(x-K)^2] - (E[x-K])^2 does not cancel catastrophically (raw intensities
// with a large mean and a small spread). K must be the same on every rank for the shifted sums
// to add up; the running mean is (all ranks update it identically from the same global
// statistics), and after a few steps it is close to the batch mean.
void batchnorm3d_stats_train(float *mean, float *rstd, float *running_mean, float *running_var,
                             const float *inp, int B, int C, size_t S, float eps, float momentum,
                             Reducer *red) {
    // inp is (B,C,S)
    double *buf = xcalloc((size_t)2 * C + 1, sizeof(double));  // [sum(x-K) (C), sum (x-K)^2 (C), count]
    // a channel per thread, its samples in order: the same sums for any thread count
    void (*sums)(double *, const float *, size_t, float) = DF_PICK(sums_shifted);
#pragma omp parallel for num_threads(df_threads()) schedule(static) if (C > 1 && (size_t)B * S >= 32768)
    for (int c = 0; c < C; c++) {
        double sc[2] = { 0.0, 0.0 };
        for (int b = 0; b < B; b++) sums(sc, inp + ((size_t)b * C + c) * S, S, running_mean[c]);
        buf[c] = sc[0];
        buf[C + c] = sc[1];
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
}

// (x - mean) first: exact-ish when x is near a large mean, unlike x*a + (b - mean*a)
DF_INLINE void affine_plane_body(float *restrict o, const float *restrict x, size_t S, float m, float a, float b) {
    for (size_t i = 0; i < S; i++) o[i] = (x[i] - m) * a + b;
}
DF_MULTIARCH_FN(affine_plane, (float *restrict o, const float *restrict x, size_t S, float m, float a, float b),
                (o, x, S, m, a, b))

// out = (x - m) a + bb per channel, a plane (sample, channel) per work item.
static void affine_planes(float *out, const float *inp, const float *m, const float *a, const float *bb, int B, int C,
                          size_t S) {
    void (*plane)(float *, const float *, size_t, float, float, float) = DF_PICK(affine_plane);
#pragma omp parallel for num_threads(df_threads()) schedule(static) if ((size_t)B * C * S >= 65536)
    for (long pl = 0; pl < (long)B * C; pl++) {
        const int c = (int)(pl % C);
        plane(out + (size_t)pl * S, inp + (size_t)pl * S, S, m[c], a[c], bb[c]);
    }
}

void batchnorm3d_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                               float *running_var, const float *inp, const float *weight,
                               const float *bias, int B, int C, size_t S, float eps,
                               float momentum, Reducer *red) {
    batchnorm3d_stats_train(mean, rstd, running_mean, running_var, inp, B, C, S, eps, momentum, red);
    float *a = xmalloc((size_t)C * sizeof(float));
    for (int c = 0; c < C; c++) a[c] = rstd[c] * weight[c];
    affine_planes(out, inp, mean, a, bias, B, C, S);
    free(a);
}

void batchnorm3d_forward_eval(float *out, const float *inp, const float *weight, const float *bias,
                              const float *running_mean, const float *running_var, int B, int C,
                              size_t S, float eps) {
    float *a = xmalloc((size_t)C * sizeof(float));
    for (int c = 0; c < C; c++) a[c] = (float)(weight[c] / sqrt((double)running_var[c] + (double)eps));
    affine_planes(out, inp, running_mean, a, bias, B, C, S);
    free(a);
}

// dx += k (dy - mdy - (x - m) r mdyx) over one plane of S values.
DF_INLINE void dx_plane_body(float *restrict dx, const float *restrict dy, const float *restrict x, size_t S, float k,
                             float mdy, float m, float r, float mdyx) {
    for (size_t i = 0; i < S; i++) dx[i] += k * (dy[i] - mdy - (x[i] - m) * r * mdyx);
}
DF_MULTIARCH_FN(dx_plane, (float *restrict dx, const float *restrict dy, const float *restrict x, size_t S, float k,
                           float mdy, float m, float r, float mdyx), (dx, dy, x, S, k, mdy, m, r, mdyx))

// With xhat = (x - mean) rstd, y = w xhat + b and n the global count:
//   dL/dx = w rstd (dy - sum(dy)/n - xhat sum(dy xhat)/n)
// where both sums run over the global batch, hence the one reduction.
void batchnorm3d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *mean, const float *rstd,
                          const float *weight, int B, int C, size_t S, Reducer *red) {
    double *buf = xcalloc((size_t)2 * C + 1, sizeof(double));  // [sum dy (C), sum dy xhat (C), count]
    void (*sums)(double *, const float *, const float *, size_t, float, float) = DF_PICK(sums_dy_xhat);
#pragma omp parallel for num_threads(df_threads()) schedule(static) if (C > 1 && (size_t)B * S >= 32768)
    for (int c = 0; c < C; c++) {
        double sc[2] = { 0.0, 0.0 };
        for (int b = 0; b < B; b++)
            sums(sc, dout + ((size_t)b * C + c) * S, inp + ((size_t)b * C + c) * S, S, mean[c], rstd[c]);
        buf[c] = sc[0];
        buf[C + c] = sc[1];
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
        void (*plane)(float *, const float *, const float *, size_t, float, float, float, float, float) = DF_PICK(dx_plane);
#pragma omp parallel for num_threads(df_threads()) schedule(static) if ((size_t)B * C * S >= 65536)
        for (long pl = 0; pl < (long)B * C; pl++) {
            const int c = (int)(pl % C);
            const float mdy = n > 0.0 ? (float)(buf[c] / n) : 0.0f;
            const float mdyx = n > 0.0 ? (float)(buf[C + c] / n) : 0.0f;
            plane(dinp + (size_t)pl * S, dout + (size_t)pl * S, inp + (size_t)pl * S, S, weight[c] * rstd[c], mdy, mean[c],
                  rstd[c], mdyx);
        }
    }
    free(buf);
}

// In eval mode the layer is a fixed per-channel affine map: no batch terms, no reduction.
void batchnorm3d_backward_eval(float *dinp, float *dweight, float *dbias, const float *dout,
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


static int bn_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    double eps, momentum;
    if (ini_double(ini, sec, "eps", 1e-5, 0.0, 1.0, &eps, err)) return -1;
    if (ini_double(ini, sec, "momentum", 0.1, 0.0, 1.0, &momentum, err)) return -1;
    int C = L->in_shape.c;
    BatchNormImpl *impl = xcalloc(1, sizeof *impl);
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
    BatchNormImpl *impl = L->impl;
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
    BatchNormImpl *impl = L->impl;
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
    BatchNormImpl *impl = L->impl;
    if (impl) { free(impl->mean); free(impl->rstd); free(impl); }
    L->impl = NULL;
}

const LayerOps batchnorm3d_ops = { "batchnorm3d", bn_build, bn_init, bn_forward, bn_backward, bn_destroy, .batch_statistics = 1 };
