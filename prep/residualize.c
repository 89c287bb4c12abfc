// residualize.c: voxel-wise confound regression on ScaLAPACK (see residualize.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "mpi/comm.h"
#include "mpi/scalapack.h"
#include "prep/design.h"
#include "prep/outputs.h"
#include "prep/residualize.h"

// ---- the plan: grid, blocks, chunks ------------------------------------------------------------

typedef struct {
    int nprow, npcol, mb;
    long chunk;            // voxel columns per chunk
    double bytes;          // per rank
} Plan;

// Rows of n a rank holds at most on an nprow-row grid with blocks of mb (whole blocks, dealt
// out cyclically).
static long rows_at_most(long n, int nprow, int mb) { return ((n + mb - 1) / mb + nprow - 1) / nprow * mb; }

// The row block: --block, else 64 subjects or fewer, so that every process row gets some.
static int row_block(const ResidualizeOptions *o, long n, int nprow) {
    long even = (n + nprow - 1) / nprow;
    return o->block ? o->block : (int)(even < 64 ? (even > 0 ? even : 1) : 64);
}

// Bytes per local voxel column on an nprow-row grid: the rank's training rows, the largest
// held-out set's rows, the k coefficients.
static double bytes_per_column(const ResidualizeOptions *o, long n, long n_apply_max, int k, int nprow) {
    int mb = row_block(o, n, nprow);
    return 8.0 * (double)(rows_at_most(n, nprow, mb) + (n_apply_max ? rows_at_most(n_apply_max, nprow, mb) : 0) + k);
}

// Row blocks of mb subjects; each chunk's voxel columns split into one block per process
// column (nb = chunk / npcol), so a rank reads one contiguous span per subject and chunk.
// The grid is 1 x P when a rank can hold at least MIN_COLUMNS voxel columns of all the
// subjects: the design has only k columns, so Q (n x k) is cheap to broadcast along a process
// row, while a process column of several rows has to sum k x nb partial products of Q^T Y
// for every block. Otherwise (many subjects, little memory) the fewest process rows that
// give a rank MIN_COLUMNS columns. --grid overrides.
#define MIN_COLUMNS 256
static int plan_make(Plan *p, const ResidualizeOptions *o, long n, long n_apply_max, long m, int k, DfError *err) {
    int P = dist_size();
    p->nprow = o->nprow;
    for (int r = 1; !p->nprow && r <= P; r++)
        if (P % r == 0 && (r == P || o->memory_mb * 1048576.0 / bytes_per_column(o, n, n_apply_max, k, r) >= MIN_COLUMNS))
            p->nprow = r;
    p->npcol = o->npcol ? o->npcol : P / p->nprow;
    if (p->nprow * p->npcol != P)
        return df_err(err, "residualize: --grid %dx%d does not use the %d ranks", p->nprow, p->npcol, P);
    p->mb = row_block(o, n, p->nprow);
    double per_col = bytes_per_column(o, n, n_apply_max, k, p->nprow);
    long cols_loc = (long)(o->memory_mb * 1048576.0 / per_col);
    if (cols_loc < 1)
        return df_err(err, "residualize: --memory %.4g MB per rank cannot hold one voxel column of %ld subjects "
                      "(%.1f MB needed): raise --memory or use more ranks", o->memory_mb, n + n_apply_max,
                      per_col / 1048576.0);
    p->chunk = cols_loc * p->npcol;
    if (p->chunk > m) p->chunk = m;
    long chunks = (m + p->chunk - 1) / p->chunk;
    p->chunk = (m + chunks - 1) / chunks;  // as many chunks, of even widths (not one full and a sliver)
    p->bytes = per_col * (double)((p->chunk + p->npcol - 1) / p->npcol);
    return 0;
}

// ---- distributed blocks ------------------------------------------------------------------

// The replicated design rows x [n, k] into this rank's blocks of the distributed X.
static void scatter_design(double *xl, const DistMat *X, const DistGrid *g, const double *x, int k) {
    for (int jl = 0; jl < X->nloc; jl++)
        for (int il = 0; il < X->mloc; il++)
            xl[il + (size_t)jl * X->lld] = x[(size_t)dist_row_global(X, g, il) * k + dist_col_global(X, g, jl)];
}

