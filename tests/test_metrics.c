// test_metrics.c: balanced accuracy, ROC AUC and group accuracy (nn/metrics.c) on cases
// worked out by hand (ties, absent classes, empty groups) and against scikit-learn 1.2.1
// (tests/ref/metrics_sklearn.txt, made by tests/gen_metrics_ref.py).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "nn/metrics.h"
#include "testutil.h"

// Positives score 0.4, 0.8, 0.4; negatives 0.1, 0.4, 0.2. Of the 9 (positive, negative)
// pairs, 0.8 beats all 3; each 0.4 beats 0.1 and 0.2 and ties the negative 0.4 (1/2):
// AUC = (3 + 2.5 + 2.5) / 9 = 8/9. Without the half it would be 7/9, with a full 1 9/9.
static void test_auc_hand(void) {
    double score[6] = { 0.1, 0.4, 0.4, 0.8, 0.4, 0.2 };
    int pos[6] = { 0, 1, 0, 1, 1, 0 };
    CU_ASSERT(tu_near(metric_roc_auc(score, pos, 6), 8.0 / 9, 1e-15, 0, "ties by hand"));
    int nonzero[6] = { 0, 7, 0, -1, 2, 0 };  // "positive" is any non-zero
    CU_ASSERT(tu_near(metric_roc_auc(score, nonzero, 6), 8.0 / 9, 1e-15, 0, "non-zero positives"));
    // every score equal: every pair a tie, 1/2
    double flat[4] = { 3, 3, 3, 3 };
    int p4[4] = { 1, 0, 0, 1 };
    CU_ASSERT(metric_roc_auc(flat, p4, 4) == 0.5);
    // separated: 1; reversed: 0
    double sep[4] = { 0.9, 0.1, 0.2, 0.8 };
    CU_ASSERT(metric_roc_auc(sep, p4, 4) == 1.0);
    int rev[4] = { 0, 1, 1, 0 };
    CU_ASSERT(metric_roc_auc(sep, rev, 4) == 0.0);
}

// No AUC without both classes, without samples, or with a NaN score (no place in the order).
static void test_auc_undefined(void) {
    double score[3] = { 0.2, 0.5, 0.9 };
    int all_pos[3] = { 1, 1, 1 }, all_neg[3] = { 0, 0, 0 }, mixed[3] = { 0, 1, 0 };
    CU_ASSERT(isnan(metric_roc_auc(score, all_pos, 3)));
    CU_ASSERT(isnan(metric_roc_auc(score, all_neg, 3)));
    CU_ASSERT(isnan(metric_roc_auc(score, mixed, 0)));
    double bad[3] = { 0.2, NAN, 0.9 };
    CU_ASSERT(isnan(metric_roc_auc(bad, mixed, 3)));
    // infinite scores are ordered like any other: +inf positive above both negatives
    double inf[3] = { -INFINITY, INFINITY, 0 };
    CU_ASSERT(metric_roc_auc(inf, mixed, 3) == 1.0);
}

// Labels 0 0 1 1 1 2, predictions 0 1 1 1 0 1: recall of class 0 is 1/2, of class 1 2/3, of
// class 2 (never predicted) 0/1, so (1/2 + 2/3 + 0) / 3 = 7/18. Plain accuracy would be 3/6.
static void test_bacc_hand(void) {
    int label[6] = { 0, 0, 1, 1, 1, 2 }, pred[6] = { 0, 1, 1, 1, 0, 1 };
    CU_ASSERT(tu_near(metric_balanced_accuracy(label, pred, 6, 3), 7.0 / 18, 1e-15, 0, "never predicted"));
    // K = 4 with class 3 predicted but never a label: only classes 0 and 1 are averaged,
    // recall 1/2 each, so 1/2 (not (1/2 + 1/2 + 0 + 0) / 4 nor a third of anything)
    int l2[4] = { 0, 0, 1, 1 }, p2[4] = { 0, 3, 1, 3 };
    CU_ASSERT(metric_balanced_accuracy(l2, p2, 4, 4) == 0.5);
    // one class only: its recall
    int l3[4] = { 2, 2, 2, 2 }, p3[4] = { 2, 0, 2, 2 };
    CU_ASSERT(metric_balanced_accuracy(l3, p3, 4, 3) == 0.75);
    CU_ASSERT(isnan(metric_balanced_accuracy(l3, p3, 0, 3)));
    double none[6] = { 0 };
    CU_ASSERT(isnan(metric_balanced_accuracy_tally(none, 3)));
}

// The tally form, fed sums as a training loop makes them, gives the array form's value.
static void test_bacc_tally(void) {
    Rng g;
    rng_seed(&g, 11);
    enum { N = 257, K = 5 };
    int label[N], pred[N];
    double tally[K * 2] = { 0 };
    for (int i = 0; i < N; i++) {
        label[i] = (int)rng_below(&g, K - 1);  // class K-1 never a label
        pred[i] = rng_uniform(&g) < 0.6 ? label[i] : (int)rng_below(&g, K);
        tally[2 * label[i]] += 1;
        tally[2 * label[i] + 1] += pred[i] == label[i];
    }
    double a = metric_balanced_accuracy(label, pred, N, K), t = metric_balanced_accuracy_tally(tally, K);
    CU_ASSERT(a == t);
    CU_ASSERT(a > 0.5 && a < 1);
    // the hand case as tallies: class 0 {2, 1}, 1 {3, 2}, 2 {1, 0}
    double hand[6] = { 2, 1, 3, 2, 1, 0 };
    CU_ASSERT(tu_near(metric_balanced_accuracy_tally(hand, 3), 7.0 / 18, 1e-15, 0, "tally by hand"));
}

