// comm.c: MPI communicator set-up, reductions, broadcasts, BLAS thread placement.
#define _GNU_SOURCE  // sched_getaffinity, CPU_COUNT
#include "mpi/comm.h"
#include "base/common.h"
#include <cblas.h>
#include "base/threads.h"
#include <limits.h>
#include <sched.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Under LeakSanitizer (./configure --enable-sanitizers), what MPI_Init and MPI_Finalize
// allocate and keep is Open MPI's, not the program's: leak checking is off on this thread
// while they run. (Suppressing those leaks by name instead, which LeakSanitizer does when the
// process exits, symbolized every frame of their stacks, many in plug-ins Open MPI had
// unloaded; each unknown frame re-read the process's memory map, and every process took
// about 3 s more, and the suite under the sanitizers, which starts MPI hundreds of times,
// ran several times slower on a virtual machine whose unmaps are costly. docs/reliability.md.)
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK_OFF() __lsan_disable()
#define LEAK_CHECK_ON() __lsan_enable()
#else
#define LEAK_CHECK_OFF() ((void)0)
#define LEAK_CHECK_ON() ((void)0)
#endif

static int g_rank = 0, g_size = 1, g_local_size = 1, g_blas_threads = 1, g_initialised = 0;

#define MPI_CHECK(call)                                                                     \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_ != MPI_SUCCESS) {                                                           \
            char msg_[MPI_MAX_ERROR_STRING]; int len_ = 0;                                  \
            MPI_Error_string(rc_, msg_, &len_);                                             \
            df_die(DF_EXIT_FAIL, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, msg_); \
        }                                                                                   \
    } while (0)

static int hook_rank(void) { return g_rank; }
static int hook_size(void) { return g_size; }

// MPI_Finalize, its allocations unchecked (above); errors ignored on the way out of a failure
static void finalize_quietly(void) {
    LEAK_CHECK_OFF();
    MPI_Finalize();
    LEAK_CHECK_ON();
}

static void hook_abort(int status) {
    fflush(stdout);
    fflush(stderr);
    if (g_initialised && g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    if (g_initialised) finalize_quietly();
    exit(status);
}

static void hook_exit(int status) {
    fflush(stdout);
    fflush(stderr);
    if (g_initialised) finalize_quietly();
    exit(status);
}

// MPI counts are int: large buffers go in pieces.
#define CHUNK ((size_t)1 << 30)

static void reducer_sum_f64(Reducer *r, double *buf, size_t n) { dist_allreduce_sum_f64(buf, n); }
static void reducer_sum_f32(Reducer *r, float *buf, size_t n) { dist_allreduce_sum_f32(buf, n); }
static Reducer g_reducer = { reducer_sum_f64, reducer_sum_f32, 1, NULL };

// Started directly by srun (not by mpirun, whose ranks carry OMPI_COMM_WORLD_SIZE), the MPI
// world must hold every task of the step. Without PMIx (srun --mpi=none on a system whose MPI
// falls back to singletons) each task would be its own one-rank job: N copies of the same
// training writing the same files. Stop with an explanation instead.
static void check_slurm_tasks(void) {
    const char *ntasks = getenv("SLURM_STEP_NUM_TASKS");
    if (!ntasks) ntasks = getenv("SLURM_NTASKS");
    if (!ntasks || getenv("OMPI_COMM_WORLD_SIZE") || !getenv("SLURM_STEP_ID")) return;
    long n;
    if (df_parse_long(ntasks, &n) != 0 || n == g_size) return;
    df_die_collective(DF_EXIT_INPUT,
                      "Slurm started %ld tasks but MPI sees %d rank%s: the tasks are not one MPI job. "
                      "Launch with 'srun --mpi=pmix' (see 'srun --mpi=list') or with mpirun inside the allocation.",
                      n, g_size, g_size == 1 ? "" : "s");
}

void dist_init(int *argc, char ***argv) {
    LEAK_CHECK_OFF();
    MPI_CHECK(MPI_Init(argc, argv));
    LEAK_CHECK_ON();
    g_initialised = 1;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    MPI_Comm local;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local));
    MPI_CHECK(MPI_Comm_size(local, &g_local_size));
    MPI_CHECK(MPI_Comm_free(&local));
    g_reducer.nranks = g_size;
    DfProcessHooks hooks = { hook_rank, hook_size, hook_abort, hook_exit };
    df_set_process_hooks(&hooks);
    check_slurm_tasks();
}

void dist_finalize(void) {
    if (g_initialised) {
        LEAK_CHECK_OFF();
        MPI_CHECK(MPI_Finalize());
        LEAK_CHECK_ON();
    }
    g_initialised = 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local_size; }
Reducer *dist_reducer(void) { return g_size > 1 ? &g_reducer : &reducer_local; }

void dist_allreduce_sum_f32(float *buf, size_t n) {
    if (g_size == 1) return;
    for (size_t o = 0; o < n; o += CHUNK)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)DF_MIN(CHUNK, n - o), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
}

void dist_allreduce_sum_f64(double *buf, size_t n) {
    if (g_size == 1) return;
    for (size_t o = 0; o < n; o += CHUNK)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)DF_MIN(CHUNK, n - o), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
}

void dist_allreduce_max_f64(double *buf, size_t n) {
    if (g_size == 1) return;
    for (size_t o = 0; o < n; o += CHUNK)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)DF_MIN(CHUNK, n - o), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
}

