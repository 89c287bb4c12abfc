// test_loss_optim.c: the three losses (gradients, known values, huge logits) and the
// optimisers and schedules against trajectories computed here in double from PyTorch's rules.
#include "testutil.h"
#include "base/common.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/term.h"
#include "nn/optim.h"
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- losses -------------------------------------------------------------------------------

typedef struct { int kind, B, K; float *x, *t, *probs; int *cls; } LossCtx;

static double loss_eval(void *p) {
    LossCtx *c = p;
    switch (c->kind) {
    case LOSS_CROSS_ENTROPY: return softmax_xent_forward(c->probs, c->x, c->cls, c->B, c->K);
    case LOSS_BCE_LOGITS: return bce_logits_forward(c->x, c->t, c->B * c->K);
    default: return mse_forward(c->x, c->t, c->B * c->K);
    }
}

static void loss_grad(LossCtx *c, float *g, float scale) {
    switch (c->kind) {
    case LOSS_CROSS_ENTROPY: softmax_xent_backward(g, c->probs, c->cls, c->B, c->K, scale); break;
    case LOSS_BCE_LOGITS: bce_logits_backward(g, c->x, c->t, c->B * c->K, scale); break;
    default: mse_backward(g, c->x, c->t, c->B * c->K, scale); break;
    }
}

static void check_loss_grad(int kind, const char *what) {
    Rng rng;
    rng_seed(&rng, 10 + (unsigned)kind);
    LossCtx c = { kind, 4, 5, NULL, NULL, NULL, NULL };
    size_t n = (size_t)c.B * c.K;
    c.x = df_alloc_floats(n); c.t = df_alloc_floats(n); c.probs = df_alloc_floats(n);
    c.cls = xcalloc((size_t)c.B, sizeof(int));
    tu_fill_uniform(c.x, n, -3, 3, &rng);
    tu_fill_uniform(c.t, n, 0, 1, &rng);
    for (int b = 0; b < c.B; b++) c.cls[b] = (int)rng_below(&rng, (uint64_t)c.K);
    float *g = df_alloc_floats(n), *g0 = df_alloc_floats(n), *gs = df_alloc_floats(n);
    loss_eval(&c);
    loss_grad(&c, g, 1.0f);
    CU_ASSERT(tu_fd_check(loss_eval, &c, c.x, g, n, n, 1e-2, 1e-4, 1e-3, what) <= 1.0);
    // backward accumulates, and `scale` multiplies the gradient (the trainer passes
    // 1 / global count): 1 + 0.25 g from a buffer of ones
    for (size_t i = 0; i < n; i++) { gs[i] = 1.0f; g0[i] = 1.0f + 0.25f * g[i]; }
    loss_eval(&c);  // the finite differences left probs at a perturbed x
    loss_grad(&c, gs, 0.25f);
    TU_ASSERT_CLOSE(gs, g0, n, 1e-6, 1e-6, what);
    free(c.x); free(c.t); free(c.probs); free(c.cls); free(g); free(g0); free(gs);
}

static void test_xent_grad(void) { check_loss_grad(LOSS_CROSS_ENTROPY, "cross-entropy"); }
static void test_bce_grad(void) { check_loss_grad(LOSS_BCE_LOGITS, "bce_logits"); }
static void test_mse_grad(void) { check_loss_grad(LOSS_MSE, "mse"); }

