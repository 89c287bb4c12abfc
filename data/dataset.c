// dataset.c: builds the cohort from the [data] section and splits it (see dataset.h).
#include "data/dataset.h"
#include "base/rng.h"
#include "data/cohort.h"
#include "mpi/comm.h"
#include "data/csv.h"
#include "data/pack.h"
#include "data/shard.h"
#include "data/synth.h"
#include "data/synth_config.h"
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


static char **g_subjects;  // for cmp_by_subject (qsort has no context argument)
static int cmp_by_subject(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b, c = strcmp(g_subjects[i], g_subjects[j]);
    return c ? c : (i > j) - (i < j);
}

// ---- splits ------------------------------------------------------------------------------

int dataset_split(Dataset *ds, const SplitConfig *sc, DfError *err) {
    const Cohort *c = &ds->cohort;
    int n = c->n;
    free(ds->train_idx); free(ds->val_idx); free(ds->test_idx);
    ds->train_idx = ds->val_idx = ds->test_idx = NULL;
    ds->n_train = ds->n_val = ds->n_test = 0;
    // Units: subjects (all samples of one subject move together), or samples.
    int *unit_of = xmalloc(sizeof(int) * (size_t)n), n_units = 0;
    int *unit_first = xmalloc(sizeof(int) * (size_t)n);
    if (c->subjects) {
        // Indices sorted by (subject, index): each run of one subject starts at its first
        // appearance; units are numbered in order of first appearance.
        int *order = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), *first = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++) order[i] = i;
        g_subjects = c->subjects;
        qsort(order, (size_t)n, sizeof(int), cmp_by_subject);
        for (int a = 0; a < n;) {
            int b = a;
            while (b < n && strcmp(c->subjects[order[b]], c->subjects[order[a]]) == 0) first[order[b++]] = order[a];
            a = b;
        }
        for (int i = 0; i < n; i++)
            if (first[i] == i) { unit_first[n_units] = i; unit_of[i] = n_units++; }
        for (int i = 0; i < n; i++) unit_of[i] = unit_of[first[i]];
        free(order);
        free(first);
    } else {
        for (int i = 0; i < n; i++) { unit_of[i] = i; unit_first[i] = i; }
        n_units = n;
    }
    // Strata: (label, stratify level) of each unit's first sample.
    int *stratum = xmalloc(sizeof(int) * (size_t)n_units), n_strata = 0;
    long *skey = xmalloc(sizeof(long) * (size_t)n_units);
    for (int u = 0; u < n_units; u++) {
        int i = unit_first[u];
        long lev = sc->stratify_column >= 0 ? (long)c->meta[(size_t)i * c->k + sc->stratify_column] : 0;
        long key = (long)c->labels[i] * 100003L + lev;
        int s = 0;
        while (s < n_strata && skey[s] != key) s++;
        if (s == n_strata) skey[n_strata++] = key;
        stratum[u] = s;
    }
    int *count = xcalloc((size_t)n_strata, sizeof(int)), *taken_test = xcalloc((size_t)n_strata, sizeof(int)),
        *taken_val = xcalloc((size_t)n_strata, sizeof(int)), *pos = xcalloc((size_t)n_strata, sizeof(int));
    for (int u = 0; u < n_units; u++) count[stratum[u]]++;
    int *perm = xmalloc(sizeof(int) * (size_t)n_units);
    Rng rng;
    rng_seed_stream(&rng, sc->seed, 0x5b1175, 0);
    rng_permutation(&rng, perm, n_units);
    int *where = xmalloc(sizeof(int) * (size_t)n_units);  // 0 train, 1 val, 2 test
    int n_rest = 0;  // units outside the test split
    for (int t = 0; t < n_units; t++) {
        int u = perm[t], s = stratum[u];
        int qtest = (int)(sc->test_fraction * count[s] + 0.5);
        if (taken_test[s] < qtest) { where[u] = 2; taken_test[s]++; continue; }
        n_rest++;
        if (sc->kfold >= 2) {
            where[u] = 0;  // dealt below
        } else {
            int qval = (int)(sc->val_fraction * count[s] + 0.5);
            if (taken_val[s] < qval) { where[u] = 1; taken_val[s]++; }
            else where[u] = 0;
        }
    }
    int rc = 0, ids = c->subjects != NULL;  // real ids, not a shard's stand-ins ("#12")
    for (int f = 0; f < ds->n_files; f++) ids &= ds->files[f].subjects;
    if (sc->kfold > n_rest) {
        // A fold with no one in it would validate on nothing, and its run report nothing.
        rc = df_err(err, "kfold = %d, but the data hold %d %s%s: a validation fold would be empty (kfold can be at most %d)", sc->kfold,
                    n_rest, ids ? "subjects" : "samples (no subject ids: each sample is its own subject)",
                    n_rest < n_units ? " outside the test split" : "", n_rest);
    } else if (sc->kfold >= 2) {
        // The folds are dealt like cards, one stratum after another, each stratum's subjects
        // in their permuted order, the deal going on where the previous stratum's stopped:
        // every stratum is spread over the folds evenly (counts differing by at most 1), and
        // so are all subjects (fold sizes differing by at most 1). pos[s]: where stratum s
        // starts in that order.
        for (int u = 0; u < n_units; u++)
            if (where[u] != 2) pos[stratum[u]]++;
        for (int s = 0, start = 0; s < n_strata; s++) {
            int k = pos[s];
            pos[s] = start;
            start += k;
        }
        for (int t = 0; t < n_units; t++) {
            int u = perm[t];
            if (where[u] != 2) where[u] = pos[stratum[u]]++ % sc->kfold == sc->fold ? 1 : 0;
        }
    }
    if (rc) {
        free(unit_of); free(unit_first); free(stratum); free(skey); free(count); free(taken_test); free(taken_val);
        free(pos); free(perm); free(where);
        return -1;
    }
    ds->train_idx = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    ds->val_idx = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    ds->test_idx = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    ds->n_train = ds->n_val = ds->n_test = 0;
    for (int i = 0; i < n; i++) {  // cohort order within each split
        int w = where[unit_of[i]];
        if (w == 0) ds->train_idx[ds->n_train++] = i;
        else if (w == 1) ds->val_idx[ds->n_val++] = i;
        else ds->test_idx[ds->n_test++] = i;
    }
    free(unit_of); free(unit_first); free(stratum); free(skey); free(count); free(taken_test); free(taken_val);
    free(pos); free(perm); free(where);
    return 0;
}

