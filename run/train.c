// train.c: `deconfound train`: the data-parallel training loop (see train.h).
#include "run/train.h"
#include "base/blas_core.h"
#include "cmd/cli.h"
#include "mpi/comm.h"
#include "mpi/gradsync.h"
#include "data/cohort.h"
#include "run/infer.h"
#include "run/resume.h"
#include "nn/metadata.h"
#include "run/dcor_report.h"
#include <signal.h>
#include <unistd.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---- configuration ------------------------------------------------------------------------

int train_config_parse(TrainConfig *tc, const Ini *cini, const Cohort *cohort, DfError *err) {
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
    const char *out = ini_str(t, "out_dir", "runs/train");
    if (strlen(out) >= sizeof tc->out_dir) return df_err(err, "%s: [train] out_dir is too long", ini->origin);
    snprintf(tc->out_dir, sizeof tc->out_dir, "%s", out);
    if (ini_int(ini, t, "checkpoint_every", 1, 0, 1000000, &tc->checkpoint_every, err)) return -1;
    if (ini_int(ini, t, "log_every", 10, 1, 1000000, &tc->log_every, err)) return -1;
    if (ini_int(ini, t, "threads", 0, 0, 1024, &tc->threads, err)) return -1;
    if (ini_double(ini, t, "bucket_mb", 4.0, 0.004, 1024.0, &tc->bucket_mb, err)) return -1;
    const char *dl = ini_str(t, "dcor_layer", "");
    if (strlen(dl) >= sizeof tc->dcor_layer) return df_err(err, "%s: [train] dcor_layer is too long", ini->origin);
    snprintf(tc->dcor_layer, sizeof tc->dcor_layer, "%s", dl);
    if (ini_int(ini, t, "dcor_every", 0, 0, 1000000, &tc->dcor_every, err)) return -1;
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

    IniSection *l = ini_section(ini, "loss");
    int kind = 0;
    if (l && ini_choice(ini, l, "type", "cross_entropy", loss_kind_names, &kind, err)) return -1;
    tc->loss.kind = (LossKind)kind;
    tc->loss.target_column = -1;
    const char *target = l ? ini_str(l, "target", "label") : "label";
    if (strcmp(target, "label") != 0) {
        char where[512];
        ini_where(ini, l, "target", where, sizeof where);
        if (tc->loss.kind != LOSS_MSE)
            return df_err(err, "%s: [loss] target = %s: only the mse loss regresses a metadata column", where, target);
        int col = cohort ? cohort_column(cohort, target) : -1;
        if (col < 0) return df_err(err, "%s: [loss] target = %s: the data have no such column", where, target);
        tc->loss.target_column = col;
    }
    return 0;
}

// ---- loss ---------------------------------------------------------------------------------

double loss_forward_backward(const LossConfig *lc, const float *logits, float *dlogits, float *probs,
                             const int *labels, const float *targets, int B, int K, float scale, long *correct) {
    double sum = 0.0;
    switch (lc->kind) {
    case LOSS_CROSS_ENTROPY:
        sum = softmax_xent_forward(probs, logits, labels, B, K);
        if (dlogits) softmax_xent_backward(dlogits, probs, labels, B, K, scale);
        for (int i = 0; i < B; i++) {
            int best = 0;
            for (int k = 1; k < K; k++) if (logits[i * K + k] > logits[i * K + best]) best = k;
            *correct += best == labels[i];
        }
        break;
    case LOSS_BCE_LOGITS:
        sum = bce_logits_forward(logits, targets, B * K);
        if (dlogits) bce_logits_backward(dlogits, logits, targets, B * K, scale / (float)K);
        sum /= K;
        for (int i = 0; i < B; i++) *correct += (logits[i * K] > 0.0f) == (targets[i * K] > 0.5f);
        break;
    case LOSS_MSE:
        sum = mse_forward(logits, targets, B * K);
        if (dlogits) mse_backward(dlogits, logits, targets, B * K, scale / (float)K);
        sum /= K;
        break;
    }
    return sum;
}

