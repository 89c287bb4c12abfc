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
#endif
