// testutil.h: helpers shared by the CUnit tests.
#ifndef DF_TESTUTIL_H
#define DF_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <CUnit/CUnit.h>
#include "base/rng.h"
#include "base/ini.h"
#include "nn/layer.h"

// x[i] ~ U(lo, hi)
void tu_fill_uniform(float *x, size_t n, float lo, float hi, Rng *rng);
// New aligned buffers (free with free()): n values ~ U(lo, hi), or a copy of x.
float *tu_rand(size_t n, float lo, float hi, Rng *rng);
float *tu_copy(const float *x, size_t n);
// n distinct values 0.01 apart (a shuffled ramp around 0): a finite-difference step of 1e-3
// never changes which element of a max-pooling window is the largest.
float *tu_ramp(size_t n, Rng *rng);
// max_i |a_i - b_i| / (atol + rtol |b_i|) -- <= 1 means "close"; also prints the worst index
// when it exceeds 1 and `what` is non-NULL.
double tu_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol, const char *what);
#define TU_ASSERT_CLOSE(a, b, n, atol, rtol, what) CU_ASSERT(tu_close_ratio((a), (b), (n), (atol), (rtol), (what)) <= 1.0)
// One double: |a - b| <= atol + rtol |b|, both NaN counting as equal; prints the mismatch
// (with `what`) when they differ.
int tu_near(double a, double b, double rtol, double atol, const char *what);

// Central finite differences: for `checks` coordinates of x (all when checks >= n, else a
// seeded random subset), compares grad[i] with (f(x + h e_i) - f(x - h e_i)) / 2h, where f
// re-evaluates the loss in double from the current x. Returns the worst
// |fd - grad| / (atol + rtol |fd|) (<= 1 passes); prints the worst coordinate if > 1.
typedef double (*tu_loss_fn)(void *ctx);
double tu_fd_check(tu_loss_fn f, void *ctx, float *x, const float *grad, size_t n, size_t checks,
                   double h, double atol, double rtol, const char *what);

// A scratch directory for one test program (mkdtemp of /tmp/<prefix>-XXXXXX; 0 on success),
// its path, and paths inside it (32 rotating buffers, so several can be in use at once).
int tu_tmpdir_create(const char *prefix);
const char *tu_tmpdir(void);
char *tu_path(const char *name);
// True when hay contains needle; otherwise prints both (for checks of error messages).
int tu_contains(const char *hay, const char *needle);

// sum_i out[i] * r[i] in double: the scalar "loss" whose gradient wrt out is r.
double tu_dot(const float *out, const float *r, size_t n);

// ---- one layer, built from INI text, with its buffers -----------------------------------------
// The fixture every test of a layer's table uses: the layer of the first section of `text`
// (its header names the type), for inputs of shape `in` and at most max_batch samples, with
// the buffers a network would give it (in, out, din, dout, params, grads, state and the
// shared workspace), initialised as a network initialises it (ctx seed 1234, step 1, init
// stream seed 77). `batch` is what forward and backward get: its images are `in`; a test
// sets labels and metadata (batch.labels, batch.meta, batch.n_meta) for layers that read them.
typedef struct {
    Ini ini;
    DfError err;
    NetCtx ctx;
    Layer L;
    float *in, *out, *din, *dout, *params, *grads, *state, *workspace;
    Batch batch;
    int built;
} TuLayer;
// 0, or -1 with the build's message in t->err (the fixture may then be freed).
// red: NULL for one rank; schema: NULL when the data have no metadata.
int tu_layer_build(TuLayer *t, const char *text, Shape in, int max_batch, Reducer *red, const struct MetaSchema *schema);
void tu_layer_forward(TuLayer *t, int B, int training);  // on the first B samples of t->in
void tu_layer_backward(TuLayer *t, int B);
void tu_layer_free(TuLayer *t);

// ---- P ranks simulated in one process --------------------------------------------------------
// A Reducer for code that runs once per simulated rank. Its reductions are numbered in call
// order (the same on every rank). Pass p sums every rank's buffer of call p ("record"),
// returns the known totals of calls < p ("replay") and leaves later calls alone (their
// results are garbage in that pass, and discarded). Passes repeat until one records nothing:
// then every reduction returned the true total, as on P real ranks, even when a later
// reduction's input depends on an earlier one's result (two BatchNorm or MDN layers).
#define TU_SIM_MAX_CALLS 64
typedef struct {
    Reducer base;  // first: the code under test sees a Reducer *
    int known, call, recorded;
    double *tot[TU_SIM_MAX_CALLS];
    size_t n[TU_SIM_MAX_CALLS];
} TuSim;
typedef void (*TuRankFn)(void *arg, int rank, int P);
// Sets the reducer up (before code that keeps a pointer to it is built).
void tu_sim_init(TuSim *sim, int P);
// Runs fn(arg, r, P) for r = 0..P-1 until every reduction is resolved; fn must restore any
// state it changes (running statistics) at its start so that passes repeat.
void tu_simulate(TuSim *sim, int P, TuRankFn fn, void *arg);
// The share [lo, hi) of n samples of rank r of P (the loader's uneven split).
void tu_share(int n, int r, int P, int *lo, int *hi);

// Marks the running test as skipped (a Debian data package it reads is absent): the test
// returns right after. A program in which something was skipped and nothing failed exits 77,
// automake's "skipped", so a missing input is never reported as a pass.
void tu_skip(const char *why);

// Registers a suite with tests {name, fn, ...} and runs everything; returns the process exit
// code (0 when every test passed, 77 when some were skipped and none failed, else 1). Call
// from main() after adding suites.
int tu_run_all(void);
// ---- reference files (tests/ref/*.txt, written by the tests/gen_*.py generators) ------------
// Text: a header line `name ndim d0 d1 ...` then prod(d) numbers; '#' starts a comment.
typedef struct {
    char name[96];
    int ndim;
    int dims[6];
    size_t n;
    double *v;
    int used;  // set when the test looked it up
} RefTensor;

typedef struct {
    char path[1024];
    RefTensor *t;
    int n, cap;
} RefFile;
// tests/ref/<file> under $top_srcdir (or .).
void tu_ref_path(char *buf, size_t n, const char *file);
// 0, or -1 after printing what is wrong with the file.
int tu_ref_load(RefFile *f, const char *file);
void tu_ref_free(RefFile *f);
RefTensor *tu_ref_find(RefFile *f, const char *name);  // NULL when absent
RefTensor *tu_ref_get(RefFile *f, const char *name);   // NULL and a printed note when absent
float *tu_ref_floats(const RefTensor *t);              // a float copy (free())
// Worst |got - want| / (atol + rtol |want|) (<= 1 passes); prints the worst entry when > 1
// (every comparison's margin with TORCH_REF_VERBOSE set).
double tu_ref_ratio(const char *what, const float *got, const double *want, size_t n, double atol, double rtol);
// CU_ASSERTs that `got` (n floats) matches reference tensor `name`, or a scalar matches.
void tu_ref_check(RefFile *f, const char *name, const float *got, size_t n, double atol, double rtol);
void tu_ref_check_scalar(const char *what, double got, double want, double atol, double rtol);
#endif
