// test_mdn_ranks.c: MDN's global-batch statistics across ranks, simulated in one process
// (testutil.h, tu_simulate): 2 and 3 ranks give the one-rank residuals, input gradients,
// parameter gradients and running beta (R-MDN: its P and beta) -- for the plain functions,
// the layer (dataset, batch and recursive kernels), and a whole network with two [mdn] layers (an uneven split, and a rank with no samples).
#include "testutil.h"
#include "tests/mdn_util.h"
#include "base/rng.h"
#include "data/checkpoint.h"
#include "data/cohort.h"
#include "nn/layer.h"
#include "nn/mdn.h"
#include "nn/metadata.h"
#include "nn/net.h"
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- 6. ranks: the layer ------------------------------------------------------------------

typedef struct {
    TuLayer *fx;
    int B, N, d;
    const double *meta, *tmeta;
    const int32_t *labels, *tlabels;
    const float *F, *R;
    float *out, *din;    // (B,d) gathered from the ranks
    const float *state0; // state before the step (restored at each pass)
    int prepare_rc[3];   // each rank's prepare, from the last pass
} LayerRanks;

static void layer_prepare_rank(void *p, int r, int P) {
    LayerRanks *a = p;
    int lo, hi;
    tu_share(a->N, r, P, &lo, &hi);
    DfError err;
    // checked after tu_simulate: in its earlier passes a reduction returns only this rank's
    // share, on which the spline knots may coincide; the last pass has every sum
    a->prepare_rc[r] = mdn_ops.prepare(&a->fx->L, a->tmeta + (size_t)lo * 2, a->tlabels + lo, hi - lo, lo, a->N, &err);
}

static void layer_step_rank(void *p, int r, int P) {
    LayerRanks *a = p;
    TuLayer *fx = a->fx;
    int lo, hi, d = a->d;
    tu_share(a->B, r, P, &lo, &hi);
    int n = hi - lo;
    memcpy(fx->state, a->state0, sizeof(float) * fx->L.n_state);
    memcpy(fx->in, a->F + (size_t)lo * d, sizeof(float) * n * d);
    memcpy(fx->dout, a->R + (size_t)lo * d, sizeof(float) * n * d);
    memset(fx->din, 0, sizeof(float) * n * d);
    mdn_fx_meta(fx, (double *)(a->meta + (size_t)lo * 2), (int32_t *)(a->labels + lo));
    tu_layer_forward(fx, n, 1);
    tu_layer_backward(fx, n);
    memcpy(a->out + (size_t)lo * d, fx->out, sizeof(float) * n * d);
    memcpy(a->din + (size_t)lo * d, fx->din, sizeof(float) * n * d);
}

static void test_ranks_layer(void) {
    enum { B = 10, D = 7, N = 33 };
    Rng rng;
    rng_seed(&rng, 51);
    MetaSchema s;
    age_site_schema(&s);
    double meta[B * 2], tmeta[N * 2];
    int32_t labels[B], tlabels[N];
    random_rows(meta, labels, B, &rng);
    random_rows(tmeta, tlabels, N, &rng);
    float *F = tu_rand((size_t)B * D, -1, 1, &rng), *R = tu_rand((size_t)B * D, -1, 1, &rng);
    for (int i = 0; i < B; i++) F[i * D] += 0.05f * (float)meta[i * 2];
    TuSim fr;
    // the last: age as a natural spline, whose knots prepare takes from the gathered training ages
    static const char *const cfgs[4] = { "[mdn]\nremove = age, site\nkernel = batch\nridge = 0.5\n", "[mdn]\nremove = age, site\n",
                                          "[mdn]\nremove = age, site\nkernel = recursive\nforgetting = 0.9\n",
                                          "[mdn]\nremove = age:spline3, site\n" };
    static const char *const names[4] = { "batch", "dataset", "recursive", "dataset, age:spline3" };
    for (int mode = 0; mode < 4; mode++) {
        const char *cfg = cfgs[mode];
        float ref_out[B * D], ref_din[B * D], ref_state[49 + 7 * D + 9], *state0 = NULL;
        for (int P = 1; P <= 3; P++) {
            tu_sim_init(&fr, P);
            TuLayer fx;
            CU_ASSERT_FATAL(tu_layer_build(&fx, cfg, (Shape){ D, 1, 1, 1 }, B, &fr.base, &s) == 0);
            // a non-zero running beta to start from, the same for every P
            for (size_t i = 25; i < fx.L.n_state; i++) fx.state[i] = 0.01f * (float)(i % 7);
            float out[B * D], din[B * D];
            LayerRanks a = { &fx, B, N, D, meta, tmeta, labels, tlabels, F, R, out, din, NULL };
            tu_simulate(&fr, P, layer_prepare_rank, &a);
            for (int r = 0; r < P; r++) CU_ASSERT(a.prepare_rc[r] == 0);
            state0 = tu_copy(fx.state, fx.L.n_state);
            a.state0 = state0;
            tu_simulate(&fr, P, layer_step_rank, &a);
            char what[96];
            if (P == 1) {
                memcpy(ref_out, out, sizeof out);
                memcpy(ref_din, din, sizeof din);
                memcpy(ref_state, fx.state, sizeof(float) * fx.L.n_state);
            } else {
                snprintf(what, sizeof what, "%s kernel, %d ranks: residuals", names[mode], P);
                TU_ASSERT_CLOSE(out, ref_out, (size_t)B * D, 1e-6, 1e-5, what);
                snprintf(what, sizeof what, "%s kernel, %d ranks: input gradients", names[mode], P);
                TU_ASSERT_CLOSE(din, ref_din, (size_t)B * D, 1e-6, 1e-5, what);
                snprintf(what, sizeof what, "%s kernel, %d ranks: kernel (R-MDN: P) and running beta", names[mode], P);
                TU_ASSERT_CLOSE(fx.state, ref_state, fx.L.n_state, 1e-9, 1e-5, what);
            }
            free(state0);
            tu_layer_free(&fx);
        }
    }
    free(F); free(R);
}

