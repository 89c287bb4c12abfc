// reduce.h: the one way a layer sees other ranks. A batch statistic is summed over the
// global batch by calling reduce_sum(); in a one-rank run it is the identity, and mpi/
// supplies the MPI all-reduce. Layers never call MPI themselves.
#ifndef DF_REDUCE_H
#define DF_REDUCE_H
#include <stddef.h>

typedef struct Reducer {
    // Sum buf[0..n) element-wise over all ranks, in place; every rank calls it in the same order.
    void (*sum_f64)(struct Reducer *r, double *buf, size_t n);
    void (*sum_f32)(struct Reducer *r, float *buf, size_t n);
    int nranks;
    void *impl;
} Reducer;

extern Reducer reducer_local;  // identity: one rank

static inline void reduce_sum_f64(Reducer *r, double *buf, size_t n) { if (r && r->sum_f64) r->sum_f64(r, buf, n); }
static inline void reduce_sum_f32(Reducer *r, float *buf, size_t n) { if (r && r->sum_f32) r->sum_f32(r, buf, n); }

// All-gather built on the sum: every rank places its n_local values at [offset, offset +
// n_local) of a zeroed global buffer (n_global) and the buffers are summed. Adding zeros is
// exact, so every rank gets every rank's values bit for bit, in global order -- a term that
// couples the samples of a global batch (EnD's pairs) computes the same numbers at any rank count.
void reduce_gather_f64(Reducer *r, double *global, size_t n_global, const double *local, size_t offset, size_t n_local);
void reduce_gather_f32(Reducer *r, float *global, size_t n_global, const float *local, size_t offset, size_t n_local);
#endif
