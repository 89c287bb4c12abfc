// threads.c: see threads.h.
#include "base/threads.h"
#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int g_threads = 1;

void df_threads_set(int n) {
    if (n < 1) n = 1;
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

int df_threads(void) {
#ifdef _OPENMP
    return g_threads;
#else
    return 1;
#endif
}

int df_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int df_blas_serial_begin(void) {
    int previous = openblas_get_num_threads();
    if (previous != 1) openblas_set_num_threads(1);
    return previous;
}

void df_blas_serial_end(int previous) {
    if (previous != 1) openblas_set_num_threads(previous);
}

void df_zero_floats(float *x, size_t n) {
    const size_t block = 1 << 16;  // 256 KB per piece
    const long pieces = (long)((n + block - 1) / block);
#pragma omp parallel for num_threads(df_threads()) schedule(static) if (pieces > 4)
    for (long k = 0; k < pieces; k++) {
        size_t lo = (size_t)k * block, len = n - lo < block ? n - lo : block;
        memset(x + lo, 0, len * sizeof(float));
    }
}
