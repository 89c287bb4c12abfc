// test_fused.c: the fused BatchNorm -> ReLU -> MaxPool kernel (nn/fused.h) against the three
// layers run one after another, in training and evaluation mode, on 1 and 2 threads, with the
// fast (kernel 2, stride 2) and the general (overlapping windows) pooling; its gradients by
// finite differences; and the network's use of it: the same outputs and gradients as with
// fusion off, and an observed middle output turns fusion off for that group.
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/multiarch.h"
#include "base/threads.h"
#include "nn/fused.h"
#include "nn/net.h"
#include "testutil.h"

typedef struct {
    int B, training;
    Pool3dGeom g;
    size_t xn, yn;
    float *x, *w, *b, *rm, *rv, *mean, *rstd, *y, *xm, *r, *ws;
    int32_t *am;
} FusedCase;

static void case_init(FusedCase *c, int B, int C, int D, int H, int W, const int k[3], const int s[3], const int p[3],
                      int training, unsigned seed) {
    memset(c, 0, sizeof *c);
    Rng rng;
    rng_seed(&rng, seed);
    c->B = B;
    c->training = training;
    CU_ASSERT_FATAL(pool3d_geom_init(&c->g, C, D, H, W, k, s, p) == 0);
    c->xn = (size_t)B * C * D * H * W;
    c->yn = (size_t)B * C * c->g.OD * c->g.OH * c->g.OW;
    c->x = tu_ramp(c->xn, &rng);  // a 1e-3 step never changes which element of a window wins
    c->w = tu_rand((size_t)C, -1.5f, 1.5f, &rng);  // negative scales too: ReLU then keeps the low side
    c->b = tu_rand((size_t)C, -0.5f, 0.5f, &rng);
    c->rm = tu_rand((size_t)C, -0.5f, 0.5f, &rng);
    c->rv = tu_rand((size_t)C, 0.5f, 2.0f, &rng);
    c->mean = df_alloc_floats((size_t)C);
    c->rstd = df_alloc_floats((size_t)C);
    c->y = df_alloc_floats(c->yn);
    c->xm = df_alloc_floats(c->yn);
    c->r = tu_rand(c->yn, -1, 1, &rng);
    c->am = xmalloc(c->yn * sizeof(int32_t));
    c->ws = df_alloc_floats(bn_relu_maxpool_workspace_floats(&c->g) * 2);
}

static void case_free(FusedCase *c) {
    free(c->x); free(c->w); free(c->b); free(c->rm); free(c->rv); free(c->mean); free(c->rstd);
    free(c->y); free(c->xm); free(c->r); free(c->am); free(c->ws);
}

// The loss <out, r> through the fused forward, the running statistics reset each time.
static double fused_loss(void *p) {
    FusedCase *c = p;
    int C = c->g.C;
    float *rm = tu_copy(c->rm, (size_t)C), *rv = tu_copy(c->rv, (size_t)C);
    bn_relu_maxpool_forward(c->y, c->am, c->xm, c->mean, c->rstd, rm, rv, c->x, c->w, c->b, c->B, &c->g, 1e-5f, 0.1f,
                            c->training, &reducer_local, c->ws, 2);
    free(rm);
    free(rv);
    return tu_dot(c->y, c->r, c->yn);
}

