// bench.c: `deconfound bench`: figures, not tests. `sgemm` measures OpenBLAS on this machine
// (the ceiling for GEMM-based convolution); `brnet3d` times full training steps of the
// BR-Net 3D CNN exactly as ../shared/bench/torch_brnet3d.py does for PyTorch (same shapes,
// batch, SGD with momentum), so the two samples/s figures compare directly.
#include "base/blas_core.h"
#include <cblas.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "base/threads.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "nn/conv3d.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"

// The BR-Net / MDN HIV-style 3D CNN (DESIGN.md section 5): four Conv3d 3^3 (pad 1) - BatchNorm -
// ReLU - MaxPool 2 blocks of 16/32/64/32 channels, then fc 1024 -> 64 -> ReLU -> 2.
static const char *const brnet3d_ini =
    "[conv3d]\nname = conv1\nout = 16\nkernel = 3\npad = 1\n[batchnorm3d]\nname = bn1\n[relu]\n[maxpool3d]\nkernel = 2\n"
    "[conv3d]\nname = conv2\nout = 32\nkernel = 3\npad = 1\n[batchnorm3d]\nname = bn2\n[relu]\n[maxpool3d]\nkernel = 2\n"
    "[conv3d]\nname = conv3\nout = 64\nkernel = 3\npad = 1\n[batchnorm3d]\nname = bn3\n[relu]\n[maxpool3d]\nkernel = 2\n"
    "[conv3d]\nname = conv4\nout = 32\nkernel = 3\npad = 1\n[batchnorm3d]\nname = bn4\n[relu]\n[maxpool3d]\nkernel = 2\n"
    "[flatten]\n[linear]\nname = fc1\nout = 64\n[relu]\n[linear]\nname = fc2\nout = 2\n";
static const Shape brnet3d_input = { 1, 32, 64, 64 };

static const char *bench_help =
    "usage: deconfound bench brnet3d [--batch B] [--steps S] [--threads T] [--profile] [--no-fuse]\n"
    "                                [--isa 2|3|4] [--vs-torch [SCRIPT] | --vs-1-thread] [--json]\n"
    "       deconfound bench conv3d [--batch B] [--threads T] [--kernels auto|gemm|direct] [--isa 2|3|4]\n"
    "                               [--json]\n"
    "       deconfound bench sgemm|dgemm [--size N] [--threads T] [--json]\n"
    "\n"
    "brnet3d: samples/s of full training steps (forward, cross-entropy, backward, SGD with\n"
    "  momentum) of the BR-Net 3D CNN on input 1x32x64x64 (defaults: batch 16, 10 timed steps\n"
    "  after 2 warm-up steps) -- the network of ../shared/bench/torch_brnet3d.py -- beside\n"
    "  OpenBLAS sgemm at the same thread count, and the peak resident memory. Under mpirun the\n"
    "  batch is the global one, split over the ranks, and the gradients are summed over them\n"
    "  each step, as in training. --profile adds per-layer times; --no-fuse runs BatchNorm,\n"
    "  ReLU and max-pooling as separate layers (nn/fused.h); --vs-torch runs PyTorch's figure\n"
    "  in the same run (python3 with torch; SCRIPT defaults to $TORCH_BENCH, else\n"
    "  ../shared/bench/torch_brnet3d.py) and its peak memory. --vs-1-thread (one rank, --threads\n"
    "  2 or more): the same process alternates blocks of S steps at 1 thread and at T threads,\n"
    "  4 rounds, and prints each round's speed-up and their median. --json: one JSON object.\n"
    "conv3d: each BR-Net convolution's forward, backward-data and backward-weights alone, in\n"
    "  GFLOP/s and as a share of sgemm's GFLOP/s timed beside it (three windows of each in\n"
    "  turn, the best of each). --kernels gemm|direct forces vol2col + GEMM or the direct\n"
    "  kernels wherever they apply (default: the rule in nn/conv3d.c); the kernel column says\n"
    "  which ran.\n"
    "--isa caps the instruction set of the program's own kernels (4 AVX-512, 3 AVX2, 2 SSE4.2;\n"
    "  base/multiarch.h) to time another CPU's code path (OpenBLAS's: OPENBLAS_CORETYPE).\n"
    "sgemm, dgemm: GFLOP/s of OpenBLAS cblas_sgemm / cblas_dgemm on N x N x N (default 2048).\n"
    "Threads default to the cores on the node divided by the ranks on the node; every line\n"
    "names the CPU and the OpenBLAS core type.\n";