// This rank's columns of the chunk starting at voxel column c0: [*j0, *j1) in the matrix's
// global columns (one block per process column).
static void my_columns(const DistMat *Y, const DistGrid *g, long c0, long *j0, long *j1) {
    *j0 = c0 + (Y->nloc ? dist_col_global(Y, g, 0) : 0);
    *j1 = *j0 + Y->nloc;
}

// Rows go through a row-major buffer of ROWS rows: one contiguous read (or write) per row,
// then a blocked transpose into ScaLAPACK's column-major block, so that each cache line
// written holds several rows of one column instead of one value.
#define ROWS 32

// block[il0 + r + j * ld] = rows[r * w + j] for r < nr, j < w (to_rows: the other way), in
// square tiles of 8 rows x 8 columns: 8 cache lines read and 8 written per tile, each whole.
static void transpose_rows(double *restrict block, int ld, double *restrict rows, int il0, int nr, long w, int to_rows) {
    for (int r0 = 0; r0 < nr; r0 += 8) {
        int r1 = r0 + 8 < nr ? r0 + 8 : nr;
        for (long j0 = 0; j0 < w; j0 += 8) {
            long j1 = j0 + 8 < w ? j0 + 8 : w;
            if (to_rows) {
                for (int r = r0; r < r1; r++)
                    for (long j = j0; j < j1; j++) rows[(size_t)r * w + j] = block[il0 + r + (size_t)j * ld];
            } else {
                for (long j = j0; j < j1; j++)
                    for (int r = r0; r < r1; r++) block[il0 + r + (size_t)j * ld] = rows[(size_t)r * w + j];
            }
        }
    }
}

static int read_block(double *yl, const DistMat *Y, const DistGrid *g, ShardRows *rows, const VoxelSet *vs, long c0,
                      DfError *err) {
    long j0, j1;
    my_columns(Y, g, c0, &j0, &j1);
    long w = j1 - j0;
    double *buf = xmalloc(sizeof(double) * (size_t)(ROWS * w + 1));
    int rc = 0;
    for (int il0 = 0; il0 < Y->mloc && !rc && w > 0; il0 += ROWS) {
        int nr = Y->mloc - il0 < ROWS ? Y->mloc - il0 : ROWS;
        for (int r = 0; r < nr && !rc; r++) rc = shard_rows_read(rows, vs, dist_row_global(Y, g, il0 + r), j0, j1, buf + (size_t)r * w, err);
        if (!rc) transpose_rows(yl, Y->lld, buf, il0, nr, w, 0);
    }
    free(buf);
    return rc;
}

static int write_block(ShardOut *out, double *yl, const DistMat *Y, const DistGrid *g, const VoxelSet *vs, long c0,
                       DfError *err) {
    long j0, j1;
    my_columns(Y, g, c0, &j0, &j1);
    long w = j1 - j0;
    double *buf = xmalloc(sizeof(double) * (size_t)(ROWS * w + 1));
    int rc = 0;
    for (int il0 = 0; il0 < Y->mloc && !rc && w > 0; il0 += ROWS) {
        int nr = Y->mloc - il0 < ROWS ? Y->mloc - il0 : ROWS;
        transpose_rows(yl, Y->lld, buf, il0, nr, w, 1);
        for (int r = 0; r < nr && !rc; r++)
            rc = shard_out_put(out, vs, dist_row_global(Y, g, il0 + r), j0, j1, buf + (size_t)r * w, err);
    }
    free(buf);
    return rc;
}

// ---- the job ---------------------------------------------------------------------------

typedef struct {
    ShardRows rows;
    double *x;          // [n, k] design rows, confounder columns centred, the rest zero (X~)
    DistMat Xd, Yd;
    double *xl, *yl;
} Set;

// X~: what is subtracted is the confounders' deviation from their training means.
static void centre_confounders(double *x, long n, const MetaDesign *md, const double *mean) {
    for (long i = 0; i < n; i++)
        for (int c = 0; c < md->k; c++) {
            double *v = x + (size_t)i * md->k + c;
            *v = md->removed[c] && md->source[c] != -2 ? *v - mean[c] : 0.0;
        }
}

