// scalapack.c: the BLACS grid over MPI_COMM_WORLD and the few ScaLAPACK/PBLAS routines the
// voxel-wise regression needs. Debian ships no C header for ScaLAPACK, so the Fortran entry
// points are declared here (arguments by reference; the trailing size_t are the hidden
// CHARACTER lengths gfortran passes, harmless for the PBLAS routines written in C).
#include <mpi.h>
#include <stdlib.h>
#include "mpi/comm.h"
#include "mpi/scalapack.h"

int Csys2blacs_handle(MPI_Comm comm);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ctxt, const int *lld, int *info);
void pdgeqrf_(const int *m, const int *n, double *a, const int *ia, const int *ja, const int *desca, double *tau,
              double *work, const int *lwork, int *info);
void pdorgqr_(const int *m, const int *n, const int *k, double *a, const int *ia, const int *ja, const int *desca,
              const double *tau, double *work, const int *lwork, int *info);
void pdtrsm_(const char *side, const char *uplo, const char *transa, const char *diag, const int *m, const int *n,
             const double *alpha, const double *a, const int *ia, const int *ja, const int *desca, double *b,
             const int *ib, const int *jb, const int *descb, size_t, size_t, size_t, size_t);
void pdgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const double *alpha,
             const double *a, const int *ia, const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c, const int *ic, const int *jc,
             const int *descc, size_t, size_t);

static const int ONE = 1, ZERO = 0;

int dist_grid_create(DistGrid *g, int nprow, int npcol, DfError *err) {
    int size = dist_size();
    if (nprow < 1 || npcol < 1 || nprow * npcol != size)
        return df_err(err, "a %dx%d process grid does not use the %d ranks", nprow, npcol, size);
    int sys = Csys2blacs_handle(MPI_COMM_WORLD);
    g->ctxt = sys;
    Cblacs_gridinit(&g->ctxt, "Row", nprow, npcol);
    Cblacs_gridinfo(g->ctxt, &g->nprow, &g->npcol, &g->myrow, &g->mycol);
    if (g->nprow != nprow || g->npcol != npcol || g->myrow < 0)
        return df_err(err, "BLACS could not set up a %dx%d process grid", nprow, npcol);
    return 0;
}

void dist_grid_free(DistGrid *g) {
    if (g->myrow >= 0) Cblacs_gridexit(g->ctxt);
    g->myrow = g->mycol = -1;
}

void dist_mat_init(DistMat *a, const DistGrid *g, int m, int n, int mb, int nb) {
    a->m = m;
    a->n = n;
    a->mb = mb;
    a->nb = nb;
    a->mloc = numroc_(&m, &mb, &g->myrow, &ZERO, &g->nprow);
    a->nloc = numroc_(&n, &nb, &g->mycol, &ZERO, &g->npcol);
    a->lld = a->mloc > 1 ? a->mloc : 1;
    int info = 0;
    descinit_(a->desc, &m, &n, &mb, &nb, &ZERO, &ZERO, &g->ctxt, &a->lld, &info);
    DF_ASSERT(info == 0);  // only a programming error (bad block sizes) makes descinit fail
}

long dist_row_global(const DistMat *a, const DistGrid *g, int il) {
    return (long)(il / a->mb) * a->mb * g->nprow + (long)g->myrow * a->mb + il % a->mb;
}

long dist_col_global(const DistMat *a, const DistGrid *g, int jl) {
    return (long)(jl / a->nb) * a->nb * g->npcol + (long)g->mycol * a->nb + jl % a->nb;
}

// ScaLAPACK's workspace query (lwork = -1), then the call.
int dist_qr(double *a, const DistMat *A, double *tau, DfError *err) {
    int info = 0, lwork = -1;
    double q;
    pdgeqrf_(&A->m, &A->n, a, &ONE, &ONE, A->desc, tau, &q, &lwork, &info);
    lwork = (int)q + 1;
    double *work = xmalloc(sizeof(double) * (size_t)lwork);
    pdgeqrf_(&A->m, &A->n, a, &ONE, &ONE, A->desc, tau, work, &lwork, &info);
    free(work);
    return info ? df_err(err, "PDGEQRF failed (info %d)", info) : 0;
}

int dist_form_q(double *a, const DistMat *A, const double *tau, DfError *err) {
    int info = 0, lwork = -1;
    double q;
    pdorgqr_(&A->m, &A->n, &A->n, a, &ONE, &ONE, A->desc, tau, &q, &lwork, &info);
    lwork = (int)q + 1;
    double *work = xmalloc(sizeof(double) * (size_t)lwork);
    pdorgqr_(&A->m, &A->n, &A->n, a, &ONE, &ONE, A->desc, tau, work, &lwork, &info);
    free(work);
    return info ? df_err(err, "PDORGQR failed (info %d)", info) : 0;
}

void dist_product_tn(double *b, const DistMat *B, const double *a, const DistMat *A, const double *y, const DistMat *Y) {
    const double one = 1.0, zero = 0.0;
    pdgemm_("T", "N", &A->n, &Y->n, &A->m, &one, a, &ONE, &ONE, A->desc, y, &ONE, &ONE, Y->desc, &zero, b, &ONE, &ONE,
            B->desc, 1, 1);
}

void dist_solve_r(double *b, const DistMat *B, const double *r, const DistMat *R, int k) {
    const double one = 1.0;
    pdtrsm_("L", "U", "N", "N", &k, &B->n, &one, r, &ONE, &ONE, R->desc, b, &ONE, &ONE, B->desc, 1, 1, 1, 1);
}

void dist_sub_product(double *y, const DistMat *Y, const double *x, const DistMat *X, const double *b,
                      const DistMat *B, int k) {
    const double minus = -1.0, one = 1.0;
    pdgemm_("N", "N", &Y->m, &Y->n, &k, &minus, x, &ONE, &ONE, X->desc, b, &ONE, &ONE, B->desc, &one, y, &ONE, &ONE,
            Y->desc, 1, 1);
}