// Multiply-accumulates of the conv and linear layers for one sample's forward pass.
static double forward_macs(const Net *net) {
    double macs = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const Layer *L = &net->layers[i];
        if (strcmp(L->ops->type, "conv3d") == 0 || strcmp(L->ops->type, "linear") == 0)
            macs += (double)L->params_info[0].count * shape_spatial(L->out_shape);
    }
    return macs;
}

// "machine: AMD EPYC (family 25 model 17), 2 cores; OpenBLAS core Cooperlake; 1 rank x 2 threads"
static void print_machine(FILE *f) {
    char cpu[256], blas[256];
    cpu_model_describe(cpu, sizeof cpu);
    blas_core_describe(blas, sizeof blas);
    fprintf(f, "machine: %s, %ld cores; %s; %d rank%s x %d thread%s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), blas,
            dist_size(), dist_size() == 1 ? "" : "s", df_threads(), df_threads() == 1 ? "" : "s");
}

// One n x n x n product in single or double precision.
static void gemm_once(int dbl, int n, const void *a, const void *b, void *c) {
    if (dbl) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
}

// GFLOP/s of OpenBLAS's sgemm (dbl = 0) or dgemm (the rate the voxel-wise baselines' least
// squares is measured against, docs/baselines.md), with OpenBLAS's threads as set, for at
// least `seconds`.
// The operands of the products timed: nn values each of a and b.
static void gemm_fill(int dbl, size_t nn, void *a, void *b) {
    for (size_t i = 0; i < nn; i++) {
        if (dbl) ((double *)a)[i] = (double)(i % 7) * 0.1, ((double *)b)[i] = (double)(i % 5) * 0.2;
        else ((float *)a)[i] = (float)(i % 7) * 0.1f, ((float *)b)[i] = (float)(i % 5) * 0.2f;
    }
}

static double gemm_rate(int dbl, int n, double seconds) {
    size_t nn = (size_t)n * n, es = dbl ? sizeof(double) : sizeof(float);
    char *a = xmalloc(nn * es), *b = xmalloc(nn * es), *c = xmalloc(nn * es);
    gemm_fill(dbl, nn, a, b);
    gemm_once(dbl, n, a, b, c);
    int reps = 0;
    double t0 = df_now(), t;
    do {
        gemm_once(dbl, n, a, b, c);
        reps++;
        t = df_now() - t0;
    } while (t < seconds || reps < 3);
    free(a); free(b); free(c);
    return 2.0 * n * (double)n * n * reps / t / 1e9;
}

static int bench_gemm(int dbl, int n, int json) {
    double gflops = gemm_rate(dbl, n, 2.0);
    int threads = openblas_get_num_threads();
    const char *name = dbl ? "dgemm" : "sgemm";
    if (json)
        printf("{\"bench\": \"%s\", \"size\": %d, \"threads\": %d, \"blas_core\": \"%s\", \"gflops\": %.2f}\n", name, n,
               threads, blas_core_name(), gflops);
    else
        printf("%s %dx%dx%d, %d thread%s, core %s: %.1f GFLOP/s\n", name, n, n, n, threads, threads == 1 ? "" : "s",
               blas_core_name(), gflops);
    return 0;
}

// ---- PyTorch in the same run -----------------------------------------------------------------

// The PyTorch script: `script` if given, else $TORCH_BENCH, else ../shared/bench/torch_brnet3d.py
// from the working directory or from the program's own directory.
static int torch_script(char *out, size_t n, const char *script) {
    if (script) { snprintf(out, n, "%s", script); return access(out, R_OK) == 0 ? 0 : -1; }
    const char *env = getenv("TORCH_BENCH");
    if (env && *env) { snprintf(out, n, "%s", env); return access(out, R_OK) == 0 ? 0 : -1; }
    snprintf(out, n, "../shared/bench/torch_brnet3d.py");
    if (access(out, R_OK) == 0) return 0;
    char exe[4000];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(out, n, "%s/../shared/bench/torch_brnet3d.py", exe);
    return access(out, R_OK) == 0 ? 0 : -1;
}

