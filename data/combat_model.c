// combat_model.c: the ComBat model's arrays and its HDF5 file (docs/formats.md, "ComBat model").
#include <stdlib.h>
#include <string.h>
#include "data/combat_model.h"
#include "data/h5util.h"

#define COMBAT_FORMAT "deconfound-combat-model"
#define COMBAT_VERSION 1
static const char *const prior_names[] = { "parametric", "nonparametric", "none" };

void combat_model_alloc(CombatModel *m, int n_sites, int k_cov, long v) {
    memset(m, 0, sizeof *m);
    m->n_sites = n_sites;
    m->k_cov = k_cov;
    m->v = v;
    size_t nv = (size_t)(v > 0 ? v : 1);
    m->grand_mean = xcalloc(nv, sizeof(double));
    m->var_pooled = xcalloc(nv, sizeof(double));
    m->beta_cov = xcalloc((size_t)(k_cov > 0 ? k_cov : 1) * nv, sizeof(double));
    m->gamma_star = xcalloc((size_t)n_sites * nv, sizeof(double));
    m->delta_star = xcalloc((size_t)n_sites * nv, sizeof(double));
    m->pass = xcalloc(nv, 1);
    m->gamma_bar = xcalloc((size_t)n_sites, sizeof(double));
    m->tau2 = xcalloc((size_t)n_sites, sizeof(double));
    m->a_prior = xcalloc((size_t)n_sites, sizeof(double));
    m->b_prior = xcalloc((size_t)n_sites, sizeof(double));
    m->iterations = xcalloc((size_t)n_sites, sizeof(int));
}

void combat_model_free(CombatModel *m) {
    free(m->grand_mean); free(m->var_pooled); free(m->beta_cov); free(m->gamma_star);
    free(m->delta_star); free(m->pass); free(m->gamma_bar); free(m->tau2); free(m->a_prior);
    free(m->b_prior); free(m->iterations);
    for (int s = 0; m->site_names && s < m->n_sites; s++) free(m->site_names[s]);
    free(m->site_names); free(m->site_counts); free(m->site_column); free(m->keep);
    free(m->schema_text); free(m->voxels);
    memset(m, 0, sizeof *m);
}

// Columns [v0, v0 + count) of a [rows, all->v] array into a [rows, count] one.
static void copy_cols(double *to, const double *from, int rows, long v, long v0, long count) {
    for (int r = 0; r < rows; r++) memcpy(to + (size_t)r * count, from + (size_t)r * v + v0, sizeof(double) * (size_t)count);
}

void combat_model_slice(CombatModel *part, const CombatModel *all, long v0, long count) {
    int S = all->n_sites, kc = all->k_cov;
    combat_model_alloc(part, S, kc, count);
    part->prior = all->prior;
    copy_cols(part->grand_mean, all->grand_mean, 1, all->v, v0, count);
    copy_cols(part->var_pooled, all->var_pooled, 1, all->v, v0, count);
    copy_cols(part->beta_cov, all->beta_cov, kc, all->v, v0, count);
    copy_cols(part->gamma_star, all->gamma_star, S, all->v, v0, count);
    copy_cols(part->delta_star, all->delta_star, S, all->v, v0, count);
    memcpy(part->pass, all->pass + v0, (size_t)count);
    memcpy(part->gamma_bar, all->gamma_bar, sizeof(double) * (size_t)S);
    memcpy(part->tau2, all->tau2, sizeof(double) * (size_t)S);
    memcpy(part->a_prior, all->a_prior, sizeof(double) * (size_t)S);
    memcpy(part->b_prior, all->b_prior, sizeof(double) * (size_t)S);
    memcpy(part->iterations, all->iterations, sizeof(int) * (size_t)S);
}

// "A|B|C" from n names (none holds '|': level names never do, cohort.c checks).
static char *join_bar(char *const *names, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(names[i]) + 1;
    char *s = xmalloc(len);
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, "|");
        strcat(s, names[i]);
    }
    return s;
}