// Fused against the three layers: the forward bit for bit (same operations), the backward to
// rounding (its per-channel sums are added in another order: 1e-5 relative).
static void compare_case(const int k[3], const int s[3], const int p[3], int training, int threads, int W) {
    FusedCase c;
    case_init(&c, 3, 4, 6, 8, W, k, s, p, training, 11 + training + 2 * threads);
    df_threads_set(threads);
    const int C = c.g.C;
    float *rm2 = tu_copy(c.rm, (size_t)C), *rv2 = tu_copy(c.rv, (size_t)C);
    float *mean2 = df_alloc_floats((size_t)C), *rstd2 = df_alloc_floats((size_t)C), *y2 = df_alloc_floats(c.yn);
    int32_t *am2 = xmalloc(c.yn * sizeof(int32_t));
    float *rm1 = tu_copy(c.rm, (size_t)C), *rv1 = tu_copy(c.rv, (size_t)C);
    bn_relu_maxpool_forward(c.y, c.am, c.xm, c.mean, c.rstd, rm1, rv1, c.x, c.w, c.b, c.B, &c.g, 1e-5f, 0.1f, training,
                            &reducer_local, c.ws, threads);
    bn_relu_maxpool_forward_ref(y2, am2, mean2, rstd2, rm2, rv2, c.x, c.w, c.b, c.B, &c.g, 1e-5f, 0.1f, training,
                                &reducer_local);
    CU_ASSERT(memcmp(c.y, y2, c.yn * sizeof(float)) == 0);
    CU_ASSERT(memcmp(c.am, am2, c.yn * sizeof(int32_t)) == 0);
    // inmax: the input at each argmax (argmax is an offset within the sample's channel plane)
    const size_t S = c.xn / ((size_t)c.B * C), P = c.yn / ((size_t)c.B * C);
    int inmax_ok = 1;
    for (size_t i = 0; i < c.yn; i++) inmax_ok &= c.xm[i] == c.x[i / P * S + (size_t)c.am[i]];
    CU_ASSERT(inmax_ok);
    CU_ASSERT(memcmp(rm1, rm2, (size_t)C * sizeof(float)) == 0 && memcmp(rv1, rv2, (size_t)C * sizeof(float)) == 0);
    if (training) CU_ASSERT(memcmp(c.mean, mean2, (size_t)C * sizeof(float)) == 0);
    // backward from non-zero gradients: both must add
    Rng rng;
    rng_seed(&rng, 5);
    float *dx1 = tu_rand(c.xn, -1, 1, &rng), *dw1 = tu_rand((size_t)C, -1, 1, &rng), *db1 = tu_rand((size_t)C, -1, 1, &rng);
    float *dx2 = tu_copy(dx1, c.xn), *dw2 = tu_copy(dw1, (size_t)C), *db2 = tu_copy(db1, (size_t)C);
    bn_relu_maxpool_backward(dx1, dw1, db1, c.r, c.am, c.xm, c.x, c.mean, c.rstd, c.rm, c.rv, c.w, c.b,
                             c.B, &c.g, 1e-5f, training, &reducer_local, 1, 2);
    bn_relu_maxpool_backward_ref(dx2, dw2, db2, c.r, c.am, c.x, c.mean, c.rstd, c.rm, c.rv, c.w, c.b, c.B, &c.g, 1e-5f,
                                 training, &reducer_local);
    TU_ASSERT_CLOSE(dx1, dx2, c.xn, 1e-5, 1e-5, "fused dinp");
    // accumulate = 0 overwrites whatever dinp held with what accumulate = 1 adds to zeros
    float *dz = df_alloc_floats(c.xn), *dp = df_alloc_floats(c.xn), *gw = df_alloc_floats((size_t)C * 2);
    memset(dz, 0, c.xn * sizeof(float));
    for (size_t i = 0; i < c.xn; i++) dp[i] = 1e30f;
    bn_relu_maxpool_backward(dz, gw, gw + C, c.r, c.am, c.xm, c.x, c.mean, c.rstd, c.rm, c.rv, c.w, c.b,
                             c.B, &c.g, 1e-5f, training, &reducer_local, 1, 2);
    bn_relu_maxpool_backward(dp, gw, gw + C, c.r, c.am, c.xm, c.x, c.mean, c.rstd, c.rm, c.rv, c.w, c.b,
                             c.B, &c.g, 1e-5f, training, &reducer_local, 0, 2);
    CU_ASSERT(memcmp(dz, dp, c.xn * sizeof(float)) == 0);
    // in place: the input replaced by its gradient, the same bits
    float *xin = tu_copy(c.x, c.xn);
    bn_relu_maxpool_backward(xin, gw, gw + C, c.r, c.am, c.xm, xin, c.mean, c.rstd, c.rm, c.rv, c.w, c.b,
                             c.B, &c.g, 1e-5f, training, &reducer_local, 0, 2);
    CU_ASSERT(memcmp(dz, xin, c.xn * sizeof(float)) == 0);
    free(xin);
    free(dz); free(dp); free(gw);
    TU_ASSERT_CLOSE(dw1, dw2, (size_t)C, 1e-5, 1e-5, "fused dweight");
    TU_ASSERT_CLOSE(db1, db2, (size_t)C, 1e-5, 1e-5, "fused dbias");
    df_threads_set(1);
    free(rm1); free(rv1); free(rm2); free(rv2); free(mean2); free(rstd2); free(y2); free(am2);
    free(dx1); free(dw1); free(db1); free(dx2); free(dw2); free(db2);
    case_free(&c);
}

