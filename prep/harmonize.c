// harmonize.c: ComBat harmonisation of shards (see harmonize.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "mpi/comm.h"
#include "prep/combat.h"
#include "prep/design.h"
#include "prep/harmonize.h"
#include "prep/outputs.h"

typedef struct {
    const HarmonizeOptions *o;
    HarmonizeReport *rep;
    PrepDesign d;          // the schema and the kept covariates' design (intercept last)
    const char *site;      // the site column's name (--site, or the saved model's)
    int site_col;          // the site column in the schema
    int S;                 // training sites
    int site_of_level[META_MAX_LEVELS];  // the site column's level -> training site, or -1
    CombatModel full;      // apply-only: the saved model, every voxel
    CombatModel part;      // this rank's voxels
    VoxelSet vs;
    long v0, v;            // this rank's share of the voxel columns
    ShardRows *rows;       // [0] training (when fitting), then the held-out sets
    int n_sets, fitting;
    ShardOut *outs;
    long chunk, chunks;    // voxel columns per chunk (from the largest share), chunks per rank
    double *y;             // (rows, chunk): one set's rows x one chunk's columns
    int y_holds_train;     // y still holds the training data (one chunk): pass 2 need not reread it
    double done;           // subjects x voxels of this rank's share through a pass so far
} Job;

static const char *const prior_name[] = { "parametric", "non-parametric", "none (--no-eb)" };

// ---- sites and covariates --------------------------------------------------------------------

// The site column, checked; -1 with err.
static int find_site(Job *j, DfError *err) {
    const MetaSchema *s = j->d.schema;
    j->site_col = meta_column(s, j->site);
    if (j->site_col == META_LABEL) return df_err(err, "harmonize: --site cannot be the class label");
    if (j->site_col < 0) return df_err(err, "harmonize: --site %s: the data have no such column", j->site);
    if (!s->categorical[j->site_col]) return df_err(err, "harmonize: --site %s is a continuous column: sites are categories", j->site);
    for (int c = 0; c < j->d.design.k; c++)
        if (j->d.design.source[c] == j->site_col)
            return df_err(err, "harmonize: --keep names the site column '%s': its effect is what ComBat removes", j->site);
    return 0;
}

// Site index of each row, recoded to the training schema by name. -1 with "FILE: ..." when a
// subject's site is one the training shards do not hold.
static int site_indices(int *site, const Job *j, const ShardRows *rows, DfError *err) {
    for (int f = 0; f < rows->n_shards; f++) {
        Cohort h;
        const char *path = rows->paths[f];
        if (shard_read_header(path, &h, err)) return -1;
        MetaSchema *mapped = xmalloc(sizeof *mapped);
        int rc = cohort_map_to_schema(&h, j->d.schema, mapped, path, err);  // names an unknown level and the file
        if (rc == 0 && mapped->absent[j->site_col]) rc = df_err(err, "%s: has no column '%s'", path, j->site);
        for (int i = 0; rc == 0 && i < h.n; i++) {
            double code = h.meta[(size_t)i * h.k + j->site_col];
            int l = 0, n_l = j->d.schema->n_levels[j->site_col];
            while (l < n_l && j->d.schema->levels[j->site_col][l] != code) l++;
            int s = l < n_l ? j->site_of_level[l] : -1;
            if (s < 0)
                rc = df_err(err, "%s: sample %d: site '%s' has no subject in the training data, so ComBat has no "
                            "estimate for it (harmonise it with a model that includes it)", path, i,
                            l < n_l ? j->d.schema->level_names[j->site_col][l] : "?");
            site[rows->first[f] + i] = s;
        }
        free(mapped);
        cohort_free(&h);
        if (rc) return -1;
    }
    return 0;
}