static void test_loss_values(void) {
    CU_ASSERT(strcmp(loss_kind_names[LOSS_CROSS_ENTROPY], "cross_entropy") == 0);
    CU_ASSERT(strcmp(loss_kind_names[LOSS_BCE_LOGITS], "bce_logits") == 0);
    CU_ASSERT(strcmp(loss_kind_names[LOSS_MSE], "mse") == 0 && loss_kind_names[3] == NULL);
    // uniform logits: -log(1/K) per sample, probs 1/K
    float logits[8] = { 0.7f, 0.7f, 0.7f, 0.7f, -2, -2, -2, -2 }, probs[8];
    int cls[2] = { 1, 3 };
    CU_ASSERT_DOUBLE_EQUAL(softmax_xent_forward(probs, logits, cls, 2, 4), 2.0 * log(4.0), 1e-9);
    for (int i = 0; i < 8; i++) CU_ASSERT_DOUBLE_EQUAL(probs[i], 0.25, 1e-7);
    // a worked example: logits (1, 2, 3), target 0: log(e + e^2 + e^3) - 1
    float l3[3] = { 1, 2, 3 }, p3[3];
    int c0 = 0;
    CU_ASSERT_DOUBLE_EQUAL(softmax_xent_forward(p3, l3, &c0, 1, 3), 2.40760596444438, 1e-9);
    // bce at x = 0 is log 2 whatever the target; x = 2, t = 0.25: log(1 + e^2) - 0.5
    float z[3] = { 0, 0, 2 }, tz[3] = { 0, 1, 0.25f };
    CU_ASSERT_DOUBLE_EQUAL(bce_logits_forward(z, tz, 2), 2.0 * log(2.0), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(bce_logits_forward(z + 2, tz + 2, 1), log(1.0 + exp(2.0)) - 0.5, 1e-7);
    // mse: sum of squares, backward 2 (p - t) scale, accumulated
    float pr[3] = { 1, -1, 0.5f }, tg[3] = { 0, 1, 0.5f }, dp[3] = { 1, 1, 1 };
    CU_ASSERT_DOUBLE_EQUAL(mse_forward(pr, tg, 3), 5.0, 1e-12);
    mse_backward(dp, pr, tg, 3, 0.5f);
    CU_ASSERT(dp[0] == 2.0f && dp[1] == -1.0f && dp[2] == 1.0f);
}

// Logits of 1e4 overflow exp in float and double: the stable forms must stay finite and right.
static void test_loss_huge_logits(void) {
    float logits[6] = { 1e4f, 0, -1e4f, 1e4f, 1e4f, 1e4f }, probs[6], d[6] = { 0 };
    int cls[2] = { 1, 2 };
    double l = softmax_xent_forward(probs, logits, cls, 2, 3);
    CU_ASSERT(isfinite(l));
    CU_ASSERT_DOUBLE_EQUAL(l, 1e4 + log(3.0), 1e-6);  // sample 0: 1e4, sample 1: log 3
    for (int i = 0; i < 6; i++) CU_ASSERT(isfinite(probs[i]));
    CU_ASSERT_DOUBLE_EQUAL(probs[0], 1.0, 1e-7);
    softmax_xent_backward(d, probs, cls, 2, 3, 1.0f);
    CU_ASSERT_DOUBLE_EQUAL(d[0], 1.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(d[1], -1.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(d[5], 1.0 / 3.0 - 1.0, 1e-6);
    // the largest logit last: the shift must be the max, not the first logit
    float l2[3] = { -1e4f, 0, 1e4f }, p2[3];
    int t0 = 0;
    CU_ASSERT_DOUBLE_EQUAL(softmax_xent_forward(p2, l2, &t0, 1, 3), 2e4, 1e-6);
    CU_ASSERT(p2[0] == 0.0f && p2[1] == 0.0f && p2[2] == 1.0f);

    float x[4] = { 1e4f, 1e4f, -1e4f, -1e4f }, t[4] = { 1, 0, 1, 0 }, g[4] = { 0 };
    double b = bce_logits_forward(x, t, 4);
    CU_ASSERT(isfinite(b));
    CU_ASSERT_DOUBLE_EQUAL(b, 2e4, 1e-6);  // the two wrong-side terms cost 1e4 each
    bce_logits_backward(g, x, t, 4, 1.0f);
    CU_ASSERT(g[0] == 0.0f && g[1] == 1.0f && g[2] == -1.0f && g[3] == 0.0f);
}

// ---- optimisers -----------------------------------------------------------------------------

// A tiny quadratic f(p) = sum_i a_i (p_i - c_i)^2 / 2, gradient a (p - c).
#define NQ 4
static const double qa[NQ] = { 1.0, 3.0, 0.5, 10.0 }, qc[NQ] = { 0.5, -1.0, 2.0, 0.1 }, qp0[NQ] = { 1.0, 2.0, -1.0, 0.3 };

static void quad_grad(double *g, const double *p) { for (int i = 0; i < NQ; i++) g[i] = qa[i] * (p[i] - qc[i]); }

// The same update rules, written independently in double from torch.optim's documentation.
static void reference_run(const OptConfig *cfg, double lr, int steps, double *p) {
    double m[NQ] = { 0 }, v[NQ] = { 0 }, g[NQ];
    for (int i = 0; i < NQ; i++) p[i] = qp0[i];
    for (int t = 1; t <= steps; t++) {
        quad_grad(g, p);
        for (int i = 0; i < NQ; i++) {
            if (cfg->kind == OPT_SGD) {
                double d = g[i] + cfg->weight_decay * p[i];
                if (cfg->momentum != 0.0) {
                    m[i] = t == 1 ? d : cfg->momentum * m[i] + d;
                    d = cfg->nesterov ? d + cfg->momentum * m[i] : m[i];
                }
                p[i] -= lr * d;
            } else {
                double gi = g[i];
                if (cfg->kind == OPT_ADAMW) p[i] *= 1.0 - lr * cfg->weight_decay;
                else gi += cfg->weight_decay * p[i];
                m[i] = cfg->beta1 * m[i] + (1.0 - cfg->beta1) * gi;
                v[i] = cfg->beta2 * v[i] + (1.0 - cfg->beta2) * gi * gi;
                double mhat = m[i] / (1.0 - pow(cfg->beta1, t)), vhat = v[i] / (1.0 - pow(cfg->beta2, t));
                // torch: denom = sqrt(v) / sqrt(1 - b2^t) + eps, i.e. sqrt(vhat) + eps
                p[i] -= lr * mhat / (sqrt(vhat) + cfg->eps);
            }
        }
    }
}

static void optim_run(const OptConfig *cfg, double lr, int steps, float *p) {
    Optimizer o;
    optim_init(&o, cfg, NQ);
    float g[NQ];
    for (int i = 0; i < NQ; i++) p[i] = (float)qp0[i];
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < NQ; i++) g[i] = (float)(qa[i] * ((double)p[i] - qc[i]));
        optim_step(&o, p, g, lr);
    }
    CU_ASSERT_EQUAL(o.step, steps);
    CU_ASSERT((o.v == NULL) == (cfg->kind == OPT_SGD));
    optim_free(&o);
}

static void check_trajectory(const OptConfig *cfg, double lr, const char *what) {
    for (int steps = 1; steps <= 25; steps += 8) {
        double pd[NQ];
        float pf[NQ], ref[NQ];
        reference_run(cfg, lr, steps, pd);
        optim_run(cfg, lr, steps, pf);
        for (int i = 0; i < NQ; i++) ref[i] = (float)pd[i];
        TU_ASSERT_CLOSE(pf, ref, NQ, 2e-5, 1e-4, what);
    }
}

static OptConfig sgd_cfg(double momentum, int nesterov, double wd) {
    OptConfig c = { OPT_SGD, momentum, nesterov, wd, 0.9, 0.999, 1e-8 };
    return c;
}
static OptConfig adam_cfg(OptKind kind, double wd, double b1, double b2, double eps) {
    OptConfig c = { kind, 0.0, 0, wd, b1, b2, eps };
    return c;
}

static void test_sgd(void) {
    OptConfig c = sgd_cfg(0, 0, 0);
    check_trajectory(&c, 0.05, "sgd");
    c = sgd_cfg(0, 0, 0.01);
    check_trajectory(&c, 0.05, "sgd weight decay");
    c = sgd_cfg(0.9, 0, 0);
    check_trajectory(&c, 0.02, "sgd momentum");
    c = sgd_cfg(0.9, 1, 0.05);
    check_trajectory(&c, 0.02, "sgd nesterov + weight decay");
    // by hand, f = p^2/2 from p = 1, lr 0.1, momentum 0.9: buf starts as the gradient
    //   step 1: g 1, buf 1, p 0.9; step 2: g 0.9, buf 1.8, p 0.72
    //   nesterov: step 1: d = 1 + 0.9 = 1.9, p 0.81; step 2: g .81, buf 1.71, d 2.349, p 0.5751
    for (int nest = 0; nest < 2; nest++) {
        OptConfig cfg = sgd_cfg(0.9, nest, 0);
        Optimizer o;
        optim_init(&o, &cfg, 1);
        float p = 1.0f, g;
        g = p; optim_step(&o, &p, &g, 0.1);
        CU_ASSERT_DOUBLE_EQUAL(p, nest ? 0.81 : 0.9, 1e-6);
        g = p; optim_step(&o, &p, &g, 0.1);
        CU_ASSERT_DOUBLE_EQUAL(p, nest ? 0.5751 : 0.72, 1e-6);
        optim_free(&o);
    }
}

static void test_adam(void) {
    OptConfig c = adam_cfg(OPT_ADAM, 0, 0.9, 0.999, 1e-8);
    check_trajectory(&c, 0.01, "adam");
    c = adam_cfg(OPT_ADAM, 0.1, 0.8, 0.99, 1e-6);
    check_trajectory(&c, 0.05, "adam weight decay");
    c = adam_cfg(OPT_ADAM, 0, 0.3, 0.9, 1e-8);  // beta1 < 0.5: the other branch of torch's lerp
    check_trajectory(&c, 0.01, "adam small beta1");
    c = adam_cfg(OPT_ADAMW, 0.1, 0.9, 0.999, 1e-8);
    check_trajectory(&c, 0.01, "adamw");
    // by hand: Adam's first step moves every coordinate by lr g / (|g| + eps) ~ lr sign(g);
    // AdamW first shrinks p by (1 - lr wd). Adam's L2 term goes into the gradient instead.
    float p[2] = { 1.0f, -2.0f }, g[2] = { 3.0f, -0.5f };
    Optimizer o;
    c = adam_cfg(OPT_ADAMW, 0.5, 0.9, 0.999, 1e-8);
    optim_init(&o, &c, 2);
    optim_step(&o, p, g, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 1.0 * (1 - 0.05) - 0.1, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -2.0 * (1 - 0.05) + 0.1, 1e-6);
    optim_free(&o);
    p[0] = 1.0f; p[1] = -2.0f;
    c = adam_cfg(OPT_ADAM, 0.5, 0.9, 0.999, 1e-8);
    optim_init(&o, &c, 2);
    optim_step(&o, p, g, 0.1);  // g + wd p = (3.5, -1.5): still a step of lr against the sign
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.9, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -1.9, 1e-6);
    optim_free(&o);
}

