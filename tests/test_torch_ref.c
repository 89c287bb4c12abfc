// test_torch_ref.c: compares the C network, losses and optimisers with numbers computed by an
// independent implementation (PyTorch, in float64) and committed under tests/ref/ by
// tests/gen_torch_ref.py -- so CI needs no Python. The reference files are found through the
// environment variable top_srcdir (default "."): $top_srcdir/tests/ref/<file>.
//
// Format of the .txt files (see gen_torch_ref.py): '#' comment lines, then tensors, each a
// header `name ndim d0 d1 ...` followed by prod(d) numbers on one or more lines.
//
// TORCH_REF_VERBOSE=1 prints the worst error/tolerance ratio of every comparison.
//
// Tolerances: the C side is float32 and the reference float64 on the same float32 inputs,
// so |c - ref| <= ATOL + RTOL |ref| with RTOL ~ 1e-4 leaves room for float32 rounding only.
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/ini.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "testutil.h"

#define RTOL 1e-4
#define ATOL 1e-6

// ---- networks --------------------------------------------------------------------------------

static int same_dims(const TensorInfo *ti, const RefTensor *t) {
    if (ti->ndim != t->ndim) return 0;
    for (int i = 0; i < ti->ndim; i++)
        if (ti->dims[i] != t->dims[i]) return 0;
    return 1;
}

// Copies "<layer>.<tensor>" (prefix "" for the initial values, "after." for state after the
// step) into every parameter (params = 1) or state tensor (params = 0) of the net. Every C
// tensor must have a reference of the same PyTorch shape. Returns the number copied.
static int load_tensors(Net *net, RefFile *f, const char *prefix, int params) {
    int copied = 0;
    for (int i = 0; i < net->n_layers; i++) {
        Layer *L = &net->layers[i];
        int nt = params ? L->n_params_info : L->n_state_info;
        for (int j = 0; j < nt; j++) {
            const TensorInfo *ti = params ? &L->params_info[j] : &L->state_info[j];
            char key[200];
            snprintf(key, sizeof key, "%s%s.%s", prefix, L->name, ti->name);
            RefTensor *t = tu_ref_get(f, key);
            CU_ASSERT_PTR_NOT_NULL(t);
            if (!t) continue;
            if (!same_dims(ti, t) || ti->count != t->n) {
                fprintf(stderr, "\n  %s: C shape differs from PyTorch's\n", key);
                CU_FAIL("parameter shape");
                continue;
            }
            float *dst = (params ? L->params : L->state) + ti->offset;
            for (size_t k = 0; k < t->n; k++) dst[k] = (float)t->v[k];
            copied++;
        }
    }
    return copied;
}

// Number of reference tensors named "<layer>.<x>" (not grad./after./input/...): each must
// have been loaded into the net, so a layer that silently lost a parameter is caught.
static int count_ref_params(const RefFile *f) {
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        const char *s = f->t[i].name;
        if (strchr(s, '.') && strncmp(s, "grad.", 5) && strncmp(s, "after.", 6)) n++;
    }
    return n;
}

