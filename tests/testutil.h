// testutil.h: helpers shared by the CUnit tests.
#ifndef DF_TESTUTIL_H
#define DF_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <CUnit/CUnit.h>
#include "base/rng.h"

// x[i] ~ U(lo, hi)
void tu_fill_uniform(float *x, size_t n, float lo, float hi, Rng *rng);
// New aligned buffers (free with free()): n values ~ U(lo, hi), or a copy of x.
float *tu_rand(size_t n, float lo, float hi, Rng *rng);
float *tu_copy(const float *x, size_t n);
// max_i |a_i - b_i| / (atol + rtol |b_i|) -- <= 1 means "close"; also prints the worst index
// when it exceeds 1 and `what` is non-NULL.
double tu_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol, const char *what);
#define TU_ASSERT_CLOSE(a, b, n, atol, rtol, what) CU_ASSERT(tu_close_ratio((a), (b), (n), (atol), (rtol), (what)) <= 1.0)

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

// Marks the running test as skipped (a Debian data package it reads is absent): the test
// returns right after. A program in which something was skipped and nothing failed exits 77,
// automake's "skipped", so a missing input is never reported as a pass.
void tu_skip(const char *why);

// Registers a suite with tests {name, fn, ...} and runs everything; returns the process exit
// code (0 when every test passed, 77 when some were skipped and none failed, else 1). Call
// from main() after adding suites.
int tu_run_all(void);
#endif
