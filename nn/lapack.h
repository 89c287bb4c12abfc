// lapack.h: the LAPACK routines this program calls, from OpenBLAS (which ships LAPACK; Debian's
// build has no LAPACKE C interface, so these are the Fortran entry points). Matrices are
// column-major; the trailing size_t arguments are the hidden lengths gfortran passes with
// each CHARACTER argument.
#ifndef DF_LAPACK_H
#define DF_LAPACK_H
#include <stddef.h>

// Eigenvalues (ascending, in w) and, with jobz = 'V', eigenvectors (columns of a) of a
// symmetric matrix.
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
            const int *lwork, int *info, size_t jobz_len, size_t uplo_len);
// Cholesky factorisation A = L L^T (uplo = 'L') in place; info > 0: the leading minor of that
// order is not positive definite.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
// Solves A X = B with dpotrf's factor; B (n, nrhs) is overwritten by X.
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda, double *b, const int *ldb,
             int *info, size_t uplo_len);
#endif