// The plain functions too, with a hand-split batch and the same fake reducer.
typedef struct {
    const float *F, *R;
    const double *X, *K;
    const unsigned char *removed;
    int B, k, d;
    double n_train;
    float *out, *din;
    double beta[64 * 8];
    Reducer *red;
} PlainRanks;

static void plain_rank(void *p, int r, int P) {
    PlainRanks *a = p;
    int lo, hi;
    tu_share(a->B, r, P, &lo, &hi);
    int n = hi - lo, d = a->d, k = a->k;
    memset(a->din + (size_t)lo * d, 0, sizeof(float) * n * d);
    double sc = mdn_forward_train(a->out + (size_t)lo * d, a->beta, a->F + (size_t)lo * d, a->X + (size_t)lo * k, a->K, a->removed,
                                  n, k, d, a->n_train, a->red);
    mdn_backward(a->din + (size_t)lo * d, a->R + (size_t)lo * d, a->X + (size_t)lo * k, a->K, a->removed, n, k, d, sc, a->red);
}

static void test_ranks_plain(void) {
    enum { B = 11, D = 6, N = 50 };
    Rng rng;
    rng_seed(&rng, 61);
    MetaSchema s;
    age_site_schema(&s);
    MetaDesign des = mdn_design(&s, "label", "age, site");
    int k = des.k;
    double meta[N * 2], X[N * 5], K[25];
    int32_t labels[N];
    random_design(X, meta, labels, N, &des, &s, &rng);
    kernel_of(K, X, N, k);
    float *F = tu_rand((size_t)B * D, -1, 1, &rng), *R = tu_rand((size_t)B * D, -1, 1, &rng);
    float out1[B * D], din1[B * D], outP[B * D], dinP[B * D];
    TuSim fr;
    tu_sim_init(&fr, 1);
    PlainRanks a1 = { F, R, X, K, des.removed, B, k, D, N, out1, din1, { 0 }, &reducer_local };
    plain_rank(&a1, 0, 1);
    for (int P = 2; P <= 3; P++) {
        PlainRanks a = { F, R, X, K, des.removed, B, k, D, N, outP, dinP, { 0 }, &fr.base };
        tu_simulate(&fr, P, plain_rank, &a);
        CU_ASSERT(ratio_dd("beta over ranks", a.beta, a1.beta, (size_t)k * D, 1e-9, 1e-9) <= 1);
        TU_ASSERT_CLOSE(outP, out1, (size_t)B * D, 1e-6, 1e-5, "plain residuals over ranks");
        TU_ASSERT_CLOSE(dinP, din1, (size_t)B * D, 1e-6, 1e-5, "plain gradients over ranks");
    }
    // a rank with no samples of this batch (B < P) still joins the reductions
    PlainRanks a = { F, R, X, K, des.removed, 2, k, D, N, outP, dinP, { 0 }, &fr.base };
    PlainRanks b = { F, R, X, K, des.removed, 2, k, D, N, out1, din1, { 0 }, &reducer_local };
    plain_rank(&b, 0, 1);
    tu_simulate(&fr, 3, plain_rank, &a);
    TU_ASSERT_CLOSE(outP, out1, (size_t)2 * D, 1e-6, 1e-5, "B = 2 over 3 ranks: residuals");
    TU_ASSERT_CLOSE(dinP, din1, (size_t)2 * D, 1e-6, 1e-5, "B = 2 over 3 ranks: gradients");
    free(F); free(R);
}

// ---- 6. ranks: a whole network ------------------------------------------------------------


