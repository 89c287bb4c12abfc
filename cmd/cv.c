// cv.c: `deconfound cv CONFIG --folds K`: k-fold cross-validation in one job -- every fold
// trained in turn on all the ranks, then the folds compared (run/compare.h).
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "data/json.h"
#include "mpi/comm.h"
#include "run/compare.h"
#include "run/plot.h"
#include "run/record.h"
#include "run/train.h"

static const char *cv_help =
    "usage: deconfound cv CONFIG.ini --folds K [--out DIR] [--set section.key=value ...]\n"
    "                     [--threads N] [--quiet]\n"
    "\n"
    "Trains fold 0, 1, ..., K-1 of CONFIG.ini in sequence on the ranks it is started on (each\n"
    "as `deconfound train CONFIG.ini --set data.kfold=K --set data.fold=F --set\n"
    "train.out_dir=DIR/fold-F` would), then writes the folds' comparison: DIR/compare.md\n"
    "(mean ± sd over the folds; `deconfound compare DIR` prints it again), DIR/compare.csv and\n"
    "DIR/plot.png (the folds' curves overlaid; needs gnuplot).\n"
    "Validation is fold F of the subjects (stratified as [data] stratify says); the test split,\n"
    "if any, stays out of every fold.\n"
    "\n"
    "Run it again with the same --out to continue an interrupted cross-validation: a fold with\n"
    "a checkpoint resumes from it (refused if the configuration changed, as train --resume is),\n"
    "a finished fold is left as it is if it trained exactly this fold (refused, exit 2, if its\n"
    "config.ini differs: another CONFIG, --set or --folds; only where and how it reads the data,\n"
    "threads, logging and checkpointing may differ). On a cluster, jobs/cv.sh runs the folds as\n"
    "a Slurm array.\n"
    "\n"
    "  --folds K      folds (2..100)\n"
    "  --out DIR      the cross-validation's folder (default runs/<config name>-cv<K>-<date>-<time>)\n"
    "  --set s.k=v    override a config value for every fold; repeatable (not data.kfold,\n"
    "                 data.fold or train.out_dir, which cv sets from --folds and --out)\n"
    "  --threads N    OpenBLAS threads per rank\n"
    "  --quiet        no progress lines\n";

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// Whether a fold's run.json says it finished every epoch the configuration asks for.
static int fold_finished(const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/run.json", dir);
    JsonValue run;
    DfError err;
    if (json_read(&run, path, &err)) return 0;  // absent or unreadable: train it (again)
    const JsonValue *status = json_get(&run, "status");
    int finished = status && status->type == JSON_STRING && strcmp(status->string, "finished") == 0;
    json_free(&run);
    return finished;
}

// A fold's training as `deconfound train` would be asked for it (its command line too, for
// run.json): CONFIG with the user's --set, then data.kfold, data.fold and train.out_dir.
typedef struct {
    char kfold[64], foldset[64], outset[1100], ckpt[1100];
    const char **all;
    char **argv;
    TrainArgs a;
} Fold;