static const int k2[3] = { 2, 2, 2 }, s2[3] = { 2, 2, 2 }, p0[3] = { 0, 0, 0 };
static const int k3[3] = { 3, 3, 3 }, p1[3] = { 1, 1, 1 };  // overlapping windows, padded: the general path

// At every vector width this CPU has (base/multiarch.h): the same bits on each. The ReLU's
// zeros tie in many windows, where the first of them must win, as in maxpool3d.
static void test_fused_vs_layers(void) {
    const int top = df_isa_level();  // before the cap below lowers it
    for (int isa = 2; isa <= top; isa++) {
        df_isa_set_max(isa);
        for (int training = 0; training <= 1; training++)
            for (int threads = 1; threads <= 2; threads++) {
                compare_case(k2, s2, p0, training, threads, 10);
                compare_case(k3, s2, p1, training, threads, 10);
                // rows of 16 windows, all at once on AVX-512; the 33rd column is in none
                compare_case(k2, s2, p0, training, threads, 33);
            }
    }
    df_isa_set_max(0);
}

// The fused forward's output and the backward's gradients are the same bits at every vector
// width: the per-element operations do not change, and the sums' lanes are spelled out.
static void test_fused_same_on_every_isa(void) {
    // rows of 5 windows (the scratch-plane way everywhere); rows of 16 (at once on AVX-512,
    // 8 at a time on AVX2), with a plane, a row and a column under no window; rows of 8 (at
    // once on AVX2 and AVX-512)
    static const int dims[3][3] = { { 6, 8, 10 }, { 7, 9, 33 }, { 5, 6, 17 } };
    for (int shape = 0; shape < 3; shape++) {
        float *y[3] = { 0 }, *dx[3] = { 0 }, *da[3] = { 0 };
        int top = df_isa_level();
        for (int isa = 2; isa <= top; isa++) {
            FusedCase c;
            case_init(&c, 2, 3, dims[shape][0], dims[shape][1], dims[shape][2], k2, s2, p0, 1, 99);
            df_isa_set_max(isa);
            fused_loss(&c);
            Rng rng;
            rng_seed(&rng, 7);
            float *d = df_alloc_floats(c.xn), *gw = df_alloc_floats(6), *dadd = tu_rand(c.xn, -1, 1, &rng);
            memset(d, 0, c.xn * sizeof(float));
            bn_relu_maxpool_backward(d, gw, gw + 3, c.r, c.am, c.xm, c.x, c.mean, c.rstd, c.rm, c.rv, c.w, c.b, c.B,
                                     &c.g, 1e-5f, 1, &reducer_local, 0, 2);
            bn_relu_maxpool_backward(dadd, gw, gw + 3, c.r, c.am, c.xm, c.x, c.mean, c.rstd, c.rm, c.rv, c.w, c.b,
                                     c.B, &c.g, 1e-5f, 1, &reducer_local, 1, 2);
            y[isa - 2] = tu_copy(c.y, c.yn);
            dx[isa - 2] = d;
            da[isa - 2] = dadd;
            if (isa > 2) {
                CU_ASSERT(memcmp(y[isa - 2], y[0], c.yn * sizeof(float)) == 0);
                CU_ASSERT(memcmp(dx[isa - 2], dx[0], c.xn * sizeof(float)) == 0);
                CU_ASSERT(memcmp(da[isa - 2], da[0], c.xn * sizeof(float)) == 0);
            }
            free(gw);
            case_free(&c);
        }
        df_isa_set_max(0);
        for (int k = 0; k < 3; k++) { free(y[k]); free(dx[k]); free(da[k]); }
    }
}