static int write_arrays(hid_t f, const char *path, const CombatModel *m, DfError *err) {
    hsize_t v = (hsize_t)m->v, S = (hsize_t)m->n_sites, kc = (hsize_t)m->k_cov;
    hsize_t d1[1] = { v }, dsv[2] = { S, v }, dkv[2] = { kc, v }, ds[1] = { S };
    int32_t *pass = xmalloc(sizeof(int32_t) * (v + 1)), *counts = xmalloc(sizeof(int32_t) * (S + 1));
    double *vox = xmalloc(sizeof(double) * (v + 1));
    for (hsize_t j = 0; j < v; j++) pass[j] = m->pass[j], vox[j] = (double)m->voxels[j];
    for (hsize_t s = 0; s < S; s++) counts[s] = m->site_counts[s];
    int rc = h5_write_f64(f, path, "voxels", vox, 1, d1, err) || h5_write_f64(f, path, "grand_mean", m->grand_mean, 1, d1, err) ||
             h5_write_f64(f, path, "var_pooled", m->var_pooled, 1, d1, err) ||
             h5_write_f64(f, path, "beta_cov", m->beta_cov, 2, dkv, err) ||
             h5_write_f64(f, path, "gamma_star", m->gamma_star, 2, dsv, err) ||
             h5_write_f64(f, path, "delta_star", m->delta_star, 2, dsv, err) || h5_write_i32(f, path, "pass", pass, 1, d1, err) ||
             h5_write_f64(f, path, "priors/gamma_bar", m->gamma_bar, 1, ds, err) ||
             h5_write_f64(f, path, "priors/tau2", m->tau2, 1, ds, err) ||
             h5_write_f64(f, path, "priors/a", m->a_prior, 1, ds, err) || h5_write_f64(f, path, "priors/b", m->b_prior, 1, ds, err) ||
             h5_write_i32(f, path, "priors/iterations", m->iterations, 1, ds, err) ||
             h5_write_i32(f, path, "site_counts", counts, 1, ds, err);
    free(pass), free(counts), free(vox);
    return rc ? -1 : 0;
}

static int write_attrs(hid_t f, const char *path, const CombatModel *m, DfError *err) {
    char *sites = join_bar(m->site_names, m->n_sites), shape[64];
    snprintf(shape, sizeof shape, "%d,%d,%d,%d", m->shape[0], m->shape[1], m->shape[2], m->shape[3]);
    int rc = h5_write_format(f, path, COMBAT_FORMAT, COMBAT_VERSION, err) ||
             h5_attr_write_string(f, path, "prior", prior_names[m->prior], err) ||
             h5_attr_write_string(f, path, "site_column", m->site_column, err) ||
             h5_attr_write_string(f, path, "sites", sites, err) || h5_attr_write_string(f, path, "keep", m->keep ? m->keep : "", err) ||
             h5_attr_write_string(f, path, "shape", shape, err) || h5_write_string(f, path, "schema", m->schema_text, err);
    free(sites);
    return rc ? -1 : 0;
}

int combat_model_write(const char *path, const CombatModel *m, DfError *err) {
    char *tmp;
    hid_t f = h5_create_atomic(path, &tmp, err);
    if (f < 0) return -1;
    int ok = write_attrs(f, path, m, err) == 0 && write_arrays(f, path, m, err) == 0;
    int rc = h5_finish_atomic(f, tmp, path, ok, err);
    free(tmp);
    return rc;
}

