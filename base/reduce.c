// reduce.c: the one-rank reducer (identity). mpi/comm.c provides the MPI one.
#include "base/reduce.h"
#include <string.h>

Reducer reducer_local = { NULL, NULL, 1, NULL };

void reduce_gather_f64(Reducer *r, double *global, size_t n_global, const double *local, size_t offset, size_t n_local) {
    memset(global, 0, n_global * sizeof(double));
    if (n_local) memcpy(global + offset, local, n_local * sizeof(double));
    reduce_sum_f64(r, global, n_global);
}

void reduce_gather_f32(Reducer *r, float *global, size_t n_global, const float *local, size_t offset, size_t n_local) {
    memset(global, 0, n_global * sizeof(float));
    if (n_local) memcpy(global + offset, local, n_local * sizeof(float));
    reduce_sum_f32(r, global, n_global);
}
