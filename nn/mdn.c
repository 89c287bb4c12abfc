// mdn.c: Metadata Normalization forward/backward and its layer table (see mdn.h).
#include "nn/mdn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn/lapack.h"
#include "nn/layer.h"
#include "nn/metadata.h"
#include "nn/optim.h"

// The per-sample passes (residuals, input gradients) and H run over column tiles of d: the
// double row buffer and the H tile stay in L1/L2, where whole rows (d = 8 x 32^3 doubles =
// 2 MB) would stream from memory k+2 times per sample. Every element sees the same operations
// in the same order as with whole rows, so results are bitwise unchanged (backward about 30 %
// faster at B = 16, k = 5, d = 262144).
#define MDN_TILE 1024

int mdn_inverse_spd(double *Kinv, const double *A, int k, int *bad) {
    // Cholesky A = L L^T (LAPACK dpotrf; A is symmetric, so row- and column-major agree). A
    // pivot L_jj^2 that vanishes next to the column's diagonal entry A_jj means the column is
    // (nearly) a combination of earlier ones: dpotrf only stops at a pivot <= 0, so the
    // relative test is made here, on the factor's diagonal.
    double *L = xmalloc(sizeof(double) * (size_t)k * k);
    memcpy(L, A, sizeof(double) * (size_t)k * k);
    int info = 0;
    dpotrf_("L", &k, L, &k, &info, 1);
    int factored = info > 0 ? info - 1 : k, first_bad = -1;  // columns [0, factored) have pivots
    for (int j = 0; j < factored && first_bad < 0; j++) {
        double pivot = L[j * k + j] * L[j * k + j];
        if (!(pivot > 1e-10 * fmax(A[j * k + j], 1e-300))) first_bad = j;
    }
    if (first_bad < 0 && factored < k) first_bad = factored;
    if (first_bad >= 0) {
        if (bad) *bad = first_bad;
        free(L);
        return -1;
    }
    // A^-1: solve A X = I with the factor.
    memset(Kinv, 0, sizeof(double) * (size_t)k * k);
    for (int i = 0; i < k; i++) Kinv[i * k + i] = 1.0;
    dpotrs_("L", &k, &k, L, &k, Kinv, &k, &info, 1);
    DF_ASSERT(info == 0);
    free(L);
    return 0;
}

int mdn_pinv_sym(double *Kinv, const double *A, int k) {
    double *V = xmalloc(sizeof(double) * (size_t)k * k), *w = xmalloc(sizeof(double) * (size_t)k), query;
    memcpy(V, A, sizeof(double) * (size_t)k * k);  // symmetric: row- and column-major alike
    int info = 0, lwork = -1;
    dsyev_("V", "U", &k, V, &k, w, &query, &lwork, &info, 1, 1);  // workspace query
    lwork = (int)query;
    double *work = xmalloc(sizeof(double) * (size_t)(lwork > 0 ? lwork : 1));
    dsyev_("V", "U", &k, V, &k, w, work, &lwork, &info, 1, 1);
    DF_ASSERT(info == 0);  // dsyev fails only on bad arguments or NaN input
    double tol = MDN_PINV_RCOND * fmax(w[k - 1], 0.0);
    int rank = 0;
    memset(Kinv, 0, sizeof(double) * (size_t)k * k);
    for (int e = 0; e < k; e++) {  // Kinv = sum over kept eigenpairs of v v^T / lambda
        if (!(w[e] > tol)) continue;
        rank++;
        const double *v = V + (size_t)e * k;  // eigenvector e: column e
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) Kinv[a * k + b] += v[a] * v[b] / w[e];
    }
    free(V);
    free(w);
    free(work);
    return rank;
}

void mdn_accumulate_xtx(double *XtX, const double *X, int n, int k) {
    for (int i = 0; i < n; i++)
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) XtX[a * k + b] += X[i * k + a] * X[i * k + b];
}

// G (k,d) += X^T F for B design rows X (B,k) and feature rows F (B,d).
static void accumulate_xtf(double *G, const double *X, const float *F, int B, int k, int d) {
    for (int i = 0; i < B; i++) {
        const float *f = F + (size_t)i * d;
        for (int a = 0; a < k; a++) {
            double x = X[i * k + a];
            if (x == 0.0) continue;  // dummies are mostly 0
            double *g = G + (size_t)a * d;
            for (int j = 0; j < d; j++) g[j] += x * f[j];
        }
    }
}

