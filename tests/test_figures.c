// test_figures.c: an epoch's validation figures as the run assembles them (run/figures.c) --
// predictions recorded batch by batch at their positions in the split, by 1, 2 or 3
// simulated ranks, summed, then computed -- on a case worked out by hand; the groups a
// schema gives; and the command line as run.json records it (run/record.c).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "run/figures.h"
#include "run/record.h"
#include "testutil.h"

// Eight validation samples, binary task, one logit (K = 1: predicted 1 when the logit > 0),
// metadata column 0 = site (levels 0, 1, 2), column 1 = age (continuous, not a group).
//   sample  label  logit   pred  hit  site
//     0       0    -2.0     0     1    0
//     1       0     0.5     1     0    0
//     2       0    -1.0     0     1    1
//     3       0     0.5     1     0    2
//     4       1     2.0     1     1    0
//     5       1    -0.5     0     0    1
//     6       1     0.5     1     1    1
//     7       1     3.0     1     1    2
// Accuracy 5/8; balanced: class 0 2/4, class 1 3/4 -> 0.625. AUC over the 16 (positive,
// negative) pairs: positives 2.0 and 3.0 beat all 4 negatives (8); 0.5 beats -2 and -1 and
// ties the two 0.5 (2 + 1); -0.5 beats -2 and -1 (2): (8 + 3 + 2) / 16 = 13/16.
// Sites: 0 = samples 0, 1, 4 -> 2/3; 1 = 2, 5, 6 -> 2/3; 2 = 3, 7 -> 1/2 (the worst).
static const float logit[8] = { -2.0f, 0.5f, -1.0f, 0.5f, 2.0f, -0.5f, 0.5f, 3.0f };
static const int32_t label[8] = { 0, 0, 0, 0, 1, 1, 1, 1 };
static const double site[8] = { 0, 0, 1, 2, 0, 1, 1, 2 };

static MetaSchema schema(void) {
    MetaSchema s;
    memset(&s, 0, sizeof s);
    s.n_cols = 2;
    snprintf(s.names[0], META_NAME_LEN, "site");
    snprintf(s.names[1], META_NAME_LEN, "age");
    s.categorical[0] = 1;
    s.n_levels[0] = 3;
    const char *names[3] = { "A", "B", "C" };
    for (int l = 0; l < 3; l++) s.levels[0][l] = l, snprintf(s.level_names[0][l], META_NAME_LEN, "%s", names[l]);
    s.n_classes = 2;
    return s;
}

// The split recorded by `ranks` ranks in batches of 3 (rank r takes its share of each batch,
// as the loader gives it), each into its own zeroed table, then summed as the run does.
static void figures_at(Figures *f, int ranks) {
    MetaSchema s = schema();
    GroupSet g;
    groups_from_schema(&g, &s);
    FigureRecorder total;
    figures_recorder_init(&total, 8, 1);
    double meta_total[16] = { 0 };
    for (int r = 0; r < ranks; r++) {
        FigureRecorder mine;
        figures_recorder_init(&mine, 8, 1);
        double meta_mine[16] = { 0 };
        for (int start = 0; start < 8; start += 3) {
            int global = start + 3 <= 8 ? 3 : 8 - start, lo = global * r / ranks, hi = global * (r + 1) / ranks;
            double meta[6];
            int32_t lab[3];
            for (int i = lo; i < hi; i++) {
                meta[(i - lo) * 2] = site[start + i], meta[(i - lo) * 2 + 1] = 40 + i;
                lab[i - lo] = label[start + i];
            }
            Batch b = { .n = hi - lo, .first_sample = start + lo, .labels = lab, .meta = meta, .n_meta = 2 };
            figures_record(&mine, logit + start + lo, &b);
            figures_record_meta(meta_mine, 2, &b, 8);
        }
        for (int q = 0; q < 32; q++) total.rows[q] += mine.rows[q];
        for (int q = 0; q < 16; q++) meta_total[q] += meta_mine[q];
        figures_recorder_free(&mine);
    }
    figures_compute(f, &total, meta_total, 2, &g);
    figures_recorder_free(&total);
}

static void test_by_hand(void) {
    for (int ranks = 1; ranks <= 3; ranks++) {
        Figures f;
        figures_at(&f, ranks);
        CU_ASSERT(fabs(f.bal_acc - 0.625) < 1e-15);
        CU_ASSERT(fabs(f.auc - 13.0 / 16) < 1e-15);
        CU_ASSERT(fabs(f.group_acc[0] - 2.0 / 3) < 1e-15 && f.group_n[0] == 3);
        CU_ASSERT(fabs(f.group_acc[1] - 2.0 / 3) < 1e-15 && f.group_n[1] == 3);
        CU_ASSERT(fabs(f.group_acc[2] - 0.5) < 1e-15 && f.group_n[2] == 2);
        CU_ASSERT(f.worst == 2);
    }
}

// Groups: categorical columns only, absent ones skipped, named "column=level".
static void test_groups(void) {
    MetaSchema s = schema();
    GroupSet g;
    groups_from_schema(&g, &s);
    CU_ASSERT(g.n == 3 && strcmp(g.name[0], "site=A") == 0 && strcmp(g.name[2], "site=C") == 0);
    s.absent[0] = 1;
    groups_from_schema(&g, &s);
    CU_ASSERT(g.n == 0);
}

// Three classes, K = 3: no AUC; a class with no validation sample leaves balanced accuracy
// to the classes present; a group nobody is in is NAN and never the worst.
static void test_multiclass(void) {
    MetaSchema s = schema();
    GroupSet g;
    groups_from_schema(&g, &s);
    float out[4 * 3] = { 5, 0, 0, /**/ 0, 5, 0, /**/ 5, 0, 0, /**/ 0, 5, 0 };  // preds 0, 1, 0, 1
    int32_t lab[4] = { 0, 1, 1, 1 };  // class 2 absent: recall 1 and 2/3 -> 5/6
    double meta[8] = { 0, 1, 0, 1, 1, 1, 1, 1 };  // sites A, A, B, B; C empty
    FigureRecorder r;
    figures_recorder_init(&r, 4, 3);
    double meta_rows[8] = { 0 };
    Batch b = { .n = 4, .first_sample = 0, .labels = lab, .meta = meta, .n_meta = 2 };
    figures_record(&r, out, &b);
    figures_record_meta(meta_rows, 2, &b, 4);
    Figures f;
    figures_compute(&f, &r, meta_rows, 2, &g);
    CU_ASSERT(fabs(f.bal_acc - 5.0 / 6) < 1e-15);
    CU_ASSERT(isnan(f.auc));
    CU_ASSERT(f.group_n[2] == 0 && isnan(f.group_acc[2]));
    CU_ASSERT(f.worst == 1 && fabs(f.group_acc[1] - 0.5) < 1e-15);  // site B: 1 of 2
    figures_recorder_free(&r);
}

static void test_quote(void) {
    char *argv[] = { "train", "a b.ini", "--set", "train.out_dir=it's", "--set", "data.n=5" };
    char *q = record_quote_command(6, argv);
    CU_ASSERT_STRING_EQUAL(q, "deconfound train 'a b.ini' --set 'train.out_dir=it'\\''s' --set data.n=5");
    free(q);
}

int main(void) {
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("figures", NULL, NULL);
    CU_add_test(s, "figures by hand, recorded by 1, 2 and 3 ranks", test_by_hand);
    CU_add_test(s, "groups from a schema", test_groups);
    CU_add_test(s, "three classes: no AUC, absent class, empty group", test_multiclass);
    CU_add_test(s, "the command line, shell-quoted", test_quote);
    return tu_run_all();
}
