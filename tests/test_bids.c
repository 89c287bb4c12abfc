// test_bids.c: the BIDS reader (data/bids.c) and its JSON reader (data/json.c).
//   - JSON: every value type, escapes (\u with surrogate pairs), numbers by the grammar,
//     nesting; each strictness error naming file:line:column;
//   - TSV: tabs, quotes, CRLF, BOM, blank lines, '#' as data, ragged rows naming file:line;
//   - bids_read on trees of empty image files (it reads no image): rows in participants.tsv
//     order, subjects, labels, units converted to years (months, weeks, days), sessions.tsv
//     overriding per session (its own sidecar, else the root sessions.json), kinds from
//     Levels / Units / declarations, missing data reported or dropped, subject lists, and
//     errors naming the file and line a bad value came from.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"
#include "data/bids.h"
#include "data/json.h"

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

// ---- JSON ---------------------------------------------------------------------------------

static void test_json_values(void) {
    JsonValue v;
    DfError err = { "" };
    const char *text =
        "\xEF\xBB\xBF{\n"
        "  \"age\": {\"Units\": \"months\", \"Levels\": {}},\n"
        "  \"list\": [1, -2.5e3, 0.25, true, false, null, [], \"x\"],\n"
        "  \"esc\": \"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\",\n"
        "  \"raw\": \"caf\xC3\xA9\"\n"
        "}\n";
    CU_ASSERT_EQUAL_FATAL(json_parse(&v, text, "t.json", &err), 0);
    CU_ASSERT_EQUAL(v.type, JSON_OBJECT);
    CU_ASSERT_EQUAL(v.n, 4);
    const JsonValue *age = json_get(&v, "age"), *list = json_get(&v, "list");
    CU_ASSERT_FATAL(age && list);
    CU_ASSERT_STRING_EQUAL(json_get(age, "Units")->string, "months");
    CU_ASSERT_EQUAL(json_get(age, "Levels")->type, JSON_OBJECT);
    CU_ASSERT_EQUAL(json_get(age, "Levels")->n, 0);
    CU_ASSERT_EQUAL(age->line, 2);
    CU_ASSERT_EQUAL(age->col, 10);
    CU_ASSERT_EQUAL(list->n, 8);
    CU_ASSERT_DOUBLE_EQUAL(list->items[1].number, -2500.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(list->items[2].number, 0.25, 0);
    CU_ASSERT(list->items[3].type == JSON_BOOL && list->items[3].boolean == 1);
    CU_ASSERT(list->items[4].type == JSON_BOOL && list->items[4].boolean == 0);
    CU_ASSERT_EQUAL(list->items[5].type, JSON_NULL);
    CU_ASSERT_EQUAL(list->items[6].type, JSON_ARRAY);
    CU_ASSERT_STRING_EQUAL(json_get(&v, "esc")->string, "a\"b\\c/d\n\t\xC3\xA9\xF0\x9F\x98\x80");
    CU_ASSERT_STRING_EQUAL(json_get(&v, "raw")->string, "caf\xC3\xA9");
    CU_ASSERT_PTR_NULL(json_get(&v, "none"));
    CU_ASSERT_PTR_NULL(json_get(list, "age"));  // not an object
    json_free(&v);
}

static void test_json_errors(void) {
    struct { const char *text, *needle; } bad[] = {
        { "{\"a\": 1,}", "t.json:1:9: a trailing comma" },
        { "[1, 2,]", "t.json:1:7: a trailing comma" },
        { "{\"a\": 1, \"a\": 2}", "t.json:1:10: a member name appears twice in this object: 'a'" },
        { "{\"a\": 1\n \"b\": 2}", "t.json:2:2: expected ',' or '}'" },
        { "{a: 1}", "t.json:1:2: expected a member name in double quotes" },
        { "{\"a\" 1}", "t.json:1:6: expected ':' after a member name" },
        { "// comment\n{}", "t.json:1:1: expected a value" },
        { "{\"a\": 01}", "t.json:1:8: expected ',' or '}'" },
        { "{\"a\": 1.}", "t.json:1:9: a digit must follow the decimal point" },
        { "{\"a\": 1e}", "t.json:1:9: a digit must follow the exponent" },
        { "{\"a\": +1}", "t.json:1:7: expected a value" },
        { "{\"a\": \"x\ty\"}", "a control character in a string" },
        { "{\"a\": \"\\q\"}", "t.json:1:9: unknown escape" },
        { "{\"a\": \"\\u12\"}", "\\u needs four hex digits" },
        { "{\"a\": \"\\ud83d\"}", "a high surrogate \\u escape without its low half" },
        { "{\"a\": \"\\u0000\"}", "\\u0000 in a string" },
        { "{\"a\": \"open", "unterminated string" },
        { "{\"a\": [1, 2", "(the text ends here)" },
        { "{} {}", "t.json:1:4: text after the JSON value" },
        { "  \n ", "t.json: empty" },
        { "tru", "t.json:1:1: expected a value" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        JsonValue v;
        DfError err = { "" };
        CU_ASSERT_EQUAL(json_parse(&v, bad[i].text, "t.json", &err), -1);
        CU_ASSERT(tu_contains(err.msg, bad[i].needle));
        CU_ASSERT_EQUAL(v.n, 0);  // freed
    }
    // 64 levels parse, 65 do not.
    char deep[200];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    JsonValue v;
    DfError err;
    CU_ASSERT_EQUAL(json_parse(&v, deep, "t.json", &err), 0);
    json_free(&v);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    CU_ASSERT_EQUAL(json_parse(&v, deep, "t.json", &err), -1);
    CU_ASSERT(tu_contains(err.msg, "nested more than 64 levels"));
}

// ---- TSV ----------------------------------------------------------------------------------

static void test_tsv(void) {
    CsvTable t;
    DfError err = { "" };
    const char *text = "\xEF\xBB\xBFparticipant_id\tage\tnote\r\n"
                       "sub-01\t 71 \t\"a\tb \"\"q\"\"\"\r\n"
                       "\n"
                       "#sub-02\tn/a\t\n"
                       "sub-03\t\t\n";
    CU_ASSERT_EQUAL_FATAL(bids_tsv_parse(&t, text, "p.tsv", &err), 0);
    CU_ASSERT_EQUAL(t.ncols, 3);
    CU_ASSERT_EQUAL(t.nrows, 3);
    CU_ASSERT_STRING_EQUAL(t.header[0], "participant_id");
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 0, 1), "71");
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 0, 2), "a\tb \"q\"");
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 1, 0), "#sub-02");  // no comments in BIDS TSV
    CU_ASSERT_STRING_EQUAL(csv_cell(&t, 2, 1), "");
    CU_ASSERT_EQUAL(t.line[1], 4);
    CU_ASSERT_EQUAL(t.line[2], 5);
    csv_free(&t);
    struct { const char *text, *needle; } bad[] = {
        { "a\tb\n1\t2\t3\n", "p.tsv:2: 3 fields, but the header has 2 columns (fields are separated by tabs)" },
        { "a,b\n1\t2\n", "p.tsv:2: 2 fields, but the header has 1 columns" },
        { "a\ta\n", "p.tsv:1: header names column 'a' twice" },
        { "a\t\tb\n", "p.tsv:1: header column 2 has no name" },
        { "a\tb\n\"x\ty\n", "p.tsv:2: unterminated quoted value" },
        { "a\tb\n\"x\"y\t1\n", "p.tsv:2: text after a closing quote" },
        { "\n\n", "p.tsv: empty" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(bids_tsv_parse(&t, bad[i].text, "p.tsv", &err), -1);
        CU_ASSERT(tu_contains(err.msg, bad[i].needle));
    }
}

