// checkpoint.c: HDF5 checkpoints (see checkpoint.h and docs/formats.md).
// The layout mirrors a PyTorch state_dict (params/<layer>/<tensor> in PyTorch's shapes), so a
// checkpoint can be compared with, or converted to, a torch model tensor by tensor.
#include "data/checkpoint.h"
#include "data/h5util.h"
#include "nn/metadata.h"
#include <stdlib.h>
#include <string.h>

// Tensor t of layer L: its data pointer and whether it is a parameter (else state).
static float *tensor_data(const Layer *L, int t, int *is_param) {
    *is_param = t < L->n_params_info;
    return *is_param ? layer_param(L, t) : layer_state(L, t - L->n_params_info);
}
static const TensorInfo *tensor_info(const Layer *L, int t) {
    return t < L->n_params_info ? &L->params_info[t] : &L->state_info[t - L->n_params_info];
}
static int n_tensors(const Layer *L) { return L->n_params_info + L->n_state_info; }

// A group that remembers the order its links were created in, so readers (and `deconfound
// info`) list layers in network order rather than alphabetically.
static int create_ordered_group(hid_t f, const char *path, const char *name, DfError *err) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    int rc = -1;
    if (gcpl < 0 || H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
        df_err(err, "%s: %s: cannot set up the group", path, name);
        goto done;
    }
    if ((g = H5Gcreate2(f, name, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0) {
        df_err(err, "%s: %s: cannot create the group", path, name);
        goto done;
    }
    rc = 0;
done:
    if (g >= 0 && H5Gclose(g) < 0 && rc == 0) rc = df_err(err, "%s: %s: cannot close the group", path, name);
    if (gcpl >= 0 && H5Pclose(gcpl) < 0 && rc == 0) rc = df_err(err, "%s: %s: close failed", path, name);
    return rc;
}

// Names of the links in `group`, in creation order when the group tracks it (ours do), else
// by name. Returns the count and sets *names (free with free_names), or -1 with err.
static int list_links(hid_t f, const char *path, const char *group, char ***names, DfError *err) {
    *names = NULL;
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT), gcpl = -1;
    if (g < 0) return df_err(err, "%s: %s: cannot open the group", path, group);
    int n = -1;
    unsigned flags = 0;
    H5G_info_t info;
    if ((gcpl = H5Gget_create_plist(g)) < 0 || H5Pget_link_creation_order(gcpl, &flags) < 0 ||
        H5Gget_info(g, &info) < 0) {
        df_err(err, "%s: %s: cannot list the group", path, group);
        goto done;
    }
    H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    char **list = xcalloc((size_t)info.nlinks + 1, sizeof(char *));
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(g, ".", idx, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (len >= 0) {
            list[i] = xmalloc((size_t)len + 1);
            len = H5Lget_name_by_idx(g, ".", idx, H5_ITER_INC, i, list[i], (size_t)len + 1, H5P_DEFAULT);
        }
        if (len < 0) {
            for (hsize_t j = 0; j <= i; j++) free(list[j]);
            free(list);
            df_err(err, "%s: %s: cannot list the group", path, group);
            goto done;
        }
    }
    *names = list;
    n = (int)info.nlinks;
done:
    if (((gcpl >= 0 && H5Pclose(gcpl) < 0) | (H5Gclose(g) < 0)) && n >= 0) {
        for (int i = 0; i < n; i++) free((*names)[i]);
        free(*names);
        *names = NULL;
        n = df_err(err, "%s: %s: cannot close the group", path, group);
    }
    return n;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

#define SIGNATURE_LEN 4096

// The signature attribute of group params/<L> (see LayerOps.signature): write it, or compare
// it with the layer's (a checkpoint without one, from before signatures, is not compared).
static int layer_signature(hid_t f, const char *path, const Layer *L, int write, DfError *err) {
    if (!L->ops || !L->ops->signature) return 0;  // (tests build layers without a table)
    char group[128], *mine = xmalloc(SIGNATURE_LEN), *theirs = NULL;
    snprintf(group, sizeof group, "params/%s", L->name);
    L->ops->signature(L, mine, SIGNATURE_LEN);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    int rc = g < 0 ? df_err(err, "%s: %s: cannot open the group", path, group) : 0;
    if (rc == 0 && write) rc = h5_attr_write_string(g, path, "signature", mine, err);
    else if (rc == 0 && h5_attr_exists(g, "signature")) {
        if (!(theirs = h5_attr_read_string(g, path, "signature", err))) rc = -1;
        else if (strcmp(theirs, mine) != 0)
            rc = df_err(err, "%s: layer '%s' was trained with %s, but this config builds it with %s", path, L->name, theirs, mine);
    }
    if (g >= 0 && H5Gclose(g) < 0 && rc == 0) rc = df_err(err, "%s: %s: cannot close the group", path, group);
    free(mine);
    free(theirs);
    return rc;
}

static void blob_paths(const CheckpointBlob *b, char *data, char *counters, size_t n) {
    snprintf(data, n, "train/extra/%s", b->name);
    snprintf(counters, n, "train/extra/%s_counters", b->name);
}

static int write_blobs(hid_t f, const char *path, const TrainState *ts, DfError *err) {
    for (int i = 0; i < ts->n_blobs; i++) {
        const CheckpointBlob *b = &ts->blobs[i];
        char data[160], counters[160];
        blob_paths(b, data, counters, sizeof data);
        hsize_t n = (hsize_t)b->n, nc = (hsize_t)b->n_counters;
        uint64_t c[CHECKPOINT_MAX_COUNTERS];
        for (int k = 0; k < b->n_counters; k++) c[k] = (uint64_t)b->counters[k];
        if (h5_write_f32(f, path, data, b->data, 1, &n, err) != 0) return -1;
        if (nc && h5_write_u64(f, path, counters, c, 1, &nc, err) != 0) return -1;
    }
    return 0;
}

// Every blob the run keeps must be there with its size (checked before anything is read).
static int check_blobs(hid_t f, const char *path, const TrainState *ts, DfError *err) {
    for (int i = 0; i < ts->n_blobs; i++) {
        const CheckpointBlob *b = &ts->blobs[i];
        char data[160], counters[160];
        blob_paths(b, data, counters, sizeof data);
        hsize_t dims[H5S_MAX_RANK];
        if (!h5_exists(f, data) || (b->n_counters && !h5_exists(f, counters)))
            return df_err(err, "%s: has no %s (the run keeps it: was the checkpoint written without this loss term?)", path, data);
        int nd = h5_dims(f, path, data, dims, H5S_MAX_RANK, err);
        if (nd < 0) return -1;
        if (nd != 1 || dims[0] != (hsize_t)b->n)
            return df_err(err, "%s: %s has %llu values, the run's has %zu", path, data, (unsigned long long)(nd == 1 ? dims[0] : 0), b->n);
        if ((nd = b->n_counters ? h5_dims(f, path, counters, dims, H5S_MAX_RANK, err) : 1) < 0) return -1;
        if (b->n_counters && (nd != 1 || dims[0] != (hsize_t)b->n_counters))
            return df_err(err, "%s: %s does not hold %d counters", path, counters, b->n_counters);
    }
    return 0;
}

static int read_blobs(hid_t f, const char *path, TrainState *ts, DfError *err) {
    for (int i = 0; i < ts->n_blobs; i++) {
        CheckpointBlob *b = &ts->blobs[i];
        char data[160], counters[160];
        blob_paths(b, data, counters, sizeof data);
        uint64_t c[CHECKPOINT_MAX_COUNTERS];
        if (h5_read_f32(f, path, data, b->data, b->n, err) != 0) return -1;
        if (b->n_counters && h5_read_u64(f, path, counters, c, (size_t)b->n_counters, err) != 0) return -1;
        for (int k = 0; k < b->n_counters; k++) b->counters[k] = (int64_t)c[k];
    }
    return 0;
}

static int write_contents(hid_t f, const char *path, const char *config_text, const Net *net, const Optimizer *opt,
                          const TrainState *ts, DfError *err) {
    if (h5_write_format(f, path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, err) != 0) return -1;
    if (h5_write_string(f, path, "config", config_text ? config_text : "", err) != 0) return -1;
    // /params exists even for a network without parameters, so a reader can tell "no
    // parameters" from "not a checkpoint".
    if (create_ordered_group(f, path, "params", err) != 0) return -1;
    for (int i = 0; i < net->n_layers; i++) {
        const Layer *L = &net->layers[i];
        if (!L->name[0] || strchr(L->name, '/')) return df_err(err, "%s: layer %d has a bad name '%s'", path, i, L->name);
        if (n_tensors(L) == 0) continue;
        char group[128];
        snprintf(group, sizeof group, "params/%s", L->name);
        if (create_ordered_group(f, path, group, err) != 0) return -1;
        for (int t = 0; t < n_tensors(L); t++) {
            const TensorInfo *ti = tensor_info(L, t);
            int is_param;
            const float *data = tensor_data(L, t, &is_param);
            hsize_t dims[5];
            for (int d = 0; d < ti->ndim; d++) dims[d] = (hsize_t)ti->dims[d];
            char name[160];
            snprintf(name, sizeof name, "params/%s/%s", L->name, ti->name);
            if (h5_write_f32(f, path, name, data, ti->ndim, dims, err) != 0) return -1;
        }
        if (layer_signature(f, path, L, 1, err) != 0) return -1;
    }
    if (net->ctx.meta_schema) {
        char *text = meta_schema_to_text(net->ctx.meta_schema);
        int rc = h5_write_string(f, path, "schema", text, err);
        free(text);
        if (rc != 0) return -1;
    }
    if (opt) {
        hid_t o = H5Gcreate2(f, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (o < 0) return df_err(err, "%s: optimizer: cannot create the group", path);
        int rc = h5_attr_write_i64(o, path, "step", opt->step, err);
        if (rc == 0) rc = h5_attr_write_string(o, path, "kind", opt_kind_names[opt->cfg.kind], err);
        if (H5Gclose(o) < 0 && rc == 0) rc = df_err(err, "%s: optimizer: cannot close the group", path);
        if (rc != 0) return -1;
        hsize_t n = (hsize_t)opt->n;
        if (opt->m && h5_write_f32(f, path, "optimizer/m", opt->m, 1, &n, err) != 0) return -1;
        if (opt->v && h5_write_f32(f, path, "optimizer/v", opt->v, 1, &n, err) != 0) return -1;
    }
    if (ts) {
        hsize_t four = 4;
        hsize_t n_sums = TRAIN_SUMS;
        if (h5_write_u64(f, path, "train/rng", ts->rng.s, 1, &four, err) != 0) return -1;
        if (h5_write_f64(f, path, "train/epoch_sums", ts->epoch_sums, 1, &n_sums, err) != 0) return -1;
        hid_t t = H5Gopen2(f, "train", H5P_DEFAULT);
        if (t < 0) return df_err(err, "%s: train: cannot open the group", path);
        int rc = h5_attr_write_i64(t, path, "epoch", ts->epoch, err);
        if (rc == 0) rc = h5_attr_write_i64(t, path, "step", ts->step, err);
        if (rc == 0) rc = h5_attr_write_i64(t, path, "epoch_step", ts->epoch_step, err);
        if (H5Gclose(t) < 0 && rc == 0) rc = df_err(err, "%s: train: cannot close the group", path);
        if (rc != 0) return -1;
        if (write_blobs(f, path, ts, err) != 0) return -1;
        hsize_t nt = (hsize_t)ts->n_term_sums;
        if (nt && h5_write_f64(f, path, "train/term_sums", ts->term_sums, 1, &nt, err) != 0) return -1;
    }
    return 0;
}

// The optimiser's moment buffers: 1 and the first non-finite one's name in `what`, else 0.
static int nonfinite_buffer(const Optimizer *opt, char *what, size_t n) {
    if (!opt) return 0;
    const float *bufs[2] = { opt->m, opt->v };
    for (int b = 0; b < 2; b++) {
        long k = bufs[b] ? df_first_nonfinite(bufs[b], opt->n) : -1;
        if (k >= 0) {
            snprintf(what, n, "optimizer/%s[%ld] = %g", b ? "v" : "m", k, (double)bufs[b][k]);
            return 1;
        }
    }
    return 0;
}

int checkpoint_save(const char *path, const char *config_text, const Net *net, const Optimizer *opt,
                    const TrainState *ts, DfError *err) {
    DF_ASSERT(!opt || opt->n == net->n_params);
    // A checkpoint is what a run resumes and predicts from: never one with NaN or inf in it.
    char bad[256];
    if (net_find_nonfinite(net, 0, bad, sizeof bad) || nonfinite_buffer(opt, bad, sizeof bad))
        return df_err(err, "%s: not written: %s is not finite", path, bad);
    char *tmp;
    hid_t f = h5_create_atomic(path, &tmp, err);
    if (f < 0) return -1;
    int ok = write_contents(f, path, config_text, net, opt, ts, err) == 0;
    int rc = h5_finish_atomic(f, tmp, path, ok, err);
    free(tmp);
    return rc;
}

static void format_dims(char *buf, size_t n, int ndim, const hsize_t *dims) {
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && off < n; d++)
        off += (size_t)snprintf(buf + off, n - off, "%s%llu", d ? "," : "", (unsigned long long)dims[d]);
    if (off < n) snprintf(buf + off, n - off, "]");
}

static const Layer *find_layer(const Net *net, const char *name) {
    for (int i = 0; i < net->n_layers; i++)
        if (strcmp(net->layers[i].name, name) == 0) return &net->layers[i];
    return NULL;
}

// Every link under `group` must be a layer (L == NULL) or a tensor of L in the network;
// otherwise names the first extra one. Checking this as well as that every expected tensor
// is present catches a checkpoint of a different network that merely shares layer names.
static int check_no_extra(hid_t f, const char *path, const char *group, const Net *net, const Layer *L, DfError *err) {
    char **names;
    int n = list_links(f, path, group, &names, err), rc = 0;
    if (n < 0) return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        if (!L) {
            const Layer *M = find_layer(net, names[i]);
            if (!M || n_tensors(M) == 0)
                rc = df_err(err, "%s: params/%s is not a layer with parameters in the network (a checkpoint of a different network?)",
                            path, names[i]);
        } else {
            int found = 0;
            for (int t = 0; t < n_tensors(L) && !found; t++) found = strcmp(tensor_info(L, t)->name, names[i]) == 0;
            if (!found) rc = df_err(err, "%s: %s/%s is not a tensor of layer '%s' in the network", path, group, names[i], L->name);
        }
    }
    free_names(names, n);
    return rc;
}

