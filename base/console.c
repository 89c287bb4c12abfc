// console.c: the run's log as a copy of stdout and stderr (see console.h).
//
// stdout and stderr are replaced by streams (glibc's fopencookie) whose writes go to the
// original file descriptors and to the log. printf, fputs, perror and df_die's messages all
// pass through them; nothing else in the program needs to know about the log.
#define _GNU_SOURCE
#include "base/console.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static FILE *g_orig_out, *g_orig_err, *g_tee_out, *g_tee_err;
static int g_log_fd = -1;

static void write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;  // a full disk or closed pipe loses output, never the run
        buf += w;
        n -= (size_t)w;
    }
}

static ssize_t tee_write(void *cookie, const char *buf, size_t n) {
    write_all(*(int *)cookie, buf, n);
    if (g_log_fd >= 0) write_all(g_log_fd, buf, n);
    return (ssize_t)n;
}

static FILE *tee_stream(int *fd, int mode) {
    cookie_io_functions_t io = { .write = tee_write };
    FILE *f = fopencookie(fd, "w", io);
    if (f) setvbuf(f, NULL, mode, 0);
    return f;
}

int console_tee(const char *path, DfError *err) {
    static int out_fd = STDOUT_FILENO, err_fd = STDERR_FILENO;
    if (g_log_fd >= 0) console_tee_end();
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return df_err(err, "%s: cannot open the log: %s", path, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    // Line-buffered: each line reaches the screen and the log as it is finished, and a crash
    // loses at most an unfinished line. stderr is unbuffered, as it was.
    FILE *o = tee_stream(&out_fd, _IOLBF), *e = tee_stream(&err_fd, _IONBF);
    if (!o || !e) {
        if (o) fclose(o);
        if (e) fclose(e);
        close(fd);
        return df_err(err, "%s: cannot set up the log", path);
    }
    g_log_fd = fd;
    g_orig_out = stdout, g_orig_err = stderr;
    g_tee_out = stdout = o;
    g_tee_err = stderr = e;
    return 0;
}

void console_tee_end(void) {
    if (g_log_fd < 0) return;
    fflush(stdout);
    fflush(stderr);
    if (stdout == g_tee_out) stdout = g_orig_out;
    if (stderr == g_tee_err) stderr = g_orig_err;
    fclose(g_tee_out);
    fclose(g_tee_err);
    close(g_log_fd);
    g_log_fd = -1;
}
