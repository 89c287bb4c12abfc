// compare.c: runs side by side (see compare.h).
#include "run/compare.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/stats.h"
#include "base/ini.h"
#include "data/csv.h"
#include "data/json.h"

// ---- reading a run directory ---------------------------------------------------------------

// Keys that differ between repetitions of one configuration, or do not change its results.
static const char *const repetition_keys[] = {
    "train.seed", "data.fold", "data.split_seed", "train.out_dir", "train.checkpoint_every", "train.log_every",
    "train.threads", "train.bucket_mb", "train.dcor_every", "train.profile", "train.check_every", "data.prefetch", "data.read", "data.cache", "data.cache_mb", NULL,
};

// config.ini (base/ini.h) as "section.key=value" lines (a section repeated, as layers are,
// numbered "conv3d#2"), without the repetition keys; the seed and fold go to the pairing key.
static char *settings_of(RunSummary *r, const Ini *ini) {
    char *out = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&out, &len);
    long seed = 0, fold = 0, kfold = 0, split_seed = 0;
    for (int i = 0; i < ini->n; i++) {
        const IniSection *sec = &ini->sections[i];
        int k = 1;  // the how-manieth section of this name
        for (int j = 0; j < i; j++) k += strcmp(ini->sections[j].name, sec->name) == 0;
        char section[96];
        if (k == 1) snprintf(section, sizeof section, "%s", sec->name);
        else snprintf(section, sizeof section, "%s#%d", sec->name, k);
        for (int e = 0; e < sec->n; e++) {
            const IniEntry *en = &sec->entries[e];
            char full[256];
            snprintf(full, sizeof full, "%s.%s", section, en->key);
            if (!strcmp(full, "train.seed")) seed = atol(en->value);
            if (!strcmp(full, "data.fold")) fold = atol(en->value);
            if (!strcmp(full, "data.kfold")) kfold = atol(en->value);
            if (!strcmp(full, "data.split_seed")) split_seed = atol(en->value);
            int skip = 0;
            for (int q = 0; repetition_keys[q]; q++) skip |= strcmp(repetition_keys[q], full) == 0;
            if (!skip) fprintf(o, "%s=%s\n", full, en->value);
        }
    }
    fclose(o);
    // Runs pair up when they repeat the protocol the same way: the same data split (fold,
    // split_seed) and the same seed. Pairing on the fold alone paired a repeated CV's runs of
    // one fold (other seeds) with one and the same run of the other method.
    if (kfold >= 2) snprintf(r->pair_key, sizeof r->pair_key, "fold %ld, split_seed %ld, seed %ld", fold, split_seed, seed);
    else snprintf(r->pair_key, sizeof r->pair_key, "seed %ld, split_seed %ld", seed, split_seed);
    return out;
}

// A string member of run.json, or "" (absent, or not a string).
static void json_member(char *out, size_t n, const JsonValue *run, const char *key) {
    const JsonValue *v = json_get(run, key);
    snprintf(out, n, "%s", v && v->type == JSON_STRING ? v->string : "");
}

// The last row's validation figures from metrics.csv.
static int read_metrics(RunSummary *r, const char *dir, DfError *err) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    CsvTable t;
    if (csv_read(&t, path, err)) return -1;
    int rc = 0;
    if (t.nrows == 0) rc = df_err(err, "%s: no epoch finished yet", path);
    const char *names[] = { "epoch", "val_acc", "val_bal_acc", "val_worst_group_acc", "val_auc" };
    double *dest[] = { NULL, &r->acc, &r->bal_acc, &r->worst_acc, &r->auc };
    double *col = xmalloc((size_t)(t.nrows + 1) * sizeof(double));
    for (int j = 0; j < 5 && rc == 0; j++) {
        int c = csv_column(&t, names[j]);
        if (c < 0) { rc = df_err(err, "%s: no column %s (not written by deconfound train?)", path, names[j]); break; }
        if (csv_numbers(&t, c, j ? 0.0 : 1.0, j ? 1.0 : 1e9, col, err)) { rc = -1; break; }
        if (j == 0) r->epoch = (int)col[t.nrows - 1];
        else *dest[j] = col[t.nrows - 1];
    }
    int w = csv_column(&t, "val_worst_group");
    if (rc == 0 && w >= 0) snprintf(r->worst_group, sizeof r->worst_group, "%s", csv_cell(&t, t.nrows - 1, w));
    free(col);
    csv_free(&t);
    return rc;
}