// Checks that the checkpoint's params match the network exactly (shapes, nothing missing,
// nothing extra) before anything is overwritten.
static int check_params(hid_t f, const char *path, const Net *net, DfError *err) {
    if (!h5_exists(f, "params")) return df_err(err, "%s: params: missing", path);
    if (check_no_extra(f, path, "params", net, NULL, err) != 0) return -1;
    for (int i = 0; i < net->n_layers; i++) {
        const Layer *L = &net->layers[i];
        if (n_tensors(L) == 0) continue;
        char group[128];
        snprintf(group, sizeof group, "params/%s", L->name);
        if (!h5_exists(f, group))
            return df_err(err, "%s: %s is missing: the checkpoint has no layer '%s' (a checkpoint of a different network?)",
                          path, group, L->name);
        if (check_no_extra(f, path, group, net, L, err) != 0) return -1;
        for (int t = 0; t < n_tensors(L); t++) {
            const TensorInfo *ti = tensor_info(L, t);
            char name[160];
            snprintf(name, sizeof name, "%s/%s", group, ti->name);
            if (!h5_exists(f, name)) return df_err(err, "%s: %s is missing", path, name);
            hsize_t got[H5S_MAX_RANK], want[5];
            int nd = h5_dims(f, path, name, got, H5S_MAX_RANK, err);
            if (nd < 0) return -1;
            int same = nd == ti->ndim;
            for (int d = 0; d < ti->ndim; d++) {
                want[d] = (hsize_t)ti->dims[d];
                if (same && got[d] != want[d]) same = 0;
            }
            if (!same) {
                char a[128], b[128];
                format_dims(a, sizeof a, nd, got);
                format_dims(b, sizeof b, ti->ndim, want);
                return df_err(err, "%s: %s has shape %s but the network expects %s", path, name, a, b);
            }
        }
        if (layer_signature(f, path, L, 0, err) != 0) return -1;
    }
    return 0;
}