typedef struct {
    Net *net;
    int B, N;
    const double *meta, *tmeta;
    const int32_t *labels, *tlabels;
    const float *img, *R;
    size_t in_n, out_n;
    float *out, *din, *grads;  // gathered; grads summed over the ranks
    const float *state0;
} NetRanks;

static void net_prepare_rank(void *p, int r, int P) {
    NetRanks *a = p;
    int lo, hi;
    tu_share(a->N, r, P, &lo, &hi);
    DfError err;
    CU_ASSERT(net_prepare(a->net, a->tmeta + (size_t)lo * 2, a->tlabels + lo, hi - lo, lo, a->N, &err) == 0);
}

static void net_step_rank(void *p, int r, int P) {
    NetRanks *a = p;
    Net *net = a->net;
    int lo, hi;
    tu_share(a->B, r, P, &lo, &hi);
    int n = hi - lo;
    if (r == 0) memset(a->grads, 0, net->n_params * sizeof(float));
    memcpy(net->state, a->state0, net->n_state * sizeof(float));
    Batch b = mdn_batch((float *)a->img + (size_t)lo * a->in_n, n, (double *)a->meta + (size_t)lo * 2, (int32_t *)a->labels + lo);
    b.global_n = a->B;
    b.offset = lo;
    b.first_sample = lo;
    const float *o = net_forward(net, &b, 1);
    memcpy(a->out + (size_t)lo * a->out_n, o, sizeof(float) * n * a->out_n);
    net_zero_grad(net);
    net_backward(net, &b, a->R + (size_t)lo * a->out_n);
    memcpy(a->din + (size_t)lo * a->in_n, net->dacts[0], sizeof(float) * n * a->in_n);
    for (size_t i = 0; i < net->n_params; i++) a->grads[i] += net->grads[i];
}

static void test_ranks_net(void) {
    enum { B = 10, N = 40 };
    Rng rng;
    rng_seed(&rng, 71);
    MetaSchema s;
    age_site_schema(&s);
    Shape in = { 1, 4, 4, 3 };
    size_t in_n = shape_numel(in), out_n = 2;
    double meta[B * 2], tmeta[N * 2];
    int32_t labels[B], tlabels[N];
    random_rows(meta, labels, B, &rng);
    random_rows(tmeta, tlabels, N, &rng);
    float *img = tu_rand(B * in_n, -1, 1, &rng), *R = tu_rand(B * out_n, -1, 1, &rng);
    float *out[4], *din[4], *grads[4], *state[4];
    size_t np = 0, ns = 0;
    TuSim fr;
    for (int P = 1; P <= 3; P++) {
        tu_sim_init(&fr, P);
        Ini ini;
        DfError err;
        CU_ASSERT_FATAL(ini_parse_string(&ini, NET_INI, "net.ini", &err) == 0);
        Net net;
        if (net_build_meta(&net, &ini, in, (B + P - 1) / P, &fr.base, &s, &err)) {
            fprintf(stderr, "  %s\n", err.msg);
            CU_FAIL_FATAL("net_build_meta");
        }
        net_enable_input_grad(&net);
        net_init(&net, 5);
        np = net.n_params;
        ns = net.n_state;
        out[P] = df_alloc_floats(B * out_n); din[P] = df_alloc_floats(B * in_n);
        grads[P] = df_alloc_floats(np);
        NetRanks a = { &net, B, N, meta, tmeta, labels, tlabels, img, R, in_n, out_n, out[P], din[P], grads[P], NULL };
        tu_simulate(&fr, P, net_prepare_rank, &a);
        float *s0 = tu_copy(net.state, ns);
        a.state0 = s0;
        tu_simulate(&fr, P, net_step_rank, &a);
        state[P] = tu_copy(net.state, ns);
        free(s0);
        net_free(&net);
        ini_free(&ini);
    }
    for (int P = 2; P <= 3; P++) {
        char what[80];
        snprintf(what, sizeof what, "net, %d ranks: output", P);
        TU_ASSERT_CLOSE(out[P], out[1], B * out_n, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "net, %d ranks: input gradients", P);
        TU_ASSERT_CLOSE(din[P], din[1], B * in_n, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "net, %d ranks: parameter gradients", P);
        TU_ASSERT_CLOSE(grads[P], grads[1], np, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "net, %d ranks: state", P);
        TU_ASSERT_CLOSE(state[P], state[1], ns, 1e-9, 1e-5, what);
    }
    for (int P = 1; P <= 3; P++) { free(out[P]); free(din[P]); free(grads[P]); free(state[P]); }
    free(img); free(R);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("mdn across ranks", NULL, NULL);
    CU_add_test(s, "plain functions: 2 and 3 ranks equal 1", test_ranks_plain);
    CU_add_test(s, "layer: 2 and 3 ranks equal 1", test_ranks_layer);
    CU_add_test(s, "network: 2 and 3 ranks equal 1", test_ranks_net);
    return tu_run_all();
}
