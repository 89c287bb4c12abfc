// dataset.c: builds the training cohort from the [data] section and splits it.
#include "dataset.h"
#include "synth.h"
#include <stdlib.h>
#include <string.h>

static const char *const synth_names[] = { "synth:mri3d", NULL };

static void split_stratified(Dataset *ds, double val_fraction, uint64_t seed) {
    const Cohort *c = &ds->cohort;
    int n = c->n;
    int *perm = xmalloc((size_t)n * sizeof(int));
    Rng rng;
    rng_seed_stream(&rng, seed, 0x5b1175, 0);
    rng_permutation(&rng, perm, n);
    ds->train_idx = xmalloc((size_t)n * sizeof(int));
    ds->val_idx = xmalloc((size_t)n * sizeof(int));
    ds->n_train = ds->n_val = 0;
    // Per class: the first round(val_fraction * count) samples of the permutation go to val.
    int maxlab = 0;
    for (int i = 0; i < n; i++) if (c->labels[i] > maxlab) maxlab = c->labels[i];
    int *count = xcalloc((size_t)maxlab + 1, sizeof(int)), *taken = xcalloc((size_t)maxlab + 1, sizeof(int));
    for (int i = 0; i < n; i++) count[c->labels[i]]++;
    for (int t = 0; t < n; t++) {
        int i = perm[t], y = c->labels[i];
        int quota = (int)(val_fraction * count[y] + 0.5);
        if (taken[y] < quota) { ds->val_idx[ds->n_val++] = i; taken[y]++; }
        else ds->train_idx[ds->n_train++] = i;
    }
    free(count); free(taken); free(perm);
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

int dataset_from_config(Dataset *ds, const Ini *cini, DfError *err) {
    Ini *ini = (Ini *)cini;
    memset(ds, 0, sizeof *ds);
    IniSection *s = ini_section(ini, "data");
    if (!s) return df_err(err, "%s: missing [data] section (e.g. source = synth:mri3d)", ini->origin);
    const char *source = ini_str(s, "source", NULL);
    char where[512];
    if (!source) { ini_where(ini, s, NULL, where, sizeof where); return df_err(err, "%s: [data] needs source = synth:mri3d or a shard path", where); }
    snprintf(ds->source, sizeof ds->source, "%s", source);
    double val_fraction;
    long split_seed;
    if (ini_double(ini, s, "val_fraction", 0.2, 0.0, 0.9, &val_fraction, err)) return -1;
    if (ini_long(ini, s, "split_seed", 1, 0, INT64_MAX >> 1, &split_seed, err)) return -1;
    if (strncmp(source, "synth:", 6) == 0) {
        int which = -1;
        for (int i = 0; synth_names[i]; i++) if (strcmp(source, synth_names[i]) == 0) which = i;
        if (which < 0) {
            ini_where(ini, s, "source", where, sizeof where);
            return df_err(err, "%s: [data] source = '%s': unknown generator (available: synth:mri3d)", where, source);
        }
        SynthMri3dConfig cfg = { 0 };
        int shape[3], nshape = 0;
        long seed;
        if (ini_int(ini, s, "n", 256, 4, 1 << 24, &cfg.n, err)) return -1;
        if (ini_long(ini, s, "seed", 1, 0, INT64_MAX >> 1, &seed, err)) return -1;
        if (ini_int_list(ini, s, "shape", shape, 3, &nshape, err)) return -1;
        if (nshape == 0) { shape[0] = shape[1] = shape[2] = 32; nshape = 3; }
        if (nshape == 1) shape[1] = shape[2] = shape[0];
        else if (nshape != 3) {
            ini_where(ini, s, "shape", where, sizeof where);
            return df_err(err, "%s: [data] shape needs 1 or 3 values (D,H,W)", where);
        }
        for (int i = 0; i < 3; i++)
            if (shape[i] < 8 || shape[i] > 512) {
                ini_where(ini, s, "shape", where, sizeof where);
                return df_err(err, "%s: [data] shape values must be in [8, 512]", where);
            }
        cfg.D = shape[0]; cfg.H = shape[1]; cfg.W = shape[2];
        cfg.seed = (uint64_t)seed;
        synth_mri3d(&ds->cohort, &cfg);
    } else {
        if (shard_read(source, &ds->cohort, err)) return -1;
        if (ds->cohort.n < 2) return df_err(err, "%s: needs at least 2 samples", source);
        for (int i = 0; i < ds->cohort.n; i++)
            if (ds->cohort.labels[i] < 0 || ds->cohort.labels[i] > 1000000)
                return df_err(err, "%s: labels[%d] = %d is not a class index", source, i, ds->cohort.labels[i]);
    }
    split_stratified(ds, val_fraction, (uint64_t)split_seed);
    // Keep each split in cohort order: the trainer shuffles per epoch itself.
    qsort(ds->train_idx, (size_t)ds->n_train, sizeof(int), cmp_int);
    qsort(ds->val_idx, (size_t)ds->n_val, sizeof(int), cmp_int);
    return 0;
}

void dataset_gather(const Cohort *c, const int *idx, int n, float *images, int *labels) {
    size_t per = shape_numel(c->shape);
    for (int i = 0; i < n; i++) {
        memcpy(images + (size_t)i * per, c->images + (size_t)idx[i] * per, per * sizeof(float));
        if (labels) labels[i] = c->labels[idx[i]];
    }
}

void dataset_free(Dataset *ds) {
    cohort_free(&ds->cohort);
    free(ds->train_idx);
    free(ds->val_idx);
    memset(ds, 0, sizeof *ds);
}
