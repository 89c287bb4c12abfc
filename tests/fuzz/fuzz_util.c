// fuzz_util.c: see fuzz_util.h.
#include "tests/fuzz/fuzz_util.h"
#include "base/common.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];

static void remove_dir(void) {
    if (dir[0]) df_remove_tree(dir);
}

const char *fuzz_dir(void) {
    if (dir[0]) return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/deconfound-fuzz.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "fuzz: cannot make a temporary folder %s: %s\n", dir, strerror(errno));
        abort();
    }
    atexit(remove_dir);
    return dir;
}

char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    size_t n = strlen(fuzz_dir()) + strlen(name) + 2;
    char *path = xmalloc(n);
    snprintf(path, n, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
    return path;
}

char *fuzz_text(const uint8_t *data, size_t size) {
    char *s = xmalloc(size + 1);
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

int fuzz_touch(const char *rel) {
    char path[sizeof dir + 512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), rel);
    for (char *p = path + strlen(fuzz_dir()) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    const char *base = strrchr(path, '/');
    if (strchr(base, '.')) {
        FILE *f = fopen(path, "wb");
        return f && fclose(f) == 0 ? 0 : -1;
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

void fuzz_check(int ok, const char *what, const char *file, int line) {
    if (ok) return;
    fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", file, line, what);
    abort();
}