static int load_contents(hid_t f, const char *path, Net *net, Optimizer *opt, TrainState *ts, DfError *err) {
    if (h5_check_format(f, path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, err) != 0) return -1;
    if (check_params(f, path, net, err) != 0) return -1;
    // Optimiser and train state are checked before any buffer is written too.
    int64_t opt_step = 0, epoch = 0, step = 0, epoch_step = 0;
    if (opt) {
        if (!h5_exists(f, "optimizer")) return df_err(err, "%s: has no optimizer state (saved without one)", path);
        hid_t o = H5Gopen2(f, "optimizer", H5P_DEFAULT);
        if (o < 0) return df_err(err, "%s: optimizer: cannot open the group", path);
        char *kind = h5_attr_read_string(o, path, "kind", err);
        int rc = kind ? h5_attr_read_i64(o, path, "step", &opt_step, err) : -1;
        if (H5Gclose(o) < 0 && rc == 0) rc = df_err(err, "%s: optimizer: cannot close the group", path);
        if (rc == 0 && strcmp(kind, opt_kind_names[opt->cfg.kind]) != 0)
            rc = df_err(err, "%s: optimizer state is for %s but the run uses %s", path, kind, opt_kind_names[opt->cfg.kind]);
        free(kind);
        if (rc != 0) return -1;
        if (!!opt->m != h5_exists(f, "optimizer/m") || !!opt->v != h5_exists(f, "optimizer/v"))
            return df_err(err, "%s: optimizer state has %s but the run's %s optimizer keeps %s", path,
                          h5_exists(f, "optimizer/v") ? "m and v" : h5_exists(f, "optimizer/m") ? "m only" : "no buffers",
                          opt_kind_names[opt->cfg.kind], opt->v ? "m and v" : opt->m ? "m only" : "no buffers");
        hsize_t dims[H5S_MAX_RANK];
        const char *bufs[2] = { opt->m ? "optimizer/m" : NULL, opt->v ? "optimizer/v" : NULL };
        for (int b = 0; b < 2; b++) {
            if (!bufs[b]) continue;
            int nd = h5_dims(f, path, bufs[b], dims, H5S_MAX_RANK, err);
            if (nd < 0) return -1;
            if (nd != 1 || dims[0] != (hsize_t)opt->n)
                return df_err(err, "%s: %s has %llu values but the network has %zu parameters", path, bufs[b],
                              (unsigned long long)(nd == 1 ? dims[0] : 0), opt->n);
        }
    }
    if (ts) {
        if (!h5_exists(f, "train")) return df_err(err, "%s: has no train state", path);
        hid_t t = H5Gopen2(f, "train", H5P_DEFAULT);
        if (t < 0) return df_err(err, "%s: train: cannot open the group", path);
        int rc = h5_attr_read_i64(t, path, "epoch", &epoch, err);
        if (rc == 0) rc = h5_attr_read_i64(t, path, "step", &step, err);
        if (rc == 0) rc = h5_attr_read_i64(t, path, "epoch_step", &epoch_step, err);
        if (H5Gclose(t) < 0 && rc == 0) rc = df_err(err, "%s: train: cannot close the group", path);
        if (rc != 0) return -1;
        if (epoch < 0 || epoch > 1000000000 || step < 0 || epoch_step < 0 || epoch_step > step)
            return df_err(err, "%s: train: bad epoch %lld / step %lld", path, (long long)epoch, (long long)step);
        if (check_blobs(f, path, ts, err) != 0) return -1;
    }

    // Everything matches: now read into the network. The reads can still fail (I/O error,
    // wrong dtype), in which case the buffers are partly overwritten -- the caller exits.
    for (int i = 0; i < net->n_layers; i++) {
        Layer *L = &net->layers[i];
        for (int t = 0; t < n_tensors(L); t++) {
            const TensorInfo *ti = tensor_info(L, t);
            int is_param;
            float *data = tensor_data(L, t, &is_param);
            char name[160];
            snprintf(name, sizeof name, "params/%s/%s", L->name, ti->name);
            if (h5_read_f32(f, path, name, data, ti->count, err) != 0) return -1;
        }
    }
    if (opt) {
        if (opt->m && h5_read_f32(f, path, "optimizer/m", opt->m, opt->n, err) != 0) return -1;
        if (opt->v && h5_read_f32(f, path, "optimizer/v", opt->v, opt->n, err) != 0) return -1;
        opt->step = (long)opt_step;
    }
    // A diverged run's checkpoint (written before this check existed, or by another program):
    // predicting or resuming from it would give NaN everywhere, so it is refused by name.
    char bad[256];
    if (net_find_nonfinite(net, 0, bad, sizeof bad) || nonfinite_buffer(opt, bad, sizeof bad))
        return df_err(err, "%s: %s is not finite: the run that wrote it diverged; use an earlier checkpoint", path, bad);
    if (ts) {
        Rng r;
        if (h5_read_u64(f, path, "train/rng", r.s, 4, err) != 0) return -1;
        // Checkpoints written before the per-class tallies were kept hold 3 sums; the tallies
        // of that partial epoch are then zero (only its balanced accuracy is partial).
        hsize_t n_sums = 0;
        memset(ts->epoch_sums, 0, sizeof ts->epoch_sums);
        if (h5_dims(f, path, "train/epoch_sums", &n_sums, 1, err) != 1) return -1;
        if (n_sums != 3 && n_sums != TRAIN_SUMS) return df_err(err, "%s: train/epoch_sums has %llu values (3 or %d expected)", path, (unsigned long long)n_sums, TRAIN_SUMS);
        if (h5_read_f64(f, path, "train/epoch_sums", ts->epoch_sums, (size_t)n_sums, err) != 0) return -1;
        if (read_blobs(f, path, ts, err) != 0) return -1;
        // The sums of the loss terms' logs over a partial epoch: absent (zero) in checkpoints
        // written before they were kept; then only that epoch's logged means are partial.
        if (ts->n_term_sums) memset(ts->term_sums, 0, ts->n_term_sums * sizeof(double));
        if (ts->n_term_sums && h5_exists(f, "train/term_sums") &&
            h5_read_f64(f, path, "train/term_sums", ts->term_sums, ts->n_term_sums, err) != 0)
            return -1;
        ts->rng = r;
        ts->epoch = (int)epoch;
        ts->step = (long)step;
        ts->epoch_step = (int)epoch_step;
    }
    return 0;
}