static void test_names(void) {
    CU_ASSERT(strcmp(opt_kind_names[OPT_SGD], "sgd") == 0 && strcmp(opt_kind_names[OPT_ADAM], "adam") == 0 &&
              strcmp(opt_kind_names[OPT_ADAMW], "adamw") == 0 && opt_kind_names[3] == NULL);
    CU_ASSERT(strcmp(sched_kind_names[SCHED_CONSTANT], "constant") == 0 &&
              strcmp(sched_kind_names[SCHED_STEP], "step") == 0 &&
              strcmp(sched_kind_names[SCHED_COSINE], "cosine") == 0 && sched_kind_names[3] == NULL);
}

// ---- schedules ------------------------------------------------------------------------------

static const double PI = 3.14159265358979323846;

static void test_schedules(void) {
    Schedule s = { SCHED_CONSTANT, 0.1, 0, 0, 0, 0, 0 };
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 0), 0.1, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 50), 0.1, 1e-15);

    s = (Schedule){ SCHED_STEP, 0.1, 3, 0.5, 0, 0, 0 };  // StepLR(step_size=3, gamma=0.5)
    static const double step_ref[8] = { 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025 };
    for (int e = 0; e < 8; e++) CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, e), step_ref[e], 1e-15);

    s = (Schedule){ SCHED_COSINE, 1.0, 0, 0, 10, 0.1, 0 };  // CosineAnnealingLR(T_max=10, eta_min=0.1)
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 0), 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 5), 0.55, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 10), 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 2), 0.1 + 0.9 * (1 + cos(2.0 * PI / 10.0)) / 2, 1e-12);

    // warm-up 2 epochs: base/3, 2 base/3, then the schedule from its start
    s = (Schedule){ SCHED_COSINE, 0.3, 0, 0, 12, 0.0, 2 };
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 0), 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 1), 0.2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 2), 0.3, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 7), 0.15, 1e-12);  // half-way through T = 12 - 2
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 12), 0.0, 1e-12);
    s = (Schedule){ SCHED_STEP, 0.1, 3, 0.5, 0, 0, 1 };
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 0), 0.05, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 1), 0.1, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 3), 0.1, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(schedule_lr(&s, 4), 0.05, 1e-15);
}

