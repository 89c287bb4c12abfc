// common.c: error reporting, checked allocation, atomic file writes, strict number parsing.
#define _DEFAULT_SOURCE  // madvise(MADV_HUGEPAGE) is a Linux extension
#include "base/common.h"
#include "base/progress.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

static int default_rank(void) { return 0; }
static int default_size(void) { return 1; }
static void default_exit(int status) { fflush(stdout); fflush(stderr); exit(status); }
static DfProcessHooks hooks = { default_rank, default_size, default_exit, default_exit };

void df_set_process_hooks(const DfProcessHooks *h) { hooks = *h; }
int df_rank(void) { return hooks.rank(); }

// Moves i back to the start of the UTF-8 character it is in, so no cut splits one.
static size_t char_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

void df_fit_message(char *out, size_t size, const char *full) {
    size_t n = strlen(full);
    if (n < size) { memcpy(out, full, n + 1); return; }
    // Too long (a quoted field of thousands of characters): keep the start, where the file
    // and line are, and the end, where the problem is said; say how much went between.
    char mid[80];
    size_t tail = size / 3, head = size - tail - sizeof mid;
    head = char_start(full, head);
    size_t t0 = char_start(full, n - tail);
    snprintf(mid, sizeof mid, " …[%zu characters left out]… ", t0 - head);
    snprintf(out, size, "%.*s%s%s", (int)head, full, mid, full + t0);
}

int df_err(DfError *err, const char *fmt, ...) {
    if (!err) return -1;
    // Formatted whole first (also safe when an argument is err->msg itself), then fitted.
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *full = xmalloc(n > 0 ? (size_t)n + 1 : 1);
    full[0] = '\0';
    if (n > 0) vsnprintf(full, (size_t)n + 1, fmt, again);
    va_end(again);
    df_fit_message(err->msg, sizeof err->msg, full);
    free(full);
    return -1;
}

// One line on stderr; with several ranks it names the rank when one rank failed alone, so
// the failing one is known (not for an error every rank saw). A progress line on the
// terminal goes first, or the message would start after its text.
static void print_message(int name_rank, const char *fmt, va_list ap) {
    progress_clear();
    fflush(stdout);
    if (name_rank && hooks.size() > 1) fprintf(stderr, "deconfound (rank %d of %d): ", hooks.rank(), hooks.size());
    else fputs("deconfound: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

_Noreturn void df_die(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    print_message(1, fmt, ap);
    va_end(ap);
    hooks.abort_all(status);
    exit(status);  // hooks should not return; never continue past a fatal error
}

_Noreturn void df_die_shared(int status, const char *fmt, ...) {
    // Rank 0 speaks for every rank and ends them all; the others give it the time to. A rank
    // still alive after that saw what rank 0 did not (its sums rounded otherwise): it speaks.
    // The wait goes on through signals: the abort's SIGTERM is caught (train's checkpoint
    // and stop), its SIGKILL follows.
    int alone = hooks.size() > 1 && hooks.rank() != 0;
    for (double end = df_now() + 5; alone && df_now() < end;) usleep(100000);
    va_list ap;
    va_start(ap, fmt);
    print_message(alone, fmt, ap);
    va_end(ap);
    hooks.abort_all(status);
    exit(status);
}

_Noreturn void df_die_collective(int status, const char *fmt, ...) {
    if (hooks.rank() == 0) {
        va_list ap;
        va_start(ap, fmt);
        print_message(0, fmt, ap);  // every rank's error: no rank to name
        va_end(ap);
    }
    hooks.exit_all(status);
    exit(status);
}

void *df_malloc_impl(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) df_die(DF_EXIT_FAIL, "%s:%d: out of memory allocating %zu bytes", file, line, n);
    return p;
}

void *df_calloc_impl(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) df_die(DF_EXIT_FAIL, "%s:%d: out of memory allocating %zu x %zu bytes", file, line, n, size);
    return p;
}

void *df_realloc_impl(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) df_die(DF_EXIT_FAIL, "%s:%d: out of memory reallocating %zu bytes", file, line, n);
    return q;
}

char *df_strdup_impl(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = df_malloc_impl(n, file, line);
    memcpy(p, s, n);
    return p;
}

float *df_alloc_floats_impl(size_t n, const char *file, int line) {
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0)
        df_die(DF_EXIT_FAIL, "%s:%d: out of memory allocating %zu floats", file, line, n);
    memset(p, 0, bytes);
    return p;
}