// ---- bids_read ------------------------------------------------------------------------------

// DIR/REL as an empty file (bids_read looks at names only), creating the folders.
static void touch(const char *dir, const char *rel) {
    char path[1024], cmd[2200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\" && : > '%s'", path, path);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static void put(const char *dir, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    write_text(path, text);
}

static BidsQuery query(const char *dir, const char *label, const char *conf) {
    BidsQuery q = { .dir = dir, .label = label, .confounders = conf };
    return q;
}

// Participants' values, units, Levels; rows in participants.tsv order, not folder order.
static void test_read_plain(void) {
    const char *d = tu_path("plain");
    touch(d, "sub-b/anat/sub-b_T1w.nii.gz");
    touch(d, "sub-a/anat/sub-a_acq-mp2rage_T1w.nii");
    touch(d, "sub-a/anat/sub-a_T2w.nii.gz");      // another suffix
    touch(d, "sub-a/anat/sub-a_T1w.json");        // a sidecar, not an image
    touch(d, "sub-c/anat/sub-c_T1w.nii.gz");
    put(d, "participants.tsv", "participant_id\tdx\tage\tweight_age\tdays\tsite\tscore\n"
                               "sub-b\tpatient\t24\t52\t730.5\t2\t1\n"
                               "sub-a\tcontrol\t36\t104\t365.25\t1\t3\n"
                               "sub-c\tpatient\t30\t78\t0\t2\t1\n");
    put(d, "participants.json", "{\"age\": {\"Units\": \"Months\"}, \"weight_age\": {\"Units\": \"weeks\"}, \"days\": {\"Units\": \"days\"},\n"
                                " \"site\": {\"Levels\": {\"1\": \"Paris\", \"2\": \"Oslo\"}}, \"score\": {\"Units\": \"points\"}, \"dx\": {\"Units\": \"months\"}}");
    BidsQuery q = query(d, "dx", "age,weight_age,days,site,score");
    Manifest m;
    BidsReport r;
    DfError err = { "" };
    CU_ASSERT_EQUAL_FATAL(bids_read(&m, &q, &r, &err), 0);
    CU_ASSERT_EQUAL(m.n, 3);
    CU_ASSERT_STRING_EQUAL(m.subjects[0], "sub-b");
    CU_ASSERT_STRING_EQUAL(m.subjects[1], "sub-a");
    CU_ASSERT(tu_contains(m.paths[1], "plain/sub-a/anat/sub-a_acq-mp2rage_T1w.nii"));
    CU_ASSERT(tu_contains(m.origin, "plain/participants.tsv"));
    CU_ASSERT_EQUAL(m.line[1], 3);
    CU_ASSERT_EQUAL(m.n_label_names, 2);
    CU_ASSERT_STRING_EQUAL(m.label_names[0], "control");
    CU_ASSERT(m.labels[0] == 1 && m.labels[1] == 0 && m.labels[2] == 1);
    CU_ASSERT_EQUAL(m.k, 5);
    CU_ASSERT_DOUBLE_EQUAL(m.meta[0 * 5 + 0], 2.0, 1e-12);        // 24 months
    CU_ASSERT_DOUBLE_EQUAL(m.meta[1 * 5 + 0], 3.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m.meta[0 * 5 + 1], 52 * 7 / 365.25, 1e-12);  // weeks
    CU_ASSERT_DOUBLE_EQUAL(m.meta[1 * 5 + 2], 1.0, 1e-12);        // 365.25 days
    CU_ASSERT_DOUBLE_EQUAL(m.meta[0 * 5 + 2], 2.0, 1e-12);
    CU_ASSERT(m.kinds[0] == META_CONTINUOUS);   // Units: continuous, though 2, 3, 2.5 years
    CU_ASSERT(m.kinds[3] == META_CATEGORICAL);  // Levels
    CU_ASSERT_STRING_EQUAL(m.levels[3][1], "2");  // the TSV's codes stay the level names
    CU_ASSERT(m.kinds[4] == META_CONTINUOUS);   // Units (not converted): continuous, not binary
    CU_ASSERT_EQUAL(r.n_dropped, 0);
    CU_ASSERT_EQUAL(r.n_units, 3);
    CU_ASSERT_STRING_EQUAL(r.units[0], "age: Months in participants.json, converted to years");
    CU_ASSERT_STRING_EQUAL(r.units[1], "weight_age: weeks in participants.json, converted to years");
    manifest_free(&m);
    bids_report_free(&r);
    // Declared kinds win over the sidecar's Units and Levels.
    q = query(d, "dx", "score,site");
    q.categorical = "score";
    q.continuous = "site";
    CU_ASSERT_EQUAL_FATAL(bids_read(&m, &q, &r, &err), 0);
    CU_ASSERT(m.kinds[0] == META_CATEGORICAL && m.kinds[1] == META_CONTINUOUS);
    manifest_free(&m);
    bids_report_free(&r);
    char *s = bids_describe(&q);
    CU_ASSERT(tu_contains(s, "bids:") && tu_contains(s, "plain suffix=T1w session=all label=dx confounders=score,site"));
    free(s);
}

// Sessions: sessions.tsv overrides per session (n/a there is missing), its own sidecar or
// the root sessions.json; --session; a bad value names the sessions file and line.
// REL under d made a dangling symbolic link (a DataLad or git-annex file not fetched): the
// read fails naming it and how to fetch it, even with drop_missing; the link is removed.
static void broken_link(const BidsQuery *q, const char *d, const char *rel, const char *want) {
    char link[1024];
    Manifest m;
    BidsReport r;
    DfError err = { "" };
    snprintf(link, sizeof link, "%s/%s", d, rel);
    CU_ASSERT(remove(link) == 0 && symlink("/nonexistent/annex/key", link) == 0);
    CU_ASSERT_EQUAL(bids_read(&m, q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, want) && tu_contains(err.msg, "datalad get"));
    if (!tu_contains(err.msg, want)) printf("\n  %s\n", err.msg);
    remove(link);
}

static void test_read_sessions(void) {
    const char *d = tu_path("ses");
    for (const char *const *p = (const char *const[]){ "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz", "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz",
                                                        "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz", "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz",
                                                        "sub-03/ses-1/anat/sub-03_ses-1_T1w.nii.gz", NULL }; *p; p++)
        touch(d, *p);
    put(d, "participants.tsv", "participant_id\tlabel\tage\nsub-01\t0\t20\nsub-02\t1\t30\nsub-03\t1\t40\n");
    put(d, "sessions.json", "{\"age\": {\"Units\": \"months\"}}");
    put(d, "sub-02/sub-02_sessions.json", "{\"age\": {\"Units\": \"years\"}}");
    put(d, "sub-01/sub-01_sessions.tsv", "session_id\tage\tscanner\nses-1\t240\tA\nses-2\t252\tB\n");
    put(d, "sessions.json", "{\"age\": {\"Units\": \"months\"}}");
    put(d, "sub-02/sub-02_sessions.json", "{\"age\": {\"Units\": \"years\"}}");
    put(d, "sub-02/sub-02_sessions.tsv", "session_id\tage\tscanner\nses-2\t31\tB\n");
    put(d, "sub-02/sub-02_sessions.json", "{\"age\": {\"Units\": \"years\"}}");
    BidsQuery q = query(d, "label", "age");
    Manifest m;
    BidsReport r;
    DfError err = { "" };
    CU_ASSERT_EQUAL_FATAL(bids_read(&m, &q, &r, &err), 0);
    CU_ASSERT_EQUAL(m.n, 5);
    double want[5] = { 20, 21, 30, 31, 40 };  // months -> years; not listed -> participant; years as they are
    for (int i = 0; i < 5; i++) CU_ASSERT_DOUBLE_EQUAL(m.meta[i], want[i], 1e-12);
    CU_ASSERT_STRING_EQUAL(m.subjects[1], "sub-01");
    CU_ASSERT_EQUAL(r.n_units, 1);
    CU_ASSERT_STRING_EQUAL(r.units[0], "age: months in sessions.json, converted to years");
    manifest_free(&m);
    bids_report_free(&r);
    // A column only sessions.tsv has: missing where no session row gives it.
    q = query(d, "label", "scanner");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "2 images with n/a in the label or a confounder: sub-02/ses-1 (scanner), sub-03/ses-1 (scanner)"));
    q.session = "2";
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);  // sub-03 has no ses-2
    CU_ASSERT(tu_contains(err.msg, "1 participant of participants.tsv without a T1w image in ses-2: sub-03"));
    q.drop_missing = 1;
    CU_ASSERT_EQUAL_FATAL(bids_read(&m, &q, &r, &err), 0);
    CU_ASSERT_EQUAL(m.n, 2);
    CU_ASSERT(m.kinds[0] == META_CATEGORICAL && m.n_levels[0] == 1);  // B and B
    CU_ASSERT_EQUAL(r.n_dropped, 1);
    CU_ASSERT(tu_contains(r.dropped[0], "ses: dropped 1 participant of participants.tsv without a T1w image in ses-2: sub-03"));
    manifest_free(&m);
    bids_report_free(&r);
    // A bad value is named where it is: the sessions file and line.
    put(d, "sub-02/sub-02_sessions.tsv", "session_id\tage\nses-2\tthirty\n");
    q = query(d, "label", "age");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "sub-02/sub-02_sessions.tsv:2: age: 'thirty' is not a number"));
    // ... also when a number of another file comes later: the word is the odd one (most rows
    // hold numbers), named in its sessions file, beside the first number, in participants.tsv.
    put(d, "sub-01/sub-01_sessions.tsv", "session_id\tage\nses-1\tabc\n");
    put(d, "sub-02/sub-02_sessions.tsv", "session_id\tage\nses-2\t31\n");
    put(d, "sessions.json", "{}");  // no Units: those would declare the column continuous
    put(d, "sub-02/sub-02_sessions.json", "{}");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "ses/sub-01/sub-01_sessions.tsv:2: age: 'abc' is not a number, but 4 of the 5 rows hold numbers "
                                   "(the first '20' at ") && tu_contains(err.msg, "ses/participants.tsv:2)"));
    put(d, "sub-01/sub-01_sessions.tsv", "session_id\tage\tscanner\nses-1\t240\tA\nses-2\t252\tB\n");
    put(d, "sessions.json", "{\"age\": {\"Units\": \"months\"}}");
    put(d, "sub-02/sub-02_sessions.json", "{\"age\": {\"Units\": \"years\"}}");
    put(d, "sub-02/sub-02_sessions.tsv", "session_id\tage\nses-2\t31\nses-2\t32\n");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "sub-02_sessions.tsv:3: session_id 'ses-2' appears twice (first on line 2)"));
    put(d, "sub-02/sub-02_sessions.tsv", "session_id\tage\nses-2\t31\n");
    // A dangling symbolic link -- a DataLad or git-annex file not fetched -- is not "no file":
    // a sessions table, a sidecar or an image so is an error naming it, even with drop_missing
    // (an image would otherwise be a participant without one, dropped; a table or sidecar
    // silently not applied).
    q.drop_missing = 1;
    broken_link(&q, d, "sub-02/sub-02_sessions.tsv", "ses/sub-02/sub-02_sessions.tsv: the sessions table is a broken symbolic link (to '/nonexistent/annex/key')");
    put(d, "sub-02/sub-02_sessions.tsv", "session_id\tage\nses-2\t31\n");
    broken_link(&q, d, "sub-02/sub-02_sessions.json", "ses/sub-02/sub-02_sessions.json: the sidecar is a broken symbolic link");
    put(d, "sub-02/sub-02_sessions.json", "{\"age\": {\"Units\": \"years\"}}");
    broken_link(&q, d, "sub-03/ses-1/anat/sub-03_ses-1_T1w.nii.gz", "ses/sub-03/ses-1/anat/sub-03_ses-1_T1w.nii.gz: the image is a broken symbolic link");
    q.drop_missing = 0;
    touch(d, "sub-03/ses-1/anat/sub-03_ses-1_T1w.nii.gz");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), 0);  // fetched: read as before
    manifest_free(&m);
    bids_report_free(&r);
    touch(d, "sub-02/ses-2/anat/sub-01_ses-2_T1w.nii.gz");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "sub-02/ses-2/anat/sub-01_ses-2_T1w.nii.gz: the name does not start with sub-02_ses-2_"));
}

