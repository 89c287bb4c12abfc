// net.c: builds the layer stack from the INI file, owns the flat parameter, gradient, state
// and activation buffers, and runs forward and backward through the LayerOps tables.
#include "nn/net.h"
#include "nn/metadata.h"
#include "nn/batchnorm3d.h"
#include "nn/fused.h"
#include "nn/pool3d.h"
#include "base/threads.h"
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

// Sections that configure the experiment rather than the network.
// Sections of an experiment that are not layers: the run's settings and the loss terms
// (nn/term.c's registry; a new term type is listed here too, and tests build networks beside it).
static const char *const non_layer_sections[] = { "data", "train", "loss", "debias", "feature_l2", NULL };

static int is_non_layer(const char *name) {
    for (int i = 0; non_layer_sections[i]; i++)
        if (strcmp(non_layer_sections[i], name) == 0) return 1;
    return 0;
}

// A layer's name is read back by --set (all of section.key before the last '.'), from a
// comma-separated --features list, and as a dataset name in checkpoints and feature files, so
// it is 1 to n-1 characters, each a letter, digit, '_', '-' or '.'.
static int layer_name_ok(const char *name, size_t n) {
    size_t len = strlen(name);
    if (len == 0 || len >= n) return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-.", *p)) return 0;
    return 1;
}

// One workspace slice per compute thread: the thread count is set per rank after the network
// may have been built, so forward and backward check it.
static void net_workspace_fit(Net *net) {
    int t = df_threads();
    if (net->ctx.workspace && net->ctx.workspace_threads >= t) return;
    free(net->ctx.workspace);
    net->ctx.workspace = df_alloc_floats(net->ctx.workspace_floats * (size_t)t);
    net->ctx.workspace_threads = t;
}

// ---- the execution plan: which layers run fused, which outputs are stored -------------------
// A [batchnorm3d] followed by [relu] and [maxpool3d] runs as one kernel (nn/fused.h) unless
// something outside the network reads the BatchNorm's or the ReLU's output (net_observe):
// those two outputs and their gradients are then never stored. Observations only add, so a
// re-plan only dissolves groups and allocates buffers.

static int is_type(const Layer *L, const char *type) { return strcmp(L->ops->type, type) == 0; }

static int fusable_at(const Net *net, int i) {
    if (net->no_fuse || i + 2 >= net->n_layers) return 0;
    const Layer *bn = &net->layers[i], *relu = &net->layers[i + 1], *pool = &net->layers[i + 2];
    return is_type(bn, "batchnorm3d") && is_type(relu, "relu") && is_type(pool, "maxpool3d") &&
           !net->observed[i + 1] && !net->observed[i + 2];
}

// A fused group at layer i whose input (acts[i], a convolution's output: its backward never
// reads its own output) nothing outside observes gets its input gradient in that buffer: the
// fused backward replaces the input by its gradient (nn/fused.h), so a BR-Net block's largest
// tensor needs one buffer, not two.
static int fused_in_place(const Net *net, int i) {
    return net->fused[i] == 3 && i > 0 && !net->observed[i] && !net->repeat_backward &&
           is_type(&net->layers[i - 1], "conv3d");
}