static void fd_case(const int k[3], const int s[3], const int p[3], int training) {
    FusedCase c;
    case_init(&c, 2, 3, 4, 6, 8, k, s, p, training, 40 + training);
    const int C = c.g.C;
    float *dx = df_alloc_floats(c.xn), *dw = df_alloc_floats((size_t)C), *db = df_alloc_floats((size_t)C);
    memset(dx, 0, c.xn * sizeof(float));
    memset(dw, 0, (size_t)C * sizeof(float));
    memset(db, 0, (size_t)C * sizeof(float));
    fused_loss(&c);
    bn_relu_maxpool_backward(dx, dw, db, c.r, c.am, c.xm, c.x, c.mean, c.rstd, c.rm, c.rv, c.w, c.b, c.B, &c.g, 1e-5f,
                             training, &reducer_local, 1, 2);
    // float forward, loss ~ 10: a 1e-3 step leaves ~1e-3 of noise in each difference
    CU_ASSERT(tu_fd_check(fused_loss, &c, c.x, dx, c.xn, 60, 1e-3, 3e-3, 1e-2, "fused dinp") <= 1.0);
    CU_ASSERT(tu_fd_check(fused_loss, &c, c.w, dw, (size_t)C, (size_t)C, 1e-3, 3e-3, 1e-2, "fused dweight") <= 1.0);
    CU_ASSERT(tu_fd_check(fused_loss, &c, c.b, db, (size_t)C, (size_t)C, 1e-3, 3e-3, 1e-2, "fused dbias") <= 1.0);
    free(dx); free(dw); free(db);
    case_free(&c);
}

static void test_fused_fd(void) {
    for (int training = 0; training <= 1; training++) {
        fd_case(k2, s2, p0, training);
        fd_case(k3, s2, p1, training);
    }
}

// ---- in a network -----------------------------------------------------------------------------

static const char *block_net =
    "[conv3d]\nout = 3\npad = 1\n[batchnorm3d]\n[relu]\n[maxpool3d]\nkernel = 2\n"
    "[conv3d]\nout = 2\npad = 1\n[batchnorm3d]\n[relu]\n[maxpool3d]\nkernel = 2\n[flatten]\n[linear]\nout = 2\n";

typedef struct {
    Ini ini;
    Net net;
} NetFix;