double mdn_forward_train(float *out, double *beta, const float *inp, const double *X, const double *K,
                         const unsigned char *removed, int B, int k, int d, double n_train, Reducer *red) {
    // G (k,d) and the global batch size in one reduction.
    size_t kd = (size_t)k * d;
    double *G = xcalloc(kd + 1, sizeof(double));
    accumulate_xtf(G, X, inp, B, k, d);
    G[kd] = B;
    reduce_sum_f64(red, G, kd + 1);
    double Bg = G[kd];
    double scale = n_train > 0 ? n_train / fmax(Bg, 1.0) : 1.0;
    memset(beta, 0, kd * sizeof(double));
    if (Bg > 0)
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) {
                double w = scale * K[a * k + b];
                if (w == 0.0) continue;
                const double *g = G + (size_t)b * d;
                double *bt = beta + (size_t)a * d;
                for (int j = 0; j < d; j++) bt[j] += w * g[j];
            }
    free(G);
    mdn_forward_eval(out, inp, X, beta, removed, B, k, d);
    return Bg > 0 ? scale : 0.0;
}

void mdn_forward_eval(float *out, const float *inp, const double *X, const double *beta,
                      const unsigned char *removed, int B, int k, int d) {
    double row[MDN_TILE];
    for (int i = 0; i < B; i++)
        for (int j0 = 0; j0 < d; j0 += MDN_TILE) {
            int nj = d - j0 < MDN_TILE ? d - j0 : MDN_TILE;
            const float *f = inp + (size_t)i * d + j0;
            for (int j = 0; j < nj; j++) row[j] = f[j];
            for (int a = 0; a < k; a++) {
                double x = X[i * k + a];
                if (!removed[a] || x == 0.0) continue;
                const double *bt = beta + (size_t)a * d + j0;
                for (int j = 0; j < nj; j++) row[j] -= x * bt[j];
            }
            float *o = out + (size_t)i * d + j0;
            for (int j = 0; j < nj; j++) o[j] = (float)row[j];
        }
}

void mdn_backward(float *dinp, const float *dout, const double *X, const double *K, const unsigned char *removed,
                  int B, int k, int d, double scale, Reducer *red) {
    // H (|S|,d): row t holds sum_i x_{i,s} g_i for the t-th removed column s -- only the
    // removed columns, so the all-reduce moves |S| x d values, not k x d.
    int *S = xmalloc((size_t)k * sizeof(int)), nS = 0;
    for (int s = 0; s < k; s++)
        if (removed[s]) S[nS++] = s;
    double *H = xcalloc((size_t)nS * d + 1, sizeof(double)), *A = xcalloc((size_t)k * d, sizeof(double));
    for (int j0 = 0; j0 < d; j0 += MDN_TILE) {
        int nj = d - j0 < MDN_TILE ? d - j0 : MDN_TILE;
        for (int i = 0; i < B; i++) {
            const float *g = dout + (size_t)i * d + j0;
            for (int t = 0; t < nS; t++) {
                double x = X[i * k + S[t]];
                if (x == 0.0) continue;
                double *h = H + (size_t)t * d + j0;
                for (int j = 0; j < nj; j++) h[j] += x * g[j];
            }
        }
    }
    reduce_sum_f64(red, H, (size_t)nS * d);
    // A = M^T H: A[c,:] = scale * sum_{s in S} K[s][c] H[s,:]
    for (int t = 0; t < nS; t++)
        for (int c = 0; c < k; c++) {
            double w = scale * K[S[t] * k + c];
            if (w == 0.0) continue;
            const double *h = H + (size_t)t * d;
            double *a = A + (size_t)c * d;
            for (int j = 0; j < d; j++) a[j] += w * h[j];
        }
    double row[MDN_TILE];
    for (int i = 0; i < B; i++)
        for (int j0 = 0; j0 < d; j0 += MDN_TILE) {
            int nj = d - j0 < MDN_TILE ? d - j0 : MDN_TILE;
            const float *g = dout + (size_t)i * d + j0;
            for (int j = 0; j < nj; j++) row[j] = g[j];
            for (int c = 0; c < k; c++) {
                double x = X[i * k + c];
                if (x == 0.0) continue;
                const double *a = A + (size_t)c * d + j0;
                for (int j = 0; j < nj; j++) row[j] -= x * a[j];
            }
            float *di = dinp + (size_t)i * d + j0;
            for (int j = 0; j < nj; j++) di[j] += (float)row[j];
        }
    free(S);
    free(H);
    free(A);
}