static void net_plan(Net *net) {
    const size_t mb = (size_t)net->ctx.max_batch;
    for (int i = 0; i < net->n_layers; i++) net->fused[i] = 0;
    for (int i = 0; i < net->n_layers; i++)
        if (fusable_at(net, i)) {
            net->fused[i] = 3;
            net->fused[i + 1] = net->fused[i + 2] = -1;
            const PoolImpl *pool = net->layers[i + 2].impl;
            size_t ws = bn_relu_maxpool_workspace_floats(&pool->g);
            if (ws > net->ctx.workspace_floats) { net->ctx.workspace_floats = ws; net->ctx.workspace_threads = 0; }
            if (!net->inmax[i]) net->inmax[i] = df_alloc_floats(mb * shape_numel(net->layers[i + 2].out_shape));
            i += 2;
        }
    // Stored: the input, every output but the two inside a fused group. The gradients of
    // the stored outputs take turns in two shared buffers: the backward of a layer (or group)
    // needs only its output's gradient and writes its input's, and the one above it is done
    // with the buffer it overwrites (net_backward clears it first). dacts[0] is the input
    // gradient's own buffer (net_enable_input_grad).
    if (!net->acts[0]) net->acts[0] = df_alloc_floats(mb * shape_numel(net->in_shape));
    size_t widest[2] = { 0, 0 };  // of the gradients in each buffer
    for (int i = 0, turn = 0; i < net->n_layers; i++) {
        Layer *L = &net->layers[i];
        int inside = net->fused[i] == 3 || (net->fused[i] == -1 && net->fused[i + 1] == -1);
        if (inside) continue;
        if (!net->acts[i + 1]) net->acts[i + 1] = df_alloc_floats(mb * shape_numel(L->out_shape));
        if (i + 1 < net->n_layers && fused_in_place(net, i + 1)) continue;  // its gradient replaces it
        widest[turn % 2] = DF_MAX(widest[turn % 2], mb * shape_numel(L->out_shape));
        turn++;
    }
    for (int k = 0; k < 2; k++)
        if (widest[k] > net->dbuf_floats[k]) {
            free(net->dbuf[k]);
            net->dbuf[k] = df_alloc_floats(widest[k]);
            net->dbuf_floats[k] = widest[k];
        }
    for (int i = 1, turn = 0; i <= net->n_layers; i++) {
        if (i < net->n_layers && fused_in_place(net, i)) net->dacts[i] = net->acts[i];
        else net->dacts[i] = net->acts[i] ? net->dbuf[turn++ % 2] : NULL;
    }
    for (int i = 0; i < net->n_layers; i++) {
        Layer *L = &net->layers[i];
        L->in = net->acts[i];
        L->out = net->acts[i + 1];
        L->din = net->dacts[i];  // NULL for the first layer: nothing upstream needs it
        L->dout = net->dacts[i + 1];
    }
    net->planned = 1;
}

void net_observe(Net *net, int act) {
    DF_ASSERT(act >= 0 && act <= net->n_layers);
    if (net->observed[act]) return;
    net->observed[act] = 1;
    net->planned = 0;
}

void net_allow_repeated_backward(Net *net) {
    net->repeat_backward = 1;
    net->planned = 0;
}

void net_set_fusion(Net *net, int on) {
    net->no_fuse = !on;
    net->planned = 0;
}

// A fused group's forward: layers i (BatchNorm), i+1 (ReLU), i+2 (max-pool) from acts[i] into
// acts[i+3].
static void fused_forward(Net *net, int i, const Batch *b, int training) {
    Layer *bn = &net->layers[i], *pool = &net->layers[i + 2];
    BatchNormImpl *bi = bn->impl;
    PoolImpl *pi = pool->impl;
    bi->trained = training;
    bn_relu_maxpool_forward(pool->out, pi->argmax, net->inmax[i], bi->mean, bi->rstd, layer_state(bn, 0),
                            layer_state(bn, 1), bn->in, layer_param(bn, 0), layer_param(bn, 1), b->n, &pi->g, bi->eps,
                            bi->momentum, training, net->ctx.reducer, net->ctx.workspace, net->ctx.workspace_threads);
}

static void fused_backward(Net *net, int i, const Batch *b) {
    Layer *bn = &net->layers[i], *pool = &net->layers[i + 2];
    BatchNormImpl *bi = bn->impl;
    PoolImpl *pi = pool->impl;
    bn_relu_maxpool_backward(bn->din, layer_grad(bn, 0), layer_grad(bn, 1), pool->dout, pi->argmax, net->inmax[i],
                             bn->in, bi->mean, bi->rstd, layer_state(bn, 0), layer_state(bn, 1), layer_param(bn, 0),
                             layer_param(bn, 1), b->n, &pi->g, bi->eps, bi->trained, net->ctx.reducer, 0,
                             net->ctx.workspace_threads);
}

