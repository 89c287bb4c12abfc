// common.h: error reporting, checked allocation, small helpers shared by every file.
#ifndef DF_COMMON_H
#define DF_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Exit statuses. Bad user input (files, CSV, configs, command lines) is 2.
// 3: training stopped on SIGTERM/SIGUSR1 after writing a checkpoint (resume with --resume).
enum { DF_EXIT_OK = 0, DF_EXIT_FAIL = 1, DF_EXIT_INPUT = 2, DF_EXIT_INTERRUPTED = 3 };

// An error message carried back to the caller that knows which file it was reading.
typedef struct { char msg[1024]; } DfError;

// Formats into err (if non-NULL) and returns -1, so parsers can write `return df_err(err, ...)`.
// A message longer than msg keeps its start and its end (file and line, and the problem),
// with "…[N characters left out]…" between (df_fit_message).
int df_err(DfError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Copies `full` into out[size], eliding its middle when it does not fit.
void df_fit_message(char *out, size_t size, const char *full);

// Prints "deconfound: <message>" to stderr (on rank 0 only when `collective` is set and the
// abort hook says this is not rank 0), then ends the whole job with `status`.
// mpi/ installs a hook that turns this into MPI_Abort when several ranks run.
_Noreturn void df_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Same as df_die, but for errors every rank detects identically (a bad config): only rank 0
// prints, every rank finalises and exits with `status`, so the user sees one message.
_Noreturn void df_die_collective(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// For an error every rank should detect at the same point from the same summed values, but
// with no collective call to agree on it first (a diverging layer's state): one message, from
// rank 0 -- or, when rank 0 did not see it, after 5 s from the rank that did -- and every
// rank ends with `status` (MPI_Abort).
_Noreturn void df_die_shared(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Hooks installed by mpi/ (MPI); the defaults are single-process behaviour.
typedef struct {
    int (*rank)(void);                       // this process's rank (default 0)
    int (*size)(void);                       // number of ranks (default 1)
    void (*abort_all)(int status);  // end every rank now (default: exit)
    void (*exit_all)(int status);   // collective clean exit (default: exit)
} DfProcessHooks;
void df_set_process_hooks(const DfProcessHooks *hooks);
int df_rank(void);

// Checked allocation: on failure, reports file and line and ends the job.
void *df_malloc_impl(size_t n, const char *file, int line);
void *df_calloc_impl(size_t n, size_t size, const char *file, int line);
void *df_realloc_impl(void *p, size_t n, const char *file, int line);
char *df_strdup_impl(const char *s, const char *file, int line);
#define xmalloc(n) df_malloc_impl((n), __FILE__, __LINE__)
#define xcalloc(n, s) df_calloc_impl((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) df_realloc_impl((p), (n), __FILE__, __LINE__)
#define xstrdup(s) df_strdup_impl((s), __FILE__, __LINE__)
// 64-byte aligned float buffer (for BLAS and vector loops), zero-filled.
float *df_alloc_floats_impl(size_t n, const char *file, int line);
#define df_alloc_floats(n) df_alloc_floats_impl((n), __FILE__, __LINE__)
// A large work array (hundreds of MB, freed with free()), aligned to 2 MB and advised to the
// kernel as huge-page memory: first touching it then costs one page fault per 2 MB instead of
// per 4 KB (in this project's virtual machines page faults were a third of residualize's
// time, docs/baselines.md). Harmless where transparent huge pages are off.
void *df_alloc_large_impl(size_t bytes, const char *file, int line);
#define df_alloc_large(n) df_alloc_large_impl((n), __FILE__, __LINE__)

// Internal invariant check: a failure is a bug, not bad input.
#define DF_ASSERT(cond) \
    do { if (!(cond)) df_die(DF_EXIT_FAIL, "%s:%d: internal error: %s", __FILE__, __LINE__, #cond); } while (0)

// Monotonic wall-clock seconds.
double df_now(void);
// Index of the first NaN or infinity in x[0 .. n), or -1: one vectorised pass (x * 0 is 0 for
// every finite x and NaN otherwise), then a search of the block that has one.
long df_first_nonfinite(const float *x, size_t n);
// This process's peak resident memory so far, in MB (getrusage).
double df_peak_rss_mb(void);

// Writes `len` bytes to `path` atomically: temporary name in the same directory, fsync, rename.
int df_write_file_atomic(const char *path, const void *data, size_t len, DfError *err);
// Removes a file or a folder with everything in it (a failed command's temporary output);
// errors are ignored: it is best effort, on the way out.
void df_remove_tree(const char *path);
// Why a write into `path` failed, for a message: ": No space left on device", or "" when
// nothing is known. From errno, so clear it before the failing call: HDF5 and zlib report no
// reason but leave the system's errno in place; when something cleared it again, a full file
// system is still named. The text lives until the next call.
const char *df_write_reason(const char *path);
// Reads a whole text file (NUL-terminated). Returns NULL and sets err on failure.
char *df_read_text_file(const char *path, size_t *len, DfError *err);
// A temporary name beside `path` for an atomic write: "<dir>/.<base>.tmp.<pid>". Caller frees.
char *df_temp_name(const char *path);
// Every occurrence of `from` (a temporary name) in err's message replaced by `to` (the name
// the user gave): a failure while writing into a temporary file or folder is reported as
// the output the user knows.
void df_err_rename(DfError *err, const char *from, const char *to);
// Whether a and b name one existing file (the same device and inode), however spelt: "./x",
// "dir/../x", a symlink to it. 0 when either does not exist. Writers check an output path
// against their inputs with it before any work (an output is renamed over its path).
int df_same_file(const char *a, const char *b);

// Strict number parsing (whole string must be consumed). 0 on success; -1 for what is not a
// number (nor "inf" or "nan" for a double); -2 for a number beyond the type: a long's
// range, or a double's magnitude over DBL_MAX or under DBL_MIN (1e-320). *out is untouched
// unless 0.
int df_parse_long(const char *s, long *out);
int df_parse_double(const char *s, double *out);
int df_parse_bool(const char *s, int *out);  // true/false/yes/no/1/0/on/off

// qsort comparison of two doubles, ascending.
int df_cmp_double(const void *a, const void *b);

#define DF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DF_MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
