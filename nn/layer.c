// layer.c: helpers shared by the layers' build and init functions (see layer.h).
#include "nn/layer.h"
#include <math.h>
#include <string.h>

static void add_tensor(TensorInfo *tab, int *n, size_t *total, const char *name, int ndim, const int *dims) {
    DF_ASSERT(*n < DF_MAX_TENSORS && ndim >= 1 && ndim <= 5);
    TensorInfo *t = &tab[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) { t->dims[i] = dims[i]; t->count *= (size_t)dims[i]; }
    t->offset = *total;
    *total += t->count;
}

float *layer_param(const Layer *L, int t) { return t < L->n_params_info ? L->params + L->params_info[t].offset : NULL; }
float *layer_grad(const Layer *L, int t) { return t < L->n_params_info ? L->grads + L->params_info[t].offset : NULL; }
float *layer_state(const Layer *L, int t) { return t < L->n_state_info ? L->state + L->state_info[t].offset : NULL; }

void layer_add_param(Layer *L, const char *name, int ndim, const int *dims) {
    add_tensor(L->params_info, &L->n_params_info, &L->n_params, name, ndim, dims);
}

void layer_add_state(Layer *L, const char *name, int ndim, const int *dims) {
    add_tensor(L->state_info, &L->n_state_info, &L->n_state, name, ndim, dims);
}

int layer_read_dhw(const Ini *ini, IniSection *sec, const char *key, const int *def, int lo, int out[3], DfError *err) {
    int v[3], n;
    char where[512];
    if (ini_int_list(ini, sec, key, v, 3, &n, err)) return -1;
    ini_where(ini, sec, key, where, sizeof where);
    if (n == 0) {
        if (!def) return df_err(err, "%s: [%s] missing required key '%s'", where, sec->name, key);
        for (int i = 0; i < 3; i++) out[i] = def[i];
        return 0;
    }
    if (n == 2) return df_err(err, "%s: [%s] %s needs 1 or 3 values (d,h,w), got 2", where, sec->name, key);
    if (n == 1) v[1] = v[2] = v[0];
    for (int i = 0; i < 3; i++) {
        if (v[i] < lo) return df_err(err, "%s: [%s] %s values must be >= %d", where, sec->name, key, lo);
        out[i] = v[i];
    }
    return 0;
}

const char *const init_kind_names[] = { "default", "kaiming_uniform", "kaiming_normal", "xavier_uniform",
                                        "xavier_normal", NULL };

void init_weight(float *w, size_t n, int fan_in, int fan_out, InitKind kind, Rng *rng) {
    double bound, std;
    switch (kind) {
    case INIT_DEFAULT:  // kaiming_uniform_(a = sqrt(5)): bound = 1/sqrt(fan_in)
        bound = 1.0 / sqrt((double)fan_in);
        for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * bound);
        break;
    case INIT_KAIMING_UNIFORM:  // gain sqrt(2) (ReLU), fan_in mode
        bound = sqrt(6.0 / (double)fan_in);
        for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * bound);
        break;
    case INIT_KAIMING_NORMAL:
        std = sqrt(2.0 / (double)fan_in);
        for (size_t i = 0; i < n; i++) w[i] = (float)(rng_normal(rng) * std);
        break;
    case INIT_XAVIER_UNIFORM:
        bound = sqrt(6.0 / (double)(fan_in + fan_out));
        for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * bound);
        break;
    case INIT_XAVIER_NORMAL:
        std = sqrt(2.0 / (double)(fan_in + fan_out));
        for (size_t i = 0; i < n; i++) w[i] = (float)(rng_normal(rng) * std);
        break;
    }
}

void init_bias(float *b, size_t n, int fan_in, Rng *rng) {
    double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
    for (size_t i = 0; i < n; i++) b[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * bound);
}