// Groups 0: hits 1 1 0 (2/3); 1: empty; 2: 1 0 0 (1/3); 3: 0 1 1 (2/3); one sample in no
// group (-1) and one at n_groups (out of range), both ignored. Worst: group 2.
static void test_groups(void) {
    int group[11] = { 0, 0, 0, 2, 2, 2, 3, 3, 3, -1, 4 };
    int hit[11] = { 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0 };
    double acc[4];
    int count[4];
    CU_ASSERT(metric_group_accuracy(acc, count, group, hit, 11, 4) == 2);
    CU_ASSERT(count[0] == 3 && count[1] == 0 && count[2] == 3 && count[3] == 3);
    CU_ASSERT(tu_near(acc[0], 2.0 / 3, 1e-15, 0, "group 0") && tu_near(acc[2], 1.0 / 3, 1e-15, 0, "group 2"));
    CU_ASSERT(isnan(acc[1]));  // empty: NAN (and never the worst)
    // ties: group 2's samples moved to group 1 with hits 1 1 0: groups 0, 1, 3 all 2/3 and
    // group 2 empty: the lowest index of the three
    group[3] = group[4] = group[5] = 1;
    hit[4] = 1;
    CU_ASSERT(metric_group_accuracy(acc, count, group, hit, 11, 4) == 0);
    // an empty group first must not become the worst
    int g2[3] = { 1, 1, 2 }, h2[3] = { 1, 1, 1 };
    CU_ASSERT(metric_group_accuracy(acc, count, g2, h2, 3, 3) == 1);
    CU_ASSERT(isnan(acc[0]) && count[0] == 0 && acc[1] == 1 && acc[2] == 1);
    // every group empty (all samples outside, or none): -1, all NAN
    int g3[2] = { -1, -5 };
    CU_ASSERT(metric_group_accuracy(acc, count, g3, h2, 2, 3) == -1);
    CU_ASSERT(isnan(acc[0]) && isnan(acc[1]) && isnan(acc[2]) && count[0] + count[1] + count[2] == 0);
    CU_ASSERT(metric_group_accuracy(acc, count, g3, h2, 0, 3) == -1);
}

// Every case of tests/ref/metrics_sklearn.txt. Balanced accuracy: a mean of a few ratios, as
// sklearn sums them (1e-15). AUC: sklearn integrates the ROC curve with the trapezoid rule
// over rates divided by n_pos and n_neg, so it rounds differently from U / (n_pos n_neg):
// 1e-13, far below the 1 / (n_pos n_neg) >= 1e-4 that one mis-ranked pair would move it.
static void test_sklearn(void) {
    RefFile f;
    CU_ASSERT_FATAL(tu_ref_load(&f, "metrics_sklearn.txt") == 0);
    RefTensor *counts = tu_ref_get(&f, "counts");
    CU_ASSERT_FATAL(counts && counts->n == 2);
    char name[64], what[64];
    for (int c = 0; c < (int)counts->v[0]; c++) {
        snprintf(name, sizeof name, "bacc%d.label", c);
        RefTensor *l = tu_ref_get(&f, name);
        snprintf(name, sizeof name, "bacc%d.pred", c);
        RefTensor *p = tu_ref_get(&f, name);
        snprintf(name, sizeof name, "bacc%d.K", c);
        RefTensor *k = tu_ref_get(&f, name);
        snprintf(name, sizeof name, "bacc%d.value", c);
        RefTensor *v = tu_ref_get(&f, name);
        CU_ASSERT_FATAL(l && p && k && v && l->n == p->n);
        int n = (int)l->n, *label = malloc(n * sizeof(int)), *pred = malloc(n * sizeof(int));
        for (int i = 0; i < n; i++) { label[i] = (int)l->v[i]; pred[i] = (int)p->v[i]; }
        snprintf(what, sizeof what, "sklearn bacc%d", c);
        CU_ASSERT(tu_near(metric_balanced_accuracy(label, pred, n, (int)k->v[0]), v->v[0], 1e-15, 0, what));
        free(label); free(pred);
    }
    for (int c = 0; c < (int)counts->v[1]; c++) {
        snprintf(name, sizeof name, "auc%d.score", c);
        RefTensor *s = tu_ref_get(&f, name);
        snprintf(name, sizeof name, "auc%d.positive", c);
        RefTensor *p = tu_ref_get(&f, name);
        snprintf(name, sizeof name, "auc%d.value", c);
        RefTensor *v = tu_ref_get(&f, name);
        CU_ASSERT_FATAL(s && p && v && s->n == p->n);
        int n = (int)s->n, *pos = malloc(n * sizeof(int));
        for (int i = 0; i < n; i++) pos[i] = (int)p->v[i];
        snprintf(what, sizeof what, "sklearn auc%d", c);
        CU_ASSERT(tu_near(metric_roc_auc(s->v, pos, n), v->v[0], 1e-13, 0, what));
        free(pos);
    }
    tu_ref_free(&f);
}

int main(void) {
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    CU_add_test(s, "ROC AUC with ties, by hand", test_auc_hand);
    CU_add_test(s, "ROC AUC undefined: one class, n = 0, NaN", test_auc_undefined);
    CU_add_test(s, "balanced accuracy by hand", test_bacc_hand);
    CU_add_test(s, "balanced accuracy from tallies", test_bacc_tally);
    CU_add_test(s, "group accuracy and the worst group", test_groups);
    CU_add_test(s, "against scikit-learn", test_sklearn);
    return tu_run_all();
}
