// test_cohort.c: metadata by name (data/cohort.c) and the network's schema (nn/metadata.c).
//   - the schema of unnamed and named levels and classes, and its text form round trip;
//   - data recoded to a trained model's schema: a subset of the levels, levels numbered
//     otherwise, an unseen level or class (an error naming column and level), a column the
//     data lack (refused by a layer that uses it), columns the model lacks;
//   - shards combined: level and class lists merged by name, or refused naming both files.
#include "testutil.h"
#include "data/cohort.h"
#include "nn/metadata.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// A cohort of metadata only: columns age (continuous) and site (categorical), n samples with
// the given site values and labels; `site_names` (|-separated) names the site levels, and
// `class_names` the classes, when non-NULL.
static void make(Cohort *c, int n, const double *sites, const int *labels, const char *site_names, const char *class_names) {
    cohort_alloc(c, n, (Shape){ 1, 1, 1, 1 }, 2);
    c->columns[0] = xstrdup("age");
    c->kinds[0] = META_CONTINUOUS;
    c->columns[1] = xstrdup("site");
    c->kinds[1] = META_CATEGORICAL;
    for (int i = 0; i < n; i++) {
        c->meta[i * 2] = 20.0 + i;
        c->meta[i * 2 + 1] = sites[i];
        c->labels[i] = labels[i];
    }
    char buf[256], *save = NULL;
    if (site_names) {
        snprintf(buf, sizeof buf, "%s", site_names);
        c->levels[1] = xcalloc(16, sizeof(char *));
        for (char *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save)) c->levels[1][c->n_levels[1]++] = xstrdup(t);
    }
    if (class_names) {
        snprintf(buf, sizeof buf, "%s", class_names);
        c->label_names = xcalloc(16, sizeof(char *));
        for (char *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save))
            c->label_names[c->n_label_names++] = xstrdup(t);
    }
}

