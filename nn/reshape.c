// reshape.c: flatten (see reshape.h) and its layer table.
#include "nn/reshape.h"
#include "nn/layer.h"
#include <string.h>

void flatten_forward(float *out, const float *inp, size_t n) { memcpy(out, inp, n * sizeof(float)); }

void flatten_backward(float *dinp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
}

// ---- layer table --------------------------------------------------------------------------

static int flatten_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    size_t n = shape_numel(L->in_shape);
    if (n > (size_t)(1 << 30)) {
        char where[512];
        ini_where(ini, sec, NULL, where, sizeof where);
        return df_err(err, "%s: [%s] input of %zu values is too large", where, sec->name, n);
    }
    L->out_shape = (Shape){ (int)n, 1, 1, 1 };
    return 0;
}

static void flatten_init(Layer *L, Rng *rng) {}
static size_t count(const Layer *L, int B) { return (size_t)B * shape_numel(L->in_shape); }
static void flatten_fwd(Layer *L, const Batch *batch, int training) { flatten_forward(L->out, L->in, count(L, batch->n)); }
static void flatten_bwd(Layer *L, const Batch *batch) { if (L->din) flatten_backward(L->din, L->dout, count(L, batch->n)); }
static void flatten_destroy(Layer *L) {}

const LayerOps flatten_ops = { "flatten", flatten_build, flatten_init, flatten_fwd, flatten_bwd, flatten_destroy };