// dcor.csv (optional): dCor^2 of every confounder at the last epoch reported, first layer.
static int read_dcor(RunSummary *r, const char *dir, DfError *err) {
    char path[600];
    snprintf(path, sizeof path, "%s/dcor.csv", dir);
    FILE *probe = fopen(path, "r");
    if (!probe) return 0;
    fclose(probe);
    CsvTable t;
    if (csv_read(&t, path, err)) return -1;
    int ce = csv_column(&t, "epoch"), cl = csv_column(&t, "layer"), cc = csv_column(&t, "column"),
        cs = csv_column(&t, "scope"), cv = csv_column(&t, "dcor2_u"), rc = 0;
    double *ep = xmalloc((size_t)(t.nrows + 1) * sizeof(double)), *val = xmalloc((size_t)(t.nrows + 1) * sizeof(double));
    if (ce < 0 || cl < 0 || cc < 0 || cs < 0 || cv < 0) rc = df_err(err, "%s: not a dcor.csv (epoch,layer,column,scope,dcor2_u)", path);
    if (!rc && (csv_numbers(&t, ce, 1, 1e9, ep, err) || csv_numbers(&t, cv, -1.0, 1.0, val, err))) rc = -1;
    int last = -1;
    for (int i = 0; !rc && i < t.nrows; i++)
        if (last < 0 || ep[i] > ep[last]) last = i;
    if (!rc && last >= 0) {
        snprintf(r->dcor_layer, sizeof r->dcor_layer, "%s", csv_cell(&t, last, cl));
        for (int i = 0; i < t.nrows; i++) {
            if (ep[i] != ep[last] || strcmp(csv_cell(&t, i, cl), r->dcor_layer) != 0 || strcmp(csv_cell(&t, i, cs), "all") != 0)
                continue;
            if (r->n_dcor == COMPARE_MAX_CONFOUNDERS) break;
            snprintf(r->dcor_name[r->n_dcor], sizeof r->dcor_name[0], "%s", csv_cell(&t, i, cc));
            r->dcor[r->n_dcor++] = val[i];
        }
    }
    free(ep);
    free(val);
    csv_free(&t);
    return rc;
}

int compare_read_run(RunSummary *r, const char *dir, DfError *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char path[600];
    snprintf(path, sizeof path, "%s/run.json", dir);
    JsonValue run;
    if (json_read(&run, path, err)) return -1;
    json_member(r->config, sizeof r->config, &run, "config");
    json_member(r->status, sizeof r->status, &run, "status");
    json_free(&run);
    snprintf(path, sizeof path, "%s/config.ini", dir);
    Ini ini;
    if (ini_parse_file(&ini, path, err)) return -1;
    r->settings = settings_of(r, &ini);
    ini_free(&ini);
    if (read_metrics(r, dir, err) || read_dcor(r, dir, err)) {
        compare_free_run(r);
        return -1;
    }
    return 0;
}

void compare_free_run(RunSummary *r) {
    free(r->settings);
    r->settings = NULL;
}

// ---- methods: runs of one configuration ----------------------------------------------------

typedef struct {
    int *runs, n;
    char label[200];
} Method;

static const char *basename_of(const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    const char *p = path + len;
    while (p > path && p[-1] != '/') p--;
    return p;
}