int mdn_rls_step(double *P, double *beta, const double *XtX, const double *XtF, int k, int d, double lambda, double rho) {
    size_t kk = (size_t)k * k;
    double *Pinv = xmalloc(3 * kk * sizeof(double)), *A = Pinv + kk, *Ainv = A + kk;
    int bad;
    if (mdn_inverse_spd(Pinv, P, k, &bad)) { free(Pinv); return -1; }
    for (size_t i = 0; i < kk; i++) A[i] = lambda * Pinv[i] + XtX[i];
    if (mdn_inverse_spd(Ainv, A, k, &bad)) { free(Pinv); return -1; }
    // beta += Ainv (XtF - XtX beta), column by column of d
    double *r = xmalloc((size_t)k * sizeof(double));
    for (int j = 0; j < d; j++) {
        for (int a = 0; a < k; a++) {
            double v = XtF[(size_t)a * d + j];
            for (int b = 0; b < k; b++) v -= XtX[a * k + b] * beta[(size_t)b * d + j];
            r[a] = v;
        }
        for (int a = 0; a < k; a++) {
            double v = 0.0;
            for (int b = 0; b < k; b++) v += Ainv[a * k + b] * r[b];
            beta[(size_t)a * d + j] += v;
        }
    }
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) P[a * k + b] = Ainv[a * k + b] + (a == b ? rho : 0.0);
    free(r);
    free(Pinv);
    return 0;
}

void mdn_penalty_grad(double *grad, const double *beta, const double *XtX, const double *XtF, double n, int k, int d) {
    double w = n > 0 ? -2.0 / (n * d) : 0.0;
    for (int a = 0; a < k; a++)
        for (int j = 0; j < d; j++) {
            double r = XtF[(size_t)a * d + j];
            for (int b = 0; b < k; b++) r -= XtX[a * k + b] * beta[(size_t)b * d + j];
            grad[(size_t)a * d + j] = w * r;
        }
}

// ---- layer table ---------------------------------------------------------------------------

typedef struct {
    MetaDesign design;
    int k, d;
    int batch_kernel;     // 0: dataset kernel (fitted by prepare), 1: per global batch
    int recursive;        // 1: R-MDN (kernel = recursive): P and beta in the state, updated per step
    int penalty;          // 1: PMDN (kernel = penalty): beta and its Adam moments in the state
    double lr;            // PMDN: beta's Adam learning rate
    double ridge, momentum;
    double forgetting, p0;  // R-MDN's lambda and initial P = p0 I
    double n_train;       // training-set size (dataset kernel)
    int prepared;
    double *K;            // (k,k) kernel in use
    double *beta;         // (k,d) this step's beta
    double *X;            // (max_batch, k) design rows of the current batch
    double scale;         // s of the last training forward
    int trained;          // 1 when the last forward was a training one (backward needs its beta path)
    int V;                // pool = channel: values per channel (D*H*W) averaged into one feature; else 1
    float *pooled;        // pool = channel: (max_batch, C) channel means of the input, or its gradient's sums
    float *scratch;       // pool = channel: (max_batch, C)
    int eval_epoch;       // eval_beta = epoch / epoch_eval: the evaluation beta fitted over the
                          // training split in the refit pass REFIT_TRAINING / REFIT_EVALUATION
    int n_splines;        // NAME:splineN columns of the design; their knots are the state tensor
    int knots_state;      // "knots" (n_splines, META_SPLINE_MAX_DF + 1), fitted by prepare
    double *sums;         // eval_epoch: X^T X (k,k), X^T F (k,d) and the count over the refit pass
} MdnImpl;

static const char *const eval_beta_names[] = { "running", "epoch", "epoch_eval", NULL };
static const char *const pool_names[] = { "none", "channel", NULL };

static const char *const kernel_names[] = { "dataset", "batch", "recursive", "penalty", NULL };