void dist_bcast(void *buf, size_t bytes, int root) {
    if (g_size == 1) return;
    for (size_t o = 0; o < bytes; o += CHUNK)
        MPI_CHECK(MPI_Bcast((char *)buf + o, (int)DF_MIN(CHUNK, bytes - o), MPI_BYTE, root, MPI_COMM_WORLD));
}

int dist_agree(int rc, DfError *err) {
    int P = dist_size();
    if (P == 1) return rc;
    double who = rc ? (double)(P - dist_rank()) : 0.0;  // the lowest failing rank has the largest
    dist_allreduce_max_f64(&who, 1);
    if (who == 0.0) return 0;
    int root = P - (int)who;
    dist_bcast(err->msg, sizeof err->msg, root);
    dist_bcast(&rc, sizeof rc, root);
    return rc;
}

// Rank 0 gets every rank's `count` elements of `type` (size `size`) in rank order.
static void gather_v(void *all, const void *mine, size_t count, MPI_Datatype type, size_t size) {
    if (g_size == 1) {
        if (all != mine && count) memcpy(all, mine, count * size);
        return;
    }
    DF_ASSERT(count < (size_t)INT_MAX);
    int c = (int)count;
    int *counts = NULL, *displs = NULL;
    if (g_rank == 0) {
        counts = xcalloc((size_t)g_size, sizeof(int));
        displs = xcalloc((size_t)g_size, sizeof(int));
    }
    MPI_CHECK(MPI_Gather(&c, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (g_rank == 0) {
        long total = 0;
        for (int r = 0; r < g_size; r++) { displs[r] = (int)total; total += counts[r]; }
        DF_ASSERT(total < INT_MAX);
    }
    MPI_CHECK(MPI_Gatherv(mine, c, type, all, counts, displs, type, 0, MPI_COMM_WORLD));
    free(counts);
    free(displs);
}

void dist_gather_f32(float *all, const float *mine, size_t count) { gather_v(all, mine, count, MPI_FLOAT, sizeof(float)); }
void dist_gather_bytes(void *all, const void *mine, size_t bytes) { gather_v(all, mine, bytes, MPI_BYTE, 1); }

void dist_share_rows_f32(float *all, size_t width, const long *first, const long *count, int n_blocks) {
    if (g_size == 1) return;
    // This rank's ranges as (first, count) pairs, adjacent ones merged (contiguous shares
    // become one broadcast).
    long *mine = xmalloc(sizeof(long) * 2 * (size_t)(n_blocks > 0 ? n_blocks : 1));
    int m = 0;
    for (int k = 0; k < n_blocks; k++) {
        if (count[k] <= 0) continue;
        if (m > 0 && mine[2 * m - 2] + mine[2 * m - 1] == first[k]) mine[2 * m - 1] += count[k];
        else { mine[2 * m] = first[k]; mine[2 * m + 1] = count[k]; m++; }
    }
    // Every rank learns every rank's ranges, then they are broadcast in rank order: the same
    // sequence of collectives everywhere.
    int c = 2 * m, *counts = xmalloc(sizeof(int) * (size_t)g_size), *displs = xmalloc(sizeof(int) * (size_t)g_size);
    MPI_CHECK(MPI_Allgather(&c, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD));
    long total = 0;
    for (int r = 0; r < g_size; r++) { displs[r] = (int)total; total += counts[r]; }
    DF_ASSERT(total < INT_MAX);
    long *ranges = xmalloc(sizeof(long) * (size_t)(total > 0 ? total : 1));
    MPI_CHECK(MPI_Allgatherv(mine, c, MPI_LONG, ranges, counts, displs, MPI_LONG, MPI_COMM_WORLD));
    for (int r = 0; r < g_size; r++)
        for (int k = displs[r]; k < displs[r] + counts[r]; k += 2) {
            float *p = all + (size_t)ranges[k] * width;
            size_t n = (size_t)ranges[k + 1] * width;
            for (size_t o = 0; o < n; o += CHUNK)
                MPI_CHECK(MPI_Bcast(p + o, (int)DF_MIN(CHUNK, n - o), MPI_FLOAT, r, MPI_COMM_WORLD));
        }
    free(ranges);
    free(displs);
    free(counts);
    free(mine);
}

void dist_barrier(void) {
    if (g_size > 1) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

int dist_set_blas_threads(int requested) {
    int n = requested;
    // An explicit OPENBLAS_NUM_THREADS in the environment is the user's (or the job
    // script's) per-rank choice; otherwise divide the node's cores among its ranks.
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    long from_env;
    if (n <= 0 && env && df_parse_long(env, &from_env) == 0 && from_env > 0 && from_env <= 1024) n = (int)from_env;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        if (cores < 1) cores = 1;
        n = (int)(cores / (g_local_size > 0 ? g_local_size : 1));
        // A rank bound to fewer cores (mpirun binds each rank to one core by default when it
        // starts at most 2; srun --cpus-per-task) gets as many threads as it has cores.
        cpu_set_t mask;
        if (sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) > 0 && CPU_COUNT(&mask) < n)
            n = CPU_COUNT(&mask);
        if (n < 1) n = 1;
    }
    df_threads_set(n);  // OpenMP's team and OpenBLAS's threads alike
    g_blas_threads = n;
    return n;
}

void dist_describe(char *buf, size_t n) {
    snprintf(buf, n, "%d rank%s (%d on this node), %d BLAS thread%s each", g_size, g_size == 1 ? "" : "s",
             g_local_size, g_blas_threads, g_blas_threads == 1 ? "" : "s");
}