// The training sites: the site column's levels that training subjects have, in level order.
static int training_sites(Job *j, DfError *err) {
    const Cohort *h = &j->rows[0].header;
    int n_l = j->d.schema->n_levels[j->site_col], count[META_MAX_LEVELS] = { 0 };
    for (int i = 0; i < h->n; i++)
        for (int l = 0; l < n_l; l++)
            if (h->meta[(size_t)i * h->k + j->site_col] == j->d.schema->levels[j->site_col][l]) count[l]++;
    j->S = 0;
    for (int l = 0; l < n_l; l++) j->site_of_level[l] = count[l] > 0 ? j->S++ : -1;
    for (int l = 0; l < n_l; l++)
        if (count[l] == 1)
            return df_err(err, "harmonize: site '%s' has 1 training subject; ComBat needs at least 2 per site to estimate "
                          "a site's scale (drop the subject or merge the site)", j->d.schema->level_names[j->site_col][l]);
    if (j->S < 2) return df_err(err, "harmonize: the training data hold %d site%s of '%s': nothing to harmonise", j->S,
                                j->S == 1 ? "" : "s", j->site);
    return 0;
}

// The kept covariates of every row: the design without its intercept (last column).
static double *covariates(const Job *j, const ShardRows *rows, DfError *err) {
    int k = j->d.design.k, kc = k - 1;
    double *x = xmalloc(sizeof(double) * (size_t)rows->n * (size_t)k), *cov = xmalloc(sizeof(double) * ((size_t)rows->n * (size_t)kc + 1));
    int rc = prep_design_rows(x, &j->d, rows, err);
    for (long i = 0; i < rows->n; i++) memcpy(cov + (size_t)i * kc, x + (size_t)i * k, sizeof(double) * (size_t)kc);
    free(x);
    if (rc) { free(cov); return NULL; }
    return cov;
}

// ---- reading and writing this rank's voxels, a chunk at a time -------------------------------

// Progress in subject-voxels (each pass's subjects x the voxels): a chunk of n subjects and w
// of this rank's voxels is through. Rank 0 counts its own share, scaled to every voxel (the
// shares are even).
static void progress_chunk(Job *j, long n, long w) {
    if (w == 0) return;  // past the end of this rank's share: nothing new
    j->done += (double)n * (double)w;
    progress_update(j->v > 0 ? j->done * (double)j->vs.m / (double)j->v : 0);
}

// This rank's columns of chunk k: [*c0, *c0 + w) of its share, w returned (0 past its end).
static long chunk_cols(const Job *j, long k, long *c0) {
    *c0 = DF_MIN(k * j->chunk, j->v);
    return DF_MIN(j->chunk, j->v - *c0);
}

// y (rows->n, w) = columns [c0, c0 + w) of this rank's share, every row. Collective.
static int read_rows(double *y, Job *j, ShardRows *rows, long c0, long w, DfError *err) {
    int rc = 0;
    long j0 = j->v0 + c0;
    for (long i = 0; i < rows->n && w > 0 && !rc; i++) rc = shard_rows_read(rows, &j->vs, i, j0, j0 + w, y + (size_t)i * w, err);
    return dist_agree(rc, err) ? -1 : 0;
}

// Writes y (n, w) as columns [c0, c0 + w) of this rank's share of every row. Collective.
static int write_rows(ShardOut *out, const double *y, Job *j, long n, long c0, long w, DfError *err) {
    int rc = 0;
    long j0 = j->v0 + c0;
    for (long i = 0; i < n && w > 0 && !rc; i++) rc = shard_out_put(out, &j->vs, i, j0, j0 + w, y + (size_t)i * w, err);
    return dist_agree(rc, err) ? -1 : 0;
}

// Site indices and kept covariates of a set's rows; agreed over the ranks (a header read may
// fail on one). Collective.
static int rows_design(int *site, double **cov, const Job *j, const ShardRows *rows, DfError *err) {
    int rc = site_indices(site, j, rows, err) || !(*cov = covariates(j, rows, err)) ? -1 : 0;
    return dist_agree(rc, err) ? -1 : 0;
}

