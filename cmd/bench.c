// bench.c: `deconfound bench`: figures, not tests. `sgemm` measures OpenBLAS on this machine
// (the ceiling for GEMM-based convolution); `brnet3d` times full training steps of the
// BR-Net 3D CNN exactly as ../shared/bench/torch_brnet3d.py does for PyTorch (same shapes,
// batch, SGD with momentum), so the two samples/s figures compare directly.
#include "base/blas_core.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
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
    "usage: deconfound bench brnet3d [--batch B] [--steps S] [--threads T] [--profile] [--json]\n"
    "       deconfound bench sgemm|dgemm [--size N] [--threads T] [--json]\n"
    "\n"
    "brnet3d: samples/s of full training steps (forward, cross-entropy, backward, SGD with\n"
    "  momentum) of the BR-Net 3D CNN on input 1x32x64x64 (defaults: batch 16, 10 timed steps\n"
    "  after 2 warm-up steps) -- the network of ../shared/bench/torch_brnet3d.py. --profile\n"
    "  adds per-layer forward/backward times. --json prints one JSON object (samples_per_s).\n"
    "sgemm, dgemm: GFLOP/s of OpenBLAS cblas_sgemm / cblas_dgemm on N x N x N (default 2048).\n"
    "Threads default to the cores on the node divided by the ranks on the node.\n";

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

// One n x n x n product in single or double precision.
static void gemm_once(int dbl, int n, const void *a, const void *b, void *c) {
    if (dbl) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
}

// GFLOP/s of OpenBLAS's sgemm (dbl = 0) or dgemm (the rate the voxel-wise baselines' least
// squares is measured against, docs/baselines.md).
static int bench_gemm(int dbl, int n, int json) {
    size_t nn = (size_t)n * n, es = dbl ? sizeof(double) : sizeof(float);
    char *a = xmalloc(nn * es), *b = xmalloc(nn * es), *c = xmalloc(nn * es);
    for (size_t i = 0; i < nn; i++) {
        if (dbl) ((double *)a)[i] = (double)(i % 7) * 0.1, ((double *)b)[i] = (double)(i % 5) * 0.2;
        else ((float *)a)[i] = (float)(i % 7) * 0.1f, ((float *)b)[i] = (float)(i % 5) * 0.2f;
    }
    gemm_once(dbl, n, a, b, c);
    int reps = 0;
    double t0 = df_now(), t;
    do {
        gemm_once(dbl, n, a, b, c);
        reps++;
        t = df_now() - t0;
    } while (t < 2.0 || reps < 3);
    double gflops = 2.0 * n * (double)n * n * reps / t / 1e9;
    int threads = openblas_get_num_threads();
    const char *name = dbl ? "dgemm" : "sgemm";
    if (json)
        printf("{\"bench\": \"%s\", \"size\": %d, \"threads\": %d, \"blas_core\": \"%s\", \"gflops\": %.2f}\n", name, n,
               threads, blas_core_name(), gflops);
    else
        printf("%s %dx%dx%d, %d thread%s, core %s: %.1f GFLOP/s\n", name, n, n, n, threads, threads == 1 ? "" : "s",
               blas_core_name(), gflops);
    free(a); free(b); free(c);
    return 0;
}