// Runs the script with the same threads, batch and steps; its samples/s (< 0 when it could not
// run) and the peak resident memory of the python process (MB).
static double torch_samples_per_s(const char *script, int threads, int batch, int steps, double *rss_mb, char *why,
                                  size_t why_n) {
    char path[8192], cmd[8400], line[512];
    *rss_mb = 0;
    if (torch_script(path, sizeof path, script)) {
        snprintf(why, why_n, "script not found (--vs-torch SCRIPT or TORCH_BENCH)");
        return -1;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %d %d %d 2>&1", path, threads, batch, steps);
    FILE *p = popen(cmd, "r");
    if (!p) { snprintf(why, why_n, "cannot start python3: %s", strerror(errno)); return -1; }
    double sps = -1;
    snprintf(why, why_n, "no samples/s in its output");
    while (fgets(line, sizeof line, p)) {
        const char *k = strstr(line, "samples/s=");
        if (k) sps = atof(k + 10);
        else if (strstr(line, "No module named 'torch'")) snprintf(why, why_n, "python3-torch is not installed");
    }
    int status = pclose(p);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);  // the largest child waited for: the python process
    *rss_mb = (double)ru.ru_maxrss / 1024.0;
    if (status != 0 && sps < 0) return -1;
    return sps;
}

// ---- the BR-Net training step ------------------------------------------------------------------

typedef struct {
    int batch, steps, profile, json, fuse, vs_torch, vs_one_thread;
    const char *torch_script;
} BrnetOpts;