static void set_free(Set *s) {
    shard_rows_close(&s->rows);
    free(s->x);
    free(s->xl);
    free(s->yl);
}

typedef struct {
    const ResidualizeOptions *o;
    ResidualizeReport *rep;
    PrepDesign d;
    VoxelSet vs;
    Set *sets;          // [0] training, then the held-out sets
    ShardOut *outs;     // their outputs
    int n_sets;
    DistGrid g;
    Plan plan;
    DistMat A;          // X, factorised
    double *ql, *rl, *tau;  // its Q and R (local blocks), and the reflectors' scalars
    DistMat B;          // the chunk's coefficients b (k x chunk)
    double *bl;
} Job;

// Every input header, the design (training) and its rows (every set), the voxels.
static int open_inputs(Job *j, DfError *err) {
    const ResidualizeOptions *o = j->o;
    j->n_sets = 1 + o->n_apply;
    j->sets = xcalloc((size_t)j->n_sets, sizeof(Set));
    for (int s = 0; s < j->n_sets; s++)
        if (shard_rows_open(&j->sets[s].rows, s ? o->apply[s - 1] : o->train, err)) return -1;
    for (int s = 1; s < j->n_sets; s++) {
        Shape a = j->sets[0].rows.shape, b = j->sets[s].rows.shape;
        if (a.c != b.c || a.d != b.d || a.h != b.h || a.w != b.w)
            return df_err(err, "%s: samples are %dx%dx%dx%d, the training shards' %dx%dx%dx%d", o->apply[s - 1], b.c, b.d,
                          b.h, b.w, a.c, a.d, a.h, a.w);
    }
    if (prep_design_build(&j->d, &j->sets[0].rows, o->keep, o->remove, "residualize", err)) return -1;
    int k = j->d.design.k;
    if (j->d.n <= k)
        return df_err(err, "residualize: %ld training subjects for %d design columns: need more subjects than columns",
                      j->d.n, k);
    double mean[MDN_MAX_COLS] = { 0 };
    for (long i = 0; i < j->d.n; i++)
        for (int c = 0; c < k; c++) mean[c] += j->d.x[(size_t)i * k + c] / (double)j->d.n;
    for (int s = 0; s < j->n_sets; s++) {
        Set *S = &j->sets[s];
        S->x = xmalloc(sizeof(double) * (size_t)S->rows.n * (size_t)k);
        if (s == 0) memcpy(S->x, j->d.x, sizeof(double) * (size_t)S->rows.n * (size_t)k);
        else if (prep_design_rows(S->x, &j->d, &S->rows, err)) return -1;
        centre_confounders(S->x, S->rows.n, &j->d.design, mean);
    }
    Shape sh = j->sets[0].rows.shape;
    if (o->mask) return voxels_from_mask(&j->vs, o->mask, sh, err);
    voxels_all(&j->vs, sh);
    return 0;
}

// Output names (every set into --out, base names unique across sets); rank 0 creates them.
static int create_outputs(Job *j, DfError *err) {
    char what[1400];
    snprintf(what, sizeof what, "deconfound residualize: %s; fitted on %ld subjects of %s", j->rep->design, j->d.n,
             j->o->train);
    const ShardRows **rows = xcalloc((size_t)j->n_sets, sizeof *rows);
    for (int s = 0; s < j->n_sets; s++) rows[s] = &j->sets[s].rows;
    j->outs = xcalloc((size_t)j->n_sets, sizeof(ShardOut));
    int rc = prep_outputs_open(j->outs, rows, j->n_sets, j->o->out_dir, "residualize", what, err);
    free(rows);
    return rc;
}