static int build_net(Net *net, Ini *ini, const char *ini_file, Shape in, int B) {
    char path[1024];
    tu_ref_path(path, sizeof path, ini_file);
    DfError err;
    char *text = df_read_text_file(path, NULL, &err);
    if (!text) { fprintf(stderr, "  %s\n", err.msg); return -1; }
    int rc = ini_parse_string(ini, text, path, &err);
    free(text);
    if (rc) { fprintf(stderr, "  %s\n", err.msg); return -1; }
    if (net_build(net, ini, in, B, NULL, &err) || ini_check_unused(ini, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        ini_free(ini);
        return -1;
    }
    return 0;
}

typedef enum { REF_CE, REF_BCE } RefLoss;

// Builds <stem>.ini, loads <stem>.txt's parameters, runs one training forward/backward and
// compares logits, loss, parameter and input gradients and BN running statistics; then, if
// eval_ini is given, the evaluation-mode forward with the updated statistics.
static void run_net_ref(const char *stem, RefLoss loss_kind, const char *eval_ini) {
    char file[256];
    snprintf(file, sizeof file, "%s.txt", stem);
    RefFile f;
    int rc = tu_ref_load(&f, file);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    RefTensor *tin = tu_ref_get(&f, "input"), *ttg = tu_ref_get(&f, "targets"), *tlog = tu_ref_get(&f, "logits");
    CU_ASSERT_FATAL(tin && ttg && tlog && tin->ndim == 5 && tlog->ndim == 2);
    int B = tin->dims[0], K = tlog->dims[1];
    Shape in = { tin->dims[1], tin->dims[2], tin->dims[3], tin->dims[4] };

    Net net;
    Ini ini;
    snprintf(file, sizeof file, "%s.ini", stem);
    CU_ASSERT_EQUAL_FATAL(build_net(&net, &ini, file, in, B), 0);
    CU_ASSERT_EQUAL(net.out_shape.c, K);
    CU_ASSERT(net.out_shape.d == 1 && net.out_shape.h == 1 && net.out_shape.w == 1);
    net_init(&net, 7);  // then overwritten by the reference values
    int np = load_tensors(&net, &f, "", 1), ns = load_tensors(&net, &f, "", 0);
    CU_ASSERT_EQUAL(np + ns, count_ref_params(&f));

    // Training never needs the input gradient; ask for it so it can be compared too.
    size_t in_n = (size_t)B * shape_numel(in);
    net_enable_input_grad(&net);

    float *x = tu_ref_floats(tin);
    net_zero_grad(&net);
    Batch bx = batch_of_images(x, B);
    const float *logits = net_forward(&net, &bx, 1);
    tu_ref_check(&f, "logits", logits, (size_t)B * K, ATOL, RTOL);

    float *dlogits = xcalloc((size_t)B * K, sizeof(float));
    double loss;
    if (loss_kind == REF_CE) {
        int *tg = xmalloc((size_t)B * sizeof(int));
        CU_ASSERT_EQUAL_FATAL(ttg->n, (size_t)B);
        for (int b = 0; b < B; b++) {
            tg[b] = (int)ttg->v[b];
            CU_ASSERT(tg[b] == ttg->v[b] && tg[b] >= 0 && tg[b] < K);
        }
        float *probs = xmalloc((size_t)B * K * sizeof(float));
        loss = softmax_xent_forward(probs, logits, tg, B, K) / B;
        softmax_xent_backward(dlogits, probs, tg, B, K, 1.0f / B);
        free(probs);
        free(tg);
    } else {
        CU_ASSERT_EQUAL_FATAL(ttg->n, (size_t)B * K);
        float *tg = tu_ref_floats(ttg);
        loss = bce_logits_forward(logits, tg, B * K) / (B * K);
        bce_logits_backward(dlogits, logits, tg, B * K, 1.0f / (B * K));
        free(tg);
    }
    RefTensor *tloss = tu_ref_get(&f, "loss");
    CU_ASSERT_PTR_NOT_NULL(tloss);
    if (tloss) tu_ref_check_scalar("loss", loss, tloss->v[0], ATOL, RTOL);

    net_backward(&net, &bx, dlogits);
    for (int i = 0; i < net.n_layers; i++) {
        Layer *L = &net.layers[i];
        for (int j = 0; j < L->n_params_info; j++) {
            char key[200];
            snprintf(key, sizeof key, "grad.%s.%s", L->name, L->params_info[j].name);
            tu_ref_check(&f, key, L->grads + L->params_info[j].offset, L->params_info[j].count, ATOL, RTOL);
        }
        for (int j = 0; j < L->n_state_info; j++) {
            char key[200];
            snprintf(key, sizeof key, "after.%s.%s", L->name, L->state_info[j].name);
            tu_ref_check(&f, key, L->state + L->state_info[j].offset, L->state_info[j].count, ATOL, RTOL);
        }
    }
    tu_ref_check(&f, "grad.input", net.dacts[0], in_n, ATOL, RTOL);

    if (eval_ini) {
        // Same layers plus a dropout (identity when evaluating), the original parameters and
        // the running statistics PyTorch holds after the training forward.
        Net ev;
        Ini eini;
        CU_ASSERT_EQUAL_FATAL(build_net(&ev, &eini, eval_ini, in, B), 0);
        net_init(&ev, 7);
        load_tensors(&ev, &f, "", 1);
        load_tensors(&ev, &f, "after.", 0);
        const float *lev = net_forward(&ev, &bx, 0);
        tu_ref_check(&f, "logits_eval", lev, (size_t)B * K, ATOL, RTOL);
        net_free(&ev);
        ini_free(&eini);
    }

    // Every reference tensor was looked at (a renamed layer would otherwise go unchecked).
    for (int i = 0; i < f.n; i++)
        if (!f.t[i].used) { fprintf(stderr, "\n  %s: tensor '%s' not compared\n", f.path, f.t[i].name); CU_FAIL("unused reference"); }

    free(dlogits);
    free(x);
    net_free(&net);
    ini_free(&ini);
    tu_ref_free(&f);
}

static void test_net3d(void) { run_net_ref("net3d", REF_CE, "net3d_eval.ini"); }
static void test_netl2(void) { run_net_ref("netl2", REF_BCE, NULL); }

// ---- losses ----------------------------------------------------------------------------------

static void test_losses(void) {
    RefFile f;
    CU_ASSERT_EQUAL_FATAL(tu_ref_load(&f, "loss.txt"), 0);

    // Cross-entropy, mean over B rows.
    RefTensor *tl = tu_ref_get(&f, "ce_logits"), *tt = tu_ref_get(&f, "ce_targets");
    CU_ASSERT_FATAL(tl && tt && tl->ndim == 2);
    int B = tl->dims[0], K = tl->dims[1];
    float *logits = tu_ref_floats(tl), *probs = xmalloc((size_t)B * K * sizeof(float));
    float *grad = xcalloc((size_t)B * K, sizeof(float));
    int *tg = xmalloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) {
        tg[b] = (int)tt->v[b];
        CU_ASSERT(tg[b] == tt->v[b] && tg[b] >= 0 && tg[b] < K);
    }
    double loss = softmax_xent_forward(probs, logits, tg, B, K) / B;
    tu_ref_check_scalar("ce_loss", loss, tu_ref_get(&f, "ce_loss")->v[0], ATOL, RTOL);
    softmax_xent_backward(grad, probs, tg, B, K, 1.0f / B);
    tu_ref_check(&f, "ce_grad", grad, (size_t)B * K, ATOL, RTOL);
    free(logits); free(probs); free(grad); free(tg);

    // BCE with logits and MSE, mean over n.
    tl = tu_ref_get(&f, "bce_logits");
    CU_ASSERT_FATAL(tl != NULL);
    int n = (int)tl->n;
    float *x = tu_ref_floats(tl), *t = tu_ref_floats(tu_ref_get(&f, "bce_targets"));
    float *g = xcalloc((size_t)n, sizeof(float));
    tu_ref_check_scalar("bce_loss", bce_logits_forward(x, t, n) / n, tu_ref_get(&f, "bce_loss")->v[0], ATOL, RTOL);
    bce_logits_backward(g, x, t, n, 1.0f / n);
    tu_ref_check(&f, "bce_grad", g, (size_t)n, ATOL, RTOL);
    free(x); free(t); free(g);

    tl = tu_ref_get(&f, "mse_pred");
    CU_ASSERT_FATAL(tl != NULL);
    n = (int)tl->n;
    x = tu_ref_floats(tl);
    t = tu_ref_floats(tu_ref_get(&f, "mse_targets"));
    g = xcalloc((size_t)n, sizeof(float));
    tu_ref_check_scalar("mse_loss", mse_forward(x, t, n) / n, tu_ref_get(&f, "mse_loss")->v[0], ATOL, RTOL);
    mse_backward(g, x, t, n, 1.0f / n);
    tu_ref_check(&f, "mse_grad", g, (size_t)n, ATOL, RTOL);
    free(x); free(t); free(g);

    for (int i = 0; i < f.n; i++)
        if (!f.t[i].used) { fprintf(stderr, "\n  loss.txt: '%s' not compared\n", f.t[i].name); CU_FAIL("unused reference"); }
    tu_ref_free(&f);
}

