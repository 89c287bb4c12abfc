// test_saliency.c: saliency maps (run/saliency.c) of a network whose answer is known: a
// linear model d logit_k / d x = W[k], so every method's map is a closed form of the weights
// (and the image); a network that reads only one region gives maps with all their mass
// there; a real network's input gradient against finite differences.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/ini.h"
#include "nn/net.h"
#include "run/saliency.h"
#include "testutil.h"

// Input (2, 4, 4, 4), flatten, linear to 3 classes; class 2's weights are non-zero only in
// the voxels with d >= 2 and h < 2 (the "region"), the others everywhere.
static void build_linear(Net *net, float *images, int B) {
    Ini ini;
    DfError err;
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[flatten]\n[linear]\nname = fc\nout = 3\n", "lin.ini", &err), 0);
    Shape in = { 2, 4, 4, 4 };
    CU_ASSERT_EQUAL_FATAL(net_build(net, &ini, in, B, NULL, &err), 0);
    net_init(net, 3);
    float *W = layer_param(net_layer(net, "fc"), 0);  // (3, 128)
    Rng r;
    rng_seed(&r, 5);
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < 2; c++)
            for (int v = 0; v < 64; v++) {
                int d = v / 16, h = (v / 4) % 4;
                float w = rng_uniformf(&r, -1, 1);
                W[k * 128 + c * 64 + v] = k == 2 && !(d >= 2 && h < 2) ? 0.0f : w;
            }
    for (int i = 0; i < B * 128; i++) images[i] = rng_uniformf(&r, -2, 2);
    net_enable_input_grad(net);
    ini_free(&ini);
}

static void test_linear_closed_form(void) {
    enum { B = 3 };
    Net net;
    float images[B * 128], maps[B * 64];
    build_linear(&net, images, B);
    const float *W = layer_param(net_layer(&net, "fc"), 0);
    int32_t labels[B] = { 0, 2, 1 };
    Batch b = { .n = B, .global_n = B, .images = images, .labels = labels };
    for (int method = 0; method < 3; method++) {
        SaliencyConfig sc = { (SaliencyMethod)method, 2, 7, 0.3, 11 };
        saliency_batch(maps, &net, &b, &sc);
        double worst = 0;
        for (int i = 0; i < B; i++)
            for (int v = 0; v < 64; v++) {
                const float *w = W + 2 * 128, *x = images + i * 128;
                double want = method == SAL_GRADXINPUT ? fabs((double)w[v] * x[v] + (double)w[64 + v] * x[64 + v])
                                                       : fabs(w[v]) + fabs(w[64 + v]);  // smoothgrad: the gradient is constant
                worst = fmax(worst, fabs(maps[i * 64 + v] - want));
            }
        CU_ASSERT(worst < 1e-5);
        if (worst >= 1e-5) printf("\n  method %d: worst %.3g\n", method, worst);
        // target 2 reads only the region: nothing outside it
        double outside = 0;
        for (int i = 0; i < B; i++)
            for (int v = 0; v < 64; v++) if (!((v / 16) >= 2 && ((v / 4) % 4) < 2)) outside += maps[i * 64 + v];
        CU_ASSERT(outside == 0.0);
    }
    // target = label: sample i's map is W[label_i]'s
    SaliencyConfig by_label = { SAL_GRAD, SAL_TARGET_LABEL, 1, 0, 1 };
    saliency_batch(maps, &net, &b, &by_label);
    for (int i = 0; i < B; i++) CU_ASSERT(fabs(maps[i * 64 + 5] - (fabs(W[labels[i] * 128 + 5]) + fabs(W[labels[i] * 128 + 64 + 5]))) < 1e-6);
    net_free(&net);
}

// A small convolutional network: the input gradient saliency uses against central finite
// differences of the chosen logit (eval mode: BatchNorm with running statistics).
typedef struct { Net *net; Batch *b; int k; } LogitCtx;
static double logit_of(void *arg) {
    LogitCtx *c = arg;
    const float *o = net_forward(c->net, c->b, 0);
    return o[c->k];
}

static void test_conv_fd(void) {
    Ini ini;
    DfError err;
    Net net;
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[conv3d]\nout = 3\nkernel = 3\npad = 1\n[batchnorm3d]\n[tanh]\n"
                                                 "[maxpool3d]\nkernel = 2\n[flatten]\n[linear]\nout = 2\n", "c.ini", &err), 0);
    Shape in = { 1, 4, 4, 4 };
    CU_ASSERT_EQUAL_FATAL(net_build(&net, &ini, in, 1, NULL, &err), 0);
    net_init(&net, 9);
    net_enable_input_grad(&net);
    Rng r;
    rng_seed(&r, 2);
    float x[64], map[64];
    for (int v = 0; v < 64; v++) x[v] = rng_uniformf(&r, -1, 1);
    Batch b = { .n = 1, .global_n = 1, .images = x };
    SaliencyConfig sc = { SAL_GRAD, 1, 1, 0, 1 };
    saliency_batch(map, &net, &b, &sc);
    float g[64];
    memcpy(g, net.dacts[0], sizeof g);  // the signed gradient of logit 1
    LogitCtx ctx = { &net, &b, 1 };
    CU_ASSERT(tu_fd_check(logit_of, &ctx, x, g, 64, 64, 1e-3, 1e-4, 1e-2, "input gradient") <= 1.0);
    for (int v = 0; v < 64; v++) CU_ASSERT(fabsf(map[v] - fabsf(g[v])) < 1e-7);
    net_free(&net);
    ini_free(&ini);
}

int main(void) {
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("saliency", NULL, NULL);
    CU_add_test(s, "a linear model: every method in closed form, mass only where it reads", test_linear_closed_form);
    CU_add_test(s, "a conv net's input gradient against finite differences", test_conv_fd);
    return tu_run_all();
}
