// dropout.c: inverted dropout (see dropout.h) and its layer table.
#include "nn/dropout.h"
#include "nn/layer.h"
#include "base/rng.h"
#include <stdlib.h>
#include <string.h>

void dropout_forward(float *out, float *mask, const float *inp, int B, size_t N, float p,
                     uint64_t seed, uint64_t step, long first_sample) {
    // out, mask, inp are (B,N). Kept units are scaled by 1/(1-p) so eval needs no rescaling.
    float keep_scale = 1.0f / (1.0f - p);
    for (int b = 0; b < B; b++) {
        Rng rng;
        rng_seed_stream(&rng, seed, step, (uint64_t)(first_sample + b));
        float *m = mask + (size_t)b * N;
        const float *x = inp + (size_t)b * N;
        float *o = out + (size_t)b * N;
        for (size_t i = 0; i < N; i++) {
            m[i] = rng_uniform(&rng) < (double)p ? 0.0f : keep_scale;
            o[i] = x[i] * m[i];
        }
    }
}

void dropout_backward(float *dinp, const float *dout, const float *mask, int B, size_t N) {
    size_t n = (size_t)B * N;
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

// ---- layer table --------------------------------------------------------------------------

typedef struct {
    float p;
    uint64_t name_hash;  // mixed into the run seed so two dropout layers draw different masks
    float *mask;         // (max_batch, N)
    int trained;         // the last forward dropped units (else it was the identity)
} DropoutImpl;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
    return h;
}

static int dropout_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    double p;
    if (ini_double(ini, sec, "p", 0.5, 0.0, 1.0, &p, err)) return -1;
    if (p >= 1.0) {
        char where[512];
        ini_where(ini, sec, "p", where, sizeof where);
        return df_err(err, "%s: [%s] p = %g must be in [0, 1) (p = 1 would drop everything)", where, sec->name, p);
    }
    DropoutImpl *impl = xcalloc(1, sizeof *impl);
    impl->p = (float)p;
    impl->name_hash = fnv1a(L->name);
    int max_batch = L->ctx && L->ctx->max_batch > 0 ? L->ctx->max_batch : 1;
    impl->mask = df_alloc_floats((size_t)max_batch * shape_numel(L->in_shape));
    L->impl = impl;
    L->out_shape = L->in_shape;
    return 0;
}

static void dropout_init(Layer *L, Rng *rng) {}

static void dropout_fwd(Layer *L, const Batch *batch, int training) {
    const int B = batch->n;
    DropoutImpl *impl = L->impl;
    size_t N = shape_numel(L->in_shape);
    impl->trained = training && impl->p > 0.0f;
    if (impl->trained) {
        NetCtx *ctx = L->ctx;
        DF_ASSERT(ctx && B <= ctx->max_batch);
        dropout_forward(L->out, impl->mask, L->in, B, N, impl->p, ctx->seed ^ impl->name_hash, ctx->step,
                        batch->first_sample);
    } else {
        memcpy(L->out, L->in, (size_t)B * N * sizeof(float));
    }
}

static void dropout_bwd(Layer *L, const Batch *batch) {
    const int B = batch->n;
    DropoutImpl *impl = L->impl;
    if (!L->din) return;
    size_t n = (size_t)B * shape_numel(L->in_shape);
    if (impl->trained) dropout_backward(L->din, L->dout, impl->mask, B, shape_numel(L->in_shape));
    else for (size_t i = 0; i < n; i++) L->din[i] += L->dout[i];
}

static void dropout_destroy(Layer *L) {
    DropoutImpl *impl = L->impl;
    if (impl) { free(impl->mask); free(impl); }
    L->impl = NULL;
}

const LayerOps dropout_ops = { "dropout", dropout_build, dropout_init, dropout_fwd, dropout_bwd, dropout_destroy };