// A fixed split from a file (split_file): CSV with columns subject and split.
typedef struct {
    const char *id;
    int where;  // 0 train, 1 val, 2 test
    int line;
    int used;
} SplitRow;
static int cmp_split_row(const void *a, const void *b) { return strcmp(((const SplitRow *)a)->id, ((const SplitRow *)b)->id); }

int dataset_split_file(Dataset *ds, const char *path, DfError *err) {
    const Cohort *c = &ds->cohort;
    if (!c->subjects)
        return df_err(err, "%s: a split file assigns subjects, but %s has no subject ids (shards without /subject, or a generator)", path,
                      ds->source);
    CsvTable t;
    if (csv_read(&t, path, err)) return -1;
    int rc = -1, csub = csv_column(&t, "subject"), csplit = csv_column(&t, "split");
    SplitRow *rows = NULL;
    int *where = NULL;
    if (csub < 0 || csplit < 0) {
        df_err(err, "%s: the header needs columns subject and split (split = train, val or test)", path);
        goto done;
    }
    if (t.nrows == 0) { df_err(err, "%s: no subjects (only a header)", path); goto done; }
    rows = xmalloc(sizeof(SplitRow) * (size_t)t.nrows);
    for (int i = 0; i < t.nrows; i++) {
        const char *id = csv_cell(&t, i, csub), *sp = csv_cell(&t, i, csplit);
        if (!id[0]) { df_err(err, "%s:%d: subject is empty", path, t.line[i]); goto done; }
        int w = !strcmp(sp, "train") ? 0 : (!strcmp(sp, "val") || !strcmp(sp, "validation")) ? 1 : !strcmp(sp, "test") ? 2 : -1;
        if (w < 0) {
            df_err(err, "%s:%d: split '%s' for subject '%s': expected train, val or test", path, t.line[i], sp, id);
            goto done;
        }
        rows[i] = (SplitRow){ id, w, t.line[i], 0 };
    }
    qsort(rows, (size_t)t.nrows, sizeof(SplitRow), cmp_split_row);
    for (int i = 1; i < t.nrows; i++)
        if (!strcmp(rows[i].id, rows[i - 1].id)) {
            int a = DF_MIN(rows[i].line, rows[i - 1].line), b = DF_MAX(rows[i].line, rows[i - 1].line);
            df_err(err, "%s:%d: subject '%s' is listed again (first on line %d)", path, b, rows[i].id, a);
            goto done;
        }
    // Every sample's subject must be in the file.
    where = xmalloc(sizeof(int) * (size_t)(c->n ? c->n : 1));
    for (int i = 0; i < c->n; i++) {
        SplitRow key = { c->subjects[i], 0, 0, 0 };
        SplitRow *r = bsearch(&key, rows, (size_t)t.nrows, sizeof(SplitRow), cmp_split_row);
        if (!r) {
            df_err(err, "%s: subject '%s' of the data (sample %d of %s) is not in the split file", path, c->subjects[i], i, ds->source);
            goto done;
        }
        r->used = 1;
        where[i] = r->where;
    }
    // ... and every subject of the file in the data: a typo or a stale file must not pass.
    int first_unused = -1;
    for (int i = 0; i < t.nrows; i++)
        if (!rows[i].used && (first_unused < 0 || rows[i].line < rows[first_unused].line)) first_unused = i;
    if (first_unused >= 0) {
        df_err(err, "%s:%d: subject '%s' is not in the data (%s)", path, rows[first_unused].line, rows[first_unused].id, ds->source);
        goto done;
    }
    free(ds->train_idx); free(ds->val_idx); free(ds->test_idx);
    ds->train_idx = xmalloc(sizeof(int) * (size_t)c->n);
    ds->val_idx = xmalloc(sizeof(int) * (size_t)c->n);
    ds->test_idx = xmalloc(sizeof(int) * (size_t)c->n);
    ds->n_train = ds->n_val = ds->n_test = 0;
    for (int i = 0; i < c->n; i++) {  // cohort order within each split
        if (where[i] == 0) ds->train_idx[ds->n_train++] = i;
        else if (where[i] == 1) ds->val_idx[ds->n_val++] = i;
        else ds->test_idx[ds->n_test++] = i;
    }
    if (ds->n_train == 0) { df_err(err, "%s: assigns no subject of the data to train", path); goto done; }
    rc = 0;
done:
    free(rows);
    free(where);
    csv_free(&t);
    return rc;
}