// ---- loss terms on a named layer (nn/term.h) --------------------------------------------

typedef struct { float *f, *R; int B, d; double w; } Fl2Ctx;
static double fl2_loss(void *p) {
    Fl2Ctx *c = p;
    return feature_l2_forward(c->f, c->B, c->d, c->w);
}

static void test_feature_l2(void) {
    enum { B = 3, D = 7 };
    Rng rng;
    rng_seed(&rng, 41);
    float *f = tu_rand(B * D, -1, 1, &rng), g[B * D];
    for (int i = 0; i < B * D; i++) g[i] = 0.5f;  // backward accumulates
    double v = feature_l2_forward(f, B, D, 0.3), want = 0;
    for (int i = 0; i < B * D; i++) want += 0.3 * (double)f[i] * f[i];
    CU_ASSERT_DOUBLE_EQUAL(v, want, 1e-9);
    feature_l2_backward(g, f, B, D, 0.3, 1.0f);
    for (int i = 0; i < B * D; i++) g[i] -= 0.5f;
    Fl2Ctx c = { f, NULL, B, D, 0.3 };
    CU_ASSERT(tu_fd_check(fl2_loss, &c, f, g, B * D, B * D, 1e-2, 1e-5, 1e-4, "feature_l2") <= 1.0);
    free(f);
}

