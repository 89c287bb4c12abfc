// combat.c: ComBat as Bioconductor sva 3.46's ComBat computes it (see combat.h), in double.
//
// Per voxel (a column), subject i of site s = site[i] with covariates c_i (kc of them):
//   design X = [S site indicators | c];  B = (X'X)^-1 X'y                   least squares
//   grand_mean = sum_s n_s/n B_s;  beta_cov = B[S .. S+kc)
//   var_pooled = sum_i (y_i - X_i B)^2 / n                                  (/ n, as sva)
//   stand_mean_i = grand_mean + c_i . beta_cov
//   z_i = (y_i - stand_mean_i) / sqrt(var_pooled)                           (sva's s.data)
//   gamma_hat_s = mean of z over site s; delta_hat_s = its sample variance (/ (n_s - 1))
//   gamma_star, delta_star: empirical Bayes over the voxels (parametric or non-parametric),
//   or the hats themselves (COMBAT_NO_EB)
//   out_i = (z_i - gamma_star_s) / sqrt(delta_star_s) * sqrt(var_pooled) + stand_mean_i
// A voxel with zero variance within some site is passed through and left out of the priors.
// Everything down to gamma_hat and delta_hat is per voxel: combat_fit_chunk computes it for a
// chunk of voxels at a time. The stars need only gamma_hat, delta_hat and n_s: both priors use
// sum over site s's subjects of (z - g)^2 = (n_s - 1) delta_hat_s + n_s (gamma_hat_s - g)^2.
//
// Reductions, in order, the same on every rank: (1) the counts and sums for the priors'
// means, (2) the sums of squared deviations from them, then one per parametric iteration
// (S counts), or one gather of every voxel's estimates for the non-parametric prior.
#include "prep/combat.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- sites and design ------------------------------------------------------------------------

// n_s (S): subjects per site; rows[off[s] .. off[s+1]) the subjects of site s, ascending.
static int site_rows(int *n_s, int *off, int *rows, const int *site, int n, int S, DfError *err) {
    memset(n_s, 0, (size_t)S * sizeof(int));
    for (int i = 0; i < n; i++) {
        if (site[i] < 0 || site[i] >= S) return df_err(err, "ComBat: subject %d has site %d, not in 0..%d", i, site[i], S - 1);
        n_s[site[i]]++;
    }
    off[0] = 0;
    for (int s = 0; s < S; s++) {
        // sva falls back to a "mean only" model then; a scale from one subject does not exist
        if (n_s[s] < 2)
            return df_err(err, "ComBat: site %d has %d subject%s; it needs at least 2 to estimate the site's scale", s,
                          n_s[s], n_s[s] == 1 ? "" : "s");
        off[s + 1] = off[s] + n_s[s];
    }
    int *next = xmalloc((size_t)S * sizeof(int));
    memcpy(next, off, (size_t)S * sizeof(int));
    for (int i = 0; i < n; i++) rows[next[site[i]]++] = i;
    free(next);
    return 0;
}

// L (p, p), p = S + kc: X'X of the design [site indicators | cov], lower triangle only.
static void design_gram(double *L, const int *site, const int *n_s, const double *cov, int n, int S, int kc) {
    int p = S + kc;
    memset(L, 0, (size_t)p * p * sizeof(double));
    for (int s = 0; s < S; s++) L[s * p + s] = n_s[s];
    for (int i = 0; i < n; i++) {
        const double *c = cov + (size_t)i * kc;
        for (int k = 0; k < kc; k++) {
            L[(S + k) * p + site[i]] += c[k];
            for (int l = 0; l <= k; l++) L[(S + k) * p + S + l] += c[k] * c[l];
        }
    }
}

// Factors X'X = L L' in place (lower). A pivot that vanishes relative to the column's own sum
// of squares means the column is (to rounding) a combination of the columns before it. The
// site indicators never are (disjoint, none empty), so the column named is a covariate.
static int design_factor(double *L, int S, int kc, DfError *err) {
    int p = S + kc;
    for (int k = 0; k < p; k++) {
        double akk = L[k * p + k], d = akk;
        for (int l = 0; l < k; l++) d -= L[k * p + l] * L[k * p + l];
        if (!(d > 1e-10 * akk)) {
            if (k < S) return df_err(err, "ComBat: the design is singular at site %d", k);
            return df_err(err, "ComBat: the design is singular: covariate column %d (0-based) is constant, or a linear "
                               "combination of the site indicators%s",
                          k - S, k > S ? " and the covariate columns before it" : "");
        }
        L[k * p + k] = sqrt(d);
        for (int i = k + 1; i < p; i++) {
            double x = L[i * p + k];
            for (int l = 0; l < k; l++) x -= L[i * p + l] * L[k * p + l];
            L[i * p + k] = x / L[k * p + k];
        }
    }
    return 0;
}