// The design's QR, once: X = QR (n x k, one column block), R kept, Q formed explicitly, so
// that each chunk's b = R^-1 Q^T Y is one PDGEMM and one PDTRSM that leave Y as it is:
// applying the reflectors (PDORMQR) overwrites what they are applied to, which needed a copy
// of the chunk -- twice the memory -- to subtract X~ b from afterwards.
static int factor_design(Job *j, DfError *err) {
    int k = j->d.design.k;
    Set *T = &j->sets[0];
    dist_mat_init(&j->A, &j->g, (int)T->rows.n, k, j->plan.mb, k);
    size_t local = (size_t)j->A.lld * (size_t)(j->A.nloc > 0 ? j->A.nloc : 1);
    j->ql = xmalloc(sizeof(double) * local);
    j->rl = xmalloc(sizeof(double) * local);
    scatter_design(j->ql, &j->A, &j->g, j->d.x, k);
    j->tau = xmalloc(sizeof(double) * (size_t)(j->A.nloc > 0 ? j->A.nloc : 1));
    if (dist_qr(j->ql, &j->A, j->tau, err)) return -1;
    memcpy(j->rl, j->ql, sizeof(double) * local);
    return dist_form_q(j->ql, &j->A, j->tau, err);
}

// Matrices of chunk width w for every set (the last chunk may be narrower).
static void shape_chunk(Job *j, long w) {
    int k = j->d.design.k, nb = (int)((w + j->plan.npcol - 1) / j->plan.npcol);
    for (int s = 0; s < j->n_sets; s++) {
        Set *S = &j->sets[s];
        dist_mat_init(&S->Yd, &j->g, (int)S->rows.n, (int)w, j->plan.mb, nb);
        dist_mat_init(&S->Xd, &j->g, (int)S->rows.n, k, j->plan.mb, k);
    }
    dist_mat_init(&j->B, &j->g, k, (int)w, j->plan.mb, nb);
    j->rep->nb = nb;
}

// One chunk of voxel columns [c0, c0 + w): read, solve, subtract, write.
static int run_chunk(Job *j, long c0, long w, DfError *err) {
    int k = j->d.design.k, rc = 0;
    ResidualizeReport *rep = j->rep;
    shape_chunk(j, w);
    double t = df_now();
    for (int s = 0; s < j->n_sets && !rc; s++) rc = read_block(j->sets[s].yl, &j->sets[s].Yd, &j->g, &j->sets[s].rows, &j->vs, c0, err);
    if (dist_agree(rc, err)) return -1;
    rep->seconds_read += df_now() - t;
    t = df_now();
    Set *T = &j->sets[0];
    dist_product_tn(j->bl, &j->B, j->ql, &j->A, T->yl, &T->Yd);  // Q^T Y
    dist_solve_r(j->bl, &j->B, j->rl, &j->A, k);                  // b = R^-1 Q^T Y
    for (int s = 0; s < j->n_sets; s++) {
        Set *S = &j->sets[s];
        scatter_design(S->xl, &S->Xd, &j->g, S->x, k);
        dist_sub_product(S->yl, &S->Yd, S->xl, &S->Xd, j->bl, &j->B, k);
    }
    rep->seconds_solve += df_now() - t;
    t = df_now();
    for (int s = 0; s < j->n_sets && !rc; s++)
        rc = write_block(&j->outs[s], j->sets[s].yl, &j->sets[s].Yd, &j->g, &j->vs, c0, err);
    if (dist_agree(rc, err)) return -1;
    rep->seconds_write += df_now() - t;
    return 0;
}

static void allocate_blocks(Job *j) {
    shape_chunk(j, j->plan.chunk);  // the widest chunk sizes the buffers
    for (int s = 0; s < j->n_sets; s++) {
        Set *S = &j->sets[s];
        S->yl = df_alloc_large(sizeof(double) * ((size_t)S->Yd.lld * (size_t)S->Yd.nloc + 1));
        S->xl = xmalloc(sizeof(double) * ((size_t)S->Xd.lld * (size_t)(S->Xd.nloc > 0 ? S->Xd.nloc : 1)));
    }
    j->bl = xmalloc(sizeof(double) * ((size_t)j->B.lld * (size_t)j->B.nloc + 1));
}

