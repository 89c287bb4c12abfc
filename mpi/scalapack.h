// scalapack.h: ScaLAPACK (and its BLACS process grid) behind plain C functions, for the
// voxel-wise least squares of prep/residualize.c. No MPI types cross this header.
//
// A distributed matrix is block-cyclic over a nprow x npcol grid of every rank: global row i
// lives on process row (i / mb) % nprow, global column j on process column (j / nb) % npcol,
// and each rank stores its pieces column-major in one local array (leading dimension lld =
// its local row count), as ScaLAPACK wants. Every function here is collective over the grid
// (every rank calls it, in the same order) unless it says otherwise.
#ifndef DF_SCALAPACK_H
#define DF_SCALAPACK_H
#include "base/common.h"

typedef struct {
    int ctxt;              // BLACS context
    int nprow, npcol;      // grid shape; ranks are placed row by row
    int myrow, mycol;      // this rank's place
} DistGrid;

typedef struct {
    int desc[9];           // ScaLAPACK array descriptor
    int m, n, mb, nb;      // global shape and block shape
    int mloc, nloc;        // this rank's local shape (local array is mloc x nloc, column-major)
    int lld;               // local leading dimension (max(1, mloc))
} DistMat;

// A grid of nprow x npcol = every rank. -1 with err when the shape does not use every rank.
int dist_grid_create(DistGrid *g, int nprow, int npcol, DfError *err);
void dist_grid_free(DistGrid *g);
// Describes an m x n matrix with mb x nb blocks on g (not collective; no allocation).
void dist_mat_init(DistMat *a, const DistGrid *g, int m, int n, int mb, int nb);
// Global row of local row il (not collective); likewise columns.
long dist_row_global(const DistMat *a, const DistGrid *g, int il);
long dist_col_global(const DistMat *a, const DistGrid *g, int jl);

// QR factorisation of a (m x n, m >= n) in place (PDGEQRF): R above the diagonal, the
// Householder vectors below, their scalars in tau (nloc entries). -1 with err on failure.
int dist_qr(double *a, const DistMat *A, double *tau, DfError *err);
// The explicit m x n Q of dist_qr's factorisation, in place of a (PDORGQR); copy R out first.
int dist_form_q(double *a, const DistMat *A, const double *tau, DfError *err);
// b := a^T y (PDGEMM): a is m x k, y m x n, b k x n.
void dist_product_tn(double *b, const DistMat *B, const double *a, const DistMat *A, const double *y, const DistMat *Y);
// Rows 0..k-1 of b := R^{-1} rows 0..k-1 of b (PDTRSM), R the upper triangle of r's first k
// rows and columns: the least-squares coefficients once b = Q^T y.
void dist_solve_r(double *b, const DistMat *B, const double *r, const DistMat *R, int k);
// y := y - x * (rows 0..k-1 of b) (PDGEMM): x is m x k, b has k or more rows.
void dist_sub_product(double *y, const DistMat *Y, const double *x, const DistMat *X, const double *b,
                      const DistMat *B, int k);
#endif
