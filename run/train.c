// train.c: the data-parallel training loop (see train.h).
//
// train_run reads as the run goes: set up (configuration, data, network, a checkpoint to
// resume from, loaders, the run directory and its records), then epoch after epoch: the
// steps (forward, loss, backward with the gradient all-reduce overlapped, optimiser), and at
// the end of each epoch the validation pass and its figures, the dCor report, the epoch line,
// the run directory's tables and the checkpoint; at the end run.json's status and the plot.
// A signal stops the run after the step every rank agrees on, with a checkpoint to resume
// from.
#include "run/train.h"
#include "base/blas_core.h"
#include "base/console.h"
#include "base/progress.h"
#include "base/version.h"
#include "data/checkpoint.h"
#include "data/loader.h"
#include "mpi/comm.h"
#include "mpi/gradsync.h"
#include "nn/metrics.h"
#include "nn/term.h"
#include "run/dcor_report.h"
#include "run/figures.h"
#include "run/gap.h"
#include "run/infer.h"
#include "run/plot.h"
#include "run/record.h"
#include "run/refit.h"
#include "run/report.h"
#include "run/resume.h"
#include "run/step.h"
#include "run/nonfinite.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---- configuration ------------------------------------------------------------------------

int train_config_parse(TrainConfig *tc, const Ini *cini, const Cohort *cohort, const MetaSchema *schema, DfError *err) {
    Ini *ini = (Ini *)cini;
    memset(tc, 0, sizeof *tc);
    IniSection *t = ini_section(ini, "train");
    if (!t) return df_err(err, "%s: missing [train] section (epochs, batch, optimizer, lr, ...)", ini->origin);
    long seed;
    double lr;
    int opt, sched;
    if (ini_int(ini, t, "epochs", 1, 0, 1000000, &tc->epochs, err)) return -1;
    if (ini_int(ini, t, "batch", 16, 1, 1 << 20, &tc->batch, err)) return -1;
    if (ini_long(ini, t, "seed", 1, 0, INT64_MAX >> 1, &seed, err)) return -1;
    tc->seed = (uint64_t)seed;
    if (ini_choice(ini, t, "optimizer", "adam", opt_kind_names, &opt, err)) return -1;
    tc->opt.kind = (OptKind)opt;
    if (ini_double(ini, t, "lr", 1e-3, 0.0, 100.0, &lr, err)) return -1;
    if (ini_double(ini, t, "momentum", 0.0, 0.0, 1.0, &tc->opt.momentum, err)) return -1;
    if (ini_bool(ini, t, "nesterov", 0, &tc->opt.nesterov, err)) return -1;
    if (ini_double(ini, t, "weight_decay", tc->opt.kind == OPT_ADAMW ? 1e-2 : 0.0, 0.0, 10.0, &tc->opt.weight_decay, err)) return -1;
    if (ini_double(ini, t, "beta1", 0.9, 0.0, 0.999999, &tc->opt.beta1, err)) return -1;
    if (ini_double(ini, t, "beta2", 0.999, 0.0, 0.999999999, &tc->opt.beta2, err)) return -1;
    if (ini_double(ini, t, "eps", 1e-8, 1e-30, 1.0, &tc->opt.eps, err)) return -1;
    if (tc->opt.nesterov && tc->opt.momentum <= 0.0) {
        char where[512];
        ini_where(ini, t, "nesterov", where, sizeof where);
        return df_err(err, "%s: [train] nesterov = true needs momentum > 0", where);
    }
    if (ini_choice(ini, t, "schedule", "constant", sched_kind_names, &sched, err)) return -1;
    tc->sched.kind = (SchedKind)sched;
    tc->sched.base_lr = lr;
    tc->sched.total_epochs = tc->epochs;
    if (ini_int(ini, t, "step_size", 10, 1, 1000000, &tc->sched.step_size, err)) return -1;
    if (ini_double(ini, t, "gamma", 0.1, 0.0, 1.0, &tc->sched.gamma, err)) return -1;
    if (ini_double(ini, t, "min_lr", 0.0, 0.0, 100.0, &tc->sched.min_lr, err)) return -1;
    if (ini_int(ini, t, "warmup_epochs", 0, 0, 1000000, &tc->sched.warmup_epochs, err)) return -1;
    const char *out = ini_str(t, "out_dir", "");  // "": chosen when the run starts (record.h)
    if (strlen(out) >= sizeof tc->out_dir) return df_err(err, "%s: [train] out_dir is too long", ini->origin);
    snprintf(tc->out_dir, sizeof tc->out_dir, "%s", out);
    if (ini_int(ini, t, "checkpoint_every", 1, 0, 1000000, &tc->checkpoint_every, err)) return -1;
    if (ini_int(ini, t, "log_every", 0, 0, 1000000, &tc->log_every, err)) return -1;
    if (ini_int(ini, t, "threads", 0, 0, 1024, &tc->threads, err)) return -1;
    if (ini_double(ini, t, "bucket_mb", 4.0, 0.004, 1024.0, &tc->bucket_mb, err)) return -1;
    const char *dl = ini_str(t, "dcor_layer", "");
    if (strlen(dl) >= sizeof tc->dcor_layer) return df_err(err, "%s: [train] dcor_layer is too long", ini->origin);
    snprintf(tc->dcor_layer, sizeof tc->dcor_layer, "%s", dl);
    if (ini_int(ini, t, "dcor_every", 0, 0, 1000000, &tc->dcor_every, err)) return -1;
    if (ini_bool(ini, t, "train_eval_gap", 0, &tc->train_eval_gap, err)) return -1;
    if (ini_bool(ini, t, "profile", 0, &tc->profile, err)) return -1;
    static const char *const nonfinite_names[] = { "stop", "skip_batch", NULL };
    if (ini_choice(ini, t, "on_nonfinite", "stop", nonfinite_names, &tc->on_nonfinite, err)) return -1;
    if (ini_int(ini, t, "check_every", 50, 0, 1000000, &tc->check_every, err)) return -1;
    const char *dc = ini_str(t, "dcor_columns", NULL);
    if (cohort && (dc || *dl)) {  // default: every metadata column
        char where[512];
        ini_where(ini, t, dc ? "dcor_columns" : "dcor_layer", where, sizeof where);
        if (!dc) {
            for (int j = 0; j < cohort->k && tc->n_dcor_cols < 16; j++) tc->dcor_cols[tc->n_dcor_cols++] = j;
        } else {
            char *copy = xstrdup(dc), *save = NULL;
            for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                int col = cohort_column(cohort, tok);
                if (col < 0 || tc->n_dcor_cols == 16) {
                    free(copy);
                    return df_err(err, "%s: [train] dcor_columns: %s", where,
                                  col < 0 ? "the data have no such column" : "at most 16 columns");
                }
                tc->dcor_cols[tc->n_dcor_cols++] = col;
            }
            free(copy);
        }
        if (tc->n_dcor_cols == 0) return df_err(err, "%s: [train] dcor_layer: the data have no metadata columns", where);
    }

    tc->accuracy_by = -1;
    const char *ab = ini_str(t, "accuracy_by", NULL);
    if (ab && *ab) {
        char where[512];
        ini_where_key(ini, t, "accuracy_by", where, sizeof where);
        if (!schema || (tc->accuracy_by = meta_column(schema, ab)) < 0)
            return df_err(err, "%s = %s: the data have no such metadata column", where, ab);
        // aligned means the column's value is the sample's class: a continuous column (age)
        // never is, and would report NaN for the aligned samples
        if (!schema->categorical[tc->accuracy_by])
            return df_err(err, "%s = %s: a continuous column; accuracy_by takes a categorical one whose value is "
                          "the class a sample is biased towards (e.g. colour, background)", where, ab);
    }
    return loss_config_parse(&tc->loss, ini, schema, err);
}