// Chunk k of set s: read (unless y still holds it), adjust with the chunk's slice of this
// rank's model, write. Collective.
static int harmonise_chunk(Job *j, int s, const int *site, const double *cov, long k, DfError *err) {
    ShardRows *rows = &j->rows[s];
    long c0, w = chunk_cols(j, k, &c0);
    double t = df_now();
    if (!(j->fitting && s == 0 && j->y_holds_train) && read_rows(j->y, j, rows, c0, w, err)) return -1;
    j->rep->seconds_read += df_now() - t;
    t = df_now();
    CombatModel part;
    combat_model_slice(&part, &j->part, c0, w);
    combat_apply(j->y, &part, j->y, (int)rows->n, site, j->d.design.k > 1 ? cov : NULL);
    combat_model_free(&part);
    j->rep->seconds_fit += df_now() - t;
    t = df_now();
    int rc = write_rows(&j->outs[s], j->y, j, rows->n, c0, w, err);
    j->rep->seconds_write += df_now() - t;
    progress_chunk(j, rows->n, w);
    return rc;
}

// Pass 2 for set s: every chunk. Collective.
static int harmonise_set(Job *j, int s, DfError *err) {
    ShardRows *rows = &j->rows[s];
    int *site = xmalloc(sizeof(int) * (size_t)(rows->n + 1));
    double *cov = NULL;
    int rc = rows_design(site, &cov, j, rows, err);
    for (long k = 0; k < j->chunks && !rc; k++) rc = harmonise_chunk(j, s, site, cov, k, err);
    free(site);
    free(cov);
    return rc;
}

// ---- fitting ----------------------------------------------------------------------------

// Rows of a [rows, v] array of every rank (its voxels) into all [rows, M] on rank 0.
static void gather_array(double *all, const double *mine, int rows, long v, long M, double *tmp) {
    for (int r = 0; r < rows; r++) {
        dist_gather_bytes(tmp, mine + (size_t)r * v, sizeof(double) * (size_t)v);
        if (all) memcpy(all + (size_t)r * M, tmp, sizeof(double) * (size_t)M);
    }
}

// The whole model on rank 0 (the ranks' voxels are contiguous shares, in rank order).
static void gather_model(CombatModel *all, const Job *j) {
    const CombatModel *m = &j->part;
    int S = m->n_sites, kc = m->k_cov, root = dist_rank() == 0;
    long M = j->vs.m, v = m->v;
    if (root) combat_model_alloc(all, S, kc, M);
    double *tmp = xmalloc(sizeof(double) * (size_t)(M + 1));
    gather_array(root ? all->grand_mean : NULL, m->grand_mean, 1, v, M, tmp);
    gather_array(root ? all->var_pooled : NULL, m->var_pooled, 1, v, M, tmp);
    gather_array(root ? all->beta_cov : NULL, m->beta_cov, kc, v, M, tmp);
    gather_array(root ? all->gamma_star : NULL, m->gamma_star, S, v, M, tmp);
    gather_array(root ? all->delta_star : NULL, m->delta_star, S, v, M, tmp);
    dist_gather_bytes(root ? all->pass : (unsigned char *)tmp, m->pass, (size_t)v);
    free(tmp);
    if (!root) return;
    all->prior = m->prior;
    memcpy(all->gamma_bar, m->gamma_bar, sizeof(double) * (size_t)S);
    memcpy(all->tau2, m->tau2, sizeof(double) * (size_t)S);
    memcpy(all->a_prior, m->a_prior, sizeof(double) * (size_t)S);
    memcpy(all->b_prior, m->b_prior, sizeof(double) * (size_t)S);
    memcpy(all->iterations, m->iterations, sizeof(int) * (size_t)S);
}