// Steps of the data-parallel trainer's shape: this rank's share of the global batch forward,
// loss, backward, gradients summed over ranks, SGD with momentum. Returns seconds per step.
static double brnet3d_steps(Net *net, const BrnetOpts *o, int local, double *t_fwd, double *t_bwd) {
    OptConfig oc = { .kind = OPT_SGD, .momentum = 0.9 };
    Optimizer opt;
    optim_init(&opt, &oc, net->n_params);
    size_t per = shape_numel(brnet3d_input);
    int K = (int)shape_numel(net->out_shape);
    float *x = df_alloc_floats((size_t)local * per), *probs = df_alloc_floats((size_t)local * K),
          *dlogits = df_alloc_floats((size_t)local * K);
    int *y = xmalloc((size_t)local * sizeof(int));
    Rng rng;
    rng_seed_stream(&rng, 0, (uint64_t)dist_rank(), 0);
    for (size_t i = 0; i < (size_t)local * per; i++) x[i] = (float)rng_normal(&rng);
    for (int i = 0; i < local; i++) y[i] = (int)rng_below(&rng, 2);
    double t_start = 0;
    for (int s = 0; s < o->steps + 2; s++) {
        if (s == 2) {  // two warm-up steps, as the PyTorch script
            dist_barrier();
            t_start = df_now();
            memset(t_fwd, 0, (size_t)net->n_layers * sizeof(double));
            memset(t_bwd, 0, (size_t)net->n_layers * sizeof(double));
        }
        Batch b = batch_of_images(x, local);
        b.global_n = o->batch;
        const float *logits = net_forward(net, &b, 1);
        memset(dlogits, 0, (size_t)local * K * sizeof(float));
        softmax_xent_forward(probs, logits, y, local, K);
        softmax_xent_backward(dlogits, probs, y, local, K, 1.0f / o->batch);
        net_zero_grad(net);
        net_backward(net, &b, dlogits);
        dist_allreduce_sum_f32(net->grads, net->n_params);  // a no-op on one rank
        optim_step(&opt, net->params, net->grads, 0.01);
    }
    dist_barrier();
    double dt = (df_now() - t_start) / o->steps;
    free(x); free(probs); free(dlogits); free(y);
    optim_free(&opt);
    return dt;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// --vs-1-thread: one process times blocks of `steps` steps at 1 thread and at its T threads in
// turn, BRNET_ROUNDS times, the order swapped every round so that a drift in the machine's
// speed favours neither, each block beside sgemm at the same threads. This is issue 18's "one
// process with 2 threads >= 1.8x its 1-thread speed" side by side: run as separate processes a
// minute apart (bench/brnet3d.sh's rounds), the ratio also carries the minute-to-minute
// swings of a shared machine (1.51-1.92x on Zen 3, docs/performance.md). The net keeps the
// workspace of T threads throughout; a layer at 1 thread uses one slice of it.
#define BRNET_ROUNDS 4
static void brnet3d_vs_one_thread(Net *net, const BrnetOpts *o, double *t_fwd, double *t_bwd) {
    const int T = df_threads();
    double sps[BRNET_ROUNDS][2], gemm[BRNET_ROUNDS][2], ratio[BRNET_ROUNDS];
    for (int r = 0; r < BRNET_ROUNDS; r++) {
        for (int k = 0; k < 2; k++) {
            const int which = (k + r) % 2;  // 0: 1 thread, 1: T threads
            df_threads_set(which ? T : 1);
            sps[r][which] = o->batch / brnet3d_steps(net, o, o->batch, t_fwd, t_bwd);
            gemm[r][which] = gemm_rate(0, 2048, 1.0);
        }
        ratio[r] = sps[r][1] / sps[r][0];
    }
    df_threads_set(T);
    double sorted[BRNET_ROUNDS];
    memcpy(sorted, ratio, sizeof sorted);
    qsort(sorted, BRNET_ROUNDS, sizeof sorted[0], cmp_double);
    const double median = 0.5 * (sorted[(BRNET_ROUNDS - 1) / 2] + sorted[BRNET_ROUNDS / 2]);
    if (o->json) {
        printf("{\"bench\": \"brnet3d-vs-1-thread\", \"batch\": %d, \"steps\": %d, \"threads\": %d, \"blas_core\": \"%s\", "
               "\"rounds\": [", o->batch, o->steps, T, blas_core_name());
        for (int r = 0; r < BRNET_ROUNDS; r++)
            printf("%s{\"samples_per_s_1\": %.3f, \"samples_per_s_t\": %.3f, \"sgemm_gflops_1\": %.2f, "
                   "\"sgemm_gflops_t\": %.2f}", r ? ", " : "", sps[r][0], sps[r][1], gemm[r][0], gemm[r][1]);
        printf("], \"median_speedup\": %.3f}\n", median);
        return;
    }
    print_machine(stdout);
    for (int r = 0; r < BRNET_ROUNDS; r++)
        printf("round %d (%d thread%s first): samples/s %.1f at 1 thread, %.1f at %d: %.2fx (sgemm %.1f and %.1f "
               "GFLOP/s: %.2fx)\n",
               r + 1, r % 2 ? T : 1, r % 2 ? "s" : "", sps[r][0], sps[r][1], T, ratio[r], gemm[r][0], gemm[r][1],
               gemm[r][1] / gemm[r][0]);
    printf("deconfound brnet3d %d threads against 1 in one process, batch %d, %d rounds of %d steps each: median "
           "%.2fx (%.2f-%.2fx)\n",
           T, o->batch, BRNET_ROUNDS, o->steps, median, sorted[0], sorted[BRNET_ROUNDS - 1]);
}

static int bench_brnet3d(const BrnetOpts *o) {
    if (o->batch % dist_size() != 0)
        cli_usage_error("bench", "--batch %d does not split evenly over %d ranks", o->batch, dist_size());
    if (o->vs_torch && dist_size() > 1) cli_usage_error("bench", "--vs-torch runs on one rank");
    if (o->vs_one_thread && dist_size() > 1) cli_usage_error("bench", "--vs-1-thread runs on one rank");
    if (o->vs_one_thread && df_threads() < 2)
        cli_usage_error("bench", "--vs-1-thread needs --threads 2 or more (this rank has %d)", df_threads());
    if (o->vs_one_thread && (o->vs_torch || o->profile))
        cli_usage_error("bench", "--vs-1-thread runs alone, without --vs-torch or --profile");
    Ini ini;
    DfError err;
    if (ini_parse_string(&ini, brnet3d_ini, "brnet3d (built in)", &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    Net net;
    int local = o->batch / dist_size();
    if (net_build(&net, &ini, brnet3d_input, local, dist_reducer(), &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    net_set_fusion(&net, o->fuse);
    net_init(&net, 0);
    double *t_fwd = xcalloc((size_t)net.n_layers, sizeof(double)), *t_bwd = xcalloc((size_t)net.n_layers, sizeof(double));
    net.seconds_fwd = t_fwd;  // per-layer times (--profile), kept by net_forward/net_backward
    net.seconds_bwd = t_bwd;
    if (o->vs_one_thread) {
        brnet3d_vs_one_thread(&net, o, t_fwd, t_bwd);
        net.seconds_fwd = net.seconds_bwd = NULL;
        free(t_fwd); free(t_bwd);
        net_free(&net);
        ini_free(&ini);
        return 0;
    }
    double step_s = brnet3d_steps(&net, o, local, t_fwd, t_bwd);
    double rss[1] = { df_peak_rss_mb() };
    dist_allreduce_max_f64(rss, 1);
    // sgemm on each rank at the same time with its own threads: the machine's GEMM rate as the
    // ranks x threads layout sees it (one rank's figure is printed, all ranks ran it)
    double sgemm = gemm_rate(0, 2048, 2.0);
    double sps = o->batch / step_s;
    // Training FLOPs: forward 2*MACs, backward 2*MACs for the weight gradient and 2*MACs for
    // the input gradient (not needed for the first layer).
    double macs = forward_macs(&net), first = (double)net.layers[0].params_info[0].count * shape_spatial(net.layers[0].out_shape);
    double gflop = (6.0 * macs - 2.0 * first) / 1e9;
    double ranks_sgemm = sgemm * dist_size();
    double torch = -1, torch_rss = 0;
    char why[256] = "";
    if (o->vs_torch) torch = torch_samples_per_s(o->torch_script, df_threads(), o->batch, o->steps, &torch_rss, why, sizeof why);
    if (dist_rank() == 0) {
        if (o->json) {
            printf("{\"bench\": \"brnet3d\", \"batch\": %d, \"steps\": %d, \"ranks\": %d, \"threads\": %d, \"blas_core\": \"%s\", "
                   "\"fused\": %d, \"samples_per_s\": %.3f, \"gflop_per_sample\": %.4f, \"gflops\": %.2f, "
                   "\"sgemm_gflops\": %.2f, \"peak_rss_mb\": %.1f",
                   o->batch, o->steps, dist_size(), df_threads(), blas_core_name(), o->fuse, sps, gflop, gflop * sps,
                   ranks_sgemm, rss[0]);
            if (torch > 0) printf(", \"torch_samples_per_s\": %.3f, \"torch_peak_rss_mb\": %.1f", torch, torch_rss);
            printf("}\n");
        } else {
            print_machine(stdout);
            printf("deconfound brnet3d ranks=%d threads=%d core=%s batch=%d%s samples/s=%.1f (%.2f GFLOP per sample, "
                   "%.1f GFLOP/s = %.0f%% of sgemm's %.1f) peak RSS %.0f MB%s\n",
                   dist_size(), df_threads(), blas_core_name(), o->batch, o->fuse ? "" : " unfused", sps, gflop,
                   gflop * sps, 100.0 * gflop * sps / ranks_sgemm, ranks_sgemm, rss[0], dist_size() > 1 ? " per rank" : "");
            if (o->vs_torch && torch > 0)
                printf("torch brnet3d threads=%d batch=%d samples/s=%.1f peak RSS %.0f MB: deconfound is %.2fx its "
                       "samples/s at %.2fx its memory\n",
                       df_threads(), o->batch, torch, torch_rss, sps / torch, rss[0] / torch_rss);
            else if (o->vs_torch)
                printf("torch: not run (%s)\n", why);
            if (o->profile) net_print_profile(&net, t_fwd, t_bwd, o->steps, step_s, stdout);
        }
    }
    net.seconds_fwd = net.seconds_bwd = NULL;
    free(t_fwd); free(t_bwd);
    net_free(&net);
    ini_free(&ini);
    return 0;
}

// ---- the convolutions alone --------------------------------------------------------------------

// sgemm 2048^3's operands, kept for the windows beside each phase (sgemm_window_rate).
typedef struct { float *a, *b, *c; } SgemmBufs;

// sgemm's GFLOP/s over two products (about 0.4 s on one core).
static double sgemm_window_rate(const SgemmBufs *m) {
    const int n = 2048;
    double t0 = df_now();
    for (int r = 0; r < 2; r++) gemm_once(0, n, m->a, m->b, m->c);
    return 2 * 2.0 * n * (double)n * n / (df_now() - t0) / 1e9;
}

static void conv_phase_call(int phase, const Conv3dGeom *g, int B, float *x, float *w, float *bias, float *y,
                            float *dx, float *dw, float *ws, int threads) {
    if (phase == 0) conv3d_forward(y, x, w, bias, B, g, ws, threads);
    else if (phase == 1) conv3d_backward(dx, NULL, NULL, y, x, w, B, g, ws, threads);
    else conv3d_backward(NULL, dw, bias, y, x, w, B, g, ws, threads);
}

// Seconds per call of one phase (0 forward, 1 backward-data, 2 backward-weights), and in
// *sgemm the GFLOP/s of sgemm timed beside it: three windows of each in turn, the best of each.
// A phase's window is its calls for at least 0.3 s after one untimed call (sgemm's 48 MB have
// just pushed its tensors out of the caches). On a shared machine whose speed drifts by the
// minute (66-94 GFLOP/s for sgemm on Zen 3, docs/performance.md), a share of sgemm taken from
// the same few seconds says more about the kernel than one taken against an sgemm timed a
// minute earlier, which the table's header still prints.
static double conv_phase_seconds(double *sgemm, const SgemmBufs *m, int phase, const Conv3dGeom *g, int B, float *x,
                                 float *w, float *bias, float *y, float *dx, float *dw, float *ws, int threads) {
    double best = 1e30;
    *sgemm = 0;
    for (int run = 0; run < 3; run++) {
        conv_phase_call(phase, g, B, x, w, bias, y, dx, dw, ws, threads);
        int reps = 0;
        double t0 = df_now(), t;
        do {
            conv_phase_call(phase, g, B, x, w, bias, y, dx, dw, ws, threads);
            reps++;
            t = df_now() - t0;
        } while (t < 0.3);
        best = DF_MIN(best, t / reps);
        *sgemm = DF_MAX(*sgemm, sgemm_window_rate(m));
    }
    return best;
}

static int bench_conv3d(int batch, int json) {
    if (dist_size() > 1) cli_usage_error("bench", "conv3d runs on one rank");
    Ini ini;
    DfError err;
    if (ini_parse_string(&ini, brnet3d_ini, "brnet3d (built in)", &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    Net net;
    if (net_build(&net, &ini, brnet3d_input, 1, &reducer_local, &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    double sgemm_start = gemm_rate(0, 2048, 2.0);
    const size_t nn = (size_t)2048 * 2048;
    SgemmBufs m = { df_alloc_floats(nn), df_alloc_floats(nn), df_alloc_floats(nn) };
    gemm_fill(0, nn, m.a, m.b);
    if (!json) {
        print_machine(stdout);
        printf("sgemm 2048^3: %.1f GFLOP/s at the start; each phase's share is of sgemm timed beside it (its column)\n",
               sgemm_start);
        printf("%-6s %-22s %-8s %-9s %9s %9s %7s %7s\n", "layer", "input (C,D,H,W) -> OC", "phase", "kernel", "ms",
               "GFLOP/s", "sgemm", "share");
    }
    static const char *const phase_name[3] = { "forward", "bwd-data", "bwd-wt" };
    static const int phase_id[3] = { CONV3D_FORWARD, CONV3D_BWD_DATA, CONV3D_BWD_WEIGHTS };
    for (int i = 0; i < net.n_layers; i++) {
        const Layer *L = &net.layers[i];
        if (strcmp(L->ops->type, "conv3d") != 0) continue;
        Shape in = L->in_shape;
        Conv3dGeom g;
        const int k[3] = { 3, 3, 3 }, s[3] = { 1, 1, 1 }, p[3] = { 1, 1, 1 };
        DF_ASSERT(conv3d_geom_init(&g, in.c, in.d, in.h, in.w, L->out_shape.c, k, s, p) == 0);
        size_t xn = (size_t)batch * shape_numel(in), yn = (size_t)batch * shape_numel(L->out_shape);
        size_t wn = L->params_info[0].count;
        float *x = df_alloc_floats(xn), *dx = df_alloc_floats(xn), *y = df_alloc_floats(yn);
        float *w = df_alloc_floats(wn), *dw = df_alloc_floats(wn), *bias = df_alloc_floats((size_t)g.OC);
        float *ws = df_alloc_floats(conv3d_workspace_floats(&g) * (size_t)df_threads());
        Rng rng;
        rng_seed(&rng, (uint64_t)i);
        for (size_t j = 0; j < xn; j++) x[j] = (float)rng_normal(&rng);
        for (size_t j = 0; j < wn; j++) w[j] = 0.01f * (float)rng_normal(&rng);
        memset(dx, 0, xn * sizeof(float));
        memset(dw, 0, wn * sizeof(float));
        memset(bias, 0, (size_t)g.OC * sizeof(float));
        conv3d_forward(y, x, w, bias, batch, &g, ws, df_threads());
        double flop = 2.0 * batch * (double)wn * shape_spatial(L->out_shape);
        for (int ph = 0; ph < 3; ph++) {
            double sgemm;
            double sec = conv_phase_seconds(&sgemm, &m, ph, &g, batch, x, w, bias, y, dx, dw, ws, df_threads());
            double rate = flop / sec / 1e9;
            char kern[32];
            conv3d_kernel_name(kern, sizeof kern, &g, phase_id[ph], batch);
            if (json)
                printf("{\"bench\": \"conv3d\", \"layer\": \"%s\", \"phase\": \"%s\", \"kernel\": \"%s\", \"batch\": %d, "
                       "\"threads\": %d, \"blas_core\": \"%s\", \"ms\": %.3f, \"gflops\": %.2f, \"sgemm_gflops\": %.2f, "
                       "\"sgemm_start_gflops\": %.2f}\n",
                       L->name, phase_name[ph], kern, batch, df_threads(), blas_core_name(), 1e3 * sec, rate, sgemm,
                       sgemm_start);
            else
                printf("%-6s %3d,%3d,%3d,%3d -> %-3d   %-8s %-9s %9.2f %9.1f %7.1f %6.0f%%\n", L->name, in.c, in.d, in.h,
                       in.w, g.OC, phase_name[ph], kern, 1e3 * sec, rate, sgemm, 100.0 * rate / sgemm);
        }
        free(x); free(dx); free(y); free(w); free(dw); free(bias); free(ws);
    }
    free(m.a); free(m.b); free(m.c);
    net_free(&net);
    ini_free(&ini);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *which = NULL, *v;
    int threads = 0, json = 0, size = 2048, kernels = CONV3D_AUTO, isa = 0;
    BrnetOpts o = { .batch = 16, .steps = 10, .fuse = 1 };
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(bench_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--batch", &v, cmd)) o.batch = (int)cli_long(cmd, "--batch", v, 1, 4096);
        else if (cli_opt(argc, argv, &i, "--steps", &v, cmd)) o.steps = (int)cli_long(cmd, "--steps", v, 1, 100000);
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_opt(argc, argv, &i, "--size", &v, cmd)) size = (int)cli_long(cmd, "--size", v, 16, 16384);
        else if (cli_opt(argc, argv, &i, "--isa", &v, cmd)) isa = (int)cli_long(cmd, "--isa", v, 2, 4);
        else if (cli_opt(argc, argv, &i, "--kernels", &v, cmd)) {
            if (strcmp(v, "auto") == 0) kernels = CONV3D_AUTO;
            else if (strcmp(v, "gemm") == 0) kernels = CONV3D_GEMM;
            else if (strcmp(v, "direct") == 0) kernels = CONV3D_DIRECT;
            else cli_usage_error(cmd, "--kernels takes auto, gemm or direct, not '%s'", v);
        } else if (cli_flag(argv, i, "--json")) json = 1;
        else if (cli_flag(argv, i, "--profile")) o.profile = 1;
        else if (cli_flag(argv, i, "--no-fuse")) o.fuse = 0;
        else if (cli_flag(argv, i, "--vs-1-thread")) o.vs_one_thread = 1;
        else if (cli_flag(argv, i, "--vs-torch")) {
            o.vs_torch = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-' && strstr(argv[i + 1], ".py")) o.torch_script = argv[++i];
        } else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!which) which = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!which) cli_usage_error(cmd, "missing the benchmark name (brnet3d, conv3d, sgemm or dgemm)");
    o.json = json;
    conv3d_set_kernels(kernels, isa);
    dist_set_blas_threads(threads);
    if (strcmp(which, "brnet3d") == 0) return bench_brnet3d(&o);
    if (dist_size() > 1) cli_usage_error(cmd, "%s runs on one rank", which);
    if (strcmp(which, "conv3d") == 0) return bench_conv3d(o.batch, json);
    if (strcmp(which, "sgemm") == 0) return bench_gemm(0, size, json);
    if (strcmp(which, "dgemm") == 0) return bench_gemm(1, size, json);
    cli_usage_error(cmd, "unknown benchmark '%s' (brnet3d, conv3d, sgemm, dgemm)", which);
}