static void fold_args(Fold *f, const char *config, const char **sets, int n_sets, int K, int fold, const char *dir,
                      int threads) {
    memset(f, 0, sizeof *f);
    snprintf(f->kfold, sizeof f->kfold, "data.kfold=%d", K);
    snprintf(f->foldset, sizeof f->foldset, "data.fold=%d", fold);
    snprintf(f->outset, sizeof f->outset, "train.out_dir=%s", dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/checkpoint.h5", dir);
    f->all = xcalloc((size_t)n_sets + 3, sizeof(char *));
    f->argv = xcalloc(2 * ((size_t)n_sets + 3) + 4, sizeof(char *));
    int argc = 0;
    f->argv[argc++] = "train";
    f->argv[argc++] = (char *)config;
    for (int i = 0; i < n_sets + 3; i++) {
        f->all[i] = i < n_sets ? sets[i] : i == n_sets ? f->kfold : i == n_sets + 1 ? f->foldset : f->outset;
        f->argv[argc++] = "--set";
        f->argv[argc++] = (char *)f->all[i];
    }
    int resume = file_exists(f->ckpt);
    if (resume) f->argv[argc++] = "--resume", f->argv[argc++] = f->ckpt;
    f->a = (TrainArgs){ .config = config, .sets = f->all, .n_sets = n_sets + 3, .resume = resume ? f->ckpt : NULL,
                        .threads = threads, .argc = argc, .argv = f->argv };
}

static void fold_free(Fold *f) {
    free(f->all);
    free(f->argv);
}

static int train_fold(const Fold *f, int K, int fold, const char *dir) {
    if (dist_rank() == 0) printf("==== fold %d/%d: %s%s\n", fold + 1, K, dir, f->a.resume ? " (resuming)" : ""), fflush(stdout);
    return train_run(&f->a);
}

// A finished fold is kept only if it trained what this fold would: its config.ini (the
// configuration as run, every default filled in) against this one -- another --folds,
// --set or CONFIG is refused, naming the folder and the first difference.
static void check_finished(const Fold *f, const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    DfError err = { "" };
    char *text = NULL;
    long len = 0;
    if (dist_rank() == 0) {
        size_t n = 0;
        text = df_read_text_file(path, &n, &err);
        len = text ? (long)n : -1;
    }
    dist_bcast(&len, sizeof len, 0);
    if (len < 0) {
        dist_bcast(err.msg, sizeof err.msg, 0);
        df_die_collective(DF_EXIT_INPUT, "cv: %s finished, but its configuration cannot be read (%s): to start afresh, give "
                          "another --out or remove %s", dir, err.msg, dir);
    }
    if (dist_rank() != 0) text = xcalloc((size_t)len + 1, 1);
    dist_bcast(text, (size_t)len + 1, 0);
    if (train_same_config(&f->a, text, path, &err))
        df_die_collective(DF_EXIT_INPUT, "cv: %s finished with another configuration than this fold's: %s. To start afresh, "
                          "give another --out or remove %s", dir, err.msg, dir);
    free(text);
}

// DIR/compare.md and DIR/compare.csv from the folds, and the table on stdout.
static void compare_folds(const char *out, int K) {
    RunSummary *runs = xcalloc((size_t)K, sizeof *runs);
    DfError err;
    for (int f = 0; f < K; f++) {
        char dir[700];
        snprintf(dir, sizeof dir, "%s/fold-%d", out, f);
        if (compare_read_run(&runs[f], dir, &err)) df_die(DF_EXIT_FAIL, "cv: %s", err.msg);
    }
    const char *names[2] = { "compare.md", "compare.csv" };
    for (int k = 0; k < 2; k++) {
        char *text = NULL, path[700];
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        compare_runs(f, runs, K, k ? COMPARE_CSV : COMPARE_MARKDOWN);
        fclose(f);
        snprintf(path, sizeof path, "%s/%s", out, names[k]);
        if (df_write_file_atomic(path, text, len, &err)) df_die(DF_EXIT_INPUT, "cv: %s", err.msg);
        if (k == 0) printf("==== %d-fold cross-validation (%s):\n%s", K, path, text);
        free(text);
    }
    // every fold's curves overlaid (as the folds' own plots, skipped quietly without gnuplot)
    char png[700], **dirs = xcalloc((size_t)K, sizeof(char *));
    for (int f = 0; f < K; f++) dirs[f] = runs[f].dir;
    snprintf(png, sizeof png, "%s/plot.png", out);
    if (plot_runs((const char *const *)dirs, K, png, &err) == 0) printf("plot: %s\n", png);
    free(dirs);
    for (int f = 0; f < K; f++) compare_free_run(&runs[f]);
    free(runs);
}

int cmd_cv(int argc, char **argv) {
    const char *cmd = "cv", *v, *config = NULL, *out = NULL;
    const char **sets = xcalloc((size_t)argc, sizeof(char *));
    int n_sets = 0, K = 0, threads = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(cv_help, stdout); free(sets); return 0; }
        else if (cli_opt(argc, argv, &i, "--set", &v, cmd)) sets[n_sets++] = v;
        else if (cli_opt(argc, argv, &i, "--folds", &v, cmd)) K = (int)cli_long(cmd, "--folds", v, 2, 100);
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) out = v;
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!config) config = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!config) cli_usage_error(cmd, "missing CONFIG.ini");
    if (!K) cli_usage_error(cmd, "missing --folds K");
    // cv sets these for every fold after the user's --set: a --set of them would be overridden
    static const char *const own[][2] = { { "data.kfold", "--folds" }, { "data.fold", "the fold" }, { "train.out_dir", "--out" } };
    for (int i = 0; i < n_sets; i++)
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(own[k][0]);
            if (strncmp(sets[i], own[k][0], n) == 0 && (sets[i][n] == '=' || sets[i][n] == ' '))
                cli_usage_error(cmd, "--set %s: cv sets %s itself, from %s", sets[i], own[k][0], own[k][1]);
        }
    progress_enable(dist_rank() == 0 && !quiet);
    char dir[512];
    if (out) snprintf(dir, sizeof dir, "%s", out);
    else {  // one name for every rank: rank 0's clock
        char tag[16];
        snprintf(tag, sizeof tag, "cv%d", K);
        if (dist_rank() == 0) record_default_dir(dir, sizeof dir, config, tag);
        dist_bcast(dir, sizeof dir, 0);
    }
    int status = 0;
    for (int f = 0; f < K && status == 0; f++) {
        char fold_dir[700];
        snprintf(fold_dir, sizeof fold_dir, "%s/fold-%d", dir, f);
        int done = dist_rank() == 0 ? fold_finished(fold_dir) : 0;
        dist_bcast(&done, sizeof done, 0);
        Fold fold;
        fold_args(&fold, config, sets, n_sets, K, f, fold_dir, threads);
        if (done) {
            check_finished(&fold, fold_dir);
            if (dist_rank() == 0) printf("==== fold %d/%d: %s finished earlier\n", f + 1, K, fold_dir);
        } else {
            status = train_fold(&fold, K, f, fold_dir);
        }
        fold_free(&fold);
    }
    if (status == 0 && dist_rank() == 0) compare_folds(dir, K);
    free(sets);
    return status;
}
