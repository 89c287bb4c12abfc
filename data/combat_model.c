// combat_model.c: the ComBat model's arrays (the file format comes with harmonize).
#include <stdlib.h>
#include <string.h>
#include "data/combat_model.h"

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
    memset(m, 0, sizeof *m);
}