// Targets for BCE / MSE as floats (B, K): the label, or the MSE target column of meta (B, ncols).
static void fill_targets(const LossConfig *lc, const double *meta, int ncols, const int *labels, int B, int K,
                         float *targets) {
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++)
            targets[i * K + k] = lc->target_column >= 0 ? (float)meta[(size_t)i * ncols + lc->target_column]
                                                        : (float)labels[i];
}

// The loader's labels are int32_t; the losses take int.
_Static_assert(sizeof(int) == sizeof(int32_t), "int must be 32 bits");

// Points the network's metadata at a batch (for layers that use it, such as MDN).
static void set_batch_meta(Net *net, const Batch *b) {
    net->ctx.batch_meta = b->meta;
    net->ctx.batch_labels = (const int *)b->labels;
    net->ctx.first_sample = b->first_sample;
}

EvalStats evaluate(Net *net, const LossConfig *lc, Loader *l, int ncols, DfError *err) {
    int K = (int)shape_numel(net->out_shape);
    int maxb = net->ctx.max_batch;
    float *probs = df_alloc_floats((size_t)maxb * K), *targets = df_alloc_floats((size_t)maxb * K);
    double sums[3] = { 0, 0, 0 };  // loss, correct, count
    loader_begin_epoch(l, 0);
    const Batch *b;
    while ((b = loader_next(l, err))) {
        const int *labels = (const int *)b->labels;
        fill_targets(lc, b->meta, ncols, labels, b->n, K, targets);
        set_batch_meta(net, b);
        const float *logits = net_forward(net, b->images, b->n, 0);
        long correct = 0;
        sums[0] += loss_forward_backward(lc, logits, NULL, probs, labels, targets, b->n, K, 0.0f, &correct);
        sums[1] += (double)correct;
        sums[2] += b->n;
    }
    if (loader_failed(l)) df_die(DF_EXIT_FAIL, "%s", err->msg);
    dist_allreduce_sum_f64(sums, 3);
    free(probs); free(targets);
    EvalStats st = { sums[0], (long)sums[1], (long)sums[2] };
    return st;
}

// ---- the loop -----------------------------------------------------------------------------

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