// ---- sources -----------------------------------------------------------------------------

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// where: "FILE:LINE: [data] source" when the list came from a config, for the list's own
// errors (an empty item, a shard listed twice, a missing file), or NULL.
static int load_shards(Dataset *ds, const char *source, const char *where, size_t cache_bytes, int cache_mode, DfError *err) {
    char **paths = NULL;
    int np = 0, rc = -1;
    if (shard_list_source(source, &paths, &np, err)) {
        if (where) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            df_err(err, "%s: %s", where, msg);
        }
        goto done;
    }
    Cohort *c = &ds->cohort;
    memset(c, 0, sizeof *c);
    ds->files = xcalloc((size_t)np, sizeof(DatasetFile));
    for (int f = 0; f < np; f++) {
        Cohort h;
        if (shard_read_header(paths[f], &h, err)) goto done;
        int first = c->n;
        int r = cohort_append(c, paths[0], &h, paths[f], err);
        ds->files[f].subjects = h.subjects != NULL;  // else the cohort's ids are stand-ins ("#12")
        cohort_free(&h);
        if (r) goto done;
        ds->files[f].path = xstrdup(paths[f]);
        ds->files[f].first = first;
        ds->files[f].n = c->n - first;
        ds->n_files = f + 1;
    }
    size_t bytes = (size_t)c->n * shape_numel(c->shape) * sizeof(float);
    ds->in_memory = cache_mode == 1 || (cache_mode == 0 && bytes <= cache_bytes);
    if (ds->in_memory) {
        size_t per = shape_numel(c->shape), V = shape_spatial(c->shape);
        c->images = df_alloc_floats((size_t)c->n * per);
        if (c->has_masks) c->masks = xmalloc((size_t)c->n * V);
        for (int f = 0; f < ds->n_files; f++) {
            const DatasetFile *df = &ds->files[f];
            if (shard_read_images(df->path, 0, df->n, c->images + (size_t)df->first * per, err)) goto done;
            if (c->has_masks && shard_read_masks(df->path, 0, df->n, c->masks + (size_t)df->first * V, err)) goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; i < np; i++) free(paths[i]);
    free(paths);
    return rc;
}

