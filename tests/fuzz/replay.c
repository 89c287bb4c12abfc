// replay.c: runs a fuzz target's LLVMFuzzerTestOneInput on files, without libFuzzer, so
// `make check` replays the seed corpus and every regression input on any machine (built with
// the project's compiler as a normal check program, one per target: tests/fuzz/replay_<name>).
//   replay_<name> [FILE|DIR ...]
// Without arguments it reads $top_srcdir/tests/fuzz/corpus/<name> and
// $top_srcdir/tests/fuzz/regress/<name> (<name> from the program's own name). A bug shows as a
// crash or an abort; expected parse errors are ordinary returns. Exit 0 when every input ran.
#include "tests/fuzz/fuzz_util.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno)); return -1; }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) { fprintf(stderr, "%s: read error\n", path); free(buf); return -1; }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

// Runs every regular file under path (recursively, in name order); returns the count or -1.
static int run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) { fprintf(stderr, "%s: %s\n", path, strerror(errno)); return -1; }
    if (!S_ISDIR(st.st_mode)) return run_file(path) == 0 ? 1 : -1;
    DIR *d = opendir(path);
    if (!d) { fprintf(stderr, "%s: %s\n", path, strerror(errno)); return -1; }
    char **names = NULL;
    int n = 0, count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, sizeof(char *) * (size_t)(n + 1));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    for (int i = 0; i < n; i++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, names[i]);
        int c = count >= 0 ? run_path(sub) : 0;
        count = c < 0 ? -1 : count + c;
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    const char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (strncmp(self, "lt-", 3) == 0) self += 3;  // libtool's wrapper
    const char *name = strncmp(self, "replay_", 7) == 0 ? self + 7 : self;
    int total = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            int c = run_path(argv[i]);
            if (c < 0) return 1;
            total += c;
        }
    } else {
        const char *top = getenv("top_srcdir");
        const char *kinds[2] = { "corpus", "regress" };
        for (int k = 0; k < 2; k++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", top && top[0] ? top : ".", kinds[k], name);
            struct stat st;
            if (stat(dir, &st) != 0) {
                if (k == 0) { fprintf(stderr, "%s: missing (the seed corpus)\n", dir); return 1; }
                continue;  // no regression inputs (yet)
            }
            int c = run_path(dir);
            if (c < 0) return 1;
            printf("%s: %d inputs\n", dir, c);
            total += c;
        }
    }
    printf("%s: replayed %d inputs\n", name, total);
    return 0;
}