// Missing data collected over the dataset; subject lists; identifiers; bad queries.
static void test_read_missing(void) {
    const char *d = tu_path("miss");
    for (int i = 1; i <= 8; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "sub-%02d/anat/sub-%02d_T1w.nii.gz", i, i);
        if (i != 2) touch(d, rel);
    }
    put(d, "participants.tsv", "participant_id\tdx\tage\nsub-01\tA\t1\nsub-02\tB\t2\nsub-03\tA\tn/a\nsub-04\tB\t\n"
                               "sub-05\tA\tNA\nsub-06\tB\t6\nsub-07\tA\tNaN\n");  // sub-08: no row
    BidsQuery q = query(d, "dx", "age");
    Manifest m;
    BidsReport r;
    DfError err = { "" };
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "miss: missing data: 1 participant of participants.tsv without a T1w image: sub-02; "
                                   "1 T1w image without a participants.tsv row: sub-08; "
                                   "4 images with n/a in the label or a confounder: sub-03 (age), sub-04 (age), sub-05 (age), "
                                   "sub-07 (age)"));  // n/a, empty, NA and NaN alike (csv_is_missing)
    q.subjects = tu_path("keep.txt");
    write_text(q.subjects, "# the complete ones\nsub-01\nsub-06\n");
    CU_ASSERT_EQUAL_FATAL(bids_read(&m, &q, &r, &err), 0);
    CU_ASSERT_EQUAL(m.n, 2);
    CU_ASSERT_STRING_EQUAL(m.subjects[1], "sub-06");
    CU_ASSERT_EQUAL(m.n_label_names, 2);  // classes of every complete row, as --subjects keeps a CSV's
    manifest_free(&m);
    bids_report_free(&r);
    write_text(q.subjects, "sub-01\nsub-08\n");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "keep.txt:2: subject 'sub-08' is not in"));
    q.subjects = NULL;
    q.drop_missing = 1;
    q.suffix = "T2w";
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "miss: no images sub-*/[ses-*/]anat/sub-*_T2w.nii[.gz]"));
    q.suffix = "T1_w";
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "'T1_w' is not a BIDS suffix"));
    q = query(d, "dx", "dx");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "'dx' is the label; it cannot be a confounder too"));
    q = query(d, "dx", "age,,x");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "--confounders 'age,,x': an empty column name"));
    q = query(d, "dx", NULL);
    put(d, "participants.tsv", "participant_id\tdx\nsub-01\tA\n01\tB\n");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "participants.tsv:3: participant_id '01' is not sub-<label>"));
    put(d, "participants.tsv", "participant_id\tdx\nsub-01\tA\nsub-01\tB\n");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "participants.tsv:3: participant_id 'sub-01' appears twice (first on line 2)"));
    put(d, "participants.tsv", "participant_id\tdx\nsub-01\tA\n");
    put(d, "participants.json", "[\"dx\"]");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "participants.json: an array at the top; a sidecar is an object of column descriptions"));
    put(d, "participants.json", "{\"dx\": \"diagnosis\"}");
    CU_ASSERT_EQUAL(bids_read(&m, &q, &r, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "participants.json:1:8: column 'dx' is described by a string; a description is an object"));
}

int main(void) {
    if (tu_tmpdir_create("df-bids")) return 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("json", NULL, NULL);
    CU_add_test(s, "values, escapes, numbers, positions", test_json_values);
    CU_add_test(s, "strictness: each error names file:line:column", test_json_errors);
    s = CU_add_suite("bids", NULL, NULL);
    CU_add_test(s, "TSV: tabs, quotes, CRLF, BOM, ragged rows", test_tsv);
    CU_add_test(s, "participants: order, labels, units to years, Levels, kinds", test_read_plain);
    CU_add_test(s, "sessions: per-session values, sidecars, --session, bad values", test_read_sessions);
    CU_add_test(s, "missing data, subject lists, bad queries and files", test_read_missing);
    int rc = tu_run_all();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tu_tmpdir());
    return rc;
}