static int mdn_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    char where[512];
    ini_where(ini, sec, NULL, where, sizeof where);
    const MetaSchema *schema = L->ctx->meta_schema;
    if (!schema)
        return df_err(err, "%s: [mdn] needs per-sample metadata (the data have none, or this command does not read it)", where);
    const char *remove = ini_str(sec, "remove", NULL), *keep = ini_str(sec, "keep", "label");
    if (!remove || !*remove) return df_err(err, "%s: [mdn] needs remove = <confounder columns>, e.g. remove = age, site", where);
    MdnImpl *m = xcalloc(1, sizeof *m);
    L->impl = m;
    int kernel;
    if (ini_choice(ini, sec, "kernel", "dataset", kernel_names, &kernel, err)) return -1;
    m->batch_kernel = kernel == 1;
    m->recursive = kernel == 2;
    m->penalty = kernel == 3;
    int own_beta = m->recursive || m->penalty;  // beta is the layer's estimate: no running average
    // R-MDN's defaults are its reference's: lambda 0.999, rho 1e-4, P0 = I / 0.01; its beta is
    // its own estimate, so it has no momentum
    if ((!m->penalty && ini_double(ini, sec, "ridge", m->recursive ? 1e-4 : 0.0, 0.0, 1e12, &m->ridge, err)) ||
        (!own_beta && ini_double(ini, sec, "momentum", 0.1, 0.0, 1.0, &m->momentum, err)) ||
        (m->penalty && ini_double(ini, sec, "lr", 0.045, 1e-12, 1e3, &m->lr, err)) ||
        (m->recursive && ini_double(ini, sec, "forgetting", 0.999, 1e-6, 1.0, &m->forgetting, err)) ||
        (m->recursive && ini_double(ini, sec, "p0", 100.0, 1e-12, 1e12, &m->p0, err)) ||
        ini_choice(ini, sec, "eval_beta", "running", eval_beta_names, &m->eval_epoch, err) ||
        ini_choice(ini, sec, "pool", "none", pool_names, &m->V, err))
        return -1;
    if (own_beta && m->eval_epoch) {
        ini_where(ini, sec, "eval_beta", where, sizeof where);
        return df_err(err, "%s: eval_beta = %s is for kernel = dataset or batch, not %s (%s evaluates with the beta it trains with)",
                      where, eval_beta_names[m->eval_epoch], kernel_names[kernel], m->recursive ? "R-MDN" : "PMDN");
    }
    char what[600];
    ini_where(ini, sec, ini_entry(sec, "remove") ? "remove" : NULL, where, sizeof where);
    snprintf(what, sizeof what, "%s: [mdn] %s", where, L->name);
    if (meta_design_build(&m->design, schema, keep, remove, what, err)) return -1;
    m->k = m->design.k;
    // pool = channel: one feature per channel, its mean over D*H*W, and one beta per channel
    // (k x C instead of k x C*D*H*W), subtracted at every position of the channel
    int per_channel = m->V;
    m->V = per_channel ? L->in_shape.d * L->in_shape.h * L->in_shape.w : 1;
    m->d = (int)shape_numel(L->in_shape) / m->V;
    if (per_channel) {
        m->pooled = df_alloc_floats((size_t)L->ctx->max_batch * m->d);
        m->scratch = df_alloc_floats((size_t)L->ctx->max_batch * m->d);
    }
    L->out_shape = L->in_shape;
    int kk[2] = { m->k, m->k }, kd[2] = { m->k, m->d };
    // R-MDN: "kernel" holds P and "running_beta" its beta, both updated by every training step
    layer_add_state(L, "kernel", 2, kk);
    layer_add_state(L, "running_beta", 2, kd);
    if (m->penalty) {  // PMDN: beta's Adam moments and step count
        int one[1] = { 1 };
        layer_add_state(L, "adam_m", 2, kd);
        layer_add_state(L, "adam_v", 2, kd);
        layer_add_state(L, "adam_step", 1, one);
    }
    // spline knots: quantiles of the training split, kept with the model so that evaluation
    // codes a sample as training did
    if ((m->n_splines = meta_design_splines(&m->design)) > 0) {
        int kn[2] = { m->n_splines, META_SPLINE_MAX_DF + 1 };
        m->knots_state = L->n_state_info;
        layer_add_state(L, "knots", 2, kn);
    }
    m->K = xcalloc((size_t)m->k * m->k, sizeof(double));
    m->beta = xcalloc((size_t)m->k * m->d, sizeof(double));
    m->X = xcalloc((size_t)L->ctx->max_batch * m->k, sizeof(double));
    if (m->eval_epoch) m->sums = xcalloc((size_t)m->k * m->k + (size_t)m->k * m->d, sizeof(double));
    return 0;
}

static void mdn_init(Layer *L, Rng *rng) {
    MdnImpl *m = L->impl;
    memset(L->state, 0, L->n_state * sizeof(float));
    if (m->recursive)  // P0 = p0 I, beta 0
        for (int a = 0; a < m->k; a++) layer_state(L, 0)[a * m->k + a] = (float)m->p0;
}

// What meta_design_row rejected in a sample's raw row: "site = 3 (levels: 0, 2, 5)".
static void describe_bad_value(const MetaDesign *d, const MetaSchema *s, const double *row, int label, char *buf, size_t n) {
    snprintf(buf, n, "a value not seen in the data");
    for (int c = 0; c < d->k; c++) {
        // an age|site column codes site's levels as a dummy does
        int col = d->has_by[c] ? d->by[c] : d->source[c], coded = d->has_by[c] || d->is_dummy[c];
        if (col == META_LABEL) {
            if (label < 0 || label >= s->n_classes) {
                snprintf(buf, n, "label %d (the data have classes 0..%d)", label, s->n_classes - 1);
                return;
            }
        } else if (col >= 0 && coded) {
            int known = 0;
            for (int l = 0; l < s->n_levels[col]; l++) known |= s->levels[col][l] == row[col];
            if (known) continue;
            size_t len = (size_t)snprintf(buf, n, "%s = %g (levels:", s->names[col], row[col]);
            for (int l = 0; l < s->n_levels[col] && len < n; l++)
                len += (size_t)snprintf(buf + len, n - len, "%s %g", l ? "," : "", s->levels[col][l]);
            if (len < n) snprintf(buf + len, n - len, ")");
            return;
        }
    }
}

