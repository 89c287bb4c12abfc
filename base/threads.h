// threads.h: the threads of one rank. A rank computes with `df_threads()` threads: OpenMP
// threads for this project's own kernels (vol2col, BatchNorm, ReLU, pooling, and the
// convolution's per-sample GEMMs), and OpenBLAS's threads for a large GEMM called outside
// them. Both counts are set together, once per rank (mpi/comm.h: dist_set_blas_threads
// divides a node's cores among its ranks), so ranks and threads never oversubscribe cores.
//
// Why not let OpenBLAS thread every GEMM: the convolutions' GEMMs are thin (16..64 output
// channels) and run one after another with vol2col between them; OpenBLAS's threads split
// each small GEMM, synchronise after it, and sit idle during vol2col -- two threads were
// slower than one (docs/performance.md, 2026-11-22). Giving each thread whole samples, each
// with its own column buffer and a single-threaded GEMM, keeps both cores busy.
//
// Built without OpenMP (./configure --disable-openmp) everything runs on one thread and
// OpenBLAS keeps its own threading.
#ifndef DF_THREADS_H
#define DF_THREADS_H
#include <stddef.h>

// Sets this rank's compute threads: OpenMP's team size and OpenBLAS's thread count. n >= 1.
void df_threads_set(int n);
// This rank's compute threads (1 until df_threads_set).
int df_threads(void);
// The calling thread's number in the current parallel region (0 outside one).
int df_thread_id(void);

// x[0 .. n) = 0, split over the rank's threads when large (a serial memset of a layer's
// gradient buffer would leave the other threads idle).
void df_zero_floats(float *x, size_t n);

// OpenBLAS runs single-threaded until df_blas_serial_end(previous): for a parallel region
// whose threads each call BLAS (a GEMM inside a thread must not fork threads of its own), and
// for the whole of a network's forward and backward (nn/net.c). Returns the count to restore;
// nests (an inner begin returns 1). Call outside parallel regions.
int df_blas_serial_begin(void);
void df_blas_serial_end(int previous);
#endif
