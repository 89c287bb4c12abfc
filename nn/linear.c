// linear.c: fully connected layer (see linear.h) over OpenBLAS, a loop reference, and its
// layer table. Any input shape is read as a flat vector of numel values per sample, which
// is exactly how the NCDHW buffer is laid out, so no copy is needed after a conv stack.
#include "nn/linear.h"
#include "nn/layer.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int IN, int OUT) {
    // out (B,OUT) = inp (B,IN) @ weight^T (IN,OUT) [+ bias broadcast over rows]
    if (B <= 0 || OUT <= 0) return;
    float beta = 0.0f;
    if (bias) {
        for (int b = 0; b < B; b++) memcpy(out + (size_t)b * OUT, bias, (size_t)OUT * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, inp, IN, weight, IN, beta, out, OUT);
}

void linear_forward_rows(float *out, const float *inp, const float *weight, const float *bias, int B, int IN, int OUT) {
    for (int b = 0; b < B; b++)
        linear_forward(out + (size_t)b * OUT, inp + (size_t)b * IN, weight, bias, 1, IN, OUT);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int IN, int OUT) {
    if (B <= 0 || OUT <= 0 || IN <= 0) return;
    // dinp (B,IN) += dout (B,OUT) @ weight (OUT,IN)
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, dout, OUT, weight, IN, 1.0f, dinp, IN);
    // dweight (OUT,IN) += dout^T (OUT,B) @ inp (B,IN)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, 1.0f, dout, OUT, inp, IN, 1.0f, dweight, IN);
    if (dbias) {
        for (int o = 0; o < OUT; o++) {
            float s = 0.0f;
            for (int b = 0; b < B; b++) s += dout[(size_t)b * OUT + o];
            dbias[o] += s;
        }
    }
}

void linear_forward_naive(float *out, const float *inp, const float *weight, const float *bias, int B, int IN, int OUT) {
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * IN;
        for (int o = 0; o < OUT; o++) {
            const float *w = weight + (size_t)o * IN;
            float s = bias ? bias[o] : 0.0f;
            for (int i = 0; i < IN; i++) s += w[i] * x[i];
            out[(size_t)b * OUT + o] = s;
        }
    }
}

void linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, int B, int IN, int OUT) {
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * IN;
        const float *dy = dout + (size_t)b * OUT;
        for (int o = 0; o < OUT; o++) {
            const float *w = weight + (size_t)o * IN;
            float *dw = dweight + (size_t)o * IN;
            float g = dy[o];
            if (dbias) dbias[o] += g;
            for (int i = 0; i < IN; i++) {
                dw[i] += g * x[i];
                if (dinp) dinp[(size_t)b * IN + i] += g * w[i];
            }
        }
    }
}

// ---- layer table --------------------------------------------------------------------------

typedef struct { int in, out, has_bias; InitKind init; } LinearImpl;

static int linear_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    int out, has_bias, init;
    if (!ini_entry(sec, "out")) {
        char where[512];
        ini_where(ini, sec, "out", where, sizeof where);
        return df_err(err, "%s: [%s] missing required key 'out' (number of output features)", where, sec->name);
    }
    if (ini_int(ini, sec, "out", 0, 1, 1 << 30, &out, err)) return -1;
    if (ini_bool(ini, sec, "bias", 1, &has_bias, err)) return -1;
    if (ini_choice(ini, sec, "init", "default", init_kind_names, &init, err)) return -1;
    size_t in = shape_numel(L->in_shape);
    if (in > (size_t)(1 << 30)) {
        char where[512];
        ini_where(ini, sec, NULL, where, sizeof where);
        return df_err(err, "%s: [%s] input of %zu features is too large", where, sec->name, in);
    }
    LinearImpl *impl = xcalloc(1, sizeof *impl);
    impl->in = (int)in;
    impl->out = out;
    impl->has_bias = has_bias;
    impl->init = (InitKind)init;
    L->impl = impl;
    L->out_shape = (Shape){ out, 1, 1, 1 };
    int wdims[2] = { out, (int)in }, bdims[1] = { out };
    layer_add_param(L, "weight", 2, wdims);
    if (has_bias) layer_add_param(L, "bias", 1, bdims);
    return 0;
}

static void linear_init(Layer *L, Rng *rng) {
    LinearImpl *impl = L->impl;
    // Same order as PyTorch's reset_parameters: weight, then bias.
    init_weight(layer_param(L, 0), (size_t)impl->out * impl->in, impl->in, impl->out, impl->init, rng);
    if (impl->has_bias) init_bias(layer_param(L, 1), (size_t)impl->out, impl->in, rng);
}

static void linear_fwd(Layer *L, const Batch *batch, int training) {
    const int B = batch->n;
    LinearImpl *impl = L->impl;
    const float *weight = layer_param(L, 0), *bias = layer_param(L, 1);
    // Evaluation is per sample, so predictions and features do not depend on the batch size
    // or the rank count (docs/distributed.md, "Reproducibility").
    if (training) linear_forward(L->out, L->in, weight, bias, B, impl->in, impl->out);
    else linear_forward_rows(L->out, L->in, weight, bias, B, impl->in, impl->out);
}

static void linear_bwd(Layer *L, const Batch *batch) {
    const int B = batch->n;
    LinearImpl *impl = L->impl;
    linear_backward(L->din, layer_grad(L, 0), layer_grad(L, 1), L->dout, L->in, layer_param(L, 0), B, impl->in, impl->out);
}

static void linear_destroy(Layer *L) { free(L->impl); L->impl = NULL; }

const LayerOps linear_ops = { "linear", linear_build, linear_init, linear_fwd, linear_bwd, linear_destroy };