int net_build(Net *net, const Ini *ini, Shape in_shape, int max_batch, Reducer *red, DfError *err) {
    return net_build_meta(net, ini, in_shape, max_batch, red, NULL, err);
}

int net_prepare(Net *net, const double *meta, const int *labels, int n_local, long lo, long n_total, DfError *err) {
    for (int i = 0; i < net->n_layers; i++) {
        Layer *L = &net->layers[i];
        if (L->ops->prepare && L->ops->prepare(L, meta, labels, n_local, lo, n_total, err)) return -1;
    }
    return 0;
}

int net_refit_begin(Net *net) {
    int want = 0;
    for (int i = 0; i < net->n_layers; i++) {
        Layer *L = &net->layers[i];
        if (L->ops->refit) want |= L->ops->refit(L, 0);
    }
    return want;
}

void net_refit_finish(Net *net, int pass) {
    for (int i = 0; i < net->n_layers; i++) {  // layer order: the same collectives on every rank
        Layer *L = &net->layers[i];
        if (L->ops->refit) L->ops->refit(L, pass);
    }
}

int net_build_meta(Net *net, const Ini *ini, Shape in_shape, int max_batch, Reducer *red,
                   const struct MetaSchema *schema, DfError *err) {
    memset(net, 0, sizeof *net);
    net->in_shape = in_shape;
    net->ctx.meta_schema = schema;
    net->ctx.reducer = red ? red : &reducer_local;
    net->ctx.max_batch = max_batch;
    int n = 0;
    for (int i = 0; i < ini->n; i++) {
        IniSection *s = &ini->sections[i];
        if (is_non_layer(s->name)) continue;
        if (!layer_ops_find(s->name))
            return df_err(err, "%s:%d: unknown section [%s] (layer types: %s)", ini->origin, s->line, s->name,
                          layer_types_list());
        n++;
    }
    if (n == 0) return df_err(err, "%s: no layers: list the network as sections such as [conv3d], [relu], [linear]", ini->origin);
    net->layers = xcalloc((size_t)n, sizeof(Layer));
    Shape shape = in_shape;
    size_t workspace = 0;
    for (int i = 0; i < ini->n; i++) {
        IniSection *s = &ini->sections[i];
        if (is_non_layer(s->name)) continue;
        Layer *L = &net->layers[net->n_layers];
        L->ops = layer_ops_find(s->name);
        L->ctx = &net->ctx;
        L->in_shape = shape;
        // Default name: type plus a count per type, e.g. conv3d1, conv3d2, relu1.
        const char *name = ini_str(s, "name", NULL);
        int k = 0;
        for (int j = 0; j < net->n_layers; j++)
            if (net->layers[j].ops == L->ops) k++;
        if (name && !layer_name_ok(name, sizeof L->name)) {
            df_err(err, "%s:%d: [%s] name = '%s' must be 1-63 letters, digits, '_', '-' or '.'", ini->origin,
                   ini_entry(s, "name")->line, s->name, name);
            goto fail;
        }
        if (name) snprintf(L->name, sizeof L->name, "%s", name);
        else snprintf(L->name, sizeof L->name, "%s%d", L->ops->type, k + 1);
        for (int j = 0; j < net->n_layers; j++)
            if (strcmp(net->layers[j].name, L->name) == 0) {
                df_err(err, "%s:%d: layer name '%s' is used twice", ini->origin, s->line, L->name);
                goto fail;
            }
        net->n_layers++;  // from here on net_free destroys this layer too
        if (L->ops->build(L, ini, s, err) != 0) goto fail;
        if (L->out_shape.c < 1 || L->out_shape.d < 1 || L->out_shape.h < 1 || L->out_shape.w < 1) {
            df_err(err, "%s:%d: [%s] layer '%s' has an empty output", ini->origin, s->line, s->name, L->name);
            goto fail;
        }
        if (L->workspace_floats > workspace) workspace = L->workspace_floats;
        shape = L->out_shape;
    }
    net->out_shape = shape;

    for (int i = 0; i < net->n_layers; i++) { net->n_params += net->layers[i].n_params; net->n_state += net->layers[i].n_state; }
    net->params = df_alloc_floats(net->n_params);
    net->grads = df_alloc_floats(net->n_params);
    net->state = df_alloc_floats(net->n_state);
    net->ctx.workspace_floats = workspace;
    net_workspace_fit(net);
    net->acts = xcalloc((size_t)net->n_layers + 1, sizeof(float *));
    net->dacts = xcalloc((size_t)net->n_layers + 1, sizeof(float *));
    net->observed = xcalloc((size_t)net->n_layers + 1, 1);
    net->fused = xcalloc((size_t)net->n_layers, sizeof(int));
    net->inmax = xcalloc((size_t)net->n_layers, sizeof(float *));
    net->observed[0] = net->observed[net->n_layers] = 1;  // the input and the output
    size_t po = 0, so = 0;
    for (int i = 0; i < net->n_layers; i++) {
        Layer *L = &net->layers[i];
        L->params = net->params + po; L->grads = net->grads + po; po += L->n_params;
        L->state = net->state + so; so += L->n_state;
    }
    net_plan(net);
    return 0;
fail:  // err is already formatted (it may quote a layer's name, so free only now)
    net_free(net);
    return -1;
}