int checkpoint_load(const char *path, Net *net, Optimizer *opt, TrainState *ts, DfError *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = load_contents(f, path, net, opt, ts, err);
    if (H5Fclose(f) < 0 && rc == 0) rc = df_err(err, "%s: closing failed", path);
    return rc;
}

int checkpoint_read_schema(const char *path, MetaSchema *s, DfError *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = h5_check_format(f, path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, err);
    if (rc == 0 && h5_exists(f, "schema")) {
        char *text = h5_read_string(f, path, "schema", err), origin[600];
        snprintf(origin, sizeof origin, "%s: schema", path);
        rc = !text ? -1 : meta_schema_from_text(s, text, origin, err) == 0 ? 1 : -1;
        free(text);
    }
    if (H5Fclose(f) < 0 && rc >= 0) rc = df_err(err, "%s: closing failed", path);
    return rc;
}

char *checkpoint_read_config(const char *path, DfError *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return NULL;
    char *text = NULL;
    if (h5_check_format(f, path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, err) == 0)
        text = h5_read_string(f, path, "config", err);
    if (H5Fclose(f) < 0 && text) {
        free(text);
        text = NULL;
        df_err(err, "%s: closing failed", path);
    }
    return text;
}

int checkpoint_probe(const char *path, DfError *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = 0;
    if (h5_attr_exists(f, "format")) {
        char *fmt = h5_attr_read_string(f, path, "format", err);
        rc = !fmt ? -1 : strcmp(fmt, CHECKPOINT_FORMAT) == 0;
        free(fmt);
    }
    if (H5Fclose(f) < 0 && rc >= 0) rc = df_err(err, "%s: closing failed", path);
    return rc;
}