void *df_alloc_large_impl(size_t bytes, const char *file, int line) {
    const size_t huge = (size_t)2 << 20;
    size_t size = (bytes + huge - 1) / huge * huge;
    void *p = NULL;
    if (size == 0) size = huge;
    if (posix_memalign(&p, huge, size) != 0) df_die(DF_EXIT_FAIL, "%s:%d: out of memory (%zu bytes)", file, line, size);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, size, MADV_HUGEPAGE);  // advice: ignored where huge pages are off
#endif
    return p;
}

double df_peak_rss_mb(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (double)u.ru_maxrss / 1024.0;  // kilobytes on Linux
}

long df_first_nonfinite(const float *x, size_t n) {
    const size_t block = 4096;
    for (size_t i0 = 0; i0 < n; i0 += block) {
        const size_t m = n - i0 < block ? n - i0 : block;
        float lane[16] = { 0 };
        size_t i = 0;
        for (; i + 16 <= m; i += 16)
            for (int j = 0; j < 16; j++) lane[j] += x[i0 + i + j] * 0.0f;
        float any = 0.0f;
        for (int j = 0; j < 16; j++) any += lane[j];
        for (; i < m; i++) any += x[i0 + i] * 0.0f;
        if (any != 0.0f || any != any)  // not 0: some x * 0 was NaN
            for (size_t k = 0; k < m; k++)
                if (!isfinite(x[i0 + k])) return (long)(i0 + k);
    }
    return -1;
}

double df_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *df_temp_name(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(path) + 64;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%.*s.%s.tmp.%ld", (int)dirlen, path, base, (long)getpid());
    return tmp;
}

int df_write_file_atomic(const char *path, const void *data, size_t len, DfError *err) {
    char *tmp = df_temp_name(path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        df_err(err, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            df_err(err, "%s: write failed: %s", path, strerror(errno));
            close(fd); unlink(tmp); free(tmp);
            return -1;
        }
        p += w; left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        df_err(err, "%s: cannot finish write: %s", path, strerror(errno));
        unlink(tmp); free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

// Whether the file system holding `path` (or, when it does not exist, its folder) has no
// block left for this user.
static int disk_full(const char *path) {
    struct statvfs st;
    if (statvfs(path, &st) == 0) return st.f_bavail == 0;
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    return statvfs(dir, &st) == 0 && st.f_bavail == 0;
}

const char *df_write_reason(const char *path) {
    static char why[256];
    int e = errno;
    if (e == 0 && disk_full(path)) e = ENOSPC;
    if (e == 0) return "";
    snprintf(why, sizeof why, ": %s", strerror(e));
    return why;
}

char *df_read_text_file(const char *path, size_t *len, DfError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { df_err(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    // A folder opens fine and fails only at the first read: say what it is.
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        df_err(err, "%s: cannot read: %s (expected a file)", path, strerror(EISDIR));
        fclose(f);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) { cap *= 2; buf = xrealloc(buf, cap); }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f) ? errno : 0;
    fclose(f);
    if (bad) { df_err(err, "%s: read error: %s", path, strerror(bad)); free(buf); return NULL; }
    if (memchr(buf, '\0', n)) { df_err(err, "%s: not a text file (contains NUL bytes)", path); free(buf); return NULL; }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int df_parse_long(const char *s, long *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || end == s) return -1;
    if (errno == ERANGE) return -2;  // digits, but more than a long holds
    if (errno) return -1;
    *out = v;
    return 0;
}

int df_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int df_parse_double(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || end == s) return -1;
    // A number, but beyond a double: over DBL_MAX, or closer to 0 than DBL_MIN (strtod
    // rounds 1e-320 to a subnormal and says ERANGE). "inf" and "nan" stay not numbers.
    if (errno == ERANGE) return -2;
    if (errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int df_parse_bool(const char *s, int *out) {
    static const char *yes[] = { "1", "true", "yes", "on" }, *no[] = { "0", "false", "no", "off" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(s, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

void df_remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) { unlink(path); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        df_remove_tree(sub);
    }
    closedir(d);
    rmdir(path);
}

int df_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void df_err_rename(DfError *err, const char *from, const char *to) {
    size_t n = strlen(from), at = 0;
    char *hit;
    while (n && (hit = strstr(err->msg + at, from)) != NULL) {
        char msg[sizeof err->msg];
        size_t pre = (size_t)(hit - err->msg);
        snprintf(msg, sizeof msg, "%.*s%s%s", (int)pre, err->msg, to, hit + n);
        snprintf(err->msg, sizeof err->msg, "%s", msg);
        at = pre + strlen(to);
        if (at >= strlen(err->msg)) break;
    }
}
