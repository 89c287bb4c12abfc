// comm.h: everything that talks MPI lives in mpi/. The rest of the program sees plain
// functions (no MPI types), and layers see only the Reducer from base/reduce.h.
// Every collective here must be called by every rank in the same order.
#ifndef DF_COMM_H
#define DF_COMM_H
#include <stddef.h>
#include <stdint.h>
#include "base/common.h"
#include "base/reduce.h"

// MPI_Init; installs the process hooks so df_die() ends every rank (MPI_Abort) and
// df_die_collective() finalises cleanly. Safe to call when started without mpirun.
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
int dist_local_size(void);   // ranks on this node
// The global-batch reducer handed to layers (identity when one rank).
Reducer *dist_reducer(void);

void dist_allreduce_sum_f32(float *buf, size_t n);
void dist_allreduce_sum_f64(double *buf, size_t n);
void dist_allreduce_max_f64(double *buf, size_t n);
void dist_bcast(void *buf, size_t bytes, int root);
// Collective: every rank's failure status rc (0: none) agreed. Returns 0 when no rank failed;
// else the status of the lowest failing rank, on every rank, with that rank's message in err
// -- so that every rank stops at the same point, before the next collective, and the
// message is printed once (df_die_collective). With one rank, rc itself.
int dist_agree(int rc, DfError *err);
// Rank 0 receives every rank's `count` floats concatenated in rank order into `all`
// (only rank 0's `all` is used); counts may differ per rank.
void dist_gather_f32(float *all, const float *mine, size_t count);
// The same for raw bytes (rank 0 gets every rank's `bytes` concatenated in rank order).
void dist_gather_bytes(void *all, const void *mine, size_t bytes);
// Every rank ends with every rank's rows of the (n_rows, width) float matrix `all`, in
// place: this rank has filled the row ranges [first[k], first[k] + count[k]), k < n_blocks
// (in increasing order; adjacent ranges are merged), and the other rows are overwritten
// with their owners' values. Each range goes out from its owner in one broadcast, straight
// between the matrices: no staging copy, so the matrix is the only full-size buffer. Ranges
// of different ranks must not overlap; rows no rank owns are left as they are.
void dist_share_rows_f32(float *all, size_t width, const long *first, const long *count, int n_blocks);
void dist_barrier(void);

// Compute threads for this rank (OpenMP's and OpenBLAS's alike, base/threads.h): `requested`
// if > 0, else OPENBLAS_NUM_THREADS if set, else cores on the node divided by the ranks on the
// node (at least 1), so ranks x threads never oversubscribes the cores.
// Returns the number set.
int dist_set_blas_threads(int requested);

// A one-line description for logs: "2 ranks (2 on this node), 1 BLAS thread each".
void dist_describe(char *buf, size_t n);
#endif