int dataset_from_shards(Dataset *ds, const char *sources, DfError *err) {
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", sources);
    ds->prefetch = 2;
    if (load_shards(ds, sources, NULL, (size_t)4096 << 20, 0, err)) { dataset_free(ds); return -1; }
    return 0;
}

// A manifest's rows (a CSV's or a BIDS dataset's), preprocessed as `pack` does and held in
// memory. Rank r loads rows r, r+P, ...; the volumes are then broadcast from their loader, so
// each file is decoded once across the job. Frees the manifest.
static int load_manifest_rows(Dataset *ds, Manifest *mp, const PrepConfig *prep, DfError *err) {
    Manifest m = *mp;  // taken over
    memset(mp, 0, sizeof *mp);
    const char *path = m.origin;
    int rc = 0;
    Shape shape = { 0, 0, 0, 0 };
    for (int i = 0; i < m.n && rc == 0; i++) {
        Shape s;
        char msg[1024];
        if (prep_shape(prep, m.paths[i], &s, err)) {
            snprintf(msg, sizeof msg, "%s", err->msg);
            rc = df_err(err, "%s:%d: %s", path, m.line[i], msg);
        } else if (i == 0) shape = s;
        else if (s.c != shape.c || s.d != shape.d || s.h != shape.h || s.w != shape.w)
            rc = df_err(err, "%s:%d: %s comes out with shape (%d,%d,%d,%d) but %s with (%d,%d,%d,%d); set [data] shape = D,H,W", path,
                        m.line[i], m.paths[i], s.c, s.d, s.h, s.w, m.paths[0], shape.c, shape.d, shape.h, shape.w);
    }
    if (rc) { manifest_free(&m); return -1; }
    Cohort *c = &ds->cohort;
    cohort_alloc(c, m.n, shape, m.k);
    if (m.masks) cohort_alloc_masks(c);
    c->subjects = xcalloc((size_t)m.n, sizeof(char *));
    for (int i = 0; i < m.n; i++) {
        c->labels[i] = m.labels[i];
        c->subjects[i] = xstrdup(m.subjects[i]);
    }
    memcpy(c->meta, m.meta, sizeof(double) * (size_t)m.n * (size_t)m.k);
    for (int j = 0; j < m.k; j++) {
        c->columns[j] = xstrdup(m.columns[j]);
        c->kinds[j] = m.kinds[j];
        c->n_levels[j] = m.n_levels[j];
        c->levels[j] = m.levels[j];
        m.levels[j] = NULL;
        m.n_levels[j] = 0;
    }
    int P = dist_size(), rank = dist_rank();
    size_t per = shape_numel(shape), V = shape_spatial(shape);
    // Every rank loads its rows first; then one collective check; then the broadcasts.
    rc = 0;
    for (int i = rank; i < m.n && rc == 0; i += P) {
        float *x;
        uint8_t *mk;
        Shape got;
        if (prep_load(prep, m.paths[i], m.masks ? m.masks[i] : NULL, &x, &mk, &got, err)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", err->msg);
            rc = df_err(err, "%s:%d: %s", path, m.line[i], msg);
            break;
        }
        memcpy(c->images + (size_t)i * per, x, per * sizeof(float));
        if (mk) memcpy(c->masks + (size_t)i * V, mk, V);
        free(x);
        free(mk);
    }
    double flag = rc ? (double)(P - rank) : 0.0;
    dist_allreduce_max_f64(&flag, 1);
    if (flag != 0) {
        dist_bcast(err->msg, sizeof err->msg, P - (int)flag);
        manifest_free(&m);
        return -1;
    }
    for (int i = 0; i < m.n && P > 1; i++) {
        dist_bcast(c->images + (size_t)i * per, per * sizeof(float), i % P);
        if (c->masks) dist_bcast(c->masks + (size_t)i * V, V, i % P);
    }
    ds->in_memory = 1;
    manifest_free(&m);
    return 0;
}