// A term on a middle layer: its gradient, added through net_output_grad, reaches the layers
// below -- the gradient of sum(out * R) + term, against finite differences over the weights.
typedef struct { Net *net; LossTerm *t; Batch *b; float *R; size_t nout; } TermNetCtx;
static double term_net_loss(void *p) {
    TermNetCtx *c = p;
    const float *out = net_forward(c->net, c->b, 1);
    double v = tu_dot(out, c->R, c->nout);
    double logs[TERM_MAX_LOGS];
    return v + c->t->ops->forward_backward(c->t, c->net->acts[c->t->act], c->b, NULL, 1.0f, NULL, logs);
}

static void test_term_through_net(void) {
    const char *text = "[conv3d]\nout = 2\nkernel = 3\npad = 1\n[tanh]\n[flatten]\n[linear]\nname = fc\nout = 3\n"
                       "[feature_l2]\nlayer = tanh1\nweight = 0.7\n";
    Ini ini;
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(&ini, text, "t.ini", &err) == 0);
    Net net;
    Shape in = { 1, 3, 3, 2 };
    enum { B = 2 };
    CU_ASSERT_FATAL(net_build(&net, &ini, in, B, NULL, &err) == 0);  // skips the term's section
    LossTerm *terms;
    int n;
    CU_ASSERT_FATAL(loss_terms_build(&terms, &n, &ini, &net, NULL, 1, &err) == 0 && n == 1);
    CU_ASSERT(ini_check_unused(&ini, &err) == 0);
    CU_ASSERT_STRING_EQUAL(terms[0].layer, "tanh1");
    CU_ASSERT_EQUAL(terms[0].act, net_layer_output_index(&net, "tanh1"));  // placed on its layer
    CU_ASSERT_EQUAL(terms[0].d, 2 * 3 * 3 * 2);
    net_init(&net, 9);
    Rng rng;
    rng_seed(&rng, 10);
    float *x = tu_rand(B * shape_numel(in), -1, 1, &rng), *R = tu_rand(B * 3, -1, 1, &rng);
    Batch b = batch_of_images(x, B);
    const float *out = net_forward(&net, &b, 1);
    (void)out;
    double logs[TERM_MAX_LOGS];
    terms[0].ops->forward_backward(&terms[0], net.acts[terms[0].act], &b, net_output_grad(&net, terms[0].act), 1.0f, NULL, logs);
    net_zero_grad(&net);
    net_backward(&net, &b, R);
    float *grads = tu_copy(net.grads, net.n_params);
    TermNetCtx c = { &net, &terms[0], &b, R, B * 3 };
    CU_ASSERT(tu_fd_check(term_net_loss, &c, net.params, grads, net.n_params, net.n_params, 1e-3, 1e-4, 1e-3,
                          "network with a loss term: parameter gradients") <= 1.0);
    // the extra gradient was used once: a second backward without the term differs
    net_forward(&net, &b, 1);
    net_zero_grad(&net);
    net_backward(&net, &b, R);
    double diff = 0;
    for (size_t i = 0; i < net.n_params; i++) diff += fabs(net.grads[i] - grads[i]);
    CU_ASSERT(diff > 1e-3);
    free(grads); free(x); free(R);
    loss_terms_free(terms, n);
    net_free(&net);
    ini_free(&ini);
    // a term without its layer key is an error naming the section's line
    CU_ASSERT_FATAL(ini_parse_string(&ini, "[relu]\n\n[feature_l2]\nweight = 1\n", "u.ini", &err) == 0);
    CU_ASSERT_FATAL(net_build(&net, &ini, in, B, NULL, &err) == 0);
    CU_ASSERT(loss_terms_build(&terms, &n, &ini, &net, NULL, 1, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "u.ini:3") && tu_contains(err.msg, "layer") && tu_contains(err.msg, "missing"));
    // and a layer the network does not have
    ini_free(&ini);
    CU_ASSERT_FATAL(ini_parse_string(&ini, "[relu]\n\n[feature_l2]\nlayer = fc9\n", "u.ini", &err) == 0);
    CU_ASSERT(loss_terms_build(&terms, &n, &ini, &net, NULL, 1, &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "u.ini:4") && tu_contains(err.msg, "no layer of that name"));
    net_free(&net);
    ini_free(&ini);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("losses", NULL, NULL);
    CU_add_test(s, "cross-entropy gradient", test_xent_grad);
    CU_add_test(s, "bce_logits gradient", test_bce_grad);
    CU_add_test(s, "mse gradient", test_mse_grad);
    CU_add_test(s, "known values", test_loss_values);
    CU_add_test(s, "huge logits stay finite", test_loss_huge_logits);
    CU_add_test(s, "feature_l2 term gradient", test_feature_l2);
    CU_add_test(s, "a loss term's gradient reaches the layers below", test_term_through_net);
    s = CU_add_suite("optimisers", NULL, NULL);
    CU_add_test(s, "sgd (momentum, nesterov, weight decay)", test_sgd);
    CU_add_test(s, "adam and adamw", test_adam);
    CU_add_test(s, "kind names", test_names);
    s = CU_add_suite("schedules", NULL, NULL);
    CU_add_test(s, "constant, step, cosine, warm-up", test_schedules);
    return tu_run_all();
}
