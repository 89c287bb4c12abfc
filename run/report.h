// report.h: what a training run tells its user, on rank 0: the run header, progress lines,
// one line per epoch, the final line, and the files beside the checkpoint -- metrics.csv and
// metrics.jsonl (one row / object per epoch, every figure), metrics.json (the same epochs as
// one object, kept for older scripts), dcor.csv (one dCor^2 per row) and dcor.json (one
// report per line). Files are rewritten whole and atomically after every epoch, so a run
// stopped at any moment leaves valid ones; a resumed run keeps the earlier epochs' rows of
// metrics.csv, metrics.jsonl and dcor.csv (docs/formats.md, "The run directory").
#ifndef DF_REPORT_H
#define DF_REPORT_H
#include "run/dcor_report.h"
#include "run/figures.h"

#define REPORT_MAX_TERM_COLS 32

typedef struct {
    double train_loss, train_acc, val_loss, val_acc, seconds, samples_per_s, lr, comm_wait_ms, data_wait_ms;
    double val_acc_aligned, val_acc_conflicting;  // [train] accuracy_by; NaN without it
    double train_bal_acc, val_bal_acc, val_auc;   // NaN where they do not exist (figures.h)
    Figures val;                                  // validation per-group accuracies
    double terms[REPORT_MAX_TERM_COLS];  // the loss terms' columns: each term's mean value per sample, then its logs
} EpochLog;

typedef struct {
    char out_dir[512];
    int classification;     // accuracies are reported
    int first_epoch;        // the first epoch this process ran (a resumed run lists its own)
    int epochs;
    EpochLog *log;          // (epochs)
    char *dcor_json;        // the dcor.json lines so far
    size_t dcor_json_len;
    char *kept_csv, *kept_jsonl, *dcor_csv;  // rows of earlier runs (resumed) and this one's
    size_t dcor_csv_len;
    GroupSet groups;        // the per-group accuracy columns
    int n_terms;            // loss-term columns, reported beside the loss
    char term_names[REPORT_MAX_TERM_COLS][140];  // "feature_l2(fc1)", "end(feat)", "end(feat).R_perp", ...
} Report;

void report_init(Report *r, const char *out_dir, int epochs, int first_epoch, int classification, const GroupSet *groups);
void report_free(Report *r);
// A loss-term column, reported with every epoch: a term's value ("end(feat)") or one of its
// logged quantities ("end(feat).R_perp", printed after its term's value).
void report_add_column(Report *r, const char *name);
void report_columns_done(Report *r);
// "epoch 3/10 done: train loss 0.31 acc 0.87 | val loss 0.40 acc 0.82 | 812 samples/s, 1.2 s"
// on stdout, and metrics.csv, metrics.jsonl and metrics.json rewritten up to this epoch.
// Call report_columns_done after the last report_add_column and before the first epoch.
void report_epoch(Report *r, int epoch, int has_val, int multi_rank);
// Prints the dCor report and appends it to dcor.json and dcor.csv (rewritten whole).
void report_dcor(Report *r, const DcorReport *rep, const char *layer, int epoch);
// The last line: final accuracies (or losses) of the last epoch.
void report_final(const Report *r, int n_val);
#endif
