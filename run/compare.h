// compare.h: `deconfound compare`: finished runs side by side, one row per method. Runs that
// repeat one configuration -- the same config.ini but for [train] seed, [data] fold and
// split_seed, and keys that do not change results (out_dir, threads, ...) -- form one
// method, reported as mean +- standard deviation over its runs. Between methods, a paired
// Wilcoxon signed-rank test over the folds (or seeds) both ran, against the first method: two
// runs pair when their fold, split_seed and seed are equal.
#ifndef DF_COMPARE_H
#define DF_COMPARE_H
#include <stdio.h>
#include "base/common.h"

#define COMPARE_MAX_CONFOUNDERS 16

typedef struct {
    char dir[512];
    char config[512];       // run.json's config (the experiment file as given)
    char status[32];        // run.json's status
    char *settings;         // config.ini minus the repetition keys, one "section.key=value" per line
    char pair_key[96];      // "fold 2, split_seed 0, seed 1" with kfold, else "seed 3, split_seed 0":
                            // runs of two methods pair up when theirs are equal
    int epoch;              // the last epoch in metrics.csv
    double acc, bal_acc, worst_acc, auc;  // its validation figures (NAN where absent)
    char worst_group[128];
    char dcor_layer[64];    // dcor.csv's first layer at its last epoch ("" without dcor.csv)
    int n_dcor;
    char dcor_name[COMPARE_MAX_CONFOUNDERS][64];
    double dcor[COMPARE_MAX_CONFOUNDERS];  // dCor^2 (bias-corrected) of each confounder, scope all
} RunSummary;

// Reads a run directory (run.json, config.ini, metrics.csv, dcor.csv when present). -1 with
// err naming the file and problem.
int compare_read_run(RunSummary *r, const char *dir, DfError *err);
void compare_free_run(RunSummary *r);

typedef enum { COMPARE_TABLE, COMPARE_MARKDOWN, COMPARE_CSV } CompareFormat;

// -1 with err when two runs are one method with one pair_key: the same run given twice (a
// copy, or a folder of runs beside one of them), which the means and the test would count
// twice.
int compare_check_runs(const RunSummary *runs, int n, DfError *err);

// The comparison of n runs, written to f.
void compare_runs(FILE *f, RunSummary *runs, int n, CompareFormat format);
#endif
