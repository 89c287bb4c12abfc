// record.h: what a run directory says about the run that made it, beside the checkpoint and
// the metrics: run.json (the command line, the code version, the machine, ranks and
// threads, when it started and ended and how), config.ini (the configuration as run, every
// default filled in), and log.txt (what rank 0 printed). docs/formats.md, "The run
// directory", lists every file.
#ifndef DF_RECORD_H
#define DF_RECORD_H
#include "base/common.h"

typedef struct {
    char dir[512];
    char config[512];       // the experiment file as given
    char *command;          // the command line, shell-quoted ("deconfound train a.ini --set ...")
    int ranks, threads;     // MPI ranks, OpenBLAS threads per rank
    char blas[256];         // blas_core_describe
    char started[32], finished[32];  // ISO 8601 UTC; finished is "" while running
    const char *status;     // "running", "finished", "stopped" (by a signal, resumable)
    long seed;
    int kfold, fold;        // [data] kfold, fold (0, 0 without cross-validation)
    int epochs, epochs_done;
    int classification;
    char resumed_from[512]; // --resume CHECKPOINT of the latest start, "" for none
} RunRecord;

// The default run directory: runs/<config file name without .ini>-<YYYYmmdd-HHMMSS> (local
// time), or runs/<name>-<tag>-<time> with a tag ("cv5"), with -2, -3, ... appended when that
// exists already.
void record_default_dir(char *buf, size_t n, const char *config, const char *tag);
// "deconfound train a.ini --set 'x.y=a b'": argv[0..argc) quoted for a POSIX shell.
char *record_quote_command(int argc, char *const *argv);
// "2026-12-01T10:08:08Z"
void record_now_iso(char buf[32]);
// Writes <dir>/run.json (atomically; rewritten at the end with the status).
int record_write(const RunRecord *r, DfError *err);
#endif
