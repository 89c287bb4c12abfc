// compare.c: `deconfound compare RUNDIR...`: runs side by side (run/compare.h).
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "run/compare.h"

static const char *compare_help =
    "usage: deconfound compare RUNDIR... [--format table|markdown|csv] [--out FILE]\n"
    "\n"
    "One row per method: runs of one configuration -- the same config.ini but for [train] seed,\n"
    "[data] fold and split_seed (and keys that do not change results, such as out_dir) -- are\n"
    "one method, reported as mean ± standard deviation over its runs. Columns: validation\n"
    "accuracy, balanced accuracy, worst-group accuracy, ROC AUC (binary tasks), and the\n"
    "bias-corrected dCor² of each confounder at the last dCor report, all at each run's last\n"
    "epoch. With two or more methods, a paired Wilcoxon signed-rank test of each method against\n"
    "the first one over the folds (or seeds) both ran follows, with its n (table and markdown):\n"
    "two runs pair when their fold, split_seed and seed are the same. A run given twice (or a\n"
    "folder of runs and one of them, or a copy) is refused: it would count twice.\n"
    "\n"
    "A RUNDIR without run.json that holds run directories (as `deconfound cv` writes: fold-0,\n"
    "fold-1, ...) stands for all of them.\n"
    "\n"
    "  --format F  table (default: aligned text), markdown, or csv (the table only: mean and sd\n"
    "              columns per figure)\n"
    "  --out FILE  write there (atomically) instead of standard output\n";

static int is_run_dir(const char *dir) {
    char path[1100];
    struct stat st;
    snprintf(path, sizeof path, "%s/run.json", dir);
    return stat(path, &st) == 0;
}

static int by_name(const void *a, const void *b) {
    // fold-2 before fold-10: compare as numbers where both have digits at the same place
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    while (*x && *x == *y && !(*x >= '0' && *x <= '9')) x++, y++;
    if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
        long u = strtol(x, NULL, 10), v = strtol(y, NULL, 10);
        if (u != v) return u < v ? -1 : 1;
    }
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// dir appended to list, unless it is already there under any spelling (the same device and
// inode): a run given twice, or a folder of runs and one of them, would count twice.
static void add_run(char ***list, int *n, const char *dir) {
    for (int i = 0; i < *n; i++)
        if (df_same_file(dir, (*list)[i]))
            df_die(DF_EXIT_INPUT, "compare: %s is given twice (also as %s); give each run once", dir, (*list)[i]);
    *list = xrealloc(*list, (size_t)(*n + 1) * sizeof(char *));
    (*list)[(*n)++] = xstrdup(dir);
}

// A RUNDIR, or the run directories inside a folder of them, appended to list.
static void add_runs(char ***list, int *n, const char *dir) {
    if (is_run_dir(dir)) {
        add_run(list, n, dir);
        return;
    }
    DIR *d = opendir(dir);
    if (!d) df_die(DF_EXIT_INPUT, "compare: %s: not a run directory (no run.json) and not a folder of them", dir);
    int before = *n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (!is_run_dir(sub)) continue;
        add_run(list, n, sub);
    }
    closedir(d);
    if (*n == before) df_die(DF_EXIT_INPUT, "compare: %s: not a run directory (no run.json) and holds none", dir);
    qsort(*list + before, (size_t)(*n - before), sizeof(char *), by_name);
}

int cmd_compare(int argc, char **argv) {
    const char *cmd = "compare", *v, *out = NULL;
    CompareFormat format = COMPARE_TABLE;
    char **dirs = NULL;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(compare_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--format", &v, cmd)) {
            if (!strcmp(v, "table")) format = COMPARE_TABLE;
            else if (!strcmp(v, "markdown")) format = COMPARE_MARKDOWN;
            else if (!strcmp(v, "csv")) format = COMPARE_CSV;
            else cli_usage_error(cmd, "--format %s: expected table, markdown or csv", v);
        } else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) out = v;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (dist_rank() == 0) add_runs(&dirs, &n, argv[i]);
        else n++;
    }
    if (n == 0) cli_usage_error(cmd, "missing RUNDIR");
    if (dist_rank() != 0) return 0;  // reading a few small files: rank 0 alone
    RunSummary *runs = xcalloc((size_t)n, sizeof *runs);
    DfError err;
    for (int i = 0; i < n; i++)
        if (compare_read_run(&runs[i], dirs[i], &err)) df_die(DF_EXIT_INPUT, "compare: %s", err.msg);
    if (compare_check_runs(runs, n, &err)) df_die(DF_EXIT_INPUT, "compare: %s", err.msg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    compare_runs(f, runs, n, format);
    fclose(f);
    if (out && df_write_file_atomic(out, text, len, &err)) df_die(DF_EXIT_INPUT, "compare: %s", err.msg);
    if (!out) fwrite(text, 1, len, stdout);
    free(text);
    for (int i = 0; i < n; i++) compare_free_run(&runs[i]), free(dirs[i]);
    free(runs);
    free(dirs);
    return 0;
}