static void print_plan(const Job *j) {
    const ResidualizeReport *r = j->rep;
    if (dist_rank() != 0) return;
    printf("residualize: %ld training subjects, %ld held-out, %ld voxels%s; design %s (%d columns)\n", r->n_train,
           r->n_apply, r->voxels, j->o->mask ? " (mask)" : "", r->design, r->k);
    printf("residualize: %dx%d process grid, blocks of %d subjects x %d voxels; %ld chunk%s of %ld voxels; "
           "%.1f MB of image blocks per rank (budget %.4g MB)\n", r->nprow, r->npcol, r->mb, r->nb, r->chunks,
           r->chunks == 1 ? "" : "s", r->chunk, r->bytes_per_rank / 1048576.0, j->o->memory_mb);
    fflush(stdout);
}

// "keep label=1; remove age, site=B, site=C; the training mean kept" (the intercept is in the
// fit but, unlike MDN's, not removed).
static void describe_design(char *buf, size_t n, const MetaDesign *md) {
    MetaDesign shown = *md;
    shown.k--;  // the intercept is last
    meta_design_describe(&shown, buf, n);
    size_t len = strlen(buf);
    snprintf(buf + len, n > len ? n - len : 0, "; each voxel's training mean kept");
}

static int run_job(Job *j, DfError *err) {
    const ResidualizeOptions *o = j->o;
    ResidualizeReport *rep = j->rep;
    if (open_inputs(j, err)) return -1;
    long n_apply = 0, n_apply_max = 0;
    for (int s = 1; s < j->n_sets; s++) {
        n_apply += j->sets[s].rows.n;
        if (j->sets[s].rows.n > n_apply_max) n_apply_max = j->sets[s].rows.n;
    }
    if (plan_make(&j->plan, o, j->d.n, n_apply_max, j->vs.m, j->d.design.k, err)) return -1;
    rep->n_train = j->d.n;
    rep->n_apply = n_apply;
    rep->voxels = j->vs.m;
    rep->k = j->d.design.k;
    describe_design(rep->design, sizeof rep->design, &j->d.design);
    rep->nprow = j->plan.nprow;
    rep->npcol = j->plan.npcol;
    rep->mb = j->plan.mb;
    rep->chunk = j->plan.chunk;
    rep->chunks = (j->vs.m + j->plan.chunk - 1) / j->plan.chunk;
    rep->bytes_per_rank = j->plan.bytes;
    if (dist_grid_create(&j->g, j->plan.nprow, j->plan.npcol, err)) return -1;
    allocate_blocks(j);
    print_plan(j);
    if (create_outputs(j, err)) return -1;
    if (dist_agree(factor_design(j, err), err)) return -1;
    progress_begin("residualize", "voxels", 0, (double)j->vs.m);  // every subject's, a chunk at a time
    for (long c0 = 0; c0 < j->vs.m; c0 += j->plan.chunk) {
        long w = DF_MIN(j->plan.chunk, j->vs.m - c0);
        if (run_chunk(j, c0, w, err)) return -1;
        progress_update((double)(c0 + w));
    }
    if (prep_outputs_commit(j->outs, j->n_sets, err)) return -1;
    progress_end();
    double n = (double)j->d.n, k = rep->k, m = (double)j->vs.m;
    rep->flops = m * (2 * n * k + k * k + 2 * (n + (double)n_apply) * k);
    return 0;
}

int residualize_run(const ResidualizeOptions *o, ResidualizeReport *rep, DfError *err) {
    Job j;
    memset(&j, 0, sizeof j);
    memset(rep, 0, sizeof *rep);
    j.o = o;
    j.rep = rep;
    j.g.myrow = -1;
    double t0 = df_now();
    int rc = run_job(&j, err);
    if (j.outs) prep_outputs_free(j.outs, j.n_sets, rc != 0);
    free(j.outs);
    for (int s = 0; s < j.n_sets; s++) set_free(&j.sets[s]);
    free(j.sets);
    free(j.ql);
    free(j.rl);
    free(j.tau);
    free(j.bl);
    if (j.g.myrow >= 0) dist_grid_free(&j.g);
    voxels_free(&j.vs);
    prep_design_free(&j.d);
    rep->seconds_total = df_now() - t0;
    return rc;
}