// Writes s as a JSON string literal.
static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
        else if (ch < 0x20) fprintf(out, "\\u%04x", ch);
        else fputc(ch, out);
    }
    fputc('"', out);
}

static int describe(hid_t f, const char *path, FILE *out, int json, DfError *err) {
    if (h5_check_format(f, path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, err) != 0) return -1;
    int64_t epoch = -1, step = -1, opt_step = -1;
    char *kind = NULL;
    if (h5_exists(f, "train")) {
        hid_t t = H5Gopen2(f, "train", H5P_DEFAULT);
        if (t < 0) return df_err(err, "%s: train: cannot open the group", path);
        int rc = h5_attr_read_i64(t, path, "epoch", &epoch, err);
        if (rc == 0) rc = h5_attr_read_i64(t, path, "step", &step, err);
        if (H5Gclose(t) < 0 && rc == 0) rc = df_err(err, "%s: train: cannot close the group", path);
        if (rc != 0) return -1;
    }
    if (h5_exists(f, "optimizer")) {
        hid_t o = H5Gopen2(f, "optimizer", H5P_DEFAULT);
        if (o < 0) return df_err(err, "%s: optimizer: cannot open the group", path);
        kind = h5_attr_read_string(o, path, "kind", err);
        int rc = kind ? h5_attr_read_i64(o, path, "step", &opt_step, err) : -1;
        if (H5Gclose(o) < 0 && rc == 0) rc = df_err(err, "%s: optimizer: cannot close the group", path);
        if (rc != 0) { free(kind); return -1; }
    }
    if (json) {
        fputs("{\"path\": ", out);
        json_string(out, path);
        fprintf(out, ", \"kind\": \"checkpoint\", \"version\": %d", CHECKPOINT_VERSION);
        if (epoch >= 0) fprintf(out, ", \"epoch\": %lld, \"step\": %lld", (long long)epoch, (long long)step);
        if (kind) {
            fputs(", \"optimizer\": ", out);
            json_string(out, kind);
            fprintf(out, ", \"optimizer_step\": %lld", (long long)opt_step);
        }
        fputs(", \"tensors\": [", out);
    } else {
        fprintf(out, "%s: checkpoint (format version %d)", path, CHECKPOINT_VERSION);
        if (epoch >= 0) fprintf(out, ", epoch %lld, step %lld", (long long)epoch, (long long)step);
        if (kind) fprintf(out, ", optimizer %s (step %lld)", kind, (long long)opt_step);
        fputc('\n', out);
    }
    free(kind);

    char **layers = NULL;
    int nl = list_links(f, path, "params", &layers, err), rc = 0, first = 1;
    if (nl < 0) return -1;
    unsigned long long total = 0;
    for (int i = 0; i < nl && rc == 0; i++) {
        char group[512], **tensors = NULL;
        snprintf(group, sizeof group, "params/%s", layers[i]);
        int nt = list_links(f, path, group, &tensors, err);
        if (nt < 0) { rc = -1; break; }
        for (int t = 0; t < nt && rc == 0; t++) {
            char name[1024], shape[256];
            hsize_t dims[H5S_MAX_RANK];
            snprintf(name, sizeof name, "%s/%s", group, tensors[t]);
            int nd = h5_dims(f, path, name, dims, H5S_MAX_RANK, err);
            if (nd < 0) { rc = -1; break; }
            unsigned long long count = 1;
            for (int d = 0; d < nd; d++) count *= dims[d];
            total += count;
            format_dims(shape, sizeof shape, nd, dims);
            if (json) {
                fputs(first ? "{\"name\": " : ", {\"name\": ", out);
                json_string(out, name + strlen("params/"));
                fputs(", \"shape\": ", out);
                fputs(shape, out);  // "[a,b,c]" is already JSON
                fputs("}", out);
            } else {
                fprintf(out, "  %-32s %s\n", name + strlen("params/"), shape);
            }
            first = 0;
        }
        free_names(tensors, nt);
    }
    free_names(layers, nl);
    if (rc != 0) return -1;
    if (json) fprintf(out, "], \"values\": %llu}\n", total);
    else fprintf(out, "total: %llu values (parameters and running statistics)\n", total);
    return 0;
}

int checkpoint_describe(const char *path, FILE *out, int json, DfError *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = describe(f, path, out, json, err);
    if (H5Fclose(f) < 0 && rc == 0) rc = df_err(err, "%s: closing failed", path);
    return rc;
}