// The spline knots from the state (prepare's, or a checkpoint's) into the design; -1 when
// they were never fitted (not ascending).
static int load_knots(Layer *L) {
    MdnImpl *m = L->impl;
    for (int g = 0; g < m->n_splines; g++) {
        int df = m->design.spline_df[meta_design_spline_column(&m->design, g)];
        const float *kf = layer_state(L, m->knots_state) + (size_t)g * (META_SPLINE_MAX_DF + 1);
        double knots[META_SPLINE_MAX_DF + 1];
        for (int j = 0; j <= df; j++) {
            knots[j] = kf[j];
            if (j > 0 && !(knots[j] > knots[j - 1])) return -1;
        }
        meta_design_set_knots(&m->design, g, knots);
    }
    return 0;
}

// Spline knots at the quantiles of each spline column over the whole training split: the
// ranks' shares gathered exactly (every rank sorts the same values), rounded to the float32
// the state keeps.
static int fit_knots(Layer *L, const double *meta, int n_local, long lo, long n_total, DfError *err) {
    MdnImpl *m = L->impl;
    const MetaSchema *s = L->ctx->meta_schema;
    double *all = xmalloc((size_t)(n_total + 1) * sizeof(double)), *mine = xmalloc((size_t)(n_local + 1) * sizeof(double));
    int rc = 0;
    for (int g = 0; g < m->n_splines && !rc; g++) {
        int c = meta_design_spline_column(&m->design, g), col = m->design.source[c], df = m->design.spline_df[c];
        for (int i = 0; i < n_local; i++) mine[i] = meta[(size_t)i * s->n_cols + col];
        reduce_gather_f64(L->ctx->reducer, all, (size_t)n_total, mine, (size_t)lo, (size_t)n_local);
        qsort(all, (size_t)n_total, sizeof(double), df_cmp_double);
        double knots[META_SPLINE_MAX_DF + 1];
        if (meta_spline_knots(knots, df, all, n_total)) {
            rc = df_err(err, "layer %s (mdn): %s:spline%d needs %d distinct quantiles of '%s' over the training split "
                        "(0, 1/%d, ..., 1), and some coincide (%ld samples): use fewer (splineN with a smaller N) or the column "
                        "itself", L->name, s->names[col], df, df + 1, s->names[col], df, n_total);
            break;
        }
        float *kf = layer_state(L, m->knots_state) + (size_t)g * (META_SPLINE_MAX_DF + 1);
        for (int j = 0; j <= df; j++) kf[j] = (float)knots[j];
    }
    free(all);
    free(mine);
    return rc ? rc : load_knots(L) ? df_err(err, "layer %s (mdn): the spline knots coincide in float32", L->name) : 0;
}

// The design rows of the batch's samples, from the metadata rows and labels it brings.
static void fill_design(Layer *L, const Batch *batch) {
    MdnImpl *m = L->impl;
    const MetaSchema *s = L->ctx->meta_schema;
    if (m->n_splines && load_knots(L))
        df_die(DF_EXIT_INPUT, "layer %s (mdn): its spline knots were never fitted (train the model, or load a checkpoint "
               "that was trained)", L->name);
    if (batch->n > 0 && (!batch->meta || !batch->labels))
        df_die(DF_EXIT_INPUT, "layer %s (mdn) needs the metadata (confounders) of the samples it sees, and none were given", L->name);
    for (int i = 0; i < batch->n; i++) {
        const double *row = batch->meta + (size_t)i * s->n_cols;
        if (meta_design_row(&m->design, s, row, batch->labels[i], m->X + (size_t)i * m->k)) {
            char what[512];
            describe_bad_value(&m->design, s, row, batch->labels[i], what, sizeof what);
            df_die(DF_EXIT_INPUT, "layer %s (mdn): sample %ld of the data has %s", L->name, batch->first_sample + i, what);
        }
    }
}

static int fail_singular(Layer *L, int bad, const char *where, DfError *err) {
    MdnImpl *m = L->impl;
    return df_err(err,
                  "layer %s (mdn): X^T X over the %s is singular: design column '%s' is constant zero or a linear "
                  "combination of earlier columns (a category with no subjects there, or collinear columns). "
                  "Remove that column, or use kernel = batch (a pseudo-inverse per global batch).%s",
                  L->name, where, m->design.names[bad],
                  m->design.source[bad] == -2 ? " (For the intercept: a removed column is constant, or the dummies of a "
                                                "categorical column cover every subject because its first level has none.)"
                                              : "");
}

