// test_share_rows.c: dist_share_rows_f32 (mpi/comm.c), which assembles the training-time
// dCor report's (n, d) float matrix (run/dcor_report.c): every rank ends with every row, bit
// for bit, when each rank owns the ranges the loader gives it -- one per global batch,
// interleaved with the other ranks', uneven, some empty (a last batch smaller than the rank
// count) -- and with ranges that are adjacent (merged), out of order and wide (rows of
// 70 000 floats). Rows no rank owns stay as they were.
//
// Run under mpirun by tests/dcor_ranks.sh at 2 and 3 ranks (at 1 rank, as a check program,
// the call must leave the matrix alone).
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "mpi/comm.h"
#include "data/loader.h"

// The value every rank expects at (row, col): not what a rank writes into rows it does not own.
static float value(long row, long col) { return (float)(row * 1000 + col % 997) + 0.25f; }

// One layout: n rows of width w, global batches of B split as the loader splits them
// (loader_share); the rows of batches listed in `unowned` are filled by nobody.
static void check_layout(int n, int B, long w, int unowned, const char *what) {
    int P = dist_size(), rank = dist_rank();
    float *all = malloc(sizeof(float) * (size_t)n * w);
    long *first = malloc(sizeof(long) * (size_t)(n / B + 2)), *count = malloc(sizeof(long) * (size_t)(n / B + 2));
    int nb = 0;
    for (size_t i = 0; i < (size_t)n * w; i++) all[i] = -1.0f;  // what a rank has before the call
    for (int s = 0; s * B < n; s++) {
        int start = s * B, Bg = n - start < B ? n - start : B, lo, hi;
        loader_share(Bg, rank, P, &lo, &hi);
        if (s == unowned) continue;
        for (long r = start + lo; r < start + hi; r++)
            for (long c = 0; c < w; c++) all[r * w + c] = value(r, c);
        first[nb] = start + lo;
        count[nb++] = hi - lo;
    }
    dist_share_rows_f32(all, (size_t)w, first, count, nb);
    long bad = 0;  // an unowned row keeps what this rank had
    for (long r = 0; r < n; r++)
        for (long c = 0; c < w; c++) bad += all[r * w + c] != (r / B == unowned ? -1.0f : value(r, c));
    double b = (double)bad;
    dist_allreduce_max_f64(&b, 1);
    if (b > 0 && rank == 0) printf("\n  %s: %.0f wrong values on some rank\n", what, b);
    CU_ASSERT(b == 0);
    free(all); free(first); free(count);
}

static void test_loader_layouts(void) {
    check_layout(16, 10, 9, -1, "16 rows, global batch 10");
    check_layout(41, 8, 5, -1, "41 rows, global batch 8 (last batch of 1: empty shares)");
    check_layout(37, 2, 3, -1, "37 rows, global batch 2 (a rank with nothing in every batch at 3 ranks)");
    check_layout(30, 30, 4, -1, "one batch: one range per rank");
    check_layout(12, 4, 70000, -1, "wide rows");
    check_layout(20, 6, 7, 1, "a batch nobody fills");
}

// Ranges given out of order and adjacent ones (merged into one broadcast).
static void test_ranges(void) {
    int P = dist_size(), rank = dist_rank(), n = 10 * P;
    long w = 3;
    float *all = malloc(sizeof(float) * (size_t)n * w);
    for (long i = 0; i < n * w; i++) all[i] = -1.0f;
    // rank r owns rows [10r, 10r + 10) as the ranges 5..10, 0..2, 2..5 (relative)
    long first[3] = { 10L * rank + 5, 10L * rank, 10L * rank + 2 }, count[3] = { 5, 2, 3 };
    for (long r = 10L * rank; r < 10L * rank + 10; r++)
        for (long c = 0; c < w; c++) all[r * w + c] = value(r, c);
    dist_share_rows_f32(all, (size_t)w, first, count, 3);
    double bad = 0;
    for (long r = 0; r < n; r++)
        for (long c = 0; c < w; c++) bad += all[r * w + c] != value(r, c);
    dist_allreduce_max_f64(&bad, 1);
    CU_ASSERT(bad == 0);
    free(all);
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("share rows", NULL, NULL);
    CU_add_test(s, "the loader's layouts: every row on every rank", test_loader_layouts);
    CU_add_test(s, "ranges out of order, adjacent ones merged", test_ranges);
    int rc = tu_run_all();  // every rank checks its own matrix; the counts are reduced
    dist_finalize();
    return rc;
}
