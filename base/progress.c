// progress.c: progress of long work: where it goes, when, and how it reads (see progress.h).
// It includes nothing of the project's: base/common.c calls progress_clear from df_die.
#define _DEFAULT_SOURCE  // TIOCGWINSZ (the terminal's width) is not POSIX
#include "base/progress.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_SECONDS 0.2  // a terminal line at most 5 times a second: drawing costs nothing
#define DEFAULT_EVERY 30.0  // a plain line every 30 s: a Slurm log stays readable

static struct {
    int on;              // this process reports
    int tty_fd;          // where the terminal line goes, or -1: plain lines on stdout
    int size_fd;         // mpirun's terminal, for its width (Open MPI copies it to its own only at the start)
    double every;        // seconds between plain lines
    int active;          // between progress_begin and progress_end
    char what[64], unit[32];
    double done0, done, total;
    double t0, t_line;   // when the work began; when the last line was drawn or printed
    int shown;           // a terminal line is on the screen
} P = { .tty_fd = -1, .size_fd = -1, .every = DEFAULT_EVERY };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- where the progress goes --------------------------------------------------------------

// Whether mpirun's own stdout, seen through /proc, is a terminal device. When it is, it is
// opened into P.size_fd for its width: Open MPI's pseudo-terminal gets the size mpirun's
// has at the start, and keeps it when the window is resized.
static int launcher_on_terminal(void) {
    char path[64], target[256];
    snprintf(path, sizeof path, "/proc/%ld/fd/1", (long)getppid());
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = '\0';
    if (strncmp(target, "/dev/pts/", 9) != 0 && strncmp(target, "/dev/tty", 8) != 0) return 0;
    P.size_fd = open(target, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    return 1;
}

// The rule of progress.h: under mpirun, fd 1 when mpirun's stdout is a terminal; else fd 2
// when it is a terminal; else -1.
static int terminal_fd(void) {
    if (getenv("OMPI_COMM_WORLD_SIZE") && isatty(1) && !isatty(2)) return launcher_on_terminal() ? 1 : -1;
    return isatty(2) ? 2 : -1;
}

static int terminal_width(void) {
    struct winsize ws;
    if (P.size_fd >= 0 && ioctl(P.size_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    if (ioctl(P.tty_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

static double every_from_env(void) {
    const char *s = getenv("DECONFOUND_PROGRESS_EVERY");
    if (!s || !*s) return DEFAULT_EVERY;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0) {
        fprintf(stderr, "deconfound: DECONFOUND_PROGRESS_EVERY=%s: expected seconds >= 0; using %g\n", s, DEFAULT_EVERY);
        return DEFAULT_EVERY;
    }
    return v;
}

void progress_enable(int on) {
    static int registered = 0;
    progress_clear();
    if (P.size_fd >= 0) close(P.size_fd);
    P.size_fd = -1;
    P.on = on;
    P.tty_fd = on ? terminal_fd() : -1;
    P.every = on ? every_from_env() : DEFAULT_EVERY;
    if (on && !registered) registered = atexit(progress_clear) == 0;  // an exit mid-line leaves a clean prompt
}

int progress_on_terminal(void) { return P.on && P.tty_fd >= 0; }

// ---- drawing and printing -------------------------------------------------------------------

static void write_all(int fd, const char *s, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;  // a terminal gone: progress is not worth an error
        s += w;
        len -= (size_t)w;
    }
}

void progress_clear(void) {
    if (!P.shown) return;
    P.shown = 0;
    write_all(P.tty_fd, "\r\033[K", 4);
}

// "\r<line>\033[K", the line cut to the terminal's width (a wrapped line could not be
// redrawn in place): the text loses its end first, so the rate and ETA stay.
static void draw(const char *text, double percent, double rate, double eta) {
    char line[512], cut[256], out[600];
    size_t max = (size_t)terminal_width() - 1;
    progress_format_line(line, sizeof line, text, percent, rate, P.unit, eta);
    size_t len = strlen(line), tlen = strlen(text);
    if (len > max && max > len - tlen + 8) {
        snprintf(cut, sizeof cut, "%.*s", (int)(tlen - (len - max)), text);
        progress_format_line(line, sizeof line, cut, percent, rate, P.unit, eta);
    }
    int n = snprintf(out, sizeof out, "\r%.*s\033[K", (int)max, line);
    fflush(stdout);  // what stdio holds comes first (then it is on a line of its own)
    write_all(P.tty_fd, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
    P.shown = 1;
}

void progress_begin(const char *what, const char *unit, double done, double total) {
    snprintf(P.what, sizeof P.what, "%s", what);
    snprintf(P.unit, sizeof P.unit, "%s", unit);
    P.done0 = P.done = done;
    P.total = total;
    P.t0 = now_s();
    P.t_line = P.tty_fd >= 0 ? P.t0 - REDRAW_SECONDS : P.t0;  // the terminal line at once, a plain one later
    P.active = 1;
}

int progress_at(double done, int force) {
    if (!P.on || !P.active) return 0;
    P.done = done;
    double since = now_s() - P.t_line;
    if (P.tty_fd >= 0) return since >= REDRAW_SECONDS;
    return force || since >= P.every;
}

// Items per second since the work began (so the ETA counts its pauses), or -1 before any.
static double rate_now(double now) {
    double el = now - P.t0;
    return el > 0 && P.done > P.done0 ? (P.done - P.done0) / el : -1;
}

static void counts(char *buf, size_t n) {
    char d[32], t[32];
    progress_format_number(P.done, 1, d, sizeof d);
    progress_format_number(P.total, 1, t, sizeof t);
    snprintf(buf, n, "%s: %s/%s %s", P.what, d, t, P.unit);
}

void progress_show(const char *text) {
    if (!P.on || !P.active) return;
    char own[200], line[512];
    if (!text) { counts(own, sizeof own); text = own; }
    double now = now_s(), rate = rate_now(now), eta = rate > 0 ? fmax(0.0, P.total - P.done) / rate : -1;
    P.t_line = now;
    if (P.tty_fd >= 0) {
        draw(text, P.total > 0 ? 100.0 * P.done / P.total : -1, rate, eta);
        return;
    }
    progress_format_line(line, sizeof line, text, -1, rate, P.unit, eta);
    printf("%s\n", line);
    fflush(stdout);
}

void progress_update(double done) {
    if (progress_at(done, 0)) progress_show(NULL);
}

void progress_end(void) {
    if (!P.on || !P.active) return;
    P.active = 0;
    if (P.tty_fd >= 0) { progress_clear(); return; }
    double now = now_s();
    char line[512];
    progress_format_end(line, sizeof line, P.what, P.done, P.total, P.unit, now - P.t0, rate_now(now));
    printf("%s\n", line);
    fflush(stdout);
}

// ---- formatting -------------------------------------------------------------------------------

void progress_format_duration(double seconds, char *buf, size_t n) {
    if (!isfinite(seconds) || seconds < 0 || seconds > 3.6e9) { snprintf(buf, n, "-:--:--"); return; }
    long v = (long)(seconds + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", v / 3600, (v / 60) % 60, v % 60);
}

void progress_format_number(double v, int integer, char *buf, size_t n) {
    static const char suffix[] = "kMGT";
    if (!isfinite(v)) { snprintf(buf, n, "?"); return; }
    if (integer) v = floor(v + 1e-9);  // a count shows what is complete (a fraction of permutations)
    if (fabs(v) < 10000) { snprintf(buf, n, integer ? "%.0f" : "%.1f", v); return; }
    int k = -1;
    while (fabs(v) >= 999.95 && k < 3) { v /= 1000; k++; }
    snprintf(buf, n, "%.1f%c", v, suffix[k]);
}

void progress_format_line(char *buf, size_t n, const char *text, double percent, double rate, const char *unit, double eta) {
    char pct[16] = "", r[32] = "?", e[32];
    if (percent >= 0) snprintf(pct, sizeof pct, " %d%%", (int)fmin(100.0, floor(percent)));
    if (rate >= 0) progress_format_number(rate, 0, r, sizeof r);
    progress_format_duration(eta, e, sizeof e);
    snprintf(buf, n, "%s%s %s %s/s ETA %s", text, pct, r, unit, e);
}

void progress_format_end(char *buf, size_t n, const char *what, double done, double total, const char *unit, double elapsed,
                         double rate) {
    char d[32], t[32], e[32], r[32] = "?";
    progress_format_number(done, 1, d, sizeof d);
    progress_format_number(total, 1, t, sizeof t);
    progress_format_duration(elapsed, e, sizeof e);
    if (rate >= 0) progress_format_number(rate, 0, r, sizeof r);
    snprintf(buf, n, "%s: %s/%s %s in %s (%s %s/s)", what, d, t, unit, e, r, unit);
}