// ---- stopping on a signal, and injected faults ---------------------------------------------

// Set by SIGTERM (Slurm's preemption / time limit) or SIGUSR1 (`sbatch --signal=USR1@T`); the
// loop stops after the step in progress, once every rank knows (see step_stats).
static volatile sig_atomic_t g_stop = 0;
static void on_stop_signal(int sig) { g_stop = 1; (void)sig; }

static void install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

// DECONFOUND_FAULT=RANK:STEP[:KIND] makes that rank fail before that global step, to test that a
// failing rank ends the whole job (KIND: "error" (default) reports and aborts like a read
// error would, "segv" crashes), or receive SIGTERM at that step ("term": only that rank gets
// it, as when a signal reaches ranks at different moments), or spend 4 s more in every step
// from that one on ("slow"; RANK -1 is every rank), so preemption is tested with steps longer
// than Open MPI's one-second kill timeout (tests/preempt_mpirun.sh), or fail there on every
// rank at once ("shared", RANK -1; or on one rank), as a diverging layer's state does
// (df_die_shared). For tests only.
typedef struct { int rank; long step; char kind[16]; int armed; } FaultPlan;

static FaultPlan fault_plan_from_env(void) {
    FaultPlan f = { -1, -1, "error", 0 };
    const char *v = getenv("DECONFOUND_FAULT");
    if (v && sscanf(v, "%d:%ld:%15s", &f.rank, &f.step, f.kind) >= 2) f.armed = 1;
    return f;
}

static void fault_check(const FaultPlan *f, long step) {
    if (!f->armed || (f->rank != dist_rank() && f->rank != -1)) return;
    if (strcmp(f->kind, "slow") == 0) {
        // the whole 4 s even when a signal arrives: the step in progress when a stop is asked
        // must outlast Open MPI's kill sequence (SIGTERM after 1 s, SIGKILL after 2), as a
        // real long step would
        struct timespec left = { 4, 0 };
        if (step >= f->step)
            while (nanosleep(&left, &left) == -1 && errno == EINTR) {}
        return;
    }
    if (f->step != step) return;
    if (strcmp(f->kind, "shared") == 0) df_die_shared(DF_EXIT_FAIL, "injected divergence (DECONFOUND_FAULT) at step %ld", step);
    if (strcmp(f->kind, "segv") == 0) raise(SIGSEGV);
    if (strcmp(f->kind, "term") == 0) { raise(SIGTERM); return; }
    df_die(DF_EXIT_FAIL, "injected fault (DECONFOUND_FAULT) at step %ld", step);
}


// ---- the run's state ----------------------------------------------------------------------

typedef struct {
    TrainArgs args;
    Ini ini;
    Dataset ds;
    MetaSchema *schema;     // the metadata coding (the checkpoint's when resuming)
    TrainConfig tc;
    Net net;
    Net twin;               // the network again, on its tensors, for CLAD's positives (built when a term needs them)
    Optimizer opt;
    TrainState ts;          // epoch, step, RNG: what a checkpoint resumes
    Loader *train, *val;    // val is NULL without a validation split
    Loader *train_plain;    // the training split without augmentation, for the evaluation-mode
                            // refit; NULL when nothing is augmented or no layer wants that pass
    GradSync *gs;
    char *config_text;      // the configuration as run, stored in every checkpoint
    char ckpt_path[600];
    int P, rank, K, classification, steps_per_epoch;
    int n_dcor;             // [train] dcor_layer: the layers reported
    int dcor_out[4];        // their net->acts indexes
    char dcor_name[4][64];
    GroupSet groups;        // the per-group accuracy's groups: every categorical column's levels
    RunRecord rec;          // run.json
    int made_dir;           // rank 0 created the run directory (it did not exist before this run)
    int threads;            // OpenBLAS threads per rank
    float *dlogits, *scratch;
    LossTerm *terms;        // the experiment's loss terms on named layers (nn/term.h)
    int n_terms;
    TermRunner tr;          // and how the loop runs them (run/terms.h)
    GapMeter gap;           // [train] train_eval_gap: the meter (no layers tracked when off)
    Report report;
    FaultPlan fault;
    double data_wait0;      // the loader's waiting time when the epoch began
    float *state_before;          // the network's state before the step (restored if it is skipped)
    long skipped_epoch, skipped_total;  // [train] on_nonfinite = skip_batch: batches skipped
    double *prof_fwd, *prof_bwd;  // [train] profile: seconds per layer over the training steps
    double prof_seconds;          // and of the steps themselves
    long prof_steps;
} Trainer;

