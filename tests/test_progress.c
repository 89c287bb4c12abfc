// test_progress.c: progress lines (base/progress.h): the formatting of durations, rates and
// lines; plain lines into a file at the interval and when forced; the terminal line drawn in
// place on a pseudo-terminal, rate-limited, cut to its width and cleared.
#define _XOPEN_SOURCE 700  // posix_openpt, grantpt, unlockpt, ptsname
#define _DEFAULT_SOURCE    // TIOCSWINSZ
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "testutil.h"
#include "base/progress.h"

static void test_duration(void) {
    char b[32];
    struct { double s; const char *want; } c[] = { { 0, "0:00:00" }, { 62, "0:01:02" }, { 59.6, "0:01:00" }, { 3725.4, "1:02:05" },
                                                   { 360000, "100:00:00" }, { -1, "-:--:--" }, { NAN, "-:--:--" }, { INFINITY, "-:--:--" } };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        progress_format_duration(c[i].s, b, sizeof b);
        CU_ASSERT_STRING_EQUAL(b, c[i].want);
    }
}

static void test_number(void) {
    char b[32];
    struct { double v; int integer; const char *want; } c[] = {
        { 123.44, 0, "123.4" }, { 9999.94, 0, "9999.9" }, { 10000, 0, "10.0k" }, { 14, 1, "14" }, { 262144, 1, "262.1k" },
        { 999949, 1, "999.9k" }, { 999950, 1, "1.0M" }, { 2.5e9, 0, "2.5G" }, { NAN, 0, "?" } };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        progress_format_number(c[i].v, c[i].integer, b, sizeof b);
        CU_ASSERT_STRING_EQUAL(b, c[i].want);
    }
}

static void test_lines(void) {
    char b[256];
    // training's plain line, in the format the tests and the users grep
    progress_format_line(b, sizeof b, "epoch 1/8 step 2/8 loss 0.6931 lr 0.001", -1, 123.44, "samples", 62);
    CU_ASSERT_STRING_EQUAL(b, "epoch 1/8 step 2/8 loss 0.6931 lr 0.001 123.4 samples/s ETA 0:01:02");
    progress_format_line(b, sizeof b, "pack: 6/14 volumes", 42.9, 35.2, "volumes", 22.7);
    CU_ASSERT_STRING_EQUAL(b, "pack: 6/14 volumes 42% 35.2 volumes/s ETA 0:00:23");
    progress_format_line(b, sizeof b, "dcor: 0/1000 permutations", 0, -1, "permutations", -1);
    CU_ASSERT_STRING_EQUAL(b, "dcor: 0/1000 permutations 0% ? permutations/s ETA -:--:--");
    progress_format_line(b, sizeof b, "x", 100.4, 1, "items", 0);
    CU_ASSERT_STRING_EQUAL(b, "x 100% 1.0 items/s ETA 0:00:00");
    progress_format_end(b, sizeof b, "residualize", 262144, 262144, "voxels", 3.2, 81920);
    CU_ASSERT_STRING_EQUAL(b, "residualize: 262.1k/262.1k voxels in 0:00:03 (81.9k voxels/s)");
}

// Runs fn with fd `fd` replaced by `with`, then puts it back.
static void with_fd(int fd, int with, void (*fn)(void)) {
    fflush(stdout);
    int saved = dup(fd);
    dup2(with, fd);
    fn();
    fflush(stdout);
    dup2(saved, fd);
    close(saved);
}

static void plain_lines(void) {
    CU_ASSERT(!progress_on_terminal());
    progress_begin("pack", "volumes", 0, 4);
    progress_update(1);
    progress_update(2);
    progress_end();
    setenv("DECONFOUND_PROGRESS_EVERY", "1000", 1);
    progress_enable(1);
    progress_begin("eval", "samples", 0, 8);
    progress_update(3);  // not due for 1000 s
    if (progress_at(4, 1)) progress_show("forced at 4");
    progress_end();
}