static int check_cov(const double *cov, int n, int kc, DfError *err) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < kc; k++)
            if (!isfinite(cov[(size_t)i * kc + k]))
                return df_err(err, "ComBat: covariate column %d of subject %d is not a finite number", k, i);
    return 0;
}

// Solves L L' x = b for every column of b (p, v), in place (one right-hand side per voxel).
static void chol_solve(double *b, const double *L, int p, long v) {
    for (int k = 0; k < p; k++) {
        double *bk = b + (size_t)k * v;
        for (int l = 0; l < k; l++) {
            const double a = L[k * p + l], *bl = b + (size_t)l * v;
            for (long j = 0; j < v; j++) bk[j] -= a * bl[j];
        }
        for (long j = 0; j < v; j++) bk[j] /= L[k * p + k];
    }
    for (int k = p - 1; k >= 0; k--) {
        double *bk = b + (size_t)k * v;
        for (int l = k + 1; l < p; l++) {
            const double a = L[l * p + k], *bl = b + (size_t)l * v;
            for (long j = 0; j < v; j++) bk[j] -= a * bl[j];
        }
        for (long j = 0; j < v; j++) bk[j] /= L[k * p + k];
    }
}

// ---- the location and scale fit, per chunk of voxels ----------------------------------------

// pass (v) |= 1 where a site's values are all equal: sva's var(x) == 0 within a batch, which
// for finite data is the same test (a variance of unequal values does not round to 0).
static void flag_pass(unsigned char *pass, const double *y, long v, const int *rows, const int *off, int S) {
    unsigned char *differs = xmalloc((size_t)(v > 0 ? v : 1));
    for (int s = 0; s < S; s++) {
        memset(differs, 0, (size_t)v);
        const double *y0 = y + (size_t)rows[off[s]] * v;
        for (int k = off[s] + 1; k < off[s + 1]; k++) {
            const double *yi = y + (size_t)rows[k] * v;
            for (long j = 0; j < v; j++) differs[j] |= yi[j] != y0[j];
        }
        for (long j = 0; j < v; j++) pass[j] |= !differs[j];
    }
    free(differs);
}