static int load_manifest(Dataset *ds, const char *path, const ManifestSettings *ms, DfError *err) {
    Manifest m;
    if (manifest_read(&m, path, ms->categorical, ms->continuous, err)) return -1;
    if (ms->subjects && manifest_select_subjects(&m, ms->subjects, err)) { manifest_free(&m); return -1; }
    return load_manifest_rows(ds, &m, &ms->prep, err);
}

// A BIDS dataset (source = bids:DIR, data/bids.h): rank 0 prints what was dropped and which
// columns were converted to years.
static int load_bids(Dataset *ds, const char *dir, const Ini *ini, IniSection *s, DfError *err) {
    ManifestSettings ms;
    BidsQuery q;
    Manifest m;
    BidsReport r;
    if (manifest_settings_from_ini(&ms, ini, s, err) || bids_query_from_ini(&q, dir, &ms, ini, s, err) || bids_read(&m, &q, &r, err))
        return -1;
    for (int i = 0; dist_rank() == 0 && i < r.n_dropped; i++) printf("%s\n", r.dropped[i]);
    for (int i = 0; dist_rank() == 0 && i < r.n_units; i++) printf("%s: %s\n", dir, r.units[i]);
    bids_report_free(&r);
    return load_manifest_rows(ds, &m, &ms.prep, err);
}

// ---- [data] ------------------------------------------------------------------------------

// The split keys: val_fraction, test_fraction, split_seed, kfold, fold (stratify and
// split_file are read by the caller). A split file replaces the seeded split, so setting a
// seeded key beside it is an error rather than silently ignored.
static int split_config(SplitConfig *sc, const Ini *ini, IniSection *s, DfError *err) {
    char where[512];
    long split_seed;
    memset(sc, 0, sizeof *sc);
    if (ini_double(ini, s, "val_fraction", 0.2, 0.0, 0.9, &sc->val_fraction, err) ||
        ini_double(ini, s, "test_fraction", 0.0, 0.0, 0.9, &sc->test_fraction, err) ||
        ini_long(ini, s, "split_seed", 1, 0, INT64_MAX >> 1, &split_seed, err) || ini_int(ini, s, "kfold", 0, 0, 100, &sc->kfold, err) ||
        ini_int(ini, s, "fold", 0, 0, 99, &sc->fold, err))
        return -1;
    if (sc->kfold == 1 || (sc->kfold >= 2 && sc->fold >= sc->kfold)) {
        ini_where(ini, s, sc->kfold == 1 ? "kfold" : "fold", where, sizeof where);
        return df_err(err, "%s: [data] kfold must be 0 (off) or >= 2, and fold in [0, kfold)", where);
    }
    if (sc->test_fraction + sc->val_fraction > 0.95 && sc->kfold < 2) {
        ini_where(ini, s, "test_fraction", where, sizeof where);
        return df_err(err, "%s: [data] val_fraction + test_fraction leaves no training data", where);
    }
    sc->seed = (uint64_t)split_seed;
    if (ini_entry(s, "split_file")) {
        static const char *const seeded[] = { "val_fraction", "test_fraction", "kfold", "fold", "split_seed", "stratify", NULL };
        for (int i = 0; seeded[i]; i++)
            if (ini_entry(s, seeded[i])) {
                ini_where(ini, s, seeded[i], where, sizeof where);
                return df_err(err, "%s: [data] %s has no effect with split_file (the file fixes the split): remove one of them", where,
                              seeded[i]);
            }
    }
    return 0;
}

