// train.h: the training loop behind `deconfound train`, data-parallel over the ranks it runs on.
// The global batch ([train] batch) is split over the ranks: rank r takes samples
// [B*r/P, B*(r+1)/P) of each global batch, so the same global batches are seen at any rank
// count. The loss is the mean over the global batch; gradients are summed over ranks; batch
// statistics are global through the reducer (docs/distributed.md).
#ifndef DF_TRAIN_H
#define DF_TRAIN_H
#include "data/cohort.h"
#include "nn/loss.h"
#include "nn/optim.h"

typedef struct {
    int epochs;
    int batch;            // global batch size
    OptConfig opt;
    Schedule sched;
    LossConfig loss;
    uint64_t seed;        // initialisation, shuffling and dropout
    char out_dir[512];    // the run directory ("" until set up: runs/<config>-<time>, record.h)
    int checkpoint_every; // epochs (0 = only at the end)
    int log_every;        // in a file, a progress line also every log_every steps (0: by time only)
    int threads;          // compute threads per rank (0 = cores / ranks on the node)
    double bucket_mb;     // gradient all-reduce bucket size (MiB)
    char dcor_layer[256]; // report dCor of these layers' features vs metadata ("a,b"; "" = none)
    int dcor_every;       // epochs between reports (0: at the end only)
    int dcor_cols[16], n_dcor_cols;  // metadata columns reported
    int accuracy_by;      // validation accuracy also over bias-aligned / -conflicting samples of this column (-1: no)
    int train_eval_gap;   // 1: each epoch, the train/eval gap of every BatchNorm and MDN layer (run/gap.h)
    int profile;          // 1: at the end, rank 0's time per layer over the training steps
    int on_nonfinite;     // NONFINITE_STOP or NONFINITE_SKIP_BATCH: a step whose values went NaN/inf
    int check_every;      // steps between checks of every stored layer output (0: gradients only)
} TrainConfig;
enum { NONFINITE_STOP, NONFINITE_SKIP_BATCH };

// Parses [train] and [loss]. The cohort names the metadata columns of dcor_columns, the
// schema the mse target column; either may be NULL.
int train_config_parse(TrainConfig *tc, const Ini *ini, const Cohort *cohort, const MetaSchema *schema, DfError *err);

// What `deconfound train` was asked to do.
typedef struct {
    const char *config;        // the experiment file
    const char *const *sets;   // --set section.key=value, in order
    int n_sets;
    const char *resume;        // --resume CHECKPOINT, or NULL
    int threads;               // --threads (0: [train] threads)
    int argc;                  // the command line as typed after "deconfound" (for run.json)
    char *const *argv;
} TrainArgs;

// Runs the training on every rank (collective). Returns the exit status: 0, or
// DF_EXIT_INTERRUPTED after a stop on SIGTERM/SIGUSR1 that wrote a checkpoint to resume
// from. Bad input ends the job with status 2 and one message.
int train_run(const TrainArgs *args);

// Collective, trains nothing: 0 when the training `args` asks for is the one whose
// configuration as run (a run directory's config.ini, a checkpoint's /config) is saved_text
// (run/resume.h, resume_check_finished); else -1 with the first difference in err, naming
// `origin` as what was trained with the other value. A bad configuration ends the job as
// train_run would (status 2, one message).
int train_same_config(const TrainArgs *args, const char *saved_text, const char *origin, DfError *err);
#endif