static void format_eta(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

typedef struct {
    double train_loss, train_acc, val_loss, val_acc, seconds, samples_per_s, lr, comm_wait_ms, data_wait_ms;
} EpochLog;

// A number for JSON, which has no NaN: a value that does not exist (no validation split) is null.
static const char *json_num(double v, char buf[32]) {
    if (!isfinite(v)) return "null";
    snprintf(buf, 32, "%.9g", v);
    return buf;
}

// metrics.json: one object per epoch run by this process (from `first`, so a resumed run
// lists the epochs it ran).
static void write_metrics(const char *dir, const EpochLog *log, int first, int n_epochs, int classification) {
    size_t cap = 256 + (size_t)n_epochs * 512;
    char *buf = xmalloc(cap), path[600];
    size_t len = (size_t)snprintf(buf, cap, "{\"epochs\": [");
    for (int e = first; e < n_epochs; e++) {
        const EpochLog *l = &log[e];
        char vl[32], va[32];
        len += (size_t)snprintf(buf + len, cap - len,
                                "%s\n  {\"epoch\": %d, \"lr\": %.9g, \"train_loss\": %.9g, \"val_loss\": %s, "
                                "\"seconds\": %.3f, \"samples_per_s\": %.2f, \"comm_wait_ms_per_step\": %.3f, "
                                "\"data_wait_ms_per_step\": %.3f",
                                e > first ? "," : "", e + 1, l->lr, l->train_loss, json_num(l->val_loss, vl), l->seconds,
                                l->samples_per_s, l->comm_wait_ms, l->data_wait_ms);
        if (classification)
            len += (size_t)snprintf(buf + len, cap - len, ", \"train_acc\": %.9g, \"val_acc\": %s", l->train_acc,
                                    json_num(l->val_acc, va));
        len += (size_t)snprintf(buf + len, cap - len, "}");
    }
    len += (size_t)snprintf(buf + len, cap - len, "\n]}\n");
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    DfError err;
    if (df_write_file_atomic(path, buf, len, &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    free(buf);
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

static void grads_ready(void *arg, size_t final_from) { gradsync_ready(arg, final_from); }

// DECONFOUND_FAULT=RANK:STEP[:KIND] makes that rank fail before that global step, to test that a
// failing rank ends the whole job (KIND: "error" (default) reports and aborts like a read
// error would, "segv" crashes), or receive SIGTERM at that step ("term": only that rank gets
// it, as when a signal reaches ranks at different moments). For tests only.
typedef struct { int rank; long step; char kind[16]; int armed; } FaultPlan;

static FaultPlan fault_plan_from_env(void) {
    FaultPlan f = { -1, -1, "error", 0 };
    const char *v = getenv("DECONFOUND_FAULT");
    if (v && sscanf(v, "%d:%ld:%15s", &f.rank, &f.step, f.kind) >= 2) f.armed = 1;
    return f;
}

static void fault_check(const FaultPlan *f, long step) {
    if (!f->armed || f->rank != dist_rank() || f->step != step) return;
    if (strcmp(f->kind, "segv") == 0) raise(SIGSEGV);
    if (strcmp(f->kind, "term") == 0) { raise(SIGTERM); return; }
    df_die(DF_EXIT_FAIL, "injected fault (DECONFOUND_FAULT) at step %ld", step);
}

static const char *train_help =
    "usage: deconfound train CONFIG.ini [--set section.key=value ...] [--resume CHECKPOINT.h5]\n"
    "                        [--threads N]\n"
    "\n"
    "Trains the network described by CONFIG.ini (layers in order, [data], [train], [loss];\n"
    "see docs/config.md) data-parallel over the MPI ranks it is started on. The global batch\n"
    "([train] batch) is split over the ranks; results do not depend on the rank count.\n"
    "Rank 0 prints progress and writes <out_dir>/checkpoint.h5 and <out_dir>/metrics.json.\n"
    "\n"
    "  --set s.k=v    override a config value (s is a section or a layer's name); repeatable\n"
    "  --resume FILE  continue from a checkpoint written by an earlier run of the same config\n"
    "  --threads N    OpenBLAS threads per rank (default: cores on the node / ranks on the node)\n";

int cmd_train(int argc, char **argv) {
    const char *cmd = "train", *config = NULL, *resume = NULL, *v;
    const char **sets = xcalloc((size_t)argc, sizeof(char *));  // --set values, in order
    int n_sets = 0, threads_cli = -1;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(train_help, stdout); free(sets); return 0; }
        else if (cli_opt(argc, argv, &i, "--set", &v, cmd)) sets[n_sets++] = v;
        else if (cli_opt(argc, argv, &i, "--resume", &v, cmd)) resume = v;
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads_cli = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!config) config = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!config) cli_usage_error(cmd, "missing CONFIG.ini");

    DfError err;
    Ini ini;
    if (ini_load(&ini, config, sets, n_sets, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    free(sets);

    Dataset ds;
    if (dataset_from_config(&ds, &ini, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    TrainConfig tc;
    if (train_config_parse(&tc, &ini, &ds.cohort, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (threads_cli > 0) tc.threads = threads_cli;
    int P = dist_size(), rank = dist_rank();
    int max_local = (tc.batch + P - 1) / P;
    // The metadata schema: the training data's own, or, when resuming, the one the
    // checkpoint was trained with (the data recoded to it by level name).
    MetaSchema *schema = xmalloc(sizeof *schema);
    if (resume ? infer_schema(schema, &ds.cohort, resume, ds.source, &err) : meta_schema_build(schema, &ds.cohort, &err))
        df_die_collective(DF_EXIT_INPUT, "%s%s%s", resume ? "" : ds.source, resume ? "" : ": ", err.msg);
    Net net;
    if (net_build_meta(&net, &ini, ds.cohort.shape, max_local, dist_reducer(), schema, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (ini_check_unused(&ini, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    int dcor_out = -1;
    if (tc.dcor_layer[0]) {
        char where[512];
        ini_where(&ini, ini_section(&ini, "train"), "dcor_layer", where, sizeof where);
        if ((dcor_out = net_layer_output_index(&net, tc.dcor_layer)) < 0)
            df_die_collective(DF_EXIT_INPUT, "%s: [train] dcor_layer = %s: the network has no layer of that name", where,
                              tc.dcor_layer);
        if (ds.n_val < 4)
            df_die_collective(DF_EXIT_INPUT, "%s: [train] dcor_layer needs a validation split of at least 4 samples", where);
    }
    int K = (int)shape_numel(net.out_shape);
    int classification = tc.loss.kind != LOSS_MSE;
    if (tc.loss.kind == LOSS_CROSS_ENTROPY) {
        int maxlab = 0;
        for (int i = 0; i < ds.cohort.n; i++) maxlab = DF_MAX(maxlab, ds.cohort.labels[i]);
        if (maxlab >= K)
            df_die_collective(DF_EXIT_INPUT, "%s: the network has %d outputs but the data have label %d: the last layer needs out >= %d",
                              config, K, maxlab, maxlab + 1);
    }
    if (ds.n_train < 1) df_die_collective(DF_EXIT_INPUT, "%s: the training split is empty", config);
    int blas = dist_set_blas_threads(tc.threads);
    (void)blas;

    net_init(&net, tc.seed);
    Optimizer opt;
    optim_init(&opt, &tc.opt, net.n_params);
    TrainState ts = { 0 };
    rng_seed_stream(&ts.rng, tc.seed, 0x5eed, 1);
    char *config_text = ini_serialize(&ini);
    if (resume) {
        // The same training, or not a resume: the configuration as run is compared first.
        char *saved = checkpoint_read_config(resume, &err);
        if (!saved || resume_check_config(&ini, saved, resume, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
        free(saved);
        if (checkpoint_load(resume, &net, &opt, &ts, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
        if (ts.epoch > tc.epochs)
            df_die_collective(DF_EXIT_INPUT, "%s: checkpoint is at epoch %d, past the configured %d epochs", resume, ts.epoch, tc.epochs);
        if (ts.epoch_step >= (ds.n_train + tc.batch - 1) / tc.batch)
            df_die_collective(DF_EXIT_INPUT, "%s: stopped %d steps into an epoch, but an epoch of this data and batch has fewer steps",
                              resume, ts.epoch_step);
    }
    // Every rank starts from rank 0's parameters (identical by construction; this guards
    // against any difference in how ranks were started).
    dist_bcast(net.params, net.n_params * sizeof(float), 0);
    dist_bcast(net.state, net.n_state * sizeof(float), 0);
    // Layers that fit training-set statistics (MDN's kernel) see this rank's share of the
    // training split's metadata; they sum over ranks themselves.
    {
        int lo = (int)((long)ds.n_train * rank / P), hi = (int)((long)ds.n_train * (rank + 1) / P), k = ds.cohort.k;
        double *meta = xcalloc((size_t)(hi - lo) * (k ? k : 1), sizeof(double));
        int *labels = xcalloc((size_t)(hi - lo) + 1, sizeof(int));
        for (int i = lo; i < hi; i++) {
            int j = ds.train_idx[i];
            memcpy(meta + (size_t)(i - lo) * k, ds.cohort.meta + (size_t)j * k, (size_t)k * sizeof(double));
            labels[i - lo] = ds.cohort.labels[j];
        }
        if (net_prepare(&net, meta, labels, hi - lo, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
        free(meta);
        free(labels);
    }
    LoaderConfig lcfg = { SPLIT_TRAIN, tc.batch, rank, P, tc.seed, 1, 0, 1, ds.prefetch };
    Loader *train_loader = loader_create(&ds, &lcfg, &err), *val_loader = NULL;
    if (!train_loader) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (ds.n_val > 0) {
        LoaderConfig vcfg = lcfg;
        vcfg.split = SPLIT_VAL;
        vcfg.shuffle = 0;
        vcfg.augment = 0;
        if (!(val_loader = loader_create(&ds, &vcfg, &err))) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    }

    if (rank == 0) {
        if (mkdir_p(tc.out_dir) != 0) df_die(DF_EXIT_INPUT, "%s: cannot create out_dir '%s': %s", config, tc.out_dir, strerror(errno));
        char desc[256];
        dist_describe(desc, sizeof desc);
        printf("deconfound train: %s\n", config);
        printf("data: %s, %d samples of shape (%d,%d,%d,%d): %d train, %d validation\n", ds.source, ds.cohort.n,
               ds.cohort.shape.c, ds.cohort.shape.d, ds.cohort.shape.h, ds.cohort.shape.w, ds.n_train, ds.n_val);
        printf("run: %s; global batch %d, %d epochs, optimizer %s, lr %g (%s)\n", desc, tc.batch, tc.epochs,
               opt_kind_names[tc.opt.kind], tc.sched.base_lr, sched_kind_names[tc.sched.kind]);
        blas_core_describe(desc, sizeof desc);
        printf("blas: %s\n", desc);
        net_print_summary(&net, stdout);
        if (resume) printf("resumed from %s at epoch %d (+%d steps), step %ld\n", resume, ts.epoch, ts.epoch_step, ts.step);
        fflush(stdout);
    }

    float *probs = df_alloc_floats((size_t)max_local * K), *dlogits = df_alloc_floats((size_t)max_local * K),
          *targets = df_alloc_floats((size_t)max_local * K);
    int steps_per_epoch = (ds.n_train + tc.batch - 1) / tc.batch;
    EpochLog *log = xcalloc((size_t)tc.epochs + 1, sizeof *log);
    double t_run = df_now();
    long steps_run = 0;
    const int first_epoch = ts.epoch;
    char *dcor_json = NULL;  // dcor.json lines (rank 0)
    size_t dcor_json_len = 0;
    // Gradients are summed over ranks in buckets started during backward (dist/gradsync.c).
    GradSync *gs = gradsync_create(net.grads, net.n_params, (size_t)(tc.bucket_mb * 1048576.0));
    net.grads_ready = grads_ready;
    net.grads_ready_arg = gs;
    install_stop_handlers();
    FaultPlan fault = fault_plan_from_env();
    char ckpt_path[600];
    snprintf(ckpt_path, sizeof ckpt_path, "%s/checkpoint.h5", tc.out_dir);
    int stopped = 0;

    for (int epoch = ts.epoch; epoch < tc.epochs && !stopped; epoch++) {
        double lr = schedule_lr(&tc.sched, epoch), t_epoch = df_now();
        // The loader's epoch order depends on (seed, epoch) only, so a resumed run -- even one
        // stopped mid-epoch -- sees the same batches.
        int first_step = ts.epoch_step;
        loader_begin_epoch_at(train_loader, epoch, first_step);
        double sums[3];  // loss, correct, count over the epoch (global)
        memcpy(sums, ts.epoch_sums, sizeof sums);
        double wait0 = loader_wait_seconds(train_loader);
        gradsync_reset_stats(gs);
        const Batch *b;
        while ((b = loader_next(train_loader, &err))) {
            int s = b->step, B = b->n, Bg = b->global_n;
            const int *labels = (const int *)b->labels;
            fault_check(&fault, ts.step);
            fill_targets(&tc.loss, b->meta, ds.cohort.k, labels, B, K, targets);
            net.ctx.step = (uint64_t)ts.step;
            set_batch_meta(&net, b);
            const float *logits = net_forward(&net, b->images, B, 1);
            memset(dlogits, 0, (size_t)B * K * sizeof(float));
            long correct = 0;
            double lsum = loss_forward_backward(&tc.loss, logits, dlogits, probs, labels, targets, B, K,
                                                1.0f / (float)Bg, &correct);
            net_zero_grad(&net);
            net_backward(&net, dlogits, B);
            gradsync_finish(gs);
            optim_step(&opt, net.params, net.grads, lr);
            ts.step++;
            ts.epoch_step = s + 1;
            steps_run++;
            // One small all-reduce for the step's figures and the stop request: a signal may
            // reach the ranks at different moments, so they agree here, after the same step.
            double step_stats[4] = { lsum, (double)correct, (double)B, (double)g_stop };
            dist_allreduce_sum_f64(step_stats, 4);
            for (int j = 0; j < 3; j++) sums[j] += step_stats[j];
            if (!isfinite(step_stats[0]))
                df_die(DF_EXIT_FAIL, "loss is not finite at epoch %d step %d: lower [train] lr", epoch + 1, s + 1);
            if (rank == 0 && ((s + 1) % tc.log_every == 0 || s + 1 == steps_per_epoch)) {
                double el = df_now() - t_run;
                double steps_per_s = (double)steps_run / el;
                long left = (long)(tc.epochs - epoch - 1) * steps_per_epoch + (steps_per_epoch - s - 1);
                char eta[32];
                format_eta(left / (steps_per_s > 0 ? steps_per_s : 1), eta, sizeof eta);
                printf("epoch %d/%d step %d/%d loss %.4f lr %.3g %.1f samples/s ETA %s\n", epoch + 1, tc.epochs, s + 1,
                       steps_per_epoch, step_stats[0] / step_stats[2], lr, (sums[2] - ts.epoch_sums[2]) / (df_now() - t_epoch), eta);
                fflush(stdout);
            }
            if (step_stats[3] > 0 && s + 1 < steps_per_epoch) {  // stop mid-epoch
                memcpy(ts.epoch_sums, sums, sizeof sums);
                stopped = 1;
                break;
            }
            if (step_stats[3] > 0) stopped = 1;  // at the epoch's end: finish it normally
        }
        if (loader_failed(train_loader)) df_die(DF_EXIT_FAIL, "%s", err.msg);
        if (stopped && ts.epoch_step < steps_per_epoch) {
            if (rank == 0) {
                if (checkpoint_save(ckpt_path, config_text, &net, &opt, &ts, &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
                printf("stopped by signal at epoch %d step %d/%d: checkpoint %s; continue with --resume %s\n", epoch + 1,
                       ts.epoch_step, steps_per_epoch, ckpt_path, ckpt_path);
                fflush(stdout);
            }
            break;
        }
        double t_train = df_now() - t_epoch;
        double comm_wait = gradsync_wait_seconds(gs);
        EvalStats val = { 0, 0, 0 };
        double data_wait = loader_wait_seconds(train_loader) - wait0;
        if (val_loader) val = evaluate(&net, &tc.loss, val_loader, ds.cohort.k, &err);
        EpochLog *l = &log[epoch];
        l->lr = lr;
        l->train_loss = sums[0] / sums[2];
        l->train_acc = sums[1] / sums[2];
        l->val_loss = val.count ? val.loss_sum / val.count : NAN;
        l->val_acc = val.count ? (double)val.correct / val.count : NAN;
        l->seconds = df_now() - t_epoch;
        l->samples_per_s = (sums[2] - ts.epoch_sums[2]) / t_train;
        l->comm_wait_ms = 1e3 * comm_wait / DF_MAX(1, steps_per_epoch - first_step);
        l->data_wait_ms = 1e3 * data_wait / DF_MAX(1, steps_per_epoch - first_step);
        ts.epoch = epoch + 1;
        ts.epoch_step = 0;
        memset(ts.epoch_sums, 0, sizeof ts.epoch_sums);
        int report = dcor_out >= 0 && (epoch + 1 == tc.epochs || stopped ||
                                       (tc.dcor_every > 0 && (epoch + 1) % tc.dcor_every == 0));
        DcorReport rep;
        if (report && dcor_report_run(&rep, &net, val_loader, &ds, ds.val_idx, ds.n_val, dcor_out, tc.dcor_cols,
                                      tc.n_dcor_cols, &err))
            df_die(DF_EXIT_FAIL, "dCor report: %s", err.msg);
        if (rank == 0) {
            char comm[96] = "";
            if (dist_size() > 1) snprintf(comm, sizeof comm, ", comm wait %.1f ms/step", l->comm_wait_ms);
            if (l->data_wait_ms >= 0.05)
                snprintf(comm + strlen(comm), sizeof comm - strlen(comm), ", data wait %.1f ms/step", l->data_wait_ms);
            char val[96] = "no validation split";
            if (val_loader && classification) snprintf(val, sizeof val, "val loss %.4f acc %.3f", l->val_loss, l->val_acc);
            else if (val_loader) snprintf(val, sizeof val, "val loss %.4f", l->val_loss);
            if (classification)
                printf("epoch %d/%d done: train loss %.4f acc %.3f | %s | %.1f samples/s, %.1f s%s\n", epoch + 1,
                       tc.epochs, l->train_loss, l->train_acc, val, l->samples_per_s, l->seconds, comm);
            else
                printf("epoch %d/%d done: train loss %.4f | %s | %.1f samples/s, %.1f s%s\n", epoch + 1, tc.epochs,
                       l->train_loss, val, l->samples_per_s, l->seconds, comm);
            int last = epoch + 1 == tc.epochs;
            if (last || stopped || (tc.checkpoint_every > 0 && (epoch + 1) % tc.checkpoint_every == 0)) {
                if (checkpoint_save(ckpt_path, config_text, &net, &opt, &ts, &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
                printf("checkpoint: %s (epoch %d)\n", ckpt_path, ts.epoch);
            }
            write_metrics(tc.out_dir, log, first_epoch, epoch + 1, classification);
            if (report) {
                dcor_report_print(&rep, tc.dcor_layer, epoch + 1, stdout, NULL);
                // dcor.json: one line per report of this run, rewritten whole (atomically)
                char *line = NULL;
                size_t len = 0;
                FILE *mem = open_memstream(&line, &len);
                dcor_report_print(&rep, tc.dcor_layer, epoch + 1, NULL, mem);
                fclose(mem);
                dcor_json = xrealloc(dcor_json, dcor_json_len + len + 1);
                memcpy(dcor_json + dcor_json_len, line, len + 1);
                dcor_json_len += len;
                free(line);
                char path[600];
                snprintf(path, sizeof path, "%s/dcor.json", tc.out_dir);
                if (df_write_file_atomic(path, dcor_json, dcor_json_len, &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
            }
            if (stopped && !last) printf("stopped by signal after epoch %d; continue with --resume %s\n", ts.epoch, ckpt_path);
            fflush(stdout);
        }
    }
    gradsync_free(gs);
    if (stopped && ts.epoch < tc.epochs) {
        loader_free(train_loader); loader_free(val_loader);
        free(probs); free(dlogits); free(targets); free(log); free(config_text);
        optim_free(&opt);
        net_free(&net);
        free(schema);
        dataset_free(&ds);
        ini_free(&ini);
        return DF_EXIT_INTERRUPTED;
    }
    if (rank == 0 && tc.epochs > 0) {
        const EpochLog *l = &log[tc.epochs - 1];
        if (classification && ds.n_val == 0)
            printf("final: train accuracy %.3f (no validation split)\n", l->train_acc);
        else if (classification)
            printf("final: train accuracy %.3f, validation accuracy %.3f (%d validation samples)\n", l->train_acc,
                   l->val_acc, ds.n_val);
        else
            printf("final: train loss %.4f, validation loss %.4f\n", l->train_loss, l->val_loss);
    }
    loader_free(train_loader);
    loader_free(val_loader);
    free(dcor_json);
    free(probs); free(dlogits); free(targets); free(log); free(config_text);
    optim_free(&opt);
    net_free(&net);
    free(schema);
    dataset_free(&ds);
    ini_free(&ini);
    return 0;
}