static int mdn_prepare(Layer *L, const double *meta, const int *labels, int n_local, long lo, long n_total, DfError *err) {
    MdnImpl *m = L->impl;
    int k = m->k;
    if (m->n_splines && fit_knots(L, meta, n_local, lo, n_total, err)) return -1;
    if (m->batch_kernel || m->recursive || m->penalty) { m->prepared = 1; return 0; }
    double *XtX = xcalloc((size_t)k * k + 1, sizeof(double)), *x = xmalloc((size_t)k * sizeof(double));
    const MetaSchema *s = L->ctx->meta_schema;
    for (int i = 0; i < n_local; i++) {
        if (meta_design_row(&m->design, s, meta + (size_t)i * s->n_cols, labels[i], x)) {
            char what[512];
            describe_bad_value(&m->design, s, meta + (size_t)i * s->n_cols, labels[i], what, sizeof what);
            free(XtX); free(x);
            return df_err(err, "layer %s (mdn): a training sample has %s", L->name, what);
        }
        mdn_accumulate_xtx(XtX, x, 1, k);
    }
    XtX[(size_t)k * k] = n_local;
    reduce_sum_f64(L->ctx->reducer, XtX, (size_t)k * k + 1);  // every rank its share, one all-reduce
    m->n_train = XtX[(size_t)k * k];
    for (int a = 0; a < k; a++) XtX[a * k + a] += m->ridge;
    int bad = 0, rc = mdn_inverse_spd(m->K, XtX, k, &bad);
    free(XtX); free(x);
    if (rc) return fail_singular(L, bad, "training set", err);
    float *kernel = layer_state(L, 0);  // its float32 record, for the checkpoint
    for (int i = 0; i < k * k; i++) kernel[i] = (float)m->K[i];
    m->prepared = 1;
    return 0;
}

// The features the regression sees (B,d): the input, or with pool = channel its channel means.
static const float *regressed(Layer *L, int B) {
    MdnImpl *m = L->impl;
    if (m->V == 1) return L->in;
    for (size_t r = 0; r < (size_t)B * m->d; r++) {
        const float *f = L->in + r * m->V;
        double sum = 0.0;
        for (int v = 0; v < m->V; v++) sum += f[v];
        m->pooled[r] = (float)(sum / m->V);
    }
    return m->pooled;
}

// out = in - X_S beta_S, beta (k,d) broadcast over the V positions of a channel when pooled.
static void residual(Layer *L, int B) {
    MdnImpl *m = L->impl;
    if (m->V == 1) {
        mdn_forward_eval(L->out, L->in, m->X, m->beta, m->design.removed, B, m->k, m->d);
        return;
    }
    for (int i = 0; i < B; i++)
        for (int c = 0; c < m->d; c++) {
            double shift = 0.0;
            for (int a = 0; a < m->k; a++)
                if (m->design.removed[a]) shift += m->X[i * m->k + a] * m->beta[(size_t)a * m->d + c];
            size_t at = ((size_t)i * m->d + c) * m->V;
            for (int v = 0; v < m->V; v++) L->out[at + v] = (float)(L->in[at + v] - shift);
        }
}

// R-MDN's training step: X^T X and X^T F of the global batch (one all-reduce), the recursive
// update of P and beta from their float32 state, written back as float32 -- so a run resumed
// from a checkpoint continues from exactly the values a straight run has -- and the residual
// with the new beta as stored.
static void rls_forward(Layer *L, int B) {
    MdnImpl *m = L->impl;
    int k = m->k, d = m->d;
    size_t kk = (size_t)k * k, kd = (size_t)k * d;
    double *sums = xcalloc(kk + kd, sizeof(double)), *P = xmalloc(kk * sizeof(double));
    mdn_accumulate_xtx(sums, m->X, B, k);
    double *XtF = sums + kk;
    accumulate_xtf(XtF, m->X, regressed(L, B), B, k, d);
    reduce_sum_f64(L->ctx->reducer, sums, kk + kd);
    float *Ps = layer_state(L, 0), *bs = layer_state(L, 1);
    for (size_t i = 0; i < kk; i++) P[i] = Ps[i];
    for (size_t i = 0; i < kd; i++) m->beta[i] = bs[i];
    if (mdn_rls_step(P, m->beta, sums, XtF, k, d, m->forgetting, m->ridge))
        df_die_shared(DF_EXIT_FAIL, "layer %s (mdn, kernel = recursive): P is no longer positive definite (raise ridge)", L->name);
    for (size_t i = 0; i < kk; i++) Ps[i] = (float)P[i];
    for (size_t i = 0; i < kd; i++) m->beta[i] = bs[i] = (float)m->beta[i];
    free(sums);
    free(P);
    residual(L, B);
}