// Training augmentation and the loader's keys: flip, shift, intensity_scale, intensity_shift,
// noise, prefetch, read.
static int loader_config(Dataset *ds, const Ini *ini, IniSection *s, DfError *err) {
    Augment *aug = &ds->aug;
    const char *flip = ini_str(s, "flip", "none");
    if (strcmp(flip, "none") != 0) {
        char *copy = xstrdup(flip);
        for (char *t = strtok(copy, ", "); t; t = strtok(NULL, ", ")) {
            int a = !strcmp(t, "d") ? 0 : !strcmp(t, "h") ? 1 : !strcmp(t, "w") ? 2 : -1;
            if (a < 0) {
                free(copy);
                char where[512];
                ini_where(ini, s, "flip", where, sizeof where);
                return df_err(err, "%s: [data] flip = '%s': expected none or a list of axes d, h, w", where, flip);
            }
            aug->flip[a] = 1;
        }
        free(copy);
    }
    double scale, offset, noise;
    static const char *const read_names[] = { "pread", "mpiio", NULL };
    if (ini_int(ini, s, "shift", 0, 0, 64, &aug->shift, err) || ini_double(ini, s, "intensity_scale", 0.0, 0.0, 0.9, &scale, err) ||
        ini_double(ini, s, "intensity_shift", 0.0, 0.0, 100.0, &offset, err) ||
        ini_double(ini, s, "noise", 0.0, 0.0, 100.0, &noise, err) || ini_int(ini, s, "prefetch", 2, 0, 64, &ds->prefetch, err) ||
        ini_choice(ini, s, "read", "pread", read_names, &ds->read, err))
        return -1;
    aug->scale = (float)scale;
    aug->offset = (float)offset;
    aug->noise = (float)noise;
    aug->enabled = aug->flip[0] || aug->flip[1] || aug->flip[2] || aug->shift > 0 || scale > 0 || offset > 0 || noise > 0;
    // MPI-IO reads go through HDF5 on the main thread only (not thread-safe): no prefetch.
    if (ds->read == DATA_READ_MPIIO) ds->prefetch = 0;
    return 0;
}

// The samples: a generator, a manifest of NIfTI files, or shards. *predefined: the number of
// leading training samples when the source brings its own split (biased-fmnist), else 0.
static int load_source(Dataset *ds, const char *source, const Ini *ini, IniSection *s, int *predefined, DfError *err) {
    static const char *const cache_names[] = { "auto", "memory", "disk", NULL };
    int cache_mode;
    long cache_mb;
    if (ini_choice(ini, s, "cache", "auto", cache_names, &cache_mode, err) || ini_long(ini, s, "cache_mb", 4096, 0, 1L << 30, &cache_mb, err))
        return -1;
    *predefined = 0;
    if (strncmp(source, "synth:", 6) == 0) {
        ds->in_memory = 1;
        return synth_from_config(&ds->cohort, source + 6, ini, s, predefined, err);
    }
    if (strncmp(source, "bids:", 5) == 0) return load_bids(ds, source + 5, ini, s, err);
    if (ends_with(source, ".csv")) {
        ManifestSettings ms;
        return manifest_settings_from_ini(&ms, ini, s, err) || load_manifest(ds, source, &ms, err) ? -1 : 0;
    }
    char where[640];
    ini_where_key(ini, s, "source", where, sizeof where);
    return load_shards(ds, source, where, (size_t)cache_mb << 20, cache_mode, err);
}