static void test_schema(void) {
    Cohort c;
    MetaSchema s, t;
    DfError err;
    double sites[] = { 5, 0, 2, 0 };
    int labels[] = { 0, 1, 1, 0 };
    make(&c, 4, sites, labels, NULL, NULL);
    CU_ASSERT_FATAL(meta_schema_build(&s, &c, &err) == 0);
    CU_ASSERT_EQUAL(s.n_cols, 2);
    CU_ASSERT(!s.categorical[0] && s.categorical[1] && !s.named_levels[1]);
    CU_ASSERT_EQUAL(s.n_levels[1], 3);
    CU_ASSERT(s.levels[1][0] == 0 && s.levels[1][1] == 2 && s.levels[1][2] == 5);
    CU_ASSERT_STRING_EQUAL(s.level_names[1][2], "5");
    CU_ASSERT(s.n_classes == 2 && !s.named_classes);
    char *text = meta_schema_to_text(&s), why[256];
    CU_ASSERT_FATAL(meta_schema_from_text(&t, text, "x", &err) == 0);
    CU_ASSERT(meta_schema_equal(&s, &t, why, sizeof why));
    free(text);
    cohort_free(&c);

    // named levels and classes: the names, values indexing them
    double named[] = { 1, 0, 1, 2 };
    make(&c, 4, named, labels, "GE|Philips|Siemens", "AD|CN");
    CU_ASSERT_FATAL(meta_schema_build(&s, &c, &err) == 0);
    CU_ASSERT(s.named_levels[1] && s.named_classes);
    CU_ASSERT_STRING_EQUAL(s.level_names[1][1], "Philips");
    CU_ASSERT_STRING_EQUAL(s.class_names[1], "CN");
    text = meta_schema_to_text(&s);
    CU_ASSERT_FATAL(meta_schema_from_text(&t, text, "x", &err) == 0);
    CU_ASSERT(meta_schema_equal(&s, &t, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(t.level_names[1][2], "Siemens");
    // a different schema is told apart, with the difference
    snprintf(t.level_names[1][2], META_NAME_LEN, "Toshiba");
    CU_ASSERT(!meta_schema_equal(&s, &t, why, sizeof why));
    CU_ASSERT(tu_contains(why, "Siemens") && tu_contains(why, "Toshiba"));
    // damaged texts are errors naming the line
    text[strlen(text) - 3] = '\0';
    CU_ASSERT(meta_schema_from_text(&t, "deconfound-meta-schema 1\nclasses\t2\t0\nrow\tx\n", "ck.h5: schema", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "ck.h5: schema: line 3"));
    CU_ASSERT(meta_schema_from_text(&t, "deconfound-meta-schema 1\nclasses\t2\t0\ncolumn\tsite\tcategorical\t0\t2\nlevel\t0\ta\n",
                                    "x", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "ends early"));
    CU_ASSERT(meta_schema_from_text(&t, "", "x", &err) == -1);
    free(text);
    cohort_free(&c);
}

// The model: trained on sites 0, 1, 2 (unnamed), classes 0/1.
static void model_schema(MetaSchema *m) {
    Cohort c;
    DfError err;
    double sites[] = { 0, 1, 2, 1, 0, 2 };
    int labels[] = { 0, 1, 0, 1, 1, 0 };
    make(&c, 6, sites, labels, NULL, NULL);
    CU_ASSERT_FATAL(meta_schema_build(m, &c, &err) == 0);
    cohort_free(&c);
}

static void test_map_unnamed(void) {
    MetaSchema *m = malloc(sizeof *m), *mapped = malloc(sizeof *mapped);
    model_schema(m);
    Cohort c;
    DfError err;
    // a subset of the sites: the same codes, nothing absent
    double sub[] = { 1, 0, 1 };
    int labels[] = { 1, 0, 0 };
    make(&c, 3, sub, labels, NULL, NULL);
    CU_ASSERT_FATAL(cohort_map_to_schema(&c, m, mapped, "sub.h5", &err) == 0);
    CU_ASSERT(c.meta[1] == 1 && c.meta[3] == 0 && c.meta[5] == 1 && c.meta[0] == 20);
    CU_ASSERT(!mapped->absent[0] && !mapped->absent[1]);
    cohort_free(&c);
    // the sites numbered 10, 11, 12: never seen -- one message naming the column and level
    double renum[] = { 10, 11, 12 };
    make(&c, 3, renum, labels, NULL, NULL);
    CU_ASSERT(cohort_map_to_schema(&c, m, mapped, "renum.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "renum.h5") && tu_contains(err.msg, "'site'") && tu_contains(err.msg, "'10'") &&
              tu_contains(err.msg, "sample 0") && tu_contains(err.msg, "0, 1, 2"));
    cohort_free(&c);
    // named sites "0", "2": matched by name to the model's numbers
    double named[] = { 1, 0, 1 };
    make(&c, 3, named, labels, "0|2", NULL);
    CU_ASSERT_FATAL(cohort_map_to_schema(&c, m, mapped, "named.h5", &err) == 0);
    CU_ASSERT(c.meta[1] == 2 && c.meta[3] == 0 && c.meta[5] == 2);
    CU_ASSERT_EQUAL(c.n_levels[1], 0);  // the model's levels are plain numbers
    cohort_free(&c);
    // a class the model never saw
    int three[] = { 0, 2, 1 };
    make(&c, 3, sub, three, NULL, NULL);
    CU_ASSERT(cohort_map_to_schema(&c, m, mapped, "cls.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "cls.h5") && tu_contains(err.msg, "class '2'") && tu_contains(err.msg, "sample 1"));
    cohort_free(&c);
    free(m);
    free(mapped);
}

static void test_map_named(void) {
    MetaSchema *m = malloc(sizeof *m), *mapped = malloc(sizeof *mapped);
    Cohort c;
    DfError err;
    // trained on sites A, B, C (values 0, 1, 2) and classes AD, CN
    double train_sites[] = { 0, 1, 2, 1 };
    int train_labels[] = { 0, 1, 1, 0 };
    make(&c, 4, train_sites, train_labels, "A|B|C", "AD|CN");
    CU_ASSERT_FATAL(meta_schema_build(m, &c, &err) == 0);
    cohort_free(&c);
    // evaluated on a set packed alone with sites B and C only (its values 0 and 1) and only
    // class CN (its class 0): each recoded by name to the model's numbers
    double sites[] = { 0, 1, 1 };
    int labels[] = { 0, 0, 0 };
    make(&c, 3, sites, labels, "B|C", "CN");
    CU_ASSERT_FATAL(cohort_map_to_schema(&c, m, mapped, "bc.h5", &err) == 0);
    CU_ASSERT(c.meta[1] == 1 && c.meta[3] == 2 && c.meta[5] == 2);
    CU_ASSERT(c.labels[0] == 1 && c.labels[2] == 1);
    CU_ASSERT_FATAL(c.n_levels[1] == 3 && c.n_label_names == 2);  // the model's names now
    CU_ASSERT_STRING_EQUAL(c.levels[1][2], "C");
    CU_ASSERT_STRING_EQUAL(c.label_names[1], "CN");
    cohort_free(&c);
    // a site D: never seen
    make(&c, 3, sites, labels, "B|D", "CN");
    CU_ASSERT(cohort_map_to_schema(&c, m, mapped, "bd.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "'D'") && tu_contains(err.msg, "A, B, C"));
    cohort_free(&c);
    // plain numbers where the model has names: no name matches
    make(&c, 3, sites, labels, NULL, "CN");
    CU_ASSERT(cohort_map_to_schema(&c, m, mapped, "plain.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "level '0'"));
    cohort_free(&c);
    free(m);
    free(mapped);
}

static void test_map_columns(void) {
    MetaSchema *m = malloc(sizeof *m), *mapped = malloc(sizeof *mapped);
    model_schema(m);
    DfError err;
    // data with columns (scanner, site): age absent, scanner extra
    Cohort c;
    cohort_alloc(&c, 2, (Shape){ 1, 1, 1, 1 }, 2);
    c.columns[0] = xstrdup("scanner");
    c.kinds[0] = META_CONTINUOUS;
    c.columns[1] = xstrdup("site");
    c.kinds[1] = META_CATEGORICAL;
    c.meta[0] = 1.5; c.meta[1] = 2;
    c.meta[2] = 3.5; c.meta[3] = 0;
    CU_ASSERT_FATAL(cohort_map_to_schema(&c, m, mapped, "cols.h5", &err) == 0);
    CU_ASSERT_EQUAL_FATAL(c.k, 3);  // age (absent), site, then scanner
    CU_ASSERT_STRING_EQUAL(c.columns[0], "age");
    CU_ASSERT_STRING_EQUAL(c.columns[2], "scanner");
    CU_ASSERT(isnan(c.meta[0]) && c.meta[1] == 2 && c.meta[2] == 1.5 && c.meta[4] == 0 && c.meta[5] == 3.5);
    CU_ASSERT(mapped->absent[0] && !mapped->absent[1]);
    // a layer that removes age refuses to build, naming it; one that removes site builds
    MetaDesign d;
    CU_ASSERT(meta_design_build(&d, mapped, "label", "age, site", "cfg.ini:3: [mdn] mdn1", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "cfg.ini:3") && tu_contains(err.msg, "no column 'age'"));
    CU_ASSERT(meta_design_build(&d, mapped, "label", "site", "cfg", &err) == 0);
    cohort_free(&c);
    // a column of another kind
    double sites[] = { 0, 1 };
    int labels[] = { 0, 1 };
    make(&c, 2, sites, labels, NULL, NULL);
    c.kinds[1] = META_CONTINUOUS;
    CU_ASSERT(cohort_map_to_schema(&c, m, mapped, "kind.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "'site' is continuous") && tu_contains(err.msg, "as categorical"));
    cohort_free(&c);
    free(m);
    free(mapped);
}

static void test_append(void) {
    DfError err;
    Cohort all, a, b;
    memset(&all, 0, sizeof all);
    // shard a: sites A, B (0, 1), classes AD, CN; shard b: sites B, C (0, 1), class CN only
    double sa[] = { 0, 1, 1 }, sb[] = { 1, 0 };
    int la[] = { 0, 1, 0 }, lb[] = { 0, 0 };
    make(&a, 3, sa, la, "A|B", "AD|CN");
    make(&b, 2, sb, lb, "B|C", "CN");
    CU_ASSERT_FATAL(cohort_append(&all, "a.h5", &a, "a.h5", &err) == 0);
    CU_ASSERT_FATAL(cohort_append(&all, "a.h5", &b, "b.h5", &err) == 0);
    CU_ASSERT_EQUAL_FATAL(all.n, 5);
    CU_ASSERT_EQUAL_FATAL(all.n_levels[1], 3);
    CU_ASSERT(!strcmp(all.levels[1][0], "A") && !strcmp(all.levels[1][1], "B") && !strcmp(all.levels[1][2], "C"));
    double want[] = { 0, 1, 1, 2, 1 };  // b's C (its 1) is 2, its B (its 0) is 1
    for (int i = 0; i < 5; i++) CU_ASSERT(all.meta[i * 2 + 1] == want[i]);
    CU_ASSERT(all.labels[3] == 1 && all.labels[4] == 1 && all.labels[0] == 0);
    cohort_free(&all);
    cohort_free(&b);
    // numbered level names sort as numbers, as pack numbers them: "2" before "10"
    memset(&all, 0, sizeof all);
    Cohort n1, n2;
    make(&n1, 3, sa, la, "2|10", NULL);  // rows: 2, 10, 10
    make(&n2, 2, sb, lb, "1|2", NULL);   // rows: 2, 1
    CU_ASSERT_FATAL(cohort_append(&all, "n1.h5", &n1, "n1.h5", &err) == 0);
    CU_ASSERT_FATAL(cohort_append(&all, "n1.h5", &n2, "n2.h5", &err) == 0);
    CU_ASSERT_FATAL(all.n_levels[1] == 3);
    CU_ASSERT(!strcmp(all.levels[1][0], "1") && !strcmp(all.levels[1][1], "2") && !strcmp(all.levels[1][2], "10"));
    double want2[] = { 1, 2, 2, 1, 0 };
    for (int i = 0; i < 5; i++) CU_ASSERT(all.meta[i * 2 + 1] == want2[i]);
    cohort_free(&all);
    cohort_free(&n1);
    cohort_free(&n2);
    // names on one side only: refused, naming both files
    memset(&all, 0, sizeof all);
    make(&b, 2, sb, lb, NULL, "CN");
    CU_ASSERT_FATAL(cohort_append(&all, "a.h5", &a, "a.h5", &err) == 0);
    CU_ASSERT(cohort_append(&all, "a.h5", &b, "b.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "b.h5") && tu_contains(err.msg, "a.h5") && tu_contains(err.msg, "'site'"));
    cohort_free(&all);
    cohort_free(&b);
    // plain numbers on both sides stay as they are
    memset(&all, 0, sizeof all);
    cohort_free(&a);
    make(&a, 3, sa, la, NULL, NULL);
    make(&b, 2, sb, lb, NULL, NULL);
    CU_ASSERT_FATAL(cohort_append(&all, "a.h5", &a, "a.h5", &err) == 0);
    CU_ASSERT_FATAL(cohort_append(&all, "a.h5", &b, "b.h5", &err) == 0);
    CU_ASSERT(all.meta[7] == 1 && all.meta[9] == 0 && all.n_levels[1] == 0);
    cohort_free(&all);
    cohort_free(&b);
    // another column: refused, naming both files
    memset(&all, 0, sizeof all);
    make(&b, 2, sb, lb, NULL, NULL);
    free(b.columns[1]);
    b.columns[1] = xstrdup("scanner");
    CU_ASSERT_FATAL(cohort_append(&all, "a.h5", &a, "a.h5", &err) == 0);
    CU_ASSERT(cohort_append(&all, "a.h5", &b, "b.h5", &err) == -1);
    CU_ASSERT(tu_contains(err.msg, "b.h5") && tu_contains(err.msg, "a.h5") && tu_contains(err.msg, "'scanner'"));
    cohort_free(&all);
    cohort_free(&b);
    cohort_free(&a);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("cohort metadata by name", NULL, NULL);
    CU_add_test(s, "schema: levels, classes, text form", test_schema);
    CU_add_test(s, "recoding to a model: plain numbers", test_map_unnamed);
    CU_add_test(s, "recoding to a model: named levels and classes", test_map_named);
    CU_add_test(s, "recoding to a model: absent and extra columns", test_map_columns);
    CU_add_test(s, "combining shards by name", test_append);
    return tu_run_all();
}