static int bench_brnet3d(int batch, int steps, int profile, int json) {
    Ini ini;
    DfError err;
    if (ini_parse_string(&ini, brnet3d_ini, "brnet3d (built in)", &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    Net net;
    if (net_build(&net, &ini, brnet3d_input, batch, &reducer_local, &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    net_init(&net, 0);
    OptConfig oc = { .kind = OPT_SGD, .momentum = 0.9 };
    Optimizer opt;
    optim_init(&opt, &oc, net.n_params);
    size_t per = shape_numel(brnet3d_input);
    int K = (int)shape_numel(net.out_shape);
    float *x = df_alloc_floats((size_t)batch * per), *probs = df_alloc_floats((size_t)batch * K),
          *dlogits = df_alloc_floats((size_t)batch * K);
    int *y = xmalloc((size_t)batch * sizeof(int));
    Rng rng;
    rng_seed(&rng, 0);
    for (size_t i = 0; i < (size_t)batch * per; i++) x[i] = (float)rng_normal(&rng);
    for (int i = 0; i < batch; i++) y[i] = (int)rng_below(&rng, 2);
    double *t_fwd = xcalloc((size_t)net.n_layers, sizeof(double)), *t_bwd = xcalloc((size_t)net.n_layers, sizeof(double));
    net.seconds_fwd = t_fwd;  // per-layer times (--profile), kept by net_forward/net_backward
    net.seconds_bwd = t_bwd;
    double t_start = 0;
    for (int s = 0; s < steps + 2; s++) {
        if (s == 2) {  // two warm-up steps, as the PyTorch script
            t_start = df_now();
            memset(t_fwd, 0, (size_t)net.n_layers * sizeof(double));
            memset(t_bwd, 0, (size_t)net.n_layers * sizeof(double));
        }
        Batch b = batch_of_images(x, batch);
        const float *logits = net_forward(&net, &b, 1);
        memset(dlogits, 0, (size_t)batch * K * sizeof(float));
        softmax_xent_forward(probs, logits, y, batch, K);
        softmax_xent_backward(dlogits, probs, y, batch, K, 1.0f / batch);
        net_zero_grad(&net);
        net_backward(&net, &b, dlogits);
        optim_step(&opt, net.params, net.grads, 0.01);
    }
    double dt = df_now() - t_start;
    double sps = (double)batch * steps / dt;
    // Training FLOPs: forward 2*MACs, backward 2*MACs for the weight gradient and 2*MACs for
    // the input gradient (not needed for the first layer).
    double macs = forward_macs(&net), first = (double)net.layers[0].params_info[0].count * shape_spatial(net.layers[0].out_shape);
    double gflop = (6.0 * macs - 2.0 * first) / 1e9;
    int threads = openblas_get_num_threads();
    if (json) {
        printf("{\"bench\": \"brnet3d\", \"batch\": %d, \"steps\": %d, \"threads\": %d, \"blas_core\": \"%s\", "
               "\"samples_per_s\": %.3f, \"gflop_per_sample\": %.4f, \"gflops\": %.2f}\n",
               batch, steps, threads, blas_core_name(), sps, gflop, gflop * sps);
    } else {
        printf("deconfound brnet3d threads=%d core=%s batch=%d samples/s=%.1f (%.2f GFLOP per sample, %.1f GFLOP/s)\n",
               threads, blas_core_name(), batch, sps, gflop, gflop * sps);
        if (profile) {
            printf("%-12s %-12s %10s %10s\n", "layer", "type", "fwd ms", "bwd ms");
            for (int i = 0; i < net.n_layers; i++)
                printf("%-12s %-12s %10.2f %10.2f\n", net.layers[i].name, net.layers[i].ops->type,
                       1e3 * t_fwd[i] / steps, 1e3 * t_bwd[i] / steps);
            printf("step total %.2f ms\n", 1e3 * dt / steps);
        }
    }
    net.seconds_fwd = net.seconds_bwd = NULL;
    free(t_fwd); free(t_bwd); free(x); free(probs); free(dlogits); free(y);
    optim_free(&opt);
    net_free(&net);
    ini_free(&ini);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *which = NULL, *v;
    int batch = 16, steps = 10, threads = 0, json = 0, profile = 0, size = 2048;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(bench_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--batch", &v, cmd)) batch = (int)cli_long(cmd, "--batch", v, 1, 4096);
        else if (cli_opt(argc, argv, &i, "--steps", &v, cmd)) steps = (int)cli_long(cmd, "--steps", v, 1, 100000);
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_opt(argc, argv, &i, "--size", &v, cmd)) size = (int)cli_long(cmd, "--size", v, 16, 16384);
        else if (cli_flag(argv, i, "--json")) json = 1;
        else if (cli_flag(argv, i, "--profile")) profile = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!which) which = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!which) cli_usage_error(cmd, "missing the benchmark name (brnet3d, sgemm or dgemm)");
    if (dist_size() > 1) cli_usage_error(cmd, "benchmarks run on one rank");
    dist_set_blas_threads(threads);
    if (strcmp(which, "brnet3d") == 0) return bench_brnet3d(batch, steps, profile, json);
    if (strcmp(which, "sgemm") == 0) return bench_gemm(0, size, json);
    if (strcmp(which, "dgemm") == 0) return bench_gemm(1, size, json);
    cli_usage_error(cmd, "unknown benchmark '%s' (brnet3d, sgemm, dgemm)", which);
}