// ---- optimisers and schedules -----------------------------------------------------------------

static void test_optimizers(void) {
    RefFile f;
    CU_ASSERT_EQUAL_FATAL(tu_ref_load(&f, "optim.txt"), 0);
    RefTensor *tp = tu_ref_get(&f, "opt_p0"), *tg = tu_ref_get(&f, "opt_grads");
    CU_ASSERT_FATAL(tp && tg && tg->ndim == 2 && (size_t)tg->dims[1] == tp->n);
    size_t n = tp->n;
    int steps = tg->dims[0];
    float *grads = tu_ref_floats(tg);
    int n_opt = 0, n_sched = 0;
    for (int i = 0; i < f.n; i++) {
        const char *nm = f.t[i].name;
        size_t len = strlen(nm);
        if (len <= 4 || strcmp(nm + len - 4, "_cfg") != 0) continue;
        char base[96], key[128];
        snprintf(base, sizeof base, "%.*s", (int)(len - 4), nm);
        const double *c = f.t[i].v;
        f.t[i].used = 1;
        if (strncmp(base, "sched_", 6) == 0) {
            // kind, base_lr, step_size, gamma, total_epochs, min_lr, warmup_epochs
            CU_ASSERT_FATAL(f.t[i].n == 7);
            Schedule s = { (SchedKind)c[0], c[1], (int)c[2], c[3], (int)c[4], c[5], (int)c[6] };
            snprintf(key, sizeof key, "%s_lr", base);
            RefTensor *tl = tu_ref_get(&f, key);
            CU_ASSERT_FATAL(tl != NULL);
            float *lr = xmalloc(tl->n * sizeof(float));
            for (size_t e = 0; e < tl->n; e++) lr[e] = (float)schedule_lr(&s, (int)e);
            CU_ASSERT(tu_ref_ratio(key, lr, tl->v, tl->n, 1e-9, 1e-6) <= 1.0);
            free(lr);
            n_sched++;
            continue;
        }
        // kind, momentum, nesterov, weight_decay, beta1, beta2, eps
        CU_ASSERT_FATAL(f.t[i].n == 7);
        OptConfig cfg = { (OptKind)c[0], c[1], (int)c[2], c[3], c[4], c[5], c[6] };
        snprintf(key, sizeof key, "%s_lr", base);
        RefTensor *tl = tu_ref_get(&f, key);
        snprintf(key, sizeof key, "%s_traj", base);
        RefTensor *tt = tu_ref_get(&f, key);
        CU_ASSERT_FATAL(tl && tt && tl->n == (size_t)steps && tt->n == (size_t)steps * n);
        Optimizer o;
        optim_init(&o, &cfg, n);
        float *p = tu_ref_floats(tp);
        for (int s = 0; s < steps; s++) {
            optim_step(&o, p, grads + (size_t)s * n, tl->v[s]);
            char what[160];
            snprintf(what, sizeof what, "%s after step %d", base, s + 1);
            CU_ASSERT(tu_ref_ratio(what, p, tt->v + (size_t)s * n, n, ATOL, RTOL) <= 1.0);
        }
        optim_free(&o);
        free(p);
        n_opt++;
    }
    CU_ASSERT(n_opt >= 5);
    CU_ASSERT(n_sched >= 2);
    for (int i = 0; i < f.n; i++)
        if (!f.t[i].used) { fprintf(stderr, "\n  optim.txt: '%s' not compared\n", f.t[i].name); CU_FAIL("unused reference"); }
    free(grads);
    tu_ref_free(&f);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("torch_ref", NULL, NULL);
    CU_add_test(s, "net3d (conv, BN, pools, activations, linear) vs PyTorch", test_net3d);
    CU_add_test(s, "netl2 (l2norm, BCE) vs PyTorch", test_netl2);
    CU_add_test(s, "losses vs PyTorch", test_losses);
    CU_add_test(s, "optimisers and schedules vs PyTorch", test_optimizers);
    return tu_run_all();
}