// In a file: a line per update at DECONFOUND_PROGRESS_EVERY=0, none before the interval
// otherwise, forced lines always, a line at the end; no carriage return or escape anywhere.
static void test_plain_lines(void) {
    char path[] = "/tmp/test_progress.XXXXXX";
    int fd = mkstemp(path), null = open("/dev/null", O_WRONLY);
    CU_ASSERT_FATAL(fd >= 0 && null >= 0);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("DECONFOUND_PROGRESS_EVERY", "0", 1);
    int saved_err = dup(2);
    dup2(null, 2);  // stderr no terminal: plain lines on stdout
    progress_enable(1);
    with_fd(1, fd, plain_lines);
    dup2(saved_err, 2);
    close(saved_err);
    progress_enable(0);
    unsetenv("DECONFOUND_PROGRESS_EVERY");
    char buf[2048] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    CU_ASSERT_FATAL(n > 0);
    buf[n] = '\0';
    close(fd);
    close(null);
    unlink(path);
    const char *want[] = { "pack: 1/4 volumes ", "\npack: 2/4 volumes ", "\npack: 2/4 volumes in ", "\nforced at 4 ",
                           "\neval: 4/8 samples in " };
    const char *at = buf;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *p = strstr(at, want[i]);
        if (!p) fprintf(stderr, "\n  missing '%s' in:\n%s", want[i], buf);
        CU_ASSERT(p != NULL);
        if (p) at = p + 1;
    }
    CU_ASSERT(strstr(buf, "eval: 3/8") == NULL);
    CU_ASSERT(strchr(buf, '\r') == NULL && strchr(buf, '\033') == NULL);
}

static void terminal_line(void) {
    CU_ASSERT(progress_on_terminal());
    progress_begin("pack", "volumes", 0, 10);
    progress_update(5);  // the first update draws at once
    progress_update(6);  // within 0.2 s of it: not drawn
    usleep(250000);
    if (progress_at(7, 0)) progress_show("a long text that does not fit in the sixty columns of this terminal, not at all");
    progress_end();
}

static void terminal_run(void) {
    progress_enable(1);
    terminal_line();
    progress_enable(0);
}

// On a terminal (a pseudo-terminal as stderr, 60 columns): "\r<line>\033[K" redraws, at most 5
// a second, cut to the width with the rate and ETA kept, and "\r\033[K" at the end.
static void test_terminal_line(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    CU_ASSERT_FATAL(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    CU_ASSERT_FATAL(slave >= 0);
    struct winsize ws = { .ws_row = 24, .ws_col = 60 };
    ioctl(master, TIOCSWINSZ, &ws);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    with_fd(2, slave, terminal_run);
    char buf[2048] = "";
    fcntl(master, F_SETFL, O_NONBLOCK);
    ssize_t n = 0, r;
    while ((r = read(master, buf + n, sizeof buf - 1 - (size_t)n)) > 0) n += r;  // one read per write
    buf[n] = '\0';
    close(slave);
    close(master);
    CU_ASSERT(strncmp(buf, "\rpack: 5/10 volumes 50% ", 24) == 0);
    CU_ASSERT(strstr(buf, "6/10") == NULL);
    const char *cut = strstr(buf, "\ra long text");
    CU_ASSERT(cut != NULL);
    if (cut) {
        const char *end = strstr(cut, "\033[K");
        CU_ASSERT(end != NULL && end - cut - 1 <= 59 && strncmp(end - 8, " 0:00:00", 8) == 0);
    }
    CU_ASSERT(n >= 4 && strcmp(buf + n - 4, "\r\033[K") == 0);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("progress", NULL, NULL);
    CU_add_test(s, "durations as h:mm:ss", test_duration);
    CU_add_test(s, "counts and rates, with k, M, G", test_number);
    CU_add_test(s, "running and final lines", test_lines);
    CU_add_test(s, "plain lines in a file", test_plain_lines);
    CU_add_test(s, "the terminal line on a pseudo-terminal", test_terminal_line);
    return tu_run_all();
}