// A label: the config's name for repetitions, the run directory's for a single run; labels
// two methods share get the settings that tell them apart.
static void label_methods(Method *m, int n_m, const RunSummary *runs) {
    for (int i = 0; i < n_m; i++) {
        const RunSummary *r = &runs[m[i].runs[0]];
        const char *name = m[i].n > 1 ? basename_of(r->config) : basename_of(r->dir);
        snprintf(m[i].label, sizeof m[i].label, "%.*s", (int)(strlen(name) - (m[i].n > 1 && strstr(name, ".ini") ? 4 : 0)), name);
    }
    int *clash = xcalloc((size_t)n_m, sizeof(int));  // the method i's label is first shared with, + 1
    for (int i = 0; i < n_m; i++)
        for (int j = 0; j < n_m && !clash[i]; j++)
            if (i != j && strcmp(m[i].label, m[j].label) == 0) clash[i] = j + 1;
    for (int i = 0; i < n_m; i++) {
        if (!clash[i]) continue;
        // the first settings lines of i that the other does not have
        const char *mine = runs[m[i].runs[0]].settings, *theirs = runs[m[clash[i] - 1].runs[0]].settings;
        char extra[160] = "";
        for (const char *p = mine; *p && strlen(extra) < 100;) {
            size_t len = strcspn(p, "\n");
            char line[256];
            snprintf(line, sizeof line, "%.*s\n", (int)len, p);
            const char *at = strstr(theirs, line);
            while (at && at != theirs && at[-1] != '\n') at = strstr(at + 1, line);  // whole lines only
            if (!at) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s%.*s", extra[0] ? ", " : "", (int)len, p);
            p += len + (p[len] == '\n');
        }
        size_t at = strlen(m[i].label);
        snprintf(m[i].label + at, sizeof m[i].label - at, " [%s]", extra[0] ? extra : "same settings");
    }
    free(clash);
}

static int group_runs(Method *m, RunSummary *runs, int n) {
    int n_m = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < n_m && strcmp(runs[m[j].runs[0]].settings, runs[i].settings) != 0) j++;
        if (j == n_m) m[n_m++] = (Method){ xcalloc((size_t)n, sizeof(int)), 0, "" };
        m[j].runs[m[j].n++] = i;
    }
    label_methods(m, n_m, runs);
    return n_m;
}

// ---- the figures: a metric per column ------------------------------------------------------

typedef struct {
    char title[96], csv[96];
    int percent;       // accuracies print as %, dCor^2 as it is
    int dcor;          // -1: an accuracy figure (which: acc_kind), else a confounder's name
    int acc_kind;      // 0 acc, 1 balanced, 2 worst group, 3 AUC
    char name[64];
} Metric;

static double metric_value(const RunSummary *r, const Metric *mt) {
    if (mt->dcor < 0) {
        const double v[4] = { r->acc, r->bal_acc, r->worst_acc, r->auc };
        return v[mt->acc_kind];
    }
    for (int j = 0; j < r->n_dcor; j++)
        if (strcmp(r->dcor_name[j], mt->name) == 0) return r->dcor[j];
    return NAN;
}

static int list_metrics(Metric *mt, const RunSummary *runs, int n) {
    static const char *titles[4] = { "accuracy %", "balanced acc. %", "worst group %", "AUC" },
                      *csv[4] = { "val_acc", "val_bal_acc", "val_worst_group_acc", "val_auc" };
    int k = 0, any_auc = 0;
    for (int i = 0; i < n; i++) any_auc |= isfinite(runs[i].auc);
    for (int a = 0; a < 4; a++) {
        if (a == 3 && !any_auc) continue;
        mt[k] = (Metric){ "", "", a < 3, -1, a, "" };
        snprintf(mt[k].title, sizeof mt[k].title, "%s", titles[a]);
        snprintf(mt[k++].csv, sizeof mt[0].csv, "%s", csv[a]);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < runs[i].n_dcor; j++) {
            int seen = 0;
            for (int q = 0; q < k; q++) seen |= mt[q].dcor >= 0 && strcmp(mt[q].name, runs[i].dcor_name[j]) == 0;
            if (seen || k == 4 + COMPARE_MAX_CONFOUNDERS) continue;
            mt[k] = (Metric){ "", "", 0, 1, 0, "" };
            snprintf(mt[k].name, sizeof mt[k].name, "%s", runs[i].dcor_name[j]);
            snprintf(mt[k].title, sizeof mt[k].title, "dCor² %s", runs[i].dcor_name[j]);
            snprintf(mt[k++].csv, sizeof mt[0].csv, "dcor2[%s]", runs[i].dcor_name[j]);
        }
    return k;
}

// "85.3 ± 1.2" (percent) or "0.0123 ± 0.0040"; one run: the value alone; none: "-".
static void format_cell(char *buf, size_t n, const double *v, int count, int percent) {
    int used;
    double mean = stats_mean(v, count, &used), sd = stats_sd(v, count), s = percent ? 100.0 : 1.0;
    if (used == 0) snprintf(buf, n, "-");
    else if (used == 1) snprintf(buf, n, percent ? "%.1f" : "%.4f", s * mean);
    else snprintf(buf, n, percent ? "%.1f ± %.1f" : "%.4f ± %.4f", s * mean, s * sd);
}