// PMDN's training step: the penalty's gradient from X^T X and X^T F of the global batch (one
// all-reduce), one Adam step (PyTorch's rule, nn/optim.c) on beta and its moments in the
// state, then the residual with the new beta.
static void penalty_forward(Layer *L, int B) {
    MdnImpl *m = L->impl;
    int k = m->k, d = m->d;
    size_t kk = (size_t)k * k, kd = (size_t)k * d;
    double *sums = xcalloc(kk + kd + 1, sizeof(double)), *grad = xmalloc(kd * sizeof(double));
    mdn_accumulate_xtx(sums, m->X, B, k);
    accumulate_xtf(sums + kk, m->X, regressed(L, B), B, k, d);
    sums[kk + kd] = B;
    reduce_sum_f64(L->ctx->reducer, sums, kk + kd + 1);
    float *beta = layer_state(L, 1), *step = layer_state(L, 4);
    for (size_t i = 0; i < kd; i++) m->beta[i] = beta[i];
    mdn_penalty_grad(grad, m->beta, sums, sums + kk, sums[kk + kd], k, d);
    float *g = df_alloc_floats(kd);
    for (size_t i = 0; i < kd; i++) g[i] = (float)grad[i];
    Optimizer o = { .cfg = { .kind = OPT_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 }, .n = kd,
                    .m = layer_state(L, 2), .v = layer_state(L, 3), .step = (long)step[0] };
    if (sums[kk + kd] > 0) {
        optim_step(&o, beta, g, m->lr);
        step[0] = (float)o.step;
    }
    for (size_t i = 0; i < kd; i++) m->beta[i] = beta[i];
    free(sums); free(grad); free(g);
    residual(L, B);
}

// In the refit pass `mode` (run/refit.h), a layer refitting its evaluation beta from that
// pass adds this rank's share of X^T X and X^T F.
static void add_refit_sums(Layer *L, int B, int mode) {
    MdnImpl *m = L->impl;
    if (m->eval_epoch != mode) return;
    mdn_accumulate_xtx(m->sums, m->X, B, m->k);
    accumulate_xtf(m->sums + (size_t)m->k * m->k, m->X, regressed(L, B), B, m->k, m->d);
}

static void mdn_fwd(Layer *L, const Batch *batch, int training) {
    const int B = batch->n;
    MdnImpl *m = L->impl;
    int k = m->k, d = m->d;
    fill_design(L, batch);
    float *running = layer_state(L, 1);
    m->trained = training;
    if (!training) {
        for (size_t i = 0; i < (size_t)k * d; i++) m->beta[i] = running[i];
        if (L->ctx->refitting == REFIT_EVALUATION) add_refit_sums(L, B, REFIT_EVALUATION);
        residual(L, B);
        return;
    }
    if ((m->recursive || m->penalty) && L->ctx->refitting) {  // another layer's refit pass: the estimate stays
        for (size_t i = 0; i < (size_t)k * d; i++) m->beta[i] = running[i];
        residual(L, B);
        return;
    }
    if (m->recursive) {
        rls_forward(L, B);
        return;
    }
    if (m->penalty) {
        penalty_forward(L, B);
        return;
    }
    if (L->ctx->refitting == REFIT_TRAINING) add_refit_sums(L, B, REFIT_TRAINING);
    const float *F = regressed(L, B);
    if (!m->prepared && !m->batch_kernel)
        df_die(DF_EXIT_FAIL, "layer %s (mdn): the dataset kernel was not fitted before training", L->name);
    if (m->batch_kernel) {  // K = pinv(X_B^T X_B + ridge I) over the global batch
        double *XtX = xcalloc((size_t)k * k, sizeof(double));
        mdn_accumulate_xtx(XtX, m->X, B, k);
        reduce_sum_f64(L->ctx->reducer, XtX, (size_t)k * k);
        for (int a = 0; a < k; a++) XtX[a * k + a] += m->ridge;
        mdn_pinv_sym(m->K, XtX, k);
        free(XtX);
    }
    // Dataset kernel: m->K is prepare's double inverse. The "kernel" state tensor is only its
    // float32 record for the checkpoint; reading K back from it would cost about 1e-5 relative
    // accuracy in the residuals whenever the design is not well conditioned (age next to an
    // intercept is enough).
    m->scale = mdn_forward_train(m->V == 1 ? L->out : m->scratch, m->beta, F, m->X, m->K, m->design.removed, B, k, d,
                                 m->batch_kernel ? 0.0 : m->n_train, L->ctx->reducer);
    if (m->V > 1) residual(L, B);
    if (m->scale > 0)
        for (size_t i = 0; i < (size_t)k * d; i++)
            running[i] = (float)((1.0 - m->momentum) * running[i] + m->momentum * m->beta[i]);
}