// Rank 0 writes the model file (the sites by name, the covariates, the schema, the voxels).
static int save_model(const Job *j, const int *site, DfError *err) {
    CombatModel all = { 0 };
    gather_model(&all, j);
    int rc = 0;
    if (dist_rank() == 0) {
        const MetaSchema *s = j->d.schema;
        all.site_names = xcalloc((size_t)j->S, sizeof(char *));
        all.site_counts = xcalloc((size_t)j->S, sizeof(int));
        for (int l = 0; l < s->n_levels[j->site_col]; l++)
            if (j->site_of_level[l] >= 0) all.site_names[j->site_of_level[l]] = xstrdup(s->level_names[j->site_col][l]);
        for (long i = 0; i < j->rows[0].n; i++) all.site_counts[site[i]]++;
        all.site_column = xstrdup(j->site);
        all.keep = xstrdup(j->o->keep ? j->o->keep : "");
        all.schema_text = meta_schema_to_text(s);
        all.voxels = xmalloc(sizeof(long) * (size_t)(j->vs.m + 1));
        memcpy(all.voxels, j->vs.index, sizeof(long) * (size_t)j->vs.m);
        Shape sh = j->rows[0].shape;
        int shape[4] = { sh.c, sh.d, sh.h, sh.w };
        memcpy(all.shape, shape, sizeof shape);
        rc = combat_model_write(j->o->model, &all, err);
    }
    combat_model_free(&all);
    return dist_agree(rc, err) ? -1 : 0;
}

static void print_priors(const Job *j, const int *site) {
    if (dist_rank() != 0) return;
    progress_clear();  // between the passes: the line comes back with the next chunk
    const MetaSchema *s = j->d.schema;
    const CombatModel *m = &j->part;
    for (int l = 0; l < s->n_levels[j->site_col]; l++) {
        int k = j->site_of_level[l], n = 0;
        if (k < 0) continue;
        for (long i = 0; i < j->rows[0].n; i++) n += site[i] == k;
        printf("harmonize: site %-12s %5d subjects  prior: location mean %+.4f var %.4f, scale a %.3f b %.3f", s->level_names[j->site_col][l], n,
               m->gamma_bar[k], m->tau2[k], m->a_prior[k], m->b_prior[k]);
        if (m->prior == COMBAT_PARAMETRIC) printf(", %d EB iterations", m->iterations[k]);
        printf("\n");
    }
    fflush(stdout);
}

// Pass 1, chunk k: the training subjects' values of its columns into the fit. Collective.
static int fit_chunk(Job *j, CombatFit *f, long k, DfError *err) {
    long c0, w = chunk_cols(j, k, &c0);
    double t = df_now();
    if (read_rows(j->y, j, &j->rows[0], c0, w, err)) return -1;
    j->rep->seconds_read += df_now() - t;
    t = df_now();
    combat_fit_chunk(f, j->y, c0, w);
    j->rep->seconds_fit += df_now() - t;
    progress_chunk(j, j->rows[0].n, w);
    return 0;
}

// Training: sites and covariates; pass 1 over the chunks (everything per voxel); then the
// priors and the site estimates over every rank's voxels; the model saved if asked.
static int fit(Job *j, DfError *err) {
    ShardRows *tr = &j->rows[0];
    int *site = xmalloc(sizeof(int) * (size_t)(tr->n + 1)), kc = j->d.design.k - 1, rc;
    double *cov = NULL;
    CombatFit f;
    memset(&f, 0, sizeof f);
    rc = rows_design(site, &cov, j, tr, err);
    if (!rc) rc = dist_agree(combat_fit_begin(&f, (int)tr->n, j->v, site, j->S, kc ? cov : NULL, kc, j->o->prior, err), err) ? -1 : 0;
    for (long k = 0; k < j->chunks && !rc; k++) rc = fit_chunk(j, &f, k, err);
    if (!rc) {
        double t = df_now();
        rc = dist_agree(combat_fit_finish(&j->part, &f, j->v0, j->vs.m, dist_reducer(), err), err) ? -1 : 0;
        j->rep->seconds_fit += df_now() - t;
    }
    if (!rc) {
        j->y_holds_train = j->chunks == 1;
        print_priors(j, site);
        if (j->o->model) rc = save_model(j, site, err);
    }
    combat_fit_free(&f);
    free(site);
    free(cov);
    return rc;
}