void net_init(Net *net, uint64_t seed) {
    net->ctx.seed = seed;
    for (int i = 0; i < net->n_layers; i++) {
        Rng rng;
        rng_seed_stream(&rng, seed, (uint64_t)i, 0);
        net->layers[i].ops->init(&net->layers[i], &rng);
    }
}

const float *net_forward(Net *net, const Batch *b, int training) {
    int B = b->n;
    DF_ASSERT(B >= 0 && B <= net->ctx.max_batch);
    if (!net->planned) net_plan(net);
    net_workspace_fit(net);
    // Inside the network the threads are the kernels' own (base/threads.h): a GEMM of a small
    // layer would otherwise wake OpenBLAS's threads, which then spin-wait on the cores the
    // next kernel's threads need.
    const int blas = df_blas_serial_begin();
    net->acts_spent = 0;
    memcpy(net->acts[0], b->images, (size_t)B * shape_numel(net->in_shape) * sizeof(float));
    for (int i = 0; i < net->n_layers; i++) {
        if (net->fused[i] < 0) continue;  // ran inside its group
        double t0 = net->seconds_fwd ? df_now() : 0.0;
        if (net->fused[i] > 0) fused_forward(net, i, b, training);
        else net->layers[i].ops->forward(&net->layers[i], b, training);
        if (net->seconds_fwd) net->seconds_fwd[i] += df_now() - t0;
    }
    df_blas_serial_end(blas);
    return net->acts[net->n_layers];
}