// The split: from a file, the source's own (biased-fmnist: its training images, validated on
// the unbiased test set), or seeded and stratified.
static int make_split(Dataset *ds, SplitConfig *sc, const char *stratify, const char *split_file, int predefined, const Ini *ini,
                      IniSection *s, DfError *err) {
    const Cohort *c = &ds->cohort;
    char where[512];
    sc->stratify_column = -1;
    if (strcmp(stratify, "label") != 0) {
        const char *col = strncmp(stratify, "label,", 6) == 0 ? stratify + 6 : stratify;
        while (*col == ' ') col++;
        sc->stratify_column = cohort_column(c, col);
        if (sc->stratify_column < 0 || c->kinds[sc->stratify_column] != META_CATEGORICAL) {
            ini_where(ini, s, "stratify", where, sizeof where);
            return df_err(err, "%s: [data] stratify = '%s': expected label or label,COLUMN with a categorical metadata column", where, stratify);
        }
    }
    if (split_file && predefined) {
        ini_where(ini, s, "split_file", where, sizeof where);
        return df_err(err, "%s: [data] split_file: synth:biased-fmnist brings its own split", where);
    }
    if (split_file) return dataset_split_file(ds, split_file, err);
    if (!predefined) {
        if (dataset_split(ds, sc, err) == 0) return 0;
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        ini_where(ini, s, "kfold", where, sizeof where);
        return df_err(err, "%s: [data] %s", where, msg);
    }
    ds->train_idx = xmalloc(sizeof(int) * (size_t)c->n);
    ds->val_idx = xmalloc(sizeof(int) * (size_t)c->n);
    ds->test_idx = xmalloc(sizeof(int));
    for (int i = 0; i < c->n; i++) {
        if (i < predefined) ds->train_idx[ds->n_train++] = i;
        else ds->val_idx[ds->n_val++] = i;
    }
    return 0;
}

int dataset_from_config(Dataset *ds, const Ini *cini, DfError *err) {
    Ini *ini = (Ini *)cini;
    memset(ds, 0, sizeof *ds);
    IniSection *s = ini_section(ini, "data");
    if (!s) return df_err(err, "%s: missing [data] section (e.g. source = synth:mri3d)", ini->origin);
    const char *source = ini_str(s, "source", NULL);
    if (!source) {
        char where[512];
        ini_where(ini, s, NULL, where, sizeof where);
        return df_err(err, "%s: [data] needs source = synth:mri3d (or mdn2d, video, biased-fmnist), shard paths, a directory, a manifest .csv or bids:DIR", where);
    }
    snprintf(ds->source, sizeof ds->source, "%s", source);
    SplitConfig sc;
    if (split_config(&sc, ini, s, err)) return -1;
    const char *stratify = ini_str(s, "stratify", "label"), *split_file = ini_str(s, "split_file", NULL);
    int predefined;
    if (loader_config(ds, ini, s, err) || load_source(ds, source, ini, s, &predefined, err)) return -1;
    // From here the data are loaded: a failure frees them (ds zeroed, so freeing it again is harmless).
    int rc = 0;
    if (ds->cohort.n < 2) rc = df_err(err, "%s: needs at least 2 samples", source);
    else if (cohort_check_values(&ds->cohort, source, err)) rc = -1;
    else rc = make_split(ds, &sc, stratify, split_file, predefined, ini, s, err);
    if (rc) dataset_free(ds);
    return rc;
}

void dataset_sample_name(const Dataset *ds, int idx, char *path, size_t np, char *who, size_t nw) {
    const Cohort *c = &ds->cohort;
    int lo = 0, hi = ds->n_files - 1;
    while (lo < hi) {  // the shard holding idx: the last whose first sample is <= idx
        int mid = (lo + hi + 1) / 2;
        if (ds->files[mid].first <= idx) lo = mid;
        else hi = mid - 1;
    }
    const DatasetFile *f = ds->n_files > 0 ? &ds->files[lo] : NULL;
    int local = f ? idx - f->first : idx, ids = c->subjects && (!f || f->subjects);
    snprintf(path, np, "%s", f ? f->path : ds->source);
    cohort_sample_name(who, nw, local, ids ? c->subjects[idx] : NULL);
}

void dataset_free(Dataset *ds) {
    cohort_free(&ds->cohort);
    free(ds->train_idx);
    free(ds->val_idx);
    free(ds->test_idx);
    for (int f = 0; f < ds->n_files; f++) free(ds->files[f].path);
    free(ds->files);
    memset(ds, 0, sizeof *ds);
}