// ---- set-up -----------------------------------------------------------------------------

// Apply-only: the saved model's schema, covariates, sites and voxels stand in for training.
static int load_model(Job *j, DfError *err) {
    const HarmonizeOptions *o = j->o;
    if (combat_model_read(o->model, &j->full, err)) return -1;
    PrepDesign *d = &j->d;
    d->schema = xcalloc(1, sizeof *d->schema);
    char what[1100];
    snprintf(what, sizeof what, "%s: keep", o->model);
    if (meta_schema_from_text(d->schema, j->full.schema_text, o->model, err) ||
        meta_design_build(&d->design, d->schema, j->full.keep, "", what, err))
        return -1;
    if (d->design.k - 1 != j->full.k_cov) return df_err(err, "%s: the covariates do not match the keep list", o->model);
    if (o->site && strcmp(o->site, j->full.site_column))
        return df_err(err, "harmonize: --site %s, but %s was fitted on site column '%s'", o->site, o->model, j->full.site_column);
    j->site = j->full.site_column;
    if (find_site(j, err)) return -1;
    int col = j->site_col;
    for (int l = 0; l < d->schema->n_levels[col]; l++) {
        j->site_of_level[l] = -1;
        for (int s = 0; s < j->full.n_sites; s++)
            if (!strcmp(d->schema->level_names[col][l], j->full.site_names[s])) j->site_of_level[l] = s;
    }
    j->S = j->full.n_sites;
    j->vs.positions = (long)j->full.shape[0] * j->full.shape[1] * j->full.shape[2] * j->full.shape[3];
    j->vs.m = j->full.v;
    j->vs.index = xmalloc(sizeof(long) * (size_t)(j->vs.m + 1));
    memcpy(j->vs.index, j->full.voxels, sizeof(long) * (size_t)j->vs.m);
    return 0;
}

static int open_sets(Job *j, DfError *err) {
    const HarmonizeOptions *o = j->o;
    j->fitting = o->train != NULL;
    j->n_sets = j->fitting + o->n_apply;
    j->rows = xcalloc((size_t)j->n_sets, sizeof(ShardRows));
    for (int s = 0; s < j->n_sets; s++)
        if (shard_rows_open(&j->rows[s], j->fitting && s == 0 ? o->train : o->apply[s - j->fitting], err)) return -1;
    return 0;
}

static int check_shapes(const Job *j, Shape want, const char *whose, DfError *err) {
    for (int s = 0; s < j->n_sets; s++) {
        Shape b = j->rows[s].shape;
        if (b.c != want.c || b.d != want.d || b.h != want.h || b.w != want.w)
            return df_err(err, "%s: samples are %dx%dx%dx%d, %s %dx%dx%dx%d", j->rows[s].paths[0], b.c, b.d, b.h, b.w, whose,
                          want.c, want.d, want.h, want.w);
    }
    return 0;
}

static int setup(Job *j, DfError *err) {
    const HarmonizeOptions *o = j->o;
    if (o->keep && strstr(o->keep, ":spline"))
        return df_err(err, "harmonize: --keep %s: spline columns are not supported here (keep the column itself)", o->keep);
    j->site = o->site;
    if (!o->train && o->mask) return df_err(err, "harmonize: --mask is for fitting; a saved model keeps its own voxels");
    if (open_sets(j, err)) return -1;
    if (j->fitting) {
        if (prep_design_build(&j->d, &j->rows[0], o->keep, "", "harmonize", err) || find_site(j, err) ||
            training_sites(j, err) || check_shapes(j, j->rows[0].shape, "the training shards'", err))
            return -1;
        Shape sh = j->rows[0].shape;
        if (o->mask) { if (voxels_from_mask(&j->vs, o->mask, sh, err)) return -1; }
        else voxels_all(&j->vs, sh);
    } else {
        if (load_model(j, err)) return -1;
        Shape sh = { j->full.shape[0], j->full.shape[1], j->full.shape[2], j->full.shape[3] };
        if (check_shapes(j, sh, "the model's", err)) return -1;
    }
    int P = dist_size(), r = dist_rank();
    j->v0 = j->vs.m * r / P;
    j->v = j->vs.m * (r + 1) / P - j->v0;
    if (!j->fitting) combat_model_slice(&j->part, &j->full, j->v0, j->v);
    return 0;
}