static int mkdir_p(const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

// ---- setting up ---------------------------------------------------------------------------

// The run directory: [train] out_dir; else, when resuming, the checkpoint's folder (a resumed
// run continues its own records); else runs/<config>-<time>, which rank 0 chooses for all.
// The choice is recorded as out_dir's value, so config.ini names it.
static void choose_run_dir(Trainer *t) {
    if (t->tc.out_dir[0]) return;
    char dir[512] = "";
    if (t->args.resume) {
        snprintf(dir, sizeof dir, "%s", t->args.resume);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
    } else if (t->rank == 0) {
        record_default_dir(dir, sizeof dir, t->args.config, NULL);
    }
    dist_bcast(dir, sizeof dir, 0);
    snprintf(t->tc.out_dir, sizeof t->tc.out_dir, "%s", dir);
    IniEntry *set_empty = ini_entry(ini_section(&t->ini, "train"), "out_dir");  // "out_dir =" given
    if (set_empty) free(set_empty->value), set_empty->value = xstrdup(dir);
    else ini_note_default(ini_section(&t->ini, "train"), "out_dir", dir);
}

// [data] kfold and fold as the file or --set gave them (0 when absent), for run.json.
static int data_key(Ini *ini, const char *key) {
    IniEntry *e = ini_entry(ini_section(ini, "data"), key);
    return e ? atoi(e->value) : 0;
}

// Rank 0: the run directory's records of the run itself (record.h), and its log from here on.
static void start_records(Trainer *t) {
    DfError err;
    char path[600];
    snprintf(path, sizeof path, "%s/log.txt", t->tc.out_dir);
    if (console_tee(path, &err)) df_die(DF_EXIT_INPUT, "%s", err.msg);
    if (t->args.resume) printf("\n---- resumed %s\n", t->args.resume);
    RunRecord *r = &t->rec;
    snprintf(r->dir, sizeof r->dir, "%s", t->tc.out_dir);
    snprintf(r->config, sizeof r->config, "%s", t->args.config);
    r->command = record_quote_command(t->args.argc, t->args.argv);
    r->ranks = t->P;
    r->threads = t->threads;
    blas_core_describe(r->blas, sizeof r->blas);
    record_now_iso(r->started);
    r->status = "running";
    r->seed = (long)t->tc.seed;
    r->kfold = data_key(&t->ini, "kfold");
    r->fold = data_key(&t->ini, "fold");
    r->epochs = t->tc.epochs;
    r->epochs_done = t->ts.epoch;
    r->classification = t->classification;
    if (t->args.resume) snprintf(r->resumed_from, sizeof r->resumed_from, "%s", t->args.resume);
    snprintf(path, sizeof path, "%s/config.ini", t->tc.out_dir);
    // What stops a write is the disk or the folder (full, read-only, gone): the user's to
    // fix, so exit 2 as for bad input.
    if (df_write_file_atomic(path, t->config_text, strlen(t->config_text), &err) || record_write(r, &err))
        df_die(DF_EXIT_INPUT, "%s", err.msg);
}

// Rank 0, at the end (finished, or stopped by a signal with a checkpoint to resume from):
// run.json's ending, and plot.png. Without gnuplot the run still succeeds; how to get plots
// is said once per process (a cross-validation trains several runs).
static void finish_records(Trainer *t, int status) {
    DfError err;
    record_now_iso(t->rec.finished);
    t->rec.status = status == DF_EXIT_OK ? "finished" : "stopped";
    t->rec.epochs_done = t->ts.epoch;
    if (record_write(&t->rec, &err)) fprintf(stderr, "deconfound: %s\n", err.msg);
    static int said;
    char png[600];
    const char *dir = t->tc.out_dir;
    snprintf(png, sizeof png, "%s/plot.png", dir);
    int rc = t->ts.epoch > 0 ? plot_runs(&dir, 1, png, &err) : 0;
    if (rc == 0 && t->ts.epoch > 0) printf("plot: %s\n", png);
    else if (rc == PLOT_NO_GNUPLOT && !said++)
        printf("plots: none drawn (%s); the run's tables are complete, and `deconfound plot %s` draws them later\n", err.msg,
               dir);
    else if (rc == PLOT_BAD_INPUT) fprintf(stderr, "deconfound: plot: %s\n", err.msg);
}

// The configuration, the data and their metadata schema, the network. Every error is one
// every rank finds identically: one message, status 2.
static void setup_config(Trainer *t) {
    DfError err;
    if (ini_load(&t->ini, t->args.config, t->args.sets, t->args.n_sets, &err) || dataset_from_config(&t->ds, &t->ini, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    // The metadata schema: the training data's own, or, when resuming, the one the checkpoint
    // was trained with (the data recoded to it by level name).
    t->schema = xmalloc(sizeof *t->schema);
    if (t->args.resume ? infer_schema(t->schema, &t->ds.cohort, t->args.resume, t->ds.source, &err)
                       : meta_schema_build(t->schema, &t->ds.cohort, &err))
        df_die_collective(DF_EXIT_INPUT, "%s%s%s", t->args.resume ? "" : t->ds.source, t->args.resume ? "" : ": ", err.msg);
    if (train_config_parse(&t->tc, &t->ini, &t->ds.cohort, t->schema, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (t->args.threads > 0) t->tc.threads = t->args.threads;
    t->P = dist_size();
    t->rank = dist_rank();
    choose_run_dir(t);
    int max_local = (t->tc.batch + t->P - 1) / t->P;
    if (net_build_meta(&t->net, &t->ini, t->ds.cohort.shape, max_local, dist_reducer(), t->schema, &err) ||
        loss_terms_build(&t->terms, &t->n_terms, &t->ini, &t->net, t->schema, t->tc.seed, &err) || ini_check_unused(&t->ini, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    terms_setup(&t->tr, t->terms, t->n_terms, &t->net, &t->tc.opt);
    if (terms_need_positives(&t->tr)) {
        if (!t->ds.cohort.has_masks) {
            char where[512];
            ini_where_key(&t->ini, ini_section(&t->ini, "debias"), "method", where, sizeof where);
            df_die_collective(DF_EXIT_INPUT, "%s = clad: CLAD pastes each sample's foreground onto other backgrounds, but %s has no "
                              "foreground masks (pack the data with a mask column, docs/formats.md)", where, t->ds.source);
        }
        if (net_build_meta(&t->twin, &t->ini, t->ds.cohort.shape, max_local, dist_reducer(), t->schema, &err))
            df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
        terms_set_twin(&t->tr, &t->twin);
    }
    if (t->tr.n_columns > REPORT_MAX_TERM_COLS)
        df_die_collective(DF_EXIT_INPUT, "%s: the loss terms log %d quantities (at most %d)", t->args.config, t->tr.n_columns,
                          REPORT_MAX_TERM_COLS);
    t->K = (int)shape_numel(t->net.out_shape);
    t->classification = t->tc.loss.kind != LOSS_MSE;
}

// What the configuration and the data must agree on, beyond each one's own checks.
static void check_config(Trainer *t) {
    const char *config = t->args.config;
    t->n_dcor = 0;
    if (t->tc.dcor_layer[0]) {
        char where[512], *copy = xstrdup(t->tc.dcor_layer), *save = NULL;
        ini_where(&t->ini, ini_section(&t->ini, "train"), "dcor_layer", where, sizeof where);
        for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            if (t->n_dcor == 4) df_die_collective(DF_EXIT_INPUT, "%s: [train] dcor_layer: at most 4 layers", where);
            if ((t->dcor_out[t->n_dcor] = net_layer_output_index(&t->net, tok)) < 0)
                df_die_collective(DF_EXIT_INPUT, "%s: [train] dcor_layer = %s: the network has no layer named %s", where,
                                  t->tc.dcor_layer, tok);
            snprintf(t->dcor_name[t->n_dcor++], sizeof t->dcor_name[0], "%s", tok);
        }
        free(copy);
        if (t->ds.n_val < 4)
            df_die_collective(DF_EXIT_INPUT, "%s: [train] dcor_layer needs a validation split of at least 4 samples", where);
    }
    if (t->tc.loss.kind == LOSS_CROSS_ENTROPY) {  // the classes are the outputs 0..K-1
        int top = 0;
        for (int i = 1; i < t->ds.cohort.n; i++) if (t->ds.cohort.labels[i] > t->ds.cohort.labels[top]) top = i;
        int y = t->ds.cohort.labels[top];
        if (y >= t->K) {
            char path[512], who[256];
            dataset_sample_name(&t->ds, top, path, sizeof path, who, sizeof who);
            df_die_collective(DF_EXIT_INPUT, "%s: %s: label %d, but the network of %s has %d outputs (classes 0..%d): the "
                              "last layer needs out >= %d", path, who, y, config, t->K, t->K - 1, y + 1);
        }
    }
    if (t->tc.loss.kind == LOSS_BCE_LOGITS) {  // one logit, of label 1 against label 0
        if (t->K != 1) {
            const IniSection *last = NULL;
            for (int i = 0; i < t->ini.n; i++)
                if (layer_ops_find(t->ini.sections[i].name)) last = &t->ini.sections[i];
            char where[512];
            ini_where(&t->ini, last, "out", where, sizeof where);
            df_die_collective(DF_EXIT_INPUT, "%s: [%s] %s: %d outputs, but [loss] type = bce_logits takes one (the logit of "
                              "label 1): the last layer needs out = 1 (or use type = cross_entropy)", where,
                              last ? last->name : "?", t->net.layers[t->net.n_layers - 1].name, t->K);
        }
        for (int i = 0; i < t->ds.cohort.n; i++) {
            int y = t->ds.cohort.labels[i];
            if (y == 0 || y == 1) continue;
            char path[512], who[256];
            dataset_sample_name(&t->ds, i, path, sizeof path, who, sizeof who);
            df_die_collective(DF_EXIT_INPUT, "%s: %s: label %d, but [loss] type = bce_logits of %s takes binary labels (0 or "
                              "1): use type = cross_entropy for more classes", path, who, y, config);
        }
    }
    if (t->ds.n_train < 1) df_die_collective(DF_EXIT_INPUT, "%s: the training split is empty", config);
    if (t->tc.train_eval_gap && t->ds.n_val < 1) {
        char where[512];
        ini_where_key(&t->ini, ini_section(&t->ini, "train"), "train_eval_gap", where, sizeof where);
        df_die_collective(DF_EXIT_INPUT, "%s: [train] train_eval_gap is measured on the validation split, and there is none", where);
    }
}

// Initial parameters and optimiser, or a checkpoint's; the same on every rank.
static void setup_state(Trainer *t) {
    DfError err;
    net_init(&t->net, t->tc.seed);
    if (t->tr.twin) net_share_tensors(&t->twin, &t->net);
    optim_init(&t->opt, &t->tc.opt, t->net.n_params);
    rng_seed_stream(&t->ts.rng, t->tc.seed, 0x5eed, 1);
    t->config_text = ini_serialize(&t->ini);
    t->ts.blobs = t->tr.blobs;  // the loss terms' state travels with the train state
    t->ts.n_blobs = t->tr.n_blobs;
    t->ts.term_sums = t->tr.acc;
    t->ts.n_term_sums = t->tr.n_acc;
    const char *resume = t->args.resume;
    if (resume) {
        // The same training, or not a resume: the configuration as run is compared first.
        char *saved = checkpoint_read_config(resume, &err);
        if (!saved || resume_check_config(&t->ini, saved, resume, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
        free(saved);
        if (checkpoint_load(resume, &t->net, &t->opt, &t->ts, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
        terms_after_load(&t->tr);
        if (t->ts.epoch > t->tc.epochs)
            df_die_collective(DF_EXIT_INPUT, "%s: checkpoint is at epoch %d, past the configured %d epochs", resume, t->ts.epoch,
                              t->tc.epochs);
        if (t->ts.epoch_step >= (t->ds.n_train + t->tc.batch - 1) / t->tc.batch)
            df_die_collective(DF_EXIT_INPUT, "%s: stopped %d steps into an epoch, but an epoch of this data and batch has fewer steps",
                              resume, t->ts.epoch_step);
    }
    // Every rank starts from rank 0's parameters (identical by construction; this guards
    // against any difference in how ranks were started).
    dist_bcast(t->net.params, t->net.n_params * sizeof(float), 0);
    dist_bcast(t->net.state, t->net.n_state * sizeof(float), 0);
    terms_bcast(&t->tr);
}

// Layers that fit statistics of the whole training split (MDN's kernel) see this rank's share
// of its metadata rows and labels; they sum over ranks themselves.
static void prepare_layers(Trainer *t) {
    const Dataset *ds = &t->ds;
    int lo = (int)((long)ds->n_train * t->rank / t->P), hi = (int)((long)ds->n_train * (t->rank + 1) / t->P), k = ds->cohort.k;
    double *meta = xcalloc((size_t)(hi - lo) * (k ? k : 1), sizeof(double));
    int *labels = xcalloc((size_t)(hi - lo) + 1, sizeof(int));
    for (int i = lo; i < hi; i++) {
        int j = ds->train_idx[i];
        memcpy(meta + (size_t)(i - lo) * k, ds->cohort.meta + (size_t)j * k, (size_t)k * sizeof(double));
        labels[i - lo] = ds->cohort.labels[j];
    }
    DfError err;
    if (net_prepare(&t->net, meta, labels, hi - lo, lo, ds->n_train, &err) ||
        (t->tr.twin && net_prepare(&t->twin, meta, labels, hi - lo, lo, ds->n_train, &err)))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    terms_prepare(&t->tr, meta, labels, hi - lo, lo, ds->n_train, dist_reducer());
    free(meta);
    free(labels);
}

static void setup_loaders(Trainer *t) {
    DfError err;
    LoaderConfig lc = { SPLIT_TRAIN, t->tc.batch, t->rank, t->P, t->tc.seed, 1, 0, 1, t->ds.prefetch, t->tr.twin != NULL };
    if (!(t->train = loader_create(&t->ds, &lc, &err))) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    // (net_refit_begin only zeroes the sums the passes will fill, so asking it here is free)
    if (t->ds.aug.enabled && (net_refit_begin(&t->net) & REFIT_EVALUATION)) {  // no shuffle: sums do not need it
        LoaderConfig plain = lc;
        plain.shuffle = plain.augment = plain.positives = 0;
        if (!(t->train_plain = loader_create(&t->ds, &plain, &err))) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    }
    if (t->ds.n_val > 0) {
        lc.split = SPLIT_VAL;
        lc.shuffle = lc.augment = lc.positives = 0;
        if (!(t->val = loader_create(&t->ds, &lc, &err))) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    }
    t->steps_per_epoch = (t->ds.n_train + t->tc.batch - 1) / t->tc.batch;
}

static void print_header(const Trainer *t) {
    const Dataset *ds = &t->ds;
    char desc[256];
    dist_describe(desc, sizeof desc);
    printf("deconfound train: %s\n", t->args.config);
    printf("run directory: %s (code %s)\n", t->tc.out_dir, df_code_version());
    printf("data: %s, %d samples of shape (%d,%d,%d,%d): %d train, %d validation\n", ds->source, ds->cohort.n,
           ds->cohort.shape.c, ds->cohort.shape.d, ds->cohort.shape.h, ds->cohort.shape.w, ds->n_train, ds->n_val);
    printf("run: %s; global batch %d, %d epochs, optimizer %s, lr %g (%s)\n", desc, t->tc.batch, t->tc.epochs,
           opt_kind_names[t->tc.opt.kind], t->tc.sched.base_lr, sched_kind_names[t->tc.sched.kind]);
    blas_core_describe(desc, sizeof desc);
    printf("blas: %s\n", desc);
    net_print_summary(&t->net, stdout);
    if (t->args.resume)
        printf("resumed from %s at epoch %d (+%d steps), step %ld\n", t->args.resume, t->ts.epoch, t->ts.epoch_step, t->ts.step);
    fflush(stdout);
}

static void grads_ready(void *arg, size_t final_from) { gradsync_ready(arg, final_from); }

// A fresh run (not --resume) in a folder that holds an earlier run (its run.json): that run's
// records go first, so that none of them is read as this run's -- a dcor.csv of a run with a
// dCor report beside a run without one (compare, plot), its log, its checkpoint. Only the
// records a run writes (docs/formats.md, "The run directory"); anything else stays. Rank 0.
// Returns 1 when it removed some.
static int clear_earlier_run(const Trainer *t) {
    static const char *const records[] = { "run.json",     "config.ini",    "log.txt",  "checkpoint.h5",
                                           "metrics.csv",  "metrics.jsonl", "metrics.json", "dcor.csv",
                                           "dcor.json",    "plot.png",      NULL };
    const char *dir = t->tc.out_dir;
    char path[700];
    snprintf(path, sizeof path, "%s/run.json", dir);
    struct stat st;
    if (t->args.resume || stat(path, &st) != 0) return 0;
    for (int i = 0; records[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, records[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            df_die(DF_EXIT_INPUT, "%s: cannot remove the earlier run's %s: %s", dir, records[i], strerror(errno));
    }
    return 1;
}

static void setup(Trainer *t, const TrainArgs *args) {
    t->args = *args;
    setup_config(t);
    check_config(t);
    t->threads = dist_set_blas_threads(t->tc.threads);
    setup_state(t);
    prepare_layers(t);
    setup_loaders(t);
    if (t->rank == 0) {
        struct stat st;
        t->made_dir = stat(t->tc.out_dir, &st) != 0;
        if (mkdir_p(t->tc.out_dir) != 0)
            df_die(DF_EXIT_INPUT, "%s: cannot create out_dir '%s': %s", t->args.config, t->tc.out_dir, strerror(errno));
        int cleared = !t->made_dir && clear_earlier_run(t);
        start_records(t);
        if (cleared) printf("run directory %s held an earlier run: its records were removed first\n", t->tc.out_dir);
        print_header(t);
    }
    int max_local = t->net.ctx.max_batch;
    t->dlogits = df_alloc_floats((size_t)max_local * t->K);
    t->scratch = df_alloc_floats(2 * (size_t)max_local * t->K);
    groups_from_schema(&t->groups, t->schema);
    report_init(&t->report, t->tc.out_dir, t->tc.epochs, t->ts.epoch, t->classification, &t->groups);
    for (int c = 0; c < t->tr.n_columns; c++) {
        char name[140];
        terms_column_name(&t->tr, c, name, sizeof name);
        report_add_column(&t->report, name);
    }
    if (t->tc.train_eval_gap) gap_init(&t->gap, &t->net, (REPORT_MAX_TERM_COLS - t->tr.n_columns) / 2);
    for (int j = 0; j < t->gap.n; j++) {  // as gap_epoch_end orders them: own, then in context
        char name[140];
        snprintf(name, sizeof name, "train_eval_gap(%s)", t->net.layers[t->gap.layer[j]].name);
        report_add_column(&t->report, name);
        snprintf(name, sizeof name, "train_eval_gap(%s).in_context", t->net.layers[t->gap.layer[j]].name);
        report_add_column(&t->report, name);
    }
    report_columns_done(&t->report);
    // Gradients are summed over ranks in buckets started during backward (mpi/gradsync.c).
    t->gs = gradsync_create(t->net.grads, t->net.n_params, (size_t)(t->tc.bucket_mb * 1048576.0));
    t->net.grads_ready = grads_ready;
    t->net.grads_ready_arg = t->gs;
    install_stop_handlers();
    t->fault = fault_plan_from_env();
    t->state_before = df_alloc_floats(t->net.n_state + 1);
    if (t->tc.profile) {
        t->prof_fwd = xcalloc((size_t)t->net.n_layers, sizeof(double));
        t->prof_bwd = xcalloc((size_t)t->net.n_layers, sizeof(double));
    }
    snprintf(t->ckpt_path, sizeof t->ckpt_path, "%s/checkpoint.h5", t->tc.out_dir);
    progress_begin("train", "samples", (double)t->ts.epoch * t->ds.n_train + t->ts.epoch_sums[2],
                   (double)t->tc.epochs * t->ds.n_train);
}

static void teardown(Trainer *t) {
    gradsync_free(t->gs);
    loader_free(t->train);
    loader_free(t->train_plain);
    loader_free(t->val);
    report_free(&t->report);
    terms_free(&t->tr);
    gap_free(&t->gap);
    free(t->dlogits);
    free(t->scratch);
    free(t->prof_fwd);
    free(t->prof_bwd);
    free(t->state_before);
    free(t->config_text);
    free(t->rec.command);
    loss_terms_free(t->terms, t->n_terms);
    optim_free(&t->opt);
    net_free(&t->twin);  // (all zeros when never built)
    net_free(&t->net);
    free(t->schema);
    dataset_free(&t->ds);
    ini_free(&t->ini);
}

// A loader failed on every rank at the same step (data/loader.h: agreed): a NaN or infinite
// voxel (status 2) or a read error (1) ends the run on every rank with the one message. The
// first epoch reads every training and validation sample before it writes anything of its
// own (metrics, checkpoint), so bad data is found while the run directory holds only its
// start records; rank 0 then removes the directory when this run made it, and bad input
// leaves nothing behind. A directory that existed before (a resumed run's) is kept.
static _Noreturn void data_failed(Trainer *t, const Loader *l, const DfError *err) {
    int status = loader_failed(l);
    if (status == DF_EXIT_INPUT && t->rank == 0 && t->made_dir && t->ts.epoch == 0) {
        progress_clear();
        console_tee_end();
        df_remove_tree(t->tc.out_dir);
    }
    df_die_collective(status, "%s", err->msg);
}

// ---- one step -----------------------------------------------------------------------------

// A step whose values went non-finite (run/step.h) was not applied; the network's state is
// put back as it was before it, where it started is found (run/nonfinite.h), and the run
// either stops on every rank with one message naming it, or ([train] on_nonfinite =
// skip_batch) goes on without the batch, counting it.
static void skip_or_stop(Trainer *t, const Batch *b, int epoch) {
    char where[512];
    memcpy(t->net.state, t->state_before, t->net.n_state * sizeof(float));
    nonfinite_diagnose(&t->net, b, t->ds.cohort.subjects, where, sizeof where);
    memcpy(t->net.state, t->state_before, t->net.n_state * sizeof(float));  // the diagnosis ran a forward
    if (t->tc.on_nonfinite == NONFINITE_STOP)
        df_die_collective(DF_EXIT_FAIL,
                          "epoch %d step %d: a value went non-finite (NaN or infinity), first in %s. The step was not "
                          "applied and no checkpoint holds it; lower [train] lr, check the data, or set [train] "
                          "on_nonfinite = skip_batch to train on without such batches",
                          epoch + 1, b->step + 1, where);
    t->skipped_epoch++;
    t->skipped_total++;
    if (t->rank == 0 && t->skipped_total <= 10) {
        progress_clear();
        printf("epoch %d step %d: batch skipped, a value went non-finite, first in %s%s\n", epoch + 1, b->step + 1, where,
               t->skipped_total == 10 ? " (further skips are counted at the end of each epoch)" : "");
        fflush(stdout);
    }
}

// Forward, loss and joint loss terms, backward (the gradient all-reduce runs during it),
// optimiser; then the alternating terms' steps and the adversaries' fits. stats gets the
// global batch's loss sum, correct count and size, and whether any rank was asked to stop --
// a signal may reach the ranks at different moments, so they agree here, after the same step.
// stats: loss sum, correct, count, stop flag, then the per-class tallies (class_tally).
#define STEP_STATS (4 + 2 * TRAIN_TALLY_CLASSES)
static void train_step(Trainer *t, const Batch *b, int epoch, double lr, double *stats) {
    fault_check(&t->fault, t->ts.step);
    t->net.ctx.step = (uint64_t)t->ts.step;
    LossStats ls = { 0, 0, 0 };
    memset(stats + 4, 0, 2 * TRAIN_TALLY_CLASSES * sizeof(double));
    Stepper st = { &t->net, &t->opt, &t->tc.loss, t->K, t->dlogits, t->scratch, t->gs, &t->tr,
                   t->classification ? stats + 4 : NULL, TRAIN_TALLY_CLASSES };
    double t0 = df_now();
    t->net.seconds_fwd = t->prof_fwd;  // NULL unless [train] profile: the steps' layers only
    t->net.seconds_bwd = t->prof_bwd;
    memcpy(t->state_before, t->net.state, t->net.n_state * sizeof(float));
    int check = t->tc.check_every > 0 && t->ts.step % t->tc.check_every == 0;
    int nonfinite = step_run(&st, b, epoch, lr, check, &ls);
    t->net.seconds_fwd = t->net.seconds_bwd = NULL;
    if (nonfinite) {
        skip_or_stop(t, b, epoch);
        ls = (LossStats){ 0, 0, 0 };  // the batch counts nowhere: not in the loss, nor the class tallies
        memset(stats + 4, 0, 2 * TRAIN_TALLY_CLASSES * sizeof(double));
        terms_discard_step(&t->tr);
    }
    terms_sync(&t->tr);
    t->prof_seconds += df_now() - t0;
    t->prof_steps++;
    t->ts.step++;
    t->ts.epoch_step = b->step + 1;
    stats[0] = ls.sum;
    stats[1] = (double)ls.correct;
    stats[2] = nonfinite ? 0.0 : (double)b->n;
    stats[3] = (double)g_stop;
    dist_allreduce_sum_f64(stats, STEP_STATS);
}

// The progress line (base/progress.h): on a terminal when due; in a file every
// DECONFOUND_PROGRESS_EVERY seconds and, with [train] log_every, every log_every steps and at
// the epoch's last. done: samples of the run so far.
static void show_progress(const Trainer *t, int epoch, int s, const double *stats, double lr, double done) {
    int force = t->tc.log_every > 0 && ((s + 1) % t->tc.log_every == 0 || s + 1 == t->steps_per_epoch);
    if (!progress_at(done, force)) return;
    char text[160];
    snprintf(text, sizeof text, "epoch %d/%d step %d/%d loss %.4f lr %.3g", epoch + 1, t->tc.epochs, s + 1, t->steps_per_epoch,
             stats[0] / stats[2], lr);
    progress_show(text);
}

// ---- one epoch ----------------------------------------------------------------------------

// The epoch's steps from where it stands (a resumed run may start inside it), after the loss
// terms' fit pass when the epoch starts. sums: loss, correct and count over the epoch so far.
// Returns 1 when a signal asked the run to stop: mid-epoch (ts.epoch_step then tells where),
// or at its last step (the epoch is complete).
static int train_epoch(Trainer *t, int epoch, double lr, double sums[TRAIN_SUMS]) {
    DfError err;
    const Batch *b;
    if (t->ts.epoch_step == 0 && terms_want_fit_pass(&t->tr)) {  // the adversaries' pass (MI's estimator)
        loader_begin_epoch_at(t->train, epoch, 0);
        while ((b = loader_next(t->train, &err))) terms_fit_batch(&t->tr, &t->net, b);
        if (loader_failed(t->train)) data_failed(t, t->train, &err);
        terms_sync(&t->tr);
    }
    // The loader's epoch order depends on (seed, epoch) only, so a resumed run -- even one
    // stopped mid-epoch -- sees the same batches.
    loader_begin_epoch_at(t->train, epoch, t->ts.epoch_step);
    memcpy(sums, t->ts.epoch_sums, TRAIN_SUMS * sizeof(double));
    int stopped = 0;
    while ((b = loader_next(t->train, &err))) {
        double stats[STEP_STATS];
        train_step(t, b, epoch, lr, stats);
        for (int j = 0; j < 3; j++) sums[j] += stats[j];
        for (int j = 0; j < 2 * TRAIN_TALLY_CLASSES; j++) sums[3 + j] += stats[4 + j];
        if (!isfinite(stats[0]))  // summed over ranks: every rank sees it, one prints
            df_die_collective(DF_EXIT_FAIL, "loss is not finite at epoch %d step %d: lower [train] lr", epoch + 1, b->step + 1);
        int s = b->step;
        show_progress(t, epoch, s, stats, lr, (double)epoch * t->ds.n_train + sums[2]);
        if (stats[3] > 0 && s + 1 < t->steps_per_epoch) {  // stop mid-epoch
            memcpy(t->ts.epoch_sums, sums, TRAIN_SUMS * sizeof(double));
            progress_clear();
            return 1;
        }
        if (stats[3] > 0) stopped = 1;  // at the epoch's end: finish it normally
    }
    if (loader_failed(t->train)) data_failed(t, t->train, &err);
    if (epoch + 1 == t->tc.epochs) progress_end();
    else progress_clear();  // before the epoch's report
    return stopped;
}

typedef struct {
    const LossConfig *lc;
    int K, accuracy_by;
    float *scratch;
    LossStats st;
    double by[6];  // accuracy_by_tally
    GapMeter *gap;
    FigureRecorder *fig;  // classification: each sample's prediction, for figures.h (else NULL)
    double *meta_rows;    // (n_val, k) and its metadata rows
    int k;
} Validation;

static void validation_visit(void *arg, const Net *net, const Batch *b) {
    Validation *v = arg;
    loss_batch(v->lc, net->acts[net->n_layers], v->K, b, NULL, 0.0f, v->scratch, &v->st);
    if (v->accuracy_by >= 0) accuracy_by_tally(v->by, net->acts[net->n_layers], v->K, b, v->accuracy_by);
    if (v->fig) figures_record(v->fig, net->acts[net->n_layers], b);
    if (v->fig && v->k) figures_record_meta(v->meta_rows, v->k, b, v->fig->n);
    gap_visit(v->gap, (Net *)net, b);  // last: it overwrites the activations with training mode's
}

// The validation split's loss and accuracy (collective; global sums); with [train]
// accuracy_by, the accuracy over its bias-aligned and bias-conflicting samples (else NaN).
static LossStats validate(Trainer *t, double *aligned, double *conflicting, Figures *fig) {
    Validation v = { &t->tc.loss, t->K, t->tc.accuracy_by, t->scratch, { 0, 0, 0 }, { 0 }, &t->gap, NULL, NULL, 0 };
    FigureRecorder rec;
    int k = t->ds.cohort.k;
    if (t->classification) {
        figures_recorder_init(&rec, t->ds.n_val, t->K);
        v.fig = &rec;
        v.k = k;
        v.meta_rows = xcalloc((size_t)t->ds.n_val * (k ? k : 1), sizeof(double));
    }
    DfError err;
    if (infer_run(&t->net, t->val, validation_visit, &v, &err)) data_failed(t, t->val, &err);
    if (v.fig) {  // every rank filled its samples' rows: the sums assemble the whole split
        dist_allreduce_sum_f64(rec.rows, (size_t)t->ds.n_val * 4);
        if (k) dist_allreduce_sum_f64(v.meta_rows, (size_t)t->ds.n_val * k);
        figures_compute(fig, &rec, v.meta_rows, k, &t->groups);
        figures_recorder_free(&rec);
        free(v.meta_rows);
    }
    double sums[9] = { v.st.sum, (double)v.st.correct, (double)v.st.count };
    memcpy(sums + 3, v.by, sizeof v.by);
    dist_allreduce_sum_f64(sums, 9);
    *aligned = sums[5] > 0 ? sums[6] / sums[5] : NAN;
    *conflicting = sums[7] > 0 ? sums[8] / sums[7] : NAN;
    return (LossStats){ sums[0], (long)sums[1], (long)sums[2] };
}

static void save_checkpoint(Trainer *t) {
    DfError err;
    terms_before_save(&t->tr);
    // A full disk or a read-only folder: exit 2, as in start_records (the non-finite values
    // checkpoint_save also refuses were stopped before, with exit 1).
    if (checkpoint_save(t->ckpt_path, t->config_text, &t->net, &t->opt, &t->ts, &err)) df_die(DF_EXIT_INPUT, "%s", err.msg);
}

// After an epoch's steps: validation, the dCor report, the epoch line, metrics.json and
// the checkpoint. The collective parts run on every rank, the rest on rank 0.
static void end_of_epoch(Trainer *t, int epoch, double lr, const double sums[TRAIN_SUMS], double t_epoch, int first_step,
                         int stopped) {
    double t_train = df_now() - t_epoch, data_wait = loader_wait_seconds(t->train) - t->data_wait0;
    double aligned = NAN, conflicting = NAN;
    Figures fig = { .bal_acc = NAN, .auc = NAN, .worst = -1 };
    for (int q = 0; q < FIG_MAX_GROUPS; q++) fig.group_acc[q] = NAN;
    DfError err;
    Loader *plain = t->train_plain ? t->train_plain : t->train;
    if (refit_run(&t->net, t->train, plain, epoch, &err))  // before anything evaluates
        data_failed(t, loader_failed(plain) ? plain : t->train, &err);
    LossStats val = t->val ? validate(t, &aligned, &conflicting, &fig) : (LossStats){ 0, 0, 0 };
    EpochLog *l = &t->report.log[epoch];
    int steps = DF_MAX(1, t->steps_per_epoch - first_step);
    *l = (EpochLog){ .lr = lr, .train_loss = sums[0] / sums[2], .train_acc = sums[1] / sums[2],
                     .val_loss = val.count ? val.sum / val.count : NAN, .val_acc = val.count ? (double)val.correct / val.count : NAN,
                     .seconds = df_now() - t_epoch, .samples_per_s = (sums[2] - t->ts.epoch_sums[2]) / t_train,
                     .comm_wait_ms = 1e3 * gradsync_wait_seconds(t->gs) / steps, .data_wait_ms = 1e3 * data_wait / steps,
                     .val_acc_aligned = aligned, .val_acc_conflicting = conflicting,
                     .train_bal_acc = t->K <= TRAIN_TALLY_CLASSES ? metric_balanced_accuracy_tally(sums + 3, DF_MAX(t->K, 2)) : NAN,
                     .val_bal_acc = fig.bal_acc, .val_auc = fig.auc, .val = fig };
    terms_epoch_end(&t->tr, sums[2], l->terms);  // the whole epoch: its sums survive a mid-epoch resume
    if (t->val) gap_epoch_end(&t->gap, l->terms + t->tr.n_columns);
    t->ts.epoch = epoch + 1;
    t->ts.epoch_step = 0;
    memset(t->ts.epoch_sums, 0, sizeof t->ts.epoch_sums);
    int last = epoch + 1 == t->tc.epochs, every = t->tc.dcor_every;
    int report = t->n_dcor > 0 && (last || stopped || (every > 0 && (epoch + 1) % every == 0));
    DcorReport rep[4];
    for (int j = 0; report && j < t->n_dcor; j++)
        if (dcor_report_run(&rep[j], &t->net, t->val, &t->ds, t->ds.val_idx, t->ds.n_val, t->dcor_out[j], t->tc.dcor_cols,
                            t->tc.n_dcor_cols, &err))
            df_die(DF_EXIT_FAIL, "dCor report: %s", err.msg);
    // The parameters and state are the same on every rank: every rank decides alike. (The
    // steps never apply a non-finite update; this guards what a checkpoint would hold.)
    char bad[256];
    if (net_find_nonfinite(&t->net, 0, bad, sizeof bad))
        df_die_collective(DF_EXIT_FAIL, "epoch %d: %s is not finite: no checkpoint written", epoch + 1, bad);
    long skipped = t->skipped_epoch;
    t->skipped_epoch = 0;
    if (skipped > 0 && skipped >= t->steps_per_epoch - first_step)  // nothing trained: no point going on
        df_die_collective(DF_EXIT_FAIL, "epoch %d: every batch was skipped, a value went non-finite in each: the run "
                          "has diverged; lower [train] lr", epoch + 1);
    if (t->rank != 0) return;
    report_epoch(&t->report, epoch, t->val != NULL, t->P > 1);
    if (skipped)
        printf("epoch %d: %ld of %d batches skipped: a value went non-finite ([train] on_nonfinite = skip_batch)\n",
               epoch + 1, skipped, t->steps_per_epoch);
    if (last || stopped || (t->tc.checkpoint_every > 0 && (epoch + 1) % t->tc.checkpoint_every == 0)) {
        save_checkpoint(t);
        printf("checkpoint: %s (epoch %d)\n", t->ckpt_path, t->ts.epoch);
    }
    for (int j = 0; report && j < t->n_dcor; j++) report_dcor(&t->report, &rep[j], t->dcor_name[j], epoch);
    if (stopped && !last) printf("stopped by signal after epoch %d; continue with --resume %s\n", t->ts.epoch, t->ckpt_path);
    fflush(stdout);
}

int train_same_config(const TrainArgs *args, const char *saved_text, const char *origin, DfError *err) {
    Trainer *t = xcalloc(1, sizeof *t);
    t->args = *args;
    t->args.resume = NULL;  // the schema from the data: only the configuration is compared
    setup_config(t);        // every section read, so the defaults are recorded as training records them
    int rc = resume_check_finished(&t->ini, saved_text, origin, err);
    teardown(t);
    free(t);
    return rc;
}

// ---- the loop -----------------------------------------------------------------------------

int train_run(const TrainArgs *args) {
    Trainer *t = xcalloc(1, sizeof *t);
    setup(t, args);
    int stopped = 0;
    for (int epoch = t->ts.epoch; epoch < t->tc.epochs && !stopped; epoch++) {
        double lr = schedule_lr(&t->tc.sched, epoch), t_epoch = df_now(), sums[TRAIN_SUMS];
        int first_step = t->ts.epoch_step;
        t->data_wait0 = loader_wait_seconds(t->train);
        gradsync_reset_stats(t->gs);
        stopped = train_epoch(t, epoch, lr, sums);
        if (stopped && t->ts.epoch_step < t->steps_per_epoch) {  // mid-epoch: checkpoint, resume later
            if (t->rank == 0) {
                save_checkpoint(t);
                printf("stopped by signal at epoch %d step %d/%d: checkpoint %s; continue with --resume %s\n", epoch + 1,
                       t->ts.epoch_step, t->steps_per_epoch, t->ckpt_path, t->ckpt_path);
                fflush(stdout);
            }
            break;
        }
        end_of_epoch(t, epoch, lr, sums, t_epoch, first_step, stopped);
    }
    int status = stopped && t->ts.epoch < t->tc.epochs ? DF_EXIT_INTERRUPTED : DF_EXIT_OK;
    if (status == DF_EXIT_OK && t->rank == 0) report_final(&t->report, t->ds.n_val);
    if (t->tc.profile && t->rank == 0 && t->prof_steps > 0) {
        printf("time per layer over the %ld training steps of this run, rank 0 (%d rank%s x %d thread%s):\n",
               t->prof_steps, t->P, t->P == 1 ? "" : "s", t->threads, t->threads == 1 ? "" : "s");
        net_print_profile(&t->net, t->prof_fwd, t->prof_bwd, (int)t->prof_steps, t->prof_seconds / t->prof_steps, stdout);
    }
    if (t->rank == 0) {
        finish_records(t, status);
        fflush(stdout);
        console_tee_end();
    }
    teardown(t);
    free(t);
    return status;
}