void net_backward(Net *net, const Batch *b, const float *dout) {
    int B = b->n;
    DF_ASSERT(B >= 0 && B <= net->ctx.max_batch);
    DF_ASSERT(net->planned);  // the plan of the forward this backward follows
    // A second backward after one forward would read activations the first overwrote: the
    // caller must net_allow_repeated_backward before the forward.
    DF_ASSERT(!net->acts_spent);
    net_workspace_fit(net);
    const int blas = df_blas_serial_begin();  // as in net_forward
    memcpy(net->dacts[net->n_layers], dout, (size_t)B * shape_numel(net->out_shape) * sizeof(float));
    for (int i = net->n_layers - 1; i >= 0; i--) {
        // Every layer above i has run: dacts[i + 1] is complete but for what a loss term added
        // on layer i's output directly; add it, and clear it for the next step.
        float *extra = net->output_grads ? net->output_grads[i + 1] : NULL;
        if (extra) {
            size_t n = (size_t)B * shape_numel(net->layers[i].out_shape);
            for (size_t j = 0; j < n; j++) net->dacts[i + 1][j] += extra[j];
            memset(extra, 0, n * sizeof(float));
        }
        double t0 = net->seconds_bwd ? df_now() : 0.0;
        // a fused group runs when its last layer is reached; its other two then have nothing
        // left to do (and no parameters of their own but the BatchNorm's, now final)
        // first: the layer (a fused group's first) whose input gradient dacts[first] is, or -1
        int first = net->fused[i] == 0 ? i : i >= 2 && net->fused[i - 2] == 3 ? i - 2 : -1;
        // layers add into their input's gradient: clear it (a fused group writes it whole)
        if (first >= 0 && net->dacts[first] && net->fused[first] == 0)
            df_zero_floats(net->dacts[first], (size_t)B * shape_numel(net->layers[first].in_shape));
        if (net->fused[i] == 0) net->layers[i].ops->backward(&net->layers[i], b);
        else if (first >= 0) fused_backward(net, first, b);
        if (first >= 0 && net->fused[first] == 3 && net->dacts[first] == net->acts[first]) net->acts_spent = 1;
        if (net->seconds_bwd) net->seconds_bwd[i] += df_now() - t0;
        if (net->grads_ready) net->grads_ready(net->grads_ready_arg, (size_t)(net->layers[i].grads - net->grads));
    }
    df_blas_serial_end(blas);
}

float *net_output_grad(Net *net, int act) {
    DF_ASSERT(act >= 1 && act <= net->n_layers && net->observed[act]);
    if (!net->output_grads) net->output_grads = xcalloc((size_t)net->n_layers + 1, sizeof(float *));
    if (!net->output_grads[act])
        net->output_grads[act] = df_alloc_floats((size_t)net->ctx.max_batch * shape_numel(net->layers[act - 1].out_shape));
    return net->output_grads[act];
}

void net_enable_input_grad(Net *net) {
    if (net->dacts[0]) return;
    net->dacts[0] = df_alloc_floats((size_t)net->ctx.max_batch * shape_numel(net->in_shape));
    net->layers[0].din = net->dacts[0];
}

void net_share_tensors(Net *twin, Net *net) {
    DF_ASSERT(twin->n_layers == net->n_layers && twin->n_params == net->n_params && twin->n_state == net->n_state);
    if (!twin->borrowed) { free(twin->params); free(twin->grads); free(twin->state); }
    twin->params = net->params;
    twin->grads = net->grads;
    twin->state = net->state;
    twin->borrowed = 1;
    twin->ctx.seed = net->ctx.seed;
    for (int i = 0; i < net->n_layers; i++) {
        Layer *T = &twin->layers[i];
        const Layer *L = &net->layers[i];
        DF_ASSERT(T->ops == L->ops && T->n_params == L->n_params && T->n_state == L->n_state);
        T->params = L->params;
        T->grads = L->grads;
        T->state = L->state;
    }
}

void net_zero_grad(Net *net) { memset(net->grads, 0, net->n_params * sizeof(float)); }

Layer *net_layer(Net *net, const char *name) {
    for (int i = 0; i < net->n_layers; i++)
        if (strcmp(net->layers[i].name, name) == 0) return &net->layers[i];
    return NULL;
}

int net_layer_output_index(Net *net, const char *name) {
    for (int i = 0; i < net->n_layers; i++)
        if (strcmp(net->layers[i].name, name) == 0) {
            net_observe(net, i + 1);
            return i + 1;
        }
    return -1;
}

void net_print_summary(const Net *net, FILE *f) {
    fprintf(f, "%-16s %-15s %-22s %10s\n", "layer", "type", "output (C,D,H,W)", "params");
    fprintf(f, "%-16s %-15s %3d,%4d,%4d,%4d %16s\n", "input", "", net->in_shape.c, net->in_shape.d,
            net->in_shape.h, net->in_shape.w, "");
    for (int i = 0; i < net->n_layers; i++) {
        const Layer *L = &net->layers[i];
        fprintf(f, "%-16s %-15s %3d,%4d,%4d,%4d %16zu\n", L->name, L->ops->type, L->out_shape.c, L->out_shape.d,
                L->out_shape.h, L->out_shape.w, L->n_params);
    }
    fprintf(f, "total parameters: %zu\n", net->n_params);
}