// ---- the plan: chunks ---------------------------------------------------------------------

static long largest_set(const Job *j) {
    long n_max = 0;
    for (int s = 0; s < j->n_sets; s++) n_max = DF_MAX(n_max, j->rows[s].n);
    return n_max;
}

// Bytes of the model's per-voxel arrays a rank holds beside the chunk: its share of the model,
// and while fitting gamma_hat, delta_hat, the non-parametric prior's gathered estimates and
// (rank 0, saving) the whole model; applying a saved one, the whole model read from the file.
static double model_bytes(const Job *j, long v_max) {
    int S = j->S, kc = j->d.design.k - 1;
    double per_voxel = 8.0 * (2 + DF_MAX(kc, 1) + 2 * S) + 1, M = (double)j->vs.m;
    double b = per_voxel * (double)v_max;
    if (!j->fitting) return b + (per_voxel + 8) * M;
    b += 16.0 * S * (double)v_max;
    if (j->o->prior == COMBAT_NONPARAMETRIC) b += 8.0 * (2 * S + 2) * M;
    if (j->o->model && dist_rank() == 0) b += (per_voxel + 8) * M;
    return b;
}

// Chunks of voxel columns within --memory: the buffer holds the largest set's rows (the
// training set's among them) x the chunk's columns in double, plus, while fitting, the fit's
// per-voxel scratch (prep/combat.h). The width comes from the largest share, so every rank has
// the same number of chunks (a smaller share's last one narrower, or empty) and makes the same
// collectives in the same order; the chunks are as even as the share allows.
static int plan_chunks(Job *j, DfError *err) {
    int P = dist_size(), kc = j->d.design.k - 1;
    long n_max = largest_set(j), v_max = (j->vs.m + P - 1) / P;
    double per_col = 8.0 * (double)n_max + (j->fitting ? combat_chunk_bytes(j->S, kc, 1) : 0);
    double cols = j->o->memory_mb * 1048576.0 / per_col;
    if (!(cols >= 1))
        return df_err(err, "harmonize: --memory %g MB per rank cannot hold one voxel column of %ld subjects (%.3g MB "
                      "needed): raise --memory", j->o->memory_mb, n_max, per_col / 1048576.0);
    long fit = DF_MAX(1, (long)DF_MIN(cols, (double)v_max));  // the widest chunk the budget holds
    j->chunks = DF_MAX(1, (v_max + fit - 1) / fit);
    j->chunk = DF_MAX(1, (v_max + j->chunks - 1) / j->chunks);  // even widths, not a full one and a sliver
    j->rep->chunk = j->chunk;
    j->rep->chunks = j->chunks;
    j->rep->bytes_chunk = per_col * (double)j->chunk;
    j->rep->bytes_per_rank = j->rep->bytes_chunk + model_bytes(j, v_max);
    return 0;
}

