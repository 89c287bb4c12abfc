// test_stats.c: mean, sd and the Wilcoxon signed-rank test (base/stats.c): edge cases by
// hand, and the test against R 4.2.2's wilcox.test(x, y, paired = TRUE) (tests/ref/wilcoxon.txt,
// made by tests/gen_stats_ref.R).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "base/stats.h"
#include "testutil.h"

// Non-finite values are left out of both; too few values give NAN, not 0.
static void test_mean_sd(void) {
    int used = -1;
    double x[6] = { 1, NAN, 3, INFINITY, -INFINITY, 5 };
    CU_ASSERT(stats_mean(x, 6, &used) == 3 && used == 3);
    CU_ASSERT(stats_sd(x, 6) == 2);  // 1 3 5: squares 4 0 4 over 2
    CU_ASSERT(isnan(stats_mean(x, 0, &used)) && used == 0);
    double bad[2] = { NAN, INFINITY };
    CU_ASSERT(isnan(stats_mean(bad, 2, &used)) && used == 0);
    CU_ASSERT(isnan(stats_mean(bad, 2, NULL)));  // used is optional
    CU_ASSERT(isnan(stats_sd(bad, 2)));
    CU_ASSERT(isnan(stats_sd(x, 1)));  // one value: no sample sd
    CU_ASSERT(stats_sd(x, 3) == sqrt(2));  // 1 3: squares 1 1 over 1
    // 2 4 4 4 5 5 7 9: mean 5, squares 9 1 1 1 0 0 4 16 = 32, sd sqrt(32 / 7) (R's sd: 2.1380899352993952)
    double y[8] = { 2, 4, 4, 4, 5, 5, 7, 9 };
    CU_ASSERT(tu_near(stats_sd(y, 8), 2.1380899352993952, 1e-15, 0, "sd"));
    // an offset of 1e9: the one-pass formula loses the answer (sd 1) to cancellation
    double z[3] = { 1e9 + 1, 1e9 + 2, 1e9 + 3 };
    CU_ASSERT(stats_sd(z, 3) == 1 && stats_mean(z, 3, NULL) == 1e9 + 2);
}

// d = 1 2 3: V = 1 + 2 + 3 = 6; of the 2^3 sign patterns only all-positive reaches 6, so
// P(V >= 6) = 1/8 and p = 2/8. Pairs with NaN or an infinity are skipped, not ranked.
static void test_wilcoxon_hand(void) {
    WilcoxonResult r;
    double x[5] = { 2, NAN, 3, 4, 2 }, y[5] = { 1, 1, 1, 1, INFINITY };
    stats_wilcoxon_signed_rank(&r, x, y, 5);
    CU_ASSERT(r.n == 3 && r.n_zero == 0 && r.v == 6 && r.exact == 1 && r.p == 0.25 && r.median_diff == 2);
    // one zero difference more: R drops it and, having dropped one, takes the normal
    // approximation: z = (6 - 3 - 1/2) / sqrt(3 4 7 / 24), p = 2 pnorm(-2.5 / sqrt(3.5))
    double x2[4] = { 2, 3, 4, 5 }, y2[4] = { 1, 1, 1, 5 };
    stats_wilcoxon_signed_rank(&r, x2, y2, 4);
    CU_ASSERT(r.n == 3 && r.n_zero == 1 && r.v == 6 && r.exact == 0);
    CU_ASSERT(tu_near(r.p, 0.18144920772142031, 1e-12, 0, "zero dropped"));
    // every difference zero: nothing to rank, p NAN (R: NA from 0 / 0)
    stats_wilcoxon_signed_rank(&r, x2, x2, 4);
    CU_ASSERT(r.n == 0 && r.n_zero == 4 && r.v == 0 && isnan(r.p) && isnan(r.median_diff));
    stats_wilcoxon_signed_rank(&r, x2, y2, 0);
    CU_ASSERT(r.n == 0 && r.n_zero == 0 && isnan(r.p));
    // d = 1 -1 2 -2: |d| ranks 1.5 1.5 3.5 3.5, V = 5 = n (n + 1) / 4: ties, normal, p = 1
    double x3[4] = { 1, 0, 2, 0 }, y3[4] = { 0, 1, 0, 2 };
    stats_wilcoxon_signed_rank(&r, x3, y3, 4);
    CU_ASSERT(r.n == 4 && r.v == 5 && r.exact == 0 && r.p == 1 && r.median_diff == 0);
}

typedef struct {
    int m;
    const double *x, *y, *stat, *p, *median;  // into the RefFile; p, median NULL when NA
} Case;

static int load_case(Case *c, RefFile *f, int id) {
    char name[64];
    RefTensor *t[5];
    const char *part[5] = { "x", "y", "stat", "p", "median" };
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof name, "case%d.%s", id, part[k]);
        t[k] = k < 3 ? tu_ref_get(f, name) : tu_ref_find(f, name);
    }
    if (!t[0] || !t[1] || !t[2] || t[0]->n != t[1]->n || t[2]->n != 4) return -1;
    c->m = (int)t[0]->n;
    c->x = t[0]->v; c->y = t[1]->v; c->stat = t[2]->v;
    c->p = t[3] ? t[3]->v : NULL;
    c->median = t[4] ? t[4]->v : NULL;
    return 0;
}

// Every case of tests/ref/wilcoxon.txt, and each with x and y swapped. V is a sum of
// half-integer ranks: exact in double, so compared with ==. p to 1e-12 relative: R's exact
// p sums count 2^-n term by term (we scale the exact integer sum once) and its normal tail
// is pnorm where we use erfc, so the last few digits differ; a wrong rank, tie term,
// correction or choice of method moves p by 1e-3 or more.
static void test_wilcoxon_r(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "wilcoxon.txt") == 0);
    RefTensor *nc = tu_ref_get(&f, "ncases");
    CU_ASSERT_FATAL(nc != NULL);
    for (int id = 0; id < (int)nc->v[0]; id++) {
        Case c = { 0 };
        CU_ASSERT_FATAL(load_case(&c, &f, id) == 0);
        WilcoxonResult r, s;
        char what[64];
        stats_wilcoxon_signed_rank(&r, c.x, c.y, c.m);
        CU_ASSERT(r.n == (int)c.stat[0] && r.n_zero == (int)c.stat[1] && r.exact == (int)c.stat[3]);
        CU_ASSERT(r.v == c.stat[2]);
        if (r.v != c.stat[2]) printf("\n  case%d: V %.17g, R %.17g\n", id, r.v, c.stat[2]);
        snprintf(what, sizeof what, "case%d p", id);
        CU_ASSERT(tu_near(r.p, c.p ? *c.p : NAN, 1e-12, 0, what));
        snprintf(what, sizeof what, "case%d median", id);
        CU_ASSERT(tu_near(r.median_diff, c.median ? *c.median : NAN, 1e-15, 0, what));
        // swapped: the signs flip, V' = n (n + 1) / 2 - V, the two-sided p is the same
        stats_wilcoxon_signed_rank(&s, c.y, c.x, c.m);
        CU_ASSERT(s.v == r.n * (r.n + 1) / 2.0 - r.v && s.exact == r.exact);
        CU_ASSERT((isnan(s.p) && isnan(r.p)) || s.p == r.p);
    }
    tu_ref_free(&f);
}

int main(void) {
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("stats", NULL, NULL);
    CU_add_test(s, "mean and sd of the finite values", test_mean_sd);
    CU_add_test(s, "Wilcoxon signed-rank by hand", test_wilcoxon_hand);
    CU_add_test(s, "Wilcoxon signed-rank against R", test_wilcoxon_r);
    return tu_run_all();
}
