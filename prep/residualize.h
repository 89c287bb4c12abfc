// residualize.h: voxel-wise confound regression on ScaLAPACK, the baseline from before MDN.
//
// Every voxel j is fitted over the training subjects: y_j = X b_j + e_j, X = [kept columns,
// confounders, 1] (prep/design.h). Every shard, training or not, is then rewritten as
//     out_ij = y_ij - sum over confounder columns c of (x_ic - mean_train(x_c)) b_cj
// with the training b: the confounders' part is removed, the kept columns' (the label's) part
// and each voxel's training mean stay, so the images keep their units and a network's input
// normalisation sees what it saw before. Without kept columns, the training output minus its
// voxel means is the least-squares residual e, orthogonal to the design.
//
// Distribution. The subjects x voxels matrix Y is block-cyclic over a nprow x npcol grid
// (mpi/scalapack.h), processed in chunks of voxel columns that fit the memory budget. X = QR
// once (PDGEQRF, Q formed by PDORGQR); per chunk b = R^{-1} Q^T Y (PDGEMM, PDTRSM), then
// Y -= X~ b (PDGEMM, X~ the centred confounder columns) for the training set and every
// held-out set. Each rank reads and writes only its own blocks (data/voxels.h).
#ifndef DF_RESIDUALIZE_H
#define DF_RESIDUALIZE_H
#include "base/common.h"

typedef struct {
    const char *train;        // comma-separated shards
    const char **apply;       // n_apply comma-separated shard lists
    int n_apply;
    const char *remove, *keep;
    const char *mask;         // NIfTI mask, or NULL for every voxel
    const char *out_dir;
    int nprow, npcol;         // 0, 0: chosen
    int block;                // row block (mb); 0: chosen
    double memory_mb;         // budget per rank for the image blocks
} ResidualizeOptions;

typedef struct {
    long n_train, n_apply, voxels;  // subjects, held-out subjects, voxels fitted
    int k;                          // design columns
    char design[1024];              // "keep label=1; remove age, site=B, intercept"
    int nprow, npcol, mb, nb;       // grid and blocks (nb: voxel columns per block in a chunk)
    long chunk, chunks;             // voxel columns per chunk, and their number
    double bytes_per_rank;          // the image blocks' memory per rank
    double seconds_read, seconds_solve, seconds_write, seconds_total;
    double flops;                   // the solve's (per voxel: 2nk for Q^T y, k^2 for R^-1, 2nk per set for X~ b)
} ResidualizeReport;

// Collective. Prints the plan (rank 0) before the work. Returns 0, or -1 with err (the same
// message on every rank for bad input; an I/O failure on any rank fails every rank), in
// which case no output file is left behind.
int residualize_run(const ResidualizeOptions *o, ResidualizeReport *rep, DfError *err);
#endif