static void report_plan(Job *j) {
    HarmonizeReport *rep = j->rep;
    for (int s = 0; s < j->n_sets; s++) {
        if (j->fitting && s == 0) rep->n_train = j->rows[0].n;
        else rep->n_apply += j->rows[s].n;
    }
    rep->voxels = j->vs.m;
    rep->n_sites = j->S;
    rep->k_cov = j->d.design.k - 1;
    if (dist_rank() != 0) return;
    char keep[1024] = "none";
    for (int c = 0, len = 0; c < rep->k_cov; c++)
        len += snprintf(keep + len, sizeof keep - (size_t)len, "%s%s", c ? ", " : "", j->d.design.names[c]);
    long n_fit = rep->n_train;
    for (int s = 0; !j->fitting && s < j->S; s++) n_fit += j->full.site_counts[s];
    printf("harmonize: %s %ld training subjects, %ld to apply to, %ld voxels%s; site column '%s' (%d sites); "
           "covariates kept: %s; prior %s\n", j->fitting ? "fitting on" : "applying a saved model fitted on", n_fit,
           rep->n_apply, rep->voxels, j->o->mask ? " (mask)" : "", j->site, j->S, keep,
           prior_name[j->fitting ? j->o->prior : j->full.prior]);
    printf("harmonize: %d rank%s, %ld voxels each (contiguous shares) in %ld chunk%s of %ld; per rank %.1f MB for "
           "the image chunk (budget %g MB) + %.1f MB for the model's per-voxel arrays\n", dist_size(),
           dist_size() == 1 ? "" : "s", (j->vs.m + dist_size() - 1) / dist_size(), rep->chunks,
           rep->chunks == 1 ? "" : "s", rep->chunk, rep->bytes_chunk / 1048576.0, j->o->memory_mb,
           (rep->bytes_per_rank - rep->bytes_chunk) / 1048576.0);
    fflush(stdout);
}

static int run_job(Job *j, DfError *err) {
    if (!(j->o->memory_mb > 0)) return df_err(err, "harmonize: the memory budget must be > 0 MB, got %g", j->o->memory_mb);
    if (setup(j, err) || plan_chunks(j, err)) return -1;
    report_plan(j);
    char what[1400];
    snprintf(what, sizeof what, "deconfound harmonize: ComBat on site column '%s', prior %s; fitted on %s", j->site,
             prior_name[j->fitting ? j->o->prior : j->full.prior], j->fitting ? j->o->train : j->o->model);
    const ShardRows **rows = xcalloc((size_t)j->n_sets, sizeof *rows);
    for (int s = 0; s < j->n_sets; s++) rows[s] = &j->rows[s];
    j->outs = xcalloc((size_t)j->n_sets, sizeof(ShardOut));
    int rc = prep_outputs_open(j->outs, rows, j->n_sets, j->o->out_dir, "harmonize", what, err);
    free(rows);
    if (rc) return -1;
    j->y = df_alloc_large(sizeof(double) * ((size_t)largest_set(j) * (size_t)j->chunk + 1));
    double passes = j->fitting ? (double)j->rows[0].n : 0;  // the fit's pass, then every set's
    for (int s = 0; s < j->n_sets; s++) passes += (double)j->rows[s].n;
    progress_begin("harmonize", "subject-voxels", 0, passes * (double)j->vs.m);
    if (j->fitting && fit(j, err)) return -1;
    for (int s = 0; s < j->n_sets; s++)
        if (harmonise_set(j, s, err)) return -1;
    progress_end();
    for (long i = 0; i < j->part.v; i++) j->rep->passed += j->part.pass[i];
    double passed = (double)j->rep->passed;
    dist_allreduce_sum_f64(&passed, 1);
    j->rep->passed = (long)passed;
    return prep_outputs_commit(j->outs, j->n_sets, err);
}

int harmonize_run(const HarmonizeOptions *o, HarmonizeReport *rep, DfError *err) {
    Job j;
    memset(&j, 0, sizeof j);
    memset(rep, 0, sizeof *rep);
    j.o = o;
    j.rep = rep;
    double t0 = df_now();
    int rc = run_job(&j, err);
    if (j.outs) prep_outputs_free(j.outs, j.n_sets, rc != 0);
    free(j.outs);
    for (int s = 0; s < j.n_sets; s++) shard_rows_close(&j.rows[s]);
    free(j.rows);
    free(j.y);
    combat_model_free(&j.part);
    combat_model_free(&j.full);
    voxels_free(&j.vs);
    prep_design_free(&j.d);
    rep->seconds_total = df_now() - t0;
    return rc;
}
