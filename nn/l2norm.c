// l2norm.c: per-sample L2 normalisation (see l2norm.h) and its layer table.
#include "nn/l2norm.h"
#include "nn/layer.h"
#include <math.h>
#include <stdlib.h>

void l2norm_forward(float *out, float *norms, const float *inp, int B, int N, float eps) {
    // out, inp are (B,N); norms is (B)
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * N;
        float *o = out + (size_t)b * N;
        double ss = 0.0;
        for (int i = 0; i < N; i++) ss += (double)x[i] * x[i];
        double nrm = sqrt(ss);
        norms[b] = (float)nrm;
        // the same test as backward, on the stored float norm, so both take the same branch
        float inv = (float)(1.0 / (norms[b] > eps ? nrm : (double)eps));
        for (int i = 0; i < N; i++) o[i] = x[i] * inv;
    }
}

// Unclamped, out = x / n with n = ||x||: d out / dx = (I - out out^T) / n, so
//   dinp += (dout - out (out . dout)) / n.
// Clamped (n <= eps), out = x / eps is linear: dinp += dout / eps.
void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norms, int B, int N, float eps) {
    for (int b = 0; b < B; b++) {
        const float *dy = dout + (size_t)b * N;
        const float *y = out + (size_t)b * N;
        float *dx = dinp + (size_t)b * N;
        if (norms[b] > eps) {
            double dot = 0.0;
            for (int i = 0; i < N; i++) dot += (double)y[i] * dy[i];
            float inv = 1.0f / norms[b], d = (float)dot;
            for (int i = 0; i < N; i++) dx[i] += (dy[i] - y[i] * d) * inv;
        } else {
            float inv = 1.0f / eps;
            for (int i = 0; i < N; i++) dx[i] += dy[i] * inv;
        }
    }
}

// ---- layer table --------------------------------------------------------------------------

typedef struct { float eps; float *norms; } L2Impl;

static int l2norm_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    double eps;
    if (ini_double(ini, sec, "eps", 1e-12, 0.0, 1.0, &eps, err)) return -1;
    if (!((float)eps > 0.0f)) {
        char where[512];
        ini_where(ini, sec, "eps", where, sizeof where);
        return df_err(err, "%s: [%s] eps = %g must be positive", where, sec->name, eps);
    }
    if (shape_numel(L->in_shape) > (size_t)(1 << 30)) {
        char where[512];
        ini_where(ini, sec, NULL, where, sizeof where);
        return df_err(err, "%s: [%s] input of %zu values is too large", where, sec->name, shape_numel(L->in_shape));
    }
    L2Impl *impl = xcalloc(1, sizeof *impl);
    impl->eps = (float)eps;
    impl->norms = df_alloc_floats((size_t)(L->ctx && L->ctx->max_batch > 0 ? L->ctx->max_batch : 1));
    L->impl = impl;
    L->out_shape = L->in_shape;
    return 0;
}

static void l2norm_init(Layer *L, Rng *rng) {}

static void l2norm_fwd(Layer *L, const Batch *batch, int training) {
    const int B = batch->n;
    L2Impl *impl = L->impl;
    DF_ASSERT(!L->ctx || B <= L->ctx->max_batch);
    l2norm_forward(L->out, impl->norms, L->in, B, (int)shape_numel(L->in_shape), impl->eps);
}

static void l2norm_bwd(Layer *L, const Batch *batch) {
    const int B = batch->n;
    L2Impl *impl = L->impl;
    if (L->din) l2norm_backward(L->din, L->dout, L->out, impl->norms, B, (int)shape_numel(L->in_shape), impl->eps);
}

static void l2norm_destroy(Layer *L) {
    L2Impl *impl = L->impl;
    if (impl) { free(impl->norms); free(impl); }
    L->impl = NULL;
}

const LayerOps l2norm_ops = { "l2norm", l2norm_build, l2norm_init, l2norm_fwd, l2norm_bwd, l2norm_destroy };