// ---- output --------------------------------------------------------------------------------

// Characters on screen (UTF-8: "±" and "²" are two bytes, one column).
static int display_width(const char *s) {
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

#define COMPARE_MAX_COLS (6 + 4 + COMPARE_MAX_CONFOUNDERS)

// cells[row][col] as an aligned text table or a Markdown table; row 0 is the header, the
// first text_cols columns are text (left-aligned in Markdown), the others numbers.
static void print_grid(FILE *f, char (*cells)[COMPARE_MAX_COLS][224], int rows, int cols, int text_cols, int markdown) {
    int width[COMPARE_MAX_COLS] = { 0 };
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) width[c] = DF_MAX(width[c], display_width(cells[r][c]));
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            int pad = width[c] - display_width(cells[r][c]);
            if (markdown) fprintf(f, "| %s%*s ", cells[r][c], pad, "");
            else fprintf(f, "%s%*s%s", cells[r][c], c + 1 < cols ? pad : 0, "", c + 1 < cols ? "  " : "");
        }
        fprintf(f, markdown ? "|\n" : "\n");
        if (markdown && r == 0) {
            for (int c = 0; c < cols; c++) fprintf(f, "|%s", c < text_cols ? "---" : "---:");
            fprintf(f, "|\n");
        }
    }
}

static void print_csv(FILE *f, const Method *m, int n_m, const RunSummary *runs, int n, const Metric *mt, int n_mt) {
    fprintf(f, "method,runs");
    for (int k = 0; k < n_mt; k++) fprintf(f, ",%s_mean,%s_sd", mt[k].csv, mt[k].csv);
    fprintf(f, "\n");
    double *v = xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < n_m; i++) {
        fputc('"', f);
        for (const char *p = m[i].label; *p; p++) fprintf(f, *p == '"' ? "\"\"" : "%c", *p);
        fprintf(f, "\",%d", m[i].n);
        for (int k = 0; k < n_mt; k++) {
            for (int r = 0; r < m[i].n; r++) v[r] = metric_value(&runs[m[i].runs[r]], &mt[k]);
            int used;
            double mean = stats_mean(v, m[i].n, &used), sd = stats_sd(v, m[i].n);
            if (used) fprintf(f, ",%.6g", mean); else fprintf(f, ",");
            if (used > 1) fprintf(f, ",%.6g", sd); else fprintf(f, ",");
        }
        fprintf(f, "\n");
    }
    free(v);
}

// Method i against method 0 over the pairing keys both have: one line per metric.
static void print_tests(FILE *f, const Method *m, int n_m, const RunSummary *runs, const Metric *mt, int n_mt, int markdown) {
    if (n_m < 2) return;
    if (m[0].n < 2) {  // a test over one pair says nothing
        fprintf(f, "\n(No paired test: %s has one run. Repeat the methods over folds or seeds -- `deconfound cv`,\n"
                   "[train] seed -- to compare them with one.)\n", m[0].label);
        return;
    }
    const int rows_max = 1 + (n_m - 1) * n_mt;
    char (*cells)[COMPARE_MAX_COLS][224] = xcalloc((size_t)rows_max, sizeof *cells);
    const char *head[6] = { "method", "metric", "n", "median diff.", "V", "p" };
    for (int c = 0; c < 6; c++) snprintf(cells[0][c], 224, "%s", head[c]);
    int rows = 1;
    double *x = xmalloc((size_t)(m[0].n + 1) * sizeof(double)), *y = xmalloc((size_t)(m[0].n + 1) * sizeof(double));
    for (int i = 1; i < n_m; i++)
        for (int k = 0; k < n_mt; k++) {
            int n = 0;
            for (int a = 0; a < m[i].n; a++)
                for (int b = 0; b < m[0].n; b++) {
                    const RunSummary *ra = &runs[m[i].runs[a]], *rb = &runs[m[0].runs[b]];
                    if (strcmp(ra->pair_key, rb->pair_key) != 0) continue;
                    x[n] = metric_value(ra, &mt[k]);
                    y[n++] = metric_value(rb, &mt[k]);
                    break;
                }
            WilcoxonResult w;
            stats_wilcoxon_signed_rank(&w, x, y, n);
            double s = mt[k].percent ? 100.0 : 1.0;
            snprintf(cells[rows][0], 224, "%.200s", m[i].label);
            snprintf(cells[rows][1], 224, "%s", mt[k].title);
            snprintf(cells[rows][2], 224, "%d", w.n);
            if (w.n == 0) snprintf(cells[rows][3], 224, "-"), snprintf(cells[rows][4], 224, "-"), snprintf(cells[rows][5], 224, "-");
            else {
                snprintf(cells[rows][3], 224, mt[k].percent ? "%+.1f" : "%+.4f", s * w.median_diff);
                snprintf(cells[rows][4], 224, "%g", w.v);
                snprintf(cells[rows][5], 224, "%.3g%s", w.p, w.exact ? "" : " (normal approx.)");
            }
            rows++;
        }
    fprintf(f, "\nPaired Wilcoxon signed-rank tests against %s, over the %s both ran (two-sided; as R's\n"
               "wilcox.test(paired = TRUE); n counts the pairs with a non-zero difference):\n\n",
            m[0].label, strncmp(runs[m[0].runs[0]].pair_key, "fold", 4) == 0 ? "folds" : "seeds");
    print_grid(f, cells, rows, 6, 2, markdown);
    free(cells);
    free(x);
    free(y);
}