int net_find_nonfinite(const Net *net, int grads, char *what, size_t n) {
    for (int i = 0; i < net->n_layers; i++) {
        const Layer *L = &net->layers[i];
        for (int t = 0; t < L->n_params_info + (grads ? 0 : L->n_state_info); t++) {
            const int is_param = t < L->n_params_info;
            const TensorInfo *ti = is_param ? &L->params_info[t] : &L->state_info[t - L->n_params_info];
            const float *data = is_param ? (grads ? layer_grad(L, t) : layer_param(L, t)) : layer_state(L, t - L->n_params_info);
            long k = df_first_nonfinite(data, ti->count);
            if (k >= 0) {
                snprintf(what, n, "%sparams/%s/%s[%ld] = %g", grads ? "the gradient of " : "", L->name, ti->name, k,
                         (double)data[k]);
                return 1;
            }
        }
    }
    return 0;
}

int net_find_nonfinite_output(const Net *net, int B, int *sample) {
    for (int a = 0; a <= net->n_layers; a++) {
        if (!net->acts[a]) continue;  // inside a fused group: its group's output is checked
        size_t per = shape_numel(a == 0 ? net->in_shape : net->layers[a - 1].out_shape);
        long k = df_first_nonfinite(net->acts[a], (size_t)B * per);
        if (k >= 0) {
            *sample = (int)(k / (long)per);
            return a;
        }
    }
    return -1;
}

void net_print_profile(const Net *net, const double *t_fwd, const double *t_bwd, int steps, double step_seconds, FILE *f) {
    fprintf(f, "%-32s %-12s %10s %10s %7s\n", "layer", "type", "fwd ms", "bwd ms", "share");
    for (int i = 0; i < net->n_layers; i++) {
        if (net->fused[i] < 0) continue;  // timed with its group
        char name[200];
        double fw = t_fwd[i], bw = t_bwd[i];
        if (net->fused[i] > 0) {
            snprintf(name, sizeof name, "%s+%s+%s", net->layers[i].name, net->layers[i + 1].name, net->layers[i + 2].name);
            bw += t_bwd[i + 1] + t_bwd[i + 2];  // the group's backward ran at its last layer
        } else {
            snprintf(name, sizeof name, "%s", net->layers[i].name);
        }
        fprintf(f, "%-32s %-12s %10.2f %10.2f %6.1f%%\n", name, net->fused[i] > 0 ? "fused" : net->layers[i].ops->type,
                1e3 * fw / steps, 1e3 * bw / steps, 100.0 * (fw + bw) / steps / step_seconds);
    }
    fprintf(f, "step total %.2f ms (the rest: loss, gradient all-reduce, optimiser)\n", 1e3 * step_seconds);
}

void net_free(Net *net) {
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].ops && net->layers[i].ops->destroy) net->layers[i].ops->destroy(&net->layers[i]);
    if (net->acts)
        for (int i = 0; i <= net->n_layers; i++) free(net->acts[i]);
    if (net->dacts) free(net->dacts[0]);  // the others are dbuf's
    free(net->dbuf[0]);
    free(net->dbuf[1]);
    if (net->output_grads)
        for (int i = 0; i <= net->n_layers; i++) free(net->output_grads[i]);
    free(net->output_grads);
    free(net->acts);
    free(net->dacts);
    free(net->observed);
    free(net->fused);
    if (net->inmax)
        for (int i = 0; i < net->n_layers; i++) free(net->inmax[i]);
    free(net->inmax);
    free(net->layers);
    if (!net->borrowed) {
        free(net->params);
        free(net->grads);
        free(net->state);
    }
    free(net->ctx.workspace);
    memset(net, 0, sizeof *net);
}