static void net_fix(NetFix *f, int fuse) {
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(&f->ini, block_net, "fused.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build(&f->net, &f->ini, (Shape){ 1, 4, 8, 8 }, 3, NULL, &err) == 0);
    net_set_fusion(&f->net, fuse);
    net_init(&f->net, 9);
}

static void net_fix_free(NetFix *f) {
    net_free(&f->net);
    ini_free(&f->ini);
}

// One training forward + backward and one evaluation forward: outputs, every parameter
// gradient and the input gradient as with fusion off (to rounding: 1e-5).
static void test_net_fused_equals_unfused(void) {
    NetFix a, b;
    net_fix(&a, 1);
    net_fix(&b, 0);
    Rng rng;
    rng_seed(&rng, 3);
    float *x = tu_rand(3 * 256, -1, 1, &rng), *dout = tu_rand(3 * 2, -1, 1, &rng);
    Batch batch = batch_of_images(x, 3);
    net_enable_input_grad(&a.net);
    net_enable_input_grad(&b.net);
    const float *ya = net_forward(&a.net, &batch, 1), *yb = net_forward(&b.net, &batch, 1);
    TU_ASSERT_CLOSE(ya, yb, 6, 1e-6, 1e-5, "net output (training)");
    CU_ASSERT(a.net.fused[1] == 3 && a.net.fused[5] == 3 && b.net.fused[1] == 0);
    CU_ASSERT(a.net.acts[2] == NULL && a.net.acts[3] == NULL && b.net.acts[2] != NULL);
    net_zero_grad(&a.net);
    net_zero_grad(&b.net);
    net_backward(&a.net, &batch, dout);
    net_backward(&b.net, &batch, dout);
    TU_ASSERT_CLOSE(a.net.grads, b.net.grads, a.net.n_params, 1e-6, 1e-5, "net parameter gradients");
    TU_ASSERT_CLOSE(a.net.dacts[0], b.net.dacts[0], 3 * 256, 1e-6, 1e-5, "net input gradient");
    CU_ASSERT(memcmp(a.net.state, b.net.state, a.net.n_state * sizeof(float)) == 0);  // running statistics
    ya = net_forward(&a.net, &batch, 0);
    yb = net_forward(&b.net, &batch, 0);
    TU_ASSERT_CLOSE(ya, yb, 6, 1e-6, 1e-5, "net output (evaluation)");
    free(x);
    free(dout);
    net_fix_free(&a);
    net_fix_free(&b);
}

// A middle output read from outside (a dCor layer, a loss term, eval --features) is stored:
// that group runs unfused from the next forward on, the other stays fused.
static void test_net_observed_output_unfuses(void) {
    NetFix a;
    net_fix(&a, 1);
    Rng rng;
    rng_seed(&rng, 4);
    float *x = tu_rand(3 * 256, -1, 1, &rng);
    Batch batch = batch_of_images(x, 3);
    net_forward(&a.net, &batch, 1);
    CU_ASSERT(a.net.fused[1] == 3);
    int act = net_layer_output_index(&a.net, "relu1");
    CU_ASSERT_EQUAL(act, 3);
    net_forward(&a.net, &batch, 1);
    CU_ASSERT(a.net.fused[1] == 0 && a.net.fused[5] == 3);
    CU_ASSERT_PTR_NOT_NULL(a.net.acts[act]);
    // relu1's output is there, and is the ReLU of batchnorm3d1's (stored too now)
    size_t n = 3 * shape_numel(a.net.layers[2].out_shape);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= a.net.acts[act][i] == (a.net.acts[2][i] > 0 ? a.net.acts[2][i] : 0.0f);
    CU_ASSERT(ok);
    free(x);
    net_fix_free(&a);
}

// By default the fused backward replaces the convolution's output by its gradient (one buffer
// for both); a network told it will run two backwards after one forward keeps its
// activations, and both backwards give the same gradients (an alternating loss term's step).
static void test_net_repeated_backward(void) {
    NetFix a;
    net_fix(&a, 1);
    Rng rng;
    rng_seed(&rng, 6);
    float *x = tu_rand(3 * 256, -1, 1, &rng), *dout = tu_rand(3 * 2, -1, 1, &rng);
    Batch batch = batch_of_images(x, 3);
    net_forward(&a.net, &batch, 1);
    CU_ASSERT(a.net.dacts[1] == a.net.acts[1]);  // conv3d1's output and its gradient share
    net_allow_repeated_backward(&a.net);
    net_forward(&a.net, &batch, 1);
    CU_ASSERT(a.net.dacts[1] != a.net.acts[1]);
    net_zero_grad(&a.net);
    net_backward(&a.net, &batch, dout);
    float *g1 = tu_copy(a.net.grads, a.net.n_params);
    net_zero_grad(&a.net);
    net_backward(&a.net, &batch, dout);
    CU_ASSERT(memcmp(g1, a.net.grads, a.net.n_params * sizeof(float)) == 0);
    free(g1);
    free(x);
    free(dout);
    net_fix_free(&a);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("fused batchnorm-relu-maxpool", NULL, NULL);
    CU_add_test(s, "fused vs the three layers (train/eval, 1/2 threads, fast/general pooling)", test_fused_vs_layers);
    CU_add_test(s, "the same bits at every vector width", test_fused_same_on_every_isa);
    CU_add_test(s, "finite differences", test_fused_fd);
    CU_add_test(s, "network: fused equals unfused", test_net_fused_equals_unfused);
    CU_add_test(s, "network: an observed output is stored", test_net_observed_output_unfuses);
    CU_add_test(s, "network: repeated backwards keep the activations", test_net_repeated_backward);
    return tu_run_all();
}