int compare_check_runs(const RunSummary *runs, int n, DfError *err) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(runs[i].settings, runs[j].settings) == 0 && strcmp(runs[i].pair_key, runs[j].pair_key) == 0)
                return df_err(err, "%s and %s are one method run the same way (%s): the same run twice, "
                                   "which would count it twice; give one of them", runs[i].dir, runs[j].dir, runs[i].pair_key);
    return 0;
}

void compare_runs(FILE *f, RunSummary *runs, int n, CompareFormat format) {
    Method *m = xcalloc((size_t)n, sizeof *m);
    int n_m = group_runs(m, runs, n);
    Metric mt[4 + COMPARE_MAX_CONFOUNDERS];
    int n_mt = list_metrics(mt, runs, n);
    if (format == COMPARE_CSV) {
        print_csv(f, m, n_m, runs, n, mt, n_mt);
    } else {
        char (*cells)[COMPARE_MAX_COLS][224] = xcalloc((size_t)n_m + 1, sizeof *cells);
        snprintf(cells[0][0], 224, "method");
        snprintf(cells[0][1], 224, "runs");
        for (int k = 0; k < n_mt; k++) snprintf(cells[0][2 + k], 224, "%.95s", mt[k].title);
        double *v = xmalloc((size_t)n * sizeof(double));
        for (int i = 0; i < n_m; i++) {
            snprintf(cells[i + 1][0], 224, "%.200s", m[i].label);
            snprintf(cells[i + 1][1], 224, "%d", m[i].n);
            for (int k = 0; k < n_mt; k++) {
                for (int r = 0; r < m[i].n; r++) v[r] = metric_value(&runs[m[i].runs[r]], &mt[k]);
                format_cell(cells[i + 1][2 + k], 224, v, m[i].n, mt[k].percent);
            }
        }
        print_grid(f, cells, n_m + 1, 2 + n_mt, 1, format == COMPARE_MARKDOWN);
        free(v);
        free(cells);
        // What the figures are, and runs that have not finished.
        const char *layer = "";
        for (int i = 0; i < n && !layer[0]; i++) layer = runs[i].dcor_layer;
        fprintf(f, "\nValidation split, each run's last epoch; mean ± sd over a method's runs.%s%s%s\n",
                layer[0] ? " dCor²: bias-corrected, features of layer " : "", layer, layer[0] ? ", whole split." : "");
        for (int i = 0; i < n; i++) {
            if (runs[i].dcor_layer[0] && strcmp(runs[i].dcor_layer, layer) != 0)
                fprintf(f, "note: %s reports dCor² of layer %s, not %s\n", runs[i].dir, runs[i].dcor_layer, layer);
            if (strcmp(runs[i].status, "finished") != 0)
                fprintf(f, "note: %s is %s (epoch %d)\n", runs[i].dir, runs[i].status[0] ? runs[i].status : "unfinished",
                        runs[i].epoch);
        }
        print_tests(f, m, n_m, runs, mt, n_mt, format == COMPARE_MARKDOWN);
    }
    for (int i = 0; i < n_m; i++) free(m[i].runs);
    free(m);
}