// B (S + kc, v): the least-squares coefficients; then the model's grand_mean, beta_cov and
// var_pooled as sva sums them (var_pooled: squared residuals times 1/n, summed).
static void fit_location(CombatModel *m, double *B, const double *L, const double *y, int n, const int *site,
                         const int *n_s, const double *cov) {
    int S = m->n_sites, kc = m->k_cov, p = S + kc;
    long v = m->v;
    memset(B, 0, (size_t)p * v * sizeof(double));
    for (int i = 0; i < n; i++) {  // X'y, row by row
        const double *yi = y + (size_t)i * v;
        double *bs = B + (size_t)site[i] * v;
        for (long j = 0; j < v; j++) bs[j] += yi[j];
        for (int k = 0; k < kc; k++) {
            double c = cov[(size_t)i * kc + k], *bk = B + (size_t)(S + k) * v;
            for (long j = 0; j < v; j++) bk[j] += c * yi[j];
        }
    }
    chol_solve(B, L, p, v);
    for (int s = 0; s < S; s++)
        for (long j = 0; j < v; j++) m->grand_mean[j] += (double)n_s[s] / n * B[(size_t)s * v + j];
    memcpy(m->beta_cov, B + (size_t)S * v, (size_t)kc * v * sizeof(double));
    double *fit = xmalloc((size_t)(v > 0 ? v : 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        const double *yi = y + (size_t)i * v;
        memcpy(fit, B + (size_t)site[i] * v, (size_t)v * sizeof(double));
        for (int k = 0; k < kc; k++) {
            double c = cov[(size_t)i * kc + k];
            const double *bk = B + (size_t)(S + k) * v;
            for (long j = 0; j < v; j++) fit[j] += c * bk[j];
        }
        for (long j = 0; j < v; j++) {
            double e = yi[j] - fit[j];
            m->var_pooled[j] += e * e * (1.0 / n);
        }
    }
    free(fit);
}

// sm (v): subject's standardising mean, grand_mean + c . beta_cov (c: its kc covariates).
// The covariate part is summed first and then added, as sva's stand.mean.
static void stand_mean_row(double *sm, const CombatModel *m, const double *c) {
    long v = m->v;
    for (long j = 0; j < v; j++) sm[j] = 0;
    for (int k = 0; k < m->k_cov; k++) {
        const double *bk = m->beta_cov + (size_t)k * v;
        for (long j = 0; j < v; j++) sm[j] += c[k] * bk[j];
    }
    for (long j = 0; j < v; j++) sm[j] = m->grand_mean[j] + sm[j];
}

// z (v): one subject's row yi standardised, (yi - stand_mean) / sd with sd = sqrt(var_pooled)
// (sva's s.data; pass voxels: 0); sm (v) is scratch, ci the subject's covariates.
static void standardise_row(double *z, double *sm, const CombatModel *m, const double *sd, const double *yi,
                            const double *ci) {
    stand_mean_row(sm, m, ci);
    for (long j = 0; j < m->v; j++) z[j] = m->pass[j] ? 0 : (yi[j] - sm[j]) / sd[j];
}

// gh, dh (S, v): per site the mean of the standardised data z and its sample variance
// (/ (n_s - 1), two-pass as genefilter's rowVars, which sva calls). z is remade a row at a time
// in each pass instead of being stored: no (n, v) copy, and the same values in the same order.
static void site_moments(double *gh, double *dh, const CombatModel *m, const double *y, const CombatFit *f) {
    int S = f->n_sites, kc = f->k_cov;
    long v = m->v;
    size_t nv = (size_t)(v > 0 ? v : 1);
    double *z = xmalloc(nv * sizeof(double)), *sm = xmalloc(nv * sizeof(double)), *sd = xmalloc(nv * sizeof(double));
    for (long j = 0; j < v; j++) sd[j] = sqrt(m->var_pooled[j]);
    memset(gh, 0, (size_t)S * v * sizeof(double));
    memset(dh, 0, (size_t)S * v * sizeof(double));
    for (int i = 0; i < f->n; i++) {  // each site's rows ascending, as a loop over the site would add them
        standardise_row(z, sm, m, sd, y + (size_t)i * v, f->cov ? f->cov + (size_t)i * kc : NULL);
        double *g = gh + (size_t)f->site[i] * v;
        for (long j = 0; j < v; j++) g[j] += z[j];
    }
    for (int s = 0; s < S; s++)
        for (long j = 0; j < v; j++) gh[(size_t)s * v + j] /= f->n_s[s];
    for (int i = 0; i < f->n; i++) {
        standardise_row(z, sm, m, sd, y + (size_t)i * v, f->cov ? f->cov + (size_t)i * kc : NULL);
        const double *g = gh + (size_t)f->site[i] * v;
        double *d = dh + (size_t)f->site[i] * v;
        for (long j = 0; j < v; j++) {
            double e = z[j] - g[j];
            d[j] += e * e;
        }
    }
    for (int s = 0; s < S; s++)
        for (long j = 0; j < v; j++) dh[(size_t)s * v + j] /= f->n_s[s] - 1;
    free(z); free(sm); free(sd);
}

// Columns [0, w) of a (rows, w) array into columns [c0, c0 + w) of a (rows, v) one.
static void put_cols(double *to, const double *from, int rows, long v, long c0, long w) {
    for (int r = 0; r < rows; r++) memcpy(to + (size_t)r * v + c0, from + (size_t)r * w, (size_t)w * sizeof(double));
}

static long count_nonfinite(const double *y, size_t count) {
    long bad = 0;
    for (size_t i = 0; i < count; i++) bad += !isfinite(y[i]);
    return bad;
}

double combat_chunk_bytes(int S, int kc, long w) {
    // the chunk's model (grand_mean, var_pooled, beta_cov, gamma/delta_star), B, gamma/delta_hat,
    // and the row buffers (z, sm, sd, the fit), in double; pass and differs, a byte each
    double per_voxel = 8.0 * (2 + (kc > 0 ? kc : 1) + 2 * S + (S + kc) + 2 * S + 4) + 2;
    return per_voxel * (double)(w > 0 ? w : 1);
}

void combat_fit_chunk(CombatFit *f, const double *y, long c0, long w) {
    int S = f->n_sites, kc = f->k_cov;
    long v = f->m.v;
    DF_ASSERT(c0 >= 0 && w >= 0 && c0 + w <= v);
    if (w == 0) return;
    CombatModel c;  // the chunk's voxels
    combat_model_alloc(&c, S, kc, w);
    double *B = xmalloc((size_t)(S + kc) * w * sizeof(double)), *gh = xmalloc((size_t)S * w * sizeof(double)),
           *dh = xmalloc((size_t)S * w * sizeof(double));
    f->n_bad += count_nonfinite(y, (size_t)f->n * w);
    flag_pass(c.pass, y, w, f->rows, f->off, S);
    fit_location(&c, B, f->L, y, f->n, f->site, f->n_s, f->cov);
    // a voxel the design fits exactly: sva would divide by zero and return NaN
    for (long j = 0; j < w; j++) c.pass[j] |= !(c.var_pooled[j] > 0);
    site_moments(gh, dh, &c, y, f);
    put_cols(f->m.grand_mean, c.grand_mean, 1, v, c0, w);
    put_cols(f->m.var_pooled, c.var_pooled, 1, v, c0, w);
    put_cols(f->m.beta_cov, c.beta_cov, kc, v, c0, w);
    put_cols(f->gamma_hat, gh, S, v, c0, w);
    put_cols(f->delta_hat, dh, S, v, c0, w);
    memcpy(f->m.pass + c0, c.pass, (size_t)w);
    combat_model_free(&c);
    free(B); free(gh); free(dh);
}

// ---- the priors --------------------------------------------------------------------------------

// Reduction (1): non-finite values, kept voxels, and per site the sums of gamma_hat and
// delta_hat over the kept voxels. Returns the kept voxels over all ranks, or -1 with err.
static long prior_means(CombatModel *m, double *dbar, long n_bad_here, const double *gh, const double *dh, Reducer *r,
                        DfError *err) {
    int S = m->n_sites;
    long v = m->v;
    double *buf = xcalloc((size_t)(2 + 2 * S), sizeof(double));
    buf[0] = (double)n_bad_here;
    for (long j = 0; j < v; j++) {
        if (m->pass[j]) continue;
        buf[1] += 1;
        for (int s = 0; s < S; s++) { buf[2 + s] += gh[(size_t)s * v + j]; buf[2 + S + s] += dh[(size_t)s * v + j]; }
    }
    reduce_sum_f64(r, buf, (size_t)(2 + 2 * S));
    long n_bad = (long)buf[0], n_keep = (long)buf[1];
    for (int s = 0; s < S; s++) {
        m->gamma_bar[s] = buf[2 + s] / (double)n_keep;
        dbar[s] = buf[2 + S + s] / (double)n_keep;
    }
    free(buf);
    if (n_bad) return df_err(err, "ComBat: the data have %ld non-finite value%s", n_bad, n_bad == 1 ? "" : "s");
    return n_keep;
}

// The empirical-Bayes hyper-parameters over the kept voxels, as sva's gamma.bar (mean), t2
// (sample variance), aprior and bprior (the method of moments of an inverse gamma on delta_hat,
// from its mean and sample variance). Two passes over all-reduced sums: the means, then the
// squared deviations from them, so no large sums cancel. 0, or -1 with err (on every rank).
static int fit_priors(CombatModel *m, long n_bad, const double *gh, const double *dh, Reducer *r, DfError *err) {
    int S = m->n_sites;
    long v = m->v;
    double *dbar = xmalloc((size_t)S * sizeof(double)), *ss = xcalloc((size_t)(2 * S), sizeof(double));
    long n_keep = prior_means(m, dbar, n_bad, gh, dh, r, err);
    int rc = n_keep < 0 ? -1 : 0;
    if (!rc && n_keep < 2 && m->prior != COMBAT_NO_EB)
        rc = df_err(err, "ComBat: %ld voxel%s within every site; the empirical-Bayes priors need at least 2", n_keep,
                    n_keep == 1 ? " varies" : "s vary");
    if (!rc && n_keep >= 2) {  // n_keep is the same on every rank: all make reduction (2) or none
        for (long j = 0; j < v; j++) {
            if (m->pass[j]) continue;
            for (int s = 0; s < S; s++) {
                double eg = gh[(size_t)s * v + j] - m->gamma_bar[s], ed = dh[(size_t)s * v + j] - dbar[s];
                ss[s] += eg * eg;
                ss[S + s] += ed * ed;
            }
        }
        reduce_sum_f64(r, ss, (size_t)(2 * S));
        for (int s = 0; s < S; s++) {
            double s2 = ss[S + s] / (double)(n_keep - 1), mu = dbar[s];
            m->tau2[s] = ss[s] / (double)(n_keep - 1);
            m->a_prior[s] = (2 * s2 + mu * mu) / s2;
            m->b_prior[s] = (mu * s2 + mu * mu * mu) / s2;
        }
    }
    free(dbar);
    free(ss);
    return rc;
}

// ---- empirical Bayes ---------------------------------------------------------------------------

// One pass of sva's it.sol for site s (ns subjects) over this rank's kept voxels: gs, ds (v)
// hold g.old and d.old and receive g.new and d.new (postmean with d.old, then postvar from the
// site's squared deviations from g.new). Those are sum over the site's subjects of
// (z - g.new)^2 = (n_s - 1) delta_hat + n_s (gamma_hat - g.new)^2, so the iteration needs only
// gh, dh (v) and no subject's data (sva sums over the subjects; the two agree to rounding).
// Returns how many voxels changed by more than COMBAT_CONV. sva continues while
// max(|g.new - g.old| / g.old, |d.new - d.old| / d.old) > conv over all voxels (g.old signed,
// as there: a negative one never counts), which is exactly "some voxel's change exceeds conv":
// counted here, summed over ranks by the caller.
static long it_sol_pass(double *gs, double *ds, const CombatModel *m, int s, const double *gh, const double *dh, int ns) {
    long v = m->v, changed = 0;
    double gbar = m->gamma_bar[s], t2 = m->tau2[s], a = m->a_prior[s], b = m->b_prior[s];
    for (long j = 0; j < v; j++) {
        if (m->pass[j]) continue;
        double gnew = (t2 * ns * gh[j] + ds[j] * gbar) / (t2 * ns + ds[j]), eg = gh[j] - gnew;
        double sum2 = (ns - 1) * dh[j] + ns * eg * eg, dnew = (0.5 * sum2 + b) / (ns / 2.0 + a - 1);
        if (fabs(gnew - gs[j]) / gs[j] > COMBAT_CONV || fabs(dnew - ds[j]) / ds[j] > COMBAT_CONV) changed++;
        gs[j] = gnew;
        ds[j] = dnew;
    }
    return changed;
}

// The parametric prior: it.sol for every site, all sites iterating side by side with one
// reduction per iteration (the S counts of changed voxels); a site stops after the first
// iteration in which no voxel on any rank changed by more than COMBAT_CONV, as its own loop in
// sva would. iterations[s]: how many it ran.
static int eb_parametric(CombatModel *m, const double *gh, const double *dh, const int *off, Reducer *r, DfError *err) {
    int S = m->n_sites, rc = 0;
    long v = m->v;
    memcpy(m->gamma_star, gh, (size_t)S * v * sizeof(double));
    memcpy(m->delta_star, dh, (size_t)S * v * sizeof(double));
    double *cnt = xmalloc((size_t)S * sizeof(double));
    unsigned char *active = xmalloc((size_t)S);
    memset(active, 1, (size_t)S);
    for (int it = 1;; it++) {
        for (int s = 0; s < S; s++)
            cnt[s] = !active[s] ? 0
                                : (double)it_sol_pass(m->gamma_star + (size_t)s * v, m->delta_star + (size_t)s * v, m, s,
                                                      gh + (size_t)s * v, dh + (size_t)s * v, off[s + 1] - off[s]);
        reduce_sum_f64(r, cnt, (size_t)S);
        int more = 0;
        for (int s = 0; s < S; s++) {
            if (!active[s]) continue;
            m->iterations[s] = it;
            if (cnt[s] > 0) more = 1;
            else active[s] = 0;
        }
        if (!more) break;
        if (it == COMBAT_MAX_ITER) {
            for (int s = 0; s < S; s++)
                if (active[s]) { rc = df_err(err, "ComBat: the parametric prior of site %d did not converge in %d iterations", s, it); break; }
            break;
        }
    }
    free(cnt); free(active);
    return rc;
}

// The non-parametric prior, sva's int.eprior, for this rank's voxels. For kept voxel i and
// site s, gamma_star and delta_star are averages of every other kept voxel's (g_j, d_j) =
// (gamma_hat, delta_hat) -- all ranks' voxels, gathered -- weighted by the likelihood of
// voxel i's standardised data of the site under N(g_j, d_j):
//   L_ij = (2 pi d_j)^(-n_s / 2) exp(-sum2_ij / (2 d_j)),  sum2_ij = sum over the site's
//   subjects of (z - g_j)^2 = (n_s - 1) delta_hat_i + n_s (gamma_hat_i - g_j)^2.
// sva multiplies L_ij out, which underflows (to 0/0 = NaN) once n_s or the spread of the
// voxels is large. Here the weights are exp(log L_ij - max_j log L_ij) (log-sum-exp; the
// constant (2 pi)^(-n_s / 2) cancels): the same ratios as sva's wherever sva's do not underflow.
static void eb_nonparametric(CombatModel *m, const double *gh, const double *dh, const int *off, long v_offset,
                             long v_total, Reducer *r) {
    int S = m->n_sites, w = 2 * S + 1;
    long v = m->v;
    // all voxels' estimates: (v_total, 2S + 1) rows of g_0..g_{S-1}, d_0..d_{S-1}, kept
    double *loc = xmalloc((size_t)(v > 0 ? v : 1) * w * sizeof(double)), *all = xmalloc((size_t)(v_total > 0 ? v_total : 1) * w * sizeof(double));
    for (long j = 0; j < v; j++) {
        for (int s = 0; s < S; s++) { loc[j * w + s] = gh[(size_t)s * v + j]; loc[j * w + S + s] = dh[(size_t)s * v + j]; }
        loc[j * w + 2 * S] = !m->pass[j];
    }
    reduce_gather_f64(r, all, (size_t)v_total * w, loc, (size_t)v_offset * w, (size_t)v * w);
    double *logl = xmalloc((size_t)(v_total > 0 ? v_total : 1) * sizeof(double));
    for (int s = 0; s < S; s++) {
        double ns = off[s + 1] - off[s];
        for (long i = 0; i < v; i++) {
            if (m->pass[i]) continue;
            long gi = v_offset + i;
            double g_i = gh[(size_t)s * v + i], ss_i = (ns - 1) * dh[(size_t)s * v + i], mx = -INFINITY;
            for (long j = 0; j < v_total; j++) {
                const double *e = all + (size_t)j * w;
                if (j == gi || e[2 * S] == 0) continue;
                double dg = g_i - e[s], dj = e[S + s];
                logl[j] = -0.5 * ns * log(dj) - (ss_i + ns * dg * dg) / (2 * dj);
                if (logl[j] > mx) mx = logl[j];
            }
            double sw = 0, sg = 0, sd = 0;
            for (long j = 0; j < v_total; j++) {
                const double *e = all + (size_t)j * w;
                if (j == gi || e[2 * S] == 0) continue;
                double wt = exp(logl[j] - mx);
                sw += wt;
                sg += e[s] * wt;
                sd += e[S + s] * wt;
            }
            m->gamma_star[(size_t)s * v + i] = sg / sw;
            m->delta_star[(size_t)s * v + i] = sd / sw;
        }
    }
    free(loc); free(all); free(logl);
}

// ---- fit and apply -----------------------------------------------------------------------------

// The site-by-site estimates, once every chunk's location fit and site moments are in f.
static int fit_stars(CombatFit *f, long v_offset, long v_total, Reducer *r, DfError *err) {
    CombatModel *m = &f->m;
    const double *gh = f->gamma_hat, *dh = f->delta_hat;
    if (fit_priors(m, f->n_bad, gh, dh, r, err)) return -1;
    int rc = 0;
    size_t sv = (size_t)m->n_sites * m->v;
    if (m->prior == COMBAT_PARAMETRIC) rc = eb_parametric(m, gh, dh, f->off, r, err);
    else if (m->prior == COMBAT_NONPARAMETRIC) eb_nonparametric(m, gh, dh, f->off, v_offset, v_total, r);
    else { memcpy(m->gamma_star, gh, sv * sizeof(double)); memcpy(m->delta_star, dh, sv * sizeof(double)); }
    for (int s = 0; s < m->n_sites; s++)  // passed-through voxels: the identity adjustment
        for (long j = 0; j < m->v; j++)
            if (m->pass[j]) { m->gamma_star[(size_t)s * m->v + j] = 0; m->delta_star[(size_t)s * m->v + j] = 1; }
    return rc;
}

int combat_fit_begin(CombatFit *f, int n, long v, const int *site, int S, const double *cov, int kc, CombatPrior prior,
                     DfError *err) {
    memset(f, 0, sizeof *f);
    if (S < 1 || n < 1 || kc < 0 || (kc > 0 && !cov) || v < 0)
        return df_err(err, "ComBat: bad arguments (n %d, S %d, kc %d, voxels %ld)", n, S, kc, v);
    int p = S + kc;
    f->n = n, f->n_sites = S, f->k_cov = kc, f->site = site, f->cov = kc ? cov : NULL;
    f->n_s = xmalloc((size_t)S * sizeof(int));
    f->off = xmalloc((size_t)(S + 1) * sizeof(int));
    f->rows = xmalloc((size_t)n * sizeof(int));
    f->L = xmalloc((size_t)p * p * sizeof(double));
    if (site_rows(f->n_s, f->off, f->rows, site, n, S, err) || check_cov(cov, n, kc, err)) return -1;
    design_gram(f->L, site, f->n_s, cov, n, S, kc);
    if (design_factor(f->L, S, kc, err)) return -1;
    combat_model_alloc(&f->m, S, kc, v);
    f->m.prior = prior;
    size_t sv = (size_t)S * (size_t)(v > 0 ? v : 1);
    f->gamma_hat = xcalloc(sv, sizeof(double));
    f->delta_hat = xcalloc(sv, sizeof(double));
    return 0;
}

int combat_fit_finish(CombatModel *m, CombatFit *f, long v_offset, long v_total, Reducer *r, DfError *err) {
    memset(m, 0, sizeof *m);
    if (v_offset < 0 || v_offset + f->m.v > v_total)
        return df_err(err, "ComBat: bad arguments (voxels %ld at %ld of %ld)", f->m.v, v_offset, v_total);
    if (fit_stars(f, v_offset, v_total, r, err)) return -1;
    *m = f->m;
    memset(&f->m, 0, sizeof f->m);
    return 0;
}

void combat_fit_free(CombatFit *f) {
    free(f->n_s); free(f->off); free(f->rows); free(f->L);
    free(f->gamma_hat); free(f->delta_hat);
    combat_model_free(&f->m);
    memset(f, 0, sizeof *f);
}

int combat_fit(CombatModel *m, const double *y, int n, long v, long v_offset, long v_total, const int *site, int S,
               const double *cov, int kc, CombatPrior prior, Reducer *r, DfError *err) {
    memset(m, 0, sizeof *m);
    CombatFit f;
    int rc = combat_fit_begin(&f, n, v, site, S, cov, kc, prior, err);
    if (!rc) {
        combat_fit_chunk(&f, y, 0, v);
        rc = combat_fit_finish(m, &f, v_offset, v_total, r, err);
    }
    combat_fit_free(&f);
    return rc;
}

void combat_apply(double *out, const CombatModel *m, const double *y, int n, const int *site, const double *cov) {
    long v = m->v;
    double *sm = xmalloc((size_t)(v > 0 ? v : 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        int s = site[i];
        DF_ASSERT(s >= 0 && s < m->n_sites);
        stand_mean_row(sm, m, cov ? cov + (size_t)i * m->k_cov : NULL);
        const double *yi = y + (size_t)i * v, *g = m->gamma_star + (size_t)s * v, *d = m->delta_star + (size_t)s * v;
        double *oi = out + (size_t)i * v;
        for (long j = 0; j < v; j++) {
            if (m->pass[j]) { oi[j] = yi[j]; continue; }
            double sd = sqrt(m->var_pooled[j]), zz = (yi[j] - sm[j]) / sd;
            oi[j] = (zz - g[j]) / sqrt(d[j]) * sd + sm[j];
        }
    }
    free(sm);
}
