// infer.c: inference over a loader, and the schema a checkpoint is applied with (infer.h).
#include "run/infer.h"
#include "data/checkpoint.h"
#include "mpi/comm.h"
#include "run/resume.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int infer_run(Net *net, Loader *l, InferVisit visit, void *arg, DfError *err) {
    loader_begin_epoch(l, 0);
    const Batch *b;
    while ((b = loader_next(l, err))) {
        net_forward(net, b, 0);
        visit(arg, net, b);
    }
    return loader_failed(l) ? -1 : 0;
}

void infer_outputs_init(InferOutputs *o, const Net *net, const int *act, int n_outputs, int n) {
    DF_ASSERT(n_outputs >= 1 && n_outputs <= INFER_MAX_OUTPUTS);
    memset(o, 0, sizeof *o);
    o->n_outputs = n_outputs;
    o->n = n;
    for (int k = 0; k < n_outputs; k++) {
        o->act[k] = act[k];
        o->dims[k] = (int)shape_numel(act[k] == 0 ? net->in_shape : net->layers[act[k] - 1].out_shape);
    }
}

void infer_outputs_visit(void *arg, const Net *net, const Batch *b) {
    InferOutputs *o = arg;
    if (o->count + b->n > o->cap) {
        o->cap = DF_MAX(o->count + b->n, 2 * o->cap);
        o->pos = xrealloc(o->pos, sizeof(long) * (size_t)o->cap);
        for (int k = 0; k < o->n_outputs; k++) o->mine[k] = xrealloc(o->mine[k], sizeof(float) * (size_t)o->cap * o->dims[k]);
    }
    for (int i = 0; i < b->n; i++) o->pos[o->count + i] = b->first_sample + i;
    for (int k = 0; k < o->n_outputs; k++)
        memcpy(o->mine[k] + (size_t)o->count * o->dims[k], net->acts[o->act[k]], sizeof(float) * (size_t)b->n * o->dims[k]);
    o->count += b->n;
}

void infer_outputs_gather(InferOutputs *o) {
    // Positions and rows are gathered in rank order, so the k-th position names the k-th row.
    int root = dist_rank() == 0;
    long *pos = root ? xmalloc(sizeof(long) * (size_t)(o->n ? o->n : 1)) : NULL;
    dist_gather_bytes(pos, o->pos, sizeof(long) * (size_t)o->count);
    for (int k = 0; k < o->n_outputs; k++) {
        size_t d = (size_t)o->dims[k];
        float *rows = root ? df_alloc_floats((size_t)o->n * d) : NULL;
        dist_gather_f32(rows, o->mine[k], (size_t)o->count * d);
        if (root) {
            o->all[k] = df_alloc_floats((size_t)o->n * d);
            for (int i = 0; i < o->n; i++) {
                DF_ASSERT(pos[i] >= 0 && pos[i] < o->n);
                memcpy(o->all[k] + (size_t)pos[i] * d, rows + (size_t)i * d, sizeof(float) * d);
            }
        }
        free(rows);
    }
    free(pos);
}

void infer_outputs_free(InferOutputs *o) {
    for (int k = 0; k < o->n_outputs; k++) { free(o->mine[k]); free(o->all[k]); }
    free(o->pos);
    memset(o, 0, sizeof *o);
}

// CONFIG's network, built, is the checkpoint's. Its sections hold no key nothing read (a
// typo is reported as train reports it) -- those the network reads, and [data] when it gave
// the samples (`data_read`); [train], [loss] and the loss terms do not shape the outputs and
// are not read here. And its layers and their settings are the ones the checkpoint stores
// in /config: a setting without parameters (an activation, stride, pad, eps) would change
// the outputs with every tensor still fitting.
static int check_network(Ini *ini, const char *checkpoint, int data_read, DfError *err) {
    for (int i = 0; i < ini->n; i++) {
        IniSection *sec = &ini->sections[i];
        if (layer_ops_find(sec->name) || (data_read && strcmp(sec->name, "data") == 0)) continue;
        for (int j = 0; j < sec->n; j++) sec->entries[j].used = 1;
    }
    if (ini_check_unused(ini, err)) return -1;
    char *saved = checkpoint_read_config(checkpoint, err);
    if (!saved) return -1;
    // (a checkpoint written without its configuration has nothing to compare)
    int rc = saved[0] ? resume_check_network(ini, saved, checkpoint, ": the network must be the one trained", err) : 0;
    free(saved);
    return rc;
}

int infer_setup(InferSetup *s, const char *config, const char *const *sets, int n_sets, const char *checkpoint,
                const char *data, int split, int batch, DfError *err) {
    memset(s, 0, sizeof *s);
    if (ini_load(&s->ini, config, sets, n_sets, err)) return -1;
    if (data ? dataset_from_shards(&s->ds, data, err) : dataset_from_config(&s->ds, &s->ini, err)) return -1;
    s->n = s->ds.cohort.n;
    if (!data) {
        static const char *const names[] = { "train", "val", "test" };
        DF_ASSERT(split >= SPLIT_TRAIN && split <= SPLIT_TEST);
        s->rows = split == SPLIT_TRAIN ? s->ds.train_idx : split == SPLIT_VAL ? s->ds.val_idx : s->ds.test_idx;
        s->n = split == SPLIT_TRAIN ? s->ds.n_train : split == SPLIT_VAL ? s->ds.n_val : s->ds.n_test;
        if (s->n == 0) return df_err(err, "%s: the %s split of [data] is empty", config, names[split]);
    }
    s->schema = xmalloc(sizeof *s->schema);
    if (infer_schema(s->schema, &s->ds.cohort, checkpoint, data ? data : config, err)) return -1;
    if (net_build_meta(&s->net, &s->ini, s->ds.cohort.shape, batch, dist_reducer(), s->schema, err)) return -1;
    if (check_network(&s->ini, checkpoint, !data, err)) return -1;
    if (checkpoint_load(checkpoint, &s->net, NULL, NULL, err)) return -1;
    int P = dist_size();
    LoaderConfig lc = { data ? SPLIT_ALL : split, batch * P, dist_rank(), P, 0, 0, 0, 0, s->ds.prefetch };
    return (s->loader = loader_create(&s->ds, &lc, err)) ? 0 : -1;
}

int32_t *infer_labels(const InferSetup *s) {
    const Cohort *c = &s->ds.cohort;
    if (!c->labels) return NULL;
    int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)(s->n ? s->n : 1));
    for (int i = 0; i < s->n; i++) labels[i] = c->labels[infer_row(s, i)];
    return labels;
}

void infer_setup_free(InferSetup *s) {
    loader_free(s->loader);
    net_free(&s->net);
    free(s->schema);
    dataset_free(&s->ds);
    ini_free(&s->ini);
    memset(s, 0, sizeof *s);
}

int infer_schema(MetaSchema *schema, Cohort *c, const char *checkpoint, const char *origin, DfError *err) {
    MetaSchema *model = xmalloc(sizeof *model);  // large (level names): not on the stack
    int found = checkpoint_read_schema(checkpoint, model, err), rc;
    if (found < 0) rc = -1;
    else if (found == 0 && (rc = meta_schema_build(schema, c, err)) != 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        df_err(err, "%s: %s", origin, msg);
    } else if (found) rc = cohort_map_to_schema(c, model, schema, origin, err);
    free(model);
    return rc;
}
