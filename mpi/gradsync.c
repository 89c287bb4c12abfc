// gradsync.c: bucketed, overlapped gradient all-reduce (see gradsync.h).
#include "mpi/gradsync.h"
#include <mpi.h>
#include <stdlib.h>
#include "mpi/comm.h"
#include "base/common.h"

struct GradSync {
    float *grads;
    size_t n;
    int nb;            // buckets, numbered from the end of the buffer
    size_t *lo, *hi;   // bucket b covers [lo[b], hi[b]); lo[0] is the highest
    MPI_Request *req;
    int next;          // first bucket not started yet
    double wait_s;
};

#define MPI_OK(call)                                                                   \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_ != MPI_SUCCESS) df_die(DF_EXIT_FAIL, "%s:%d: %s failed", __FILE__, __LINE__, #call); \
    } while (0)

GradSync *gradsync_create(float *grads, size_t n, size_t bucket_bytes) {
    GradSync *gs = xcalloc(1, sizeof *gs);
    gs->grads = grads;
    gs->n = n;
    size_t per = bucket_bytes / sizeof(float);
    if (per < 1024) per = 1024;
    if (per > ((size_t)1 << 30)) per = (size_t)1 << 30;  // MPI counts are int
    gs->nb = n ? (int)((n + per - 1) / per) : 0;
    gs->lo = xcalloc((size_t)gs->nb + 1, sizeof(size_t));
    gs->hi = xcalloc((size_t)gs->nb + 1, sizeof(size_t));
    gs->req = xcalloc((size_t)gs->nb + 1, sizeof(MPI_Request));
    for (int b = 0; b < gs->nb; b++) {
        gs->hi[b] = n - (size_t)b * per;
        gs->lo[b] = gs->hi[b] > per ? gs->hi[b] - per : 0;
        gs->req[b] = MPI_REQUEST_NULL;
    }
    return gs;
}

static void start_bucket(GradSync *gs, int b) {
    MPI_OK(MPI_Iallreduce(MPI_IN_PLACE, gs->grads + gs->lo[b], (int)(gs->hi[b] - gs->lo[b]), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD, &gs->req[b]));
}

void gradsync_ready(GradSync *gs, size_t final_from) {
    if (dist_size() == 1) return;
    while (gs->next < gs->nb && gs->lo[gs->next] >= final_from) start_bucket(gs, gs->next++);
    if (gs->next > 0) {
        int done;
        MPI_OK(MPI_Testall(gs->next, gs->req, &done, MPI_STATUSES_IGNORE));
    }
}

void gradsync_finish(GradSync *gs) {
    if (dist_size() == 1) return;
    while (gs->next < gs->nb) start_bucket(gs, gs->next++);
    double t = df_now();
    MPI_OK(MPI_Waitall(gs->nb, gs->req, MPI_STATUSES_IGNORE));
    gs->wait_s += df_now() - t;
    gs->next = 0;
}

double gradsync_wait_seconds(const GradSync *gs) { return gs->wait_s; }
int gradsync_buckets(const GradSync *gs) { return gs->nb; }
void gradsync_reset_stats(GradSync *gs) { gs->wait_s = 0; }

void gradsync_free(GradSync *gs) {
    if (!gs) return;
    free(gs->lo);
    free(gs->hi);
    free(gs->req);
    free(gs);
}