// pool = channel: out = f - x_S beta_S(fbar) with fbar the channel means, so with gsum (B,C)
// the gradient summed over each channel's positions, dL/df = g + c / V where c (B,C) is
// what mdn_backward subtracts for the features fbar and the gradient gsum: c = -X M^T H,
// H = sum over the global batch of x_S^T gsum (its one all-reduce).
static void pooled_backward(Layer *L, float *dinp, int B) {
    MdnImpl *m = L->impl;
    for (size_t r = 0; r < (size_t)B * m->d; r++) {
        const float *g = L->dout + r * m->V;
        double sum = 0.0;
        for (int v = 0; v < m->V; v++) sum += g[v];
        m->pooled[r] = (float)sum;
        m->scratch[r] = 0.0f;
    }
    mdn_backward(m->scratch, m->pooled, m->X, m->K, m->design.removed, B, m->k, m->d, m->scale, L->ctx->reducer);
    if (!dinp) return;  // the reduction above is collective: every rank joined it
    for (size_t r = 0; r < (size_t)B * m->d; r++) {
        float c = (float)(((double)m->scratch[r] - m->pooled[r]) / m->V);
        float *di = dinp + r * m->V;
        const float *g = L->dout + r * m->V;
        for (int v = 0; v < m->V; v++) di[v] += g[v] + c;
    }
}

static void mdn_bwd(Layer *L, const Batch *batch) {
    const int B = batch->n;
    MdnImpl *m = L->impl;
    // Even without a din (MDN as first layer) the reduction is collective: every rank joins.
    float *dinp = L->din;
    if (!m->trained || m->recursive || m->penalty) {  // eval mode, or R-MDN: beta is a constant to the
        // network, so out = inp - const (no reduction on any rank: every rank runs the same mode)
        if (dinp)
            for (size_t i = 0; i < (size_t)B * m->d * m->V; i++) dinp[i] += L->dout[i];
        return;
    }
    if (m->V > 1) {  // pooled: see pooled_backward
        pooled_backward(L, dinp, B);
        return;
    }
    float *scratch = NULL;
    if (!dinp) dinp = scratch = df_alloc_floats((size_t)B * m->d);
    mdn_backward(dinp, L->dout, m->X, m->K, m->design.removed, B, m->k, m->d, m->scale, L->ctx->reducer);
    free(scratch);
}

// eval_beta = epoch (epoch_eval): the least-squares beta of the features on the design over
// the whole training split, as its training-mode (evaluation-mode) forward saw them in the
// refit pass (run/refit.h), is the evaluation beta -- instead of a momentum average of
// per-batch betas, which trails the features as they change and carries the batches' noise
// (docs/mdn.md).
static int mdn_refit(Layer *L, int pass) {
    MdnImpl *m = L->impl;
    if (!m->eval_epoch) return 0;
    size_t kk = (size_t)m->k * m->k, kd = (size_t)m->k * m->d;
    if (!pass) {
        memset(m->sums, 0, (kk + kd) * sizeof(double));
        return m->eval_epoch;  // REFIT_TRAINING or REFIT_EVALUATION
    }
    if (pass != m->eval_epoch) return 0;
    reduce_sum_f64(L->ctx->reducer, m->sums, kk + kd);
    double *K = xmalloc(kk * sizeof(double));
    for (int a = 0; a < m->k; a++) m->sums[a * m->k + a] += m->ridge;
    mdn_pinv_sym(K, m->sums, m->k);  // a level absent from the whole split gets coefficient 0
    float *running = layer_state(L, 1);
    const double *XtF = m->sums + kk;
    double *row = xmalloc((size_t)m->d * sizeof(double));
    for (int a = 0; a < m->k; a++) {  // beta row a = sum over b of K[a][b] (X^T F) row b
        memset(row, 0, (size_t)m->d * sizeof(double));
        for (int b = 0; b < m->k; b++) {
            double w = K[a * m->k + b];
            const double *g = XtF + (size_t)b * m->d;
            for (int j = 0; j < m->d; j++) row[j] += w * g[j];
        }
        for (int j = 0; j < m->d; j++) running[(size_t)a * m->d + j] = (float)row[j];
    }
    free(row);
    free(K);
    return 1;
}

static void mdn_destroy(Layer *L) {
    MdnImpl *m = L->impl;
    if (m) { free(m->K); free(m->beta); free(m->X); free(m->sums); free(m->pooled); free(m->scratch); }
    free(m);
    L->impl = NULL;
}

static void mdn_signature(const Layer *L, char *buf, size_t n) {
    const MdnImpl *m = L->impl;
    meta_design_describe(&m->design, buf, n);
}

const LayerOps mdn_ops = { "mdn", mdn_build, mdn_init, mdn_fwd, mdn_bwd, mdn_destroy, mdn_prepare, mdn_signature,
                           .batch_statistics = 1, .refit = mdn_refit };