// Sites, prior, shape and sizes from the attributes; -1 with err when one is missing or bad.
static int read_attrs(hid_t f, const char *path, CombatModel *m, long *v, DfError *err) {
    if (h5_check_format(f, path, COMBAT_FORMAT, COMBAT_VERSION, err)) return -1;
    char *prior = h5_attr_read_string(f, path, "prior", err), *sites = NULL, *shape = NULL;
    int rc = -1;
    if (!prior || !(sites = h5_attr_read_string(f, path, "sites", err)) || !(shape = h5_attr_read_string(f, path, "shape", err)) ||
        !(m->site_column = h5_attr_read_string(f, path, "site_column", err)) ||
        !(m->keep = h5_attr_read_string(f, path, "keep", err)) || !(m->schema_text = h5_read_string(f, path, "schema", err)))
        goto done;
    for (m->prior = 0; m->prior < 3 && strcmp(prior, prior_names[m->prior]); m->prior++) {}
    if (m->prior == 3) { df_err(err, "%s: prior '%s' is not one of parametric, nonparametric, none", path, prior); goto done; }
    if (sscanf(shape, "%d,%d,%d,%d", &m->shape[0], &m->shape[1], &m->shape[2], &m->shape[3]) != 4) {
        df_err(err, "%s: bad shape attribute '%s'", path, shape);
        goto done;
    }
    m->n_sites = 1;
    for (const char *c = sites; *c; c++) m->n_sites += *c == '|';
    m->site_names = xcalloc((size_t)m->n_sites, sizeof(char *));
    char *save = NULL, *tok = strtok_r(sites, "|", &save);
    for (int s = 0; s < m->n_sites; s++, tok = strtok_r(NULL, "|", &save)) m->site_names[s] = xstrdup(tok ? tok : "");
    hsize_t dims[2];
    if (h5_dims(f, path, "beta_cov", dims, 2, err) != 2) goto done;
    m->k_cov = (int)dims[0];
    *v = (long)dims[1];
    rc = 0;
done:
    free(prior), free(sites), free(shape);
    return rc;
}

int combat_model_read(const char *path, CombatModel *m, DfError *err) {
    memset(m, 0, sizeof *m);
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    CombatModel head = { 0 };
    long v = 0;
    int rc = read_attrs(f, path, &head, &v, err);
    if (rc == 0) {
        combat_model_alloc(m, head.n_sites, head.k_cov, v);
        m->prior = head.prior;
        m->site_names = head.site_names, head.site_names = NULL;
        m->site_column = head.site_column, m->keep = head.keep, m->schema_text = head.schema_text;
        head.site_column = head.keep = head.schema_text = NULL;
        memcpy(m->shape, head.shape, sizeof m->shape);
        size_t S = (size_t)m->n_sites, kc = (size_t)m->k_cov, nv = (size_t)v;
        int32_t *pass = xmalloc(sizeof(int32_t) * (nv + 1));
        double *vox = xmalloc(sizeof(double) * (nv + 1));
        m->site_counts = xcalloc(S, sizeof(int));
        m->voxels = xmalloc(sizeof(long) * (nv + 1));
        rc = h5_read_f64(f, path, "voxels", vox, nv, err) || h5_read_f64(f, path, "grand_mean", m->grand_mean, nv, err) ||
             h5_read_f64(f, path, "var_pooled", m->var_pooled, nv, err) ||
             h5_read_f64(f, path, "beta_cov", m->beta_cov, kc * nv, err) ||
             h5_read_f64(f, path, "gamma_star", m->gamma_star, S * nv, err) ||
             h5_read_f64(f, path, "delta_star", m->delta_star, S * nv, err) || h5_read_i32(f, path, "pass", pass, nv, err) ||
             h5_read_f64(f, path, "priors/gamma_bar", m->gamma_bar, S, err) ||
             h5_read_f64(f, path, "priors/tau2", m->tau2, S, err) || h5_read_f64(f, path, "priors/a", m->a_prior, S, err) ||
             h5_read_f64(f, path, "priors/b", m->b_prior, S, err) ||
             h5_read_i32(f, path, "priors/iterations", m->iterations, S, err) ||
             h5_read_i32(f, path, "site_counts", m->site_counts, S, err) ? -1 : 0;
        for (size_t j = 0; rc == 0 && j < nv; j++) {
            m->pass[j] = pass[j] != 0;
            m->voxels[j] = (long)vox[j];
            if (j > 0 && m->voxels[j] <= m->voxels[j - 1]) rc = df_err(err, "%s: voxels are not ascending", path);
        }
        free(pass), free(vox);
    }
    combat_model_free(&head);
    if (H5Fclose(f) < 0 && rc == 0) rc = df_err(err, "%s: closing failed", path);
    if (rc) combat_model_free(m);
    return rc;
}
