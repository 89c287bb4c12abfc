// plot.c: the training-run figure of plot.h. Reads the run directories (metrics.csv through
// data/csv.h, every value checked), writes one gnuplot script with the data inline as
// datablocks, runs gnuplot with posix_spawnp and renames its PNG into place.
#include "run/plot.h"
#include "data/csv.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;  // POSIX; unistd.h declares it only for _GNU_SOURCE

#define INSTALL_HINT "install it with 'apt-get install gnuplot-nox' (or set DECONFOUND_GNUPLOT to its path)"

// ---- the runs ----------------------------------------------------------------------------

// The metrics.csv columns the panels draw, found by name.
enum { M_EPOCH, M_TRAIN_LOSS, M_VAL_LOSS, M_TRAIN_ACC, M_VAL_ACC, M_VAL_BAL_ACC, M_VAL_WORST, M_PLOTTED };

// Every numeric column of metrics.csv this reader knows, the drawn ones first (in the enum's
// order); the others are only checked. Only `required` ones must be present: a column the
// writer leaves out is "not available", so older and newer files still plot.
static const struct { const char *name; int fraction, required; } metric_cols[] = {
    { "epoch", 0, 1 }, { "train_loss", 0, 1 }, { "val_loss", 0, 0 }, { "train_acc", 1, 0 },
    { "val_acc", 1, 0 }, { "val_bal_acc", 1, 0 }, { "val_worst_group_acc", 1, 0 },
    { "lr", 0, 0 }, { "seconds", 0, 0 }, { "samples_per_s", 0, 0 }, { "train_bal_acc", 1, 0 },
    { "val_auc", 1, 0 }, { "val_acc_aligned", 1, 0 }, { "val_acc_conflicting", 1, 0 },
};
#define N_METRIC_COLS (int)(sizeof metric_cols / sizeof metric_cols[0])

typedef struct {  // one (layer, column) curve of dcor.csv at scope `all`, sorted by epoch
    char *layer, *column;
    int n;
    double *epoch, *value;
} DcorCurve;

typedef struct {
    char *dir;
    char *name;            // legend label: the basename, made unique over the runs
    int n;                 // rows of metrics.csv (epochs)
    double *m[M_PLOTTED];  // the drawn columns, n values each; NaN = not available
    int n_groups;
    char **groups;         // "site=A", from the column val_acc[site=A]
    double *group_acc;     // n_groups, in row group_row
    int group_row;         // the last row with a group accuracy, -1 when none has one
    char *worst;           // val_worst_group in that row ("" when not given)
    int has_dcor;          // dcor.csv is present
    int n_dcor;
    DcorCurve *dcor;
} PlotRun;

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void run_free(PlotRun *r) {
    for (int k = 0; k < M_PLOTTED; k++) free(r->m[k]);
    for (int g = 0; g < r->n_groups; g++) free(r->groups[g]);
    for (int c = 0; c < r->n_dcor; c++) {
        free(r->dcor[c].layer); free(r->dcor[c].column); free(r->dcor[c].epoch); free(r->dcor[c].value);
    }
    free(r->groups); free(r->group_acc); free(r->worst); free(r->dcor); free(r->name); free(r->dir);
    memset(r, 0, sizeof *r);
}

// The val_acc[COLUMN=LEVEL] columns: every value a fraction; kept at the last row that has one.
static int load_groups(PlotRun *r, const CsvTable *t, DfError *err) {
    int *cols = xmalloc(sizeof(int) * (size_t)t->ncols);
    for (int j = 0; j < t->ncols; j++) {
        const char *h = t->header[j];
        size_t len = strlen(h);
        if (len > 9 && strncmp(h, "val_acc[", 8) == 0 && h[len - 1] == ']') cols[r->n_groups++] = j;
    }
    r->groups = xcalloc((size_t)r->n_groups + 1, sizeof(char *));
    r->group_acc = xcalloc((size_t)r->n_groups + 1, sizeof(double));
    double *v = xmalloc(sizeof(double) * ((size_t)t->nrows * r->n_groups + 1));
    int rc = 0;
    r->group_row = -1;
    for (int g = 0; g < r->n_groups && rc == 0; g++) {
        const char *h = t->header[cols[g]];
        r->groups[g] = xstrdup(h + 8);
        r->groups[g][strlen(h) - 9] = '\0';
        rc = csv_numbers(t, cols[g], 0, 1, v + (size_t)g * t->nrows, err);
        for (int i = 0; i < t->nrows && rc == 0; i++)
            if (!isnan(v[(size_t)g * t->nrows + i]) && i > r->group_row) r->group_row = i;
    }
    for (int g = 0; g < r->n_groups && rc == 0; g++)
        r->group_acc[g] = r->group_row < 0 ? NAN : v[(size_t)g * t->nrows + r->group_row];
    int wcol = csv_column(t, "val_worst_group");
    r->worst = xstrdup(wcol >= 0 && r->group_row >= 0 ? csv_cell(t, r->group_row, wcol) : "");
    free(v);
    free(cols);
    return rc;
}

static int load_metrics(PlotRun *r, DfError *err) {
    char *path = path_join(r->dir, "metrics.csv");
    CsvTable t = { 0 };
    int rc = -1;
    if (access(path, F_OK) != 0) {
        df_err(err, "%s: %s (%s is not a run directory, or no epoch has finished)", path, strerror(errno), r->dir);
        goto out;
    }
    if (csv_read(&t, path, err)) goto out;
    if (t.nrows == 0) { df_err(err, "%s: a header and no epochs", path); goto out; }
    r->n = t.nrows;
    double *scratch = xmalloc(sizeof(double) * (size_t)t.nrows);
    rc = 0;
    for (int k = 0; k < N_METRIC_COLS && rc == 0; k++) {
        double *v = k < M_PLOTTED ? (r->m[k] = xmalloc(sizeof(double) * (size_t)t.nrows)) : scratch;
        int col = csv_column(&t, metric_cols[k].name);
        double lo = metric_cols[k].fraction ? 0 : -INFINITY, hi = metric_cols[k].fraction ? 1 : INFINITY;
        if (k == M_EPOCH) lo = 1, hi = 1e9;  // as compare reads it: gnuplot fails on an x range of 1e300
        for (int i = 0; i < t.nrows; i++) v[i] = NAN;
        if (col >= 0) rc = csv_numbers(&t, col, lo, hi, v, err);
        else if (metric_cols[k].required) rc = df_err(err, "%s: no column '%s' in the header", path, metric_cols[k].name);
    }
    free(scratch);
    for (int i = 0; rc == 0 && i < t.nrows; i++)
        if (isnan(r->m[M_EPOCH][i])) rc = df_err(err, "%s:%d: epoch: empty", path, t.line[i]);
    if (rc == 0) rc = load_groups(r, &t, err);
out:
    csv_free(&t);
    free(path);
    return rc;
}

static DcorCurve *dcor_curve(PlotRun *r, const char *layer, const char *column) {
    for (int c = 0; c < r->n_dcor; c++)
        if (strcmp(r->dcor[c].layer, layer) == 0 && strcmp(r->dcor[c].column, column) == 0) return &r->dcor[c];
    r->dcor = xrealloc(r->dcor, sizeof(DcorCurve) * (size_t)(r->n_dcor + 1));
    DcorCurve *cv = &r->dcor[r->n_dcor++];
    *cv = (DcorCurve){ xstrdup(layer), xstrdup(column), 0, NULL, NULL };
    return cv;
}

// Rows may come in any order ("not every epoch need appear"): insertion sort by epoch.
static void dcor_sort(DcorCurve *cv) {
    for (int i = 1; i < cv->n; i++)
        for (int j = i; j > 0 && cv->epoch[j - 1] > cv->epoch[j]; j--) {
            double e = cv->epoch[j], v = cv->value[j];
            cv->epoch[j] = cv->epoch[j - 1]; cv->value[j] = cv->value[j - 1];
            cv->epoch[j - 1] = e; cv->value[j - 1] = v;
        }
}

// dcor.csv, when the run has one: the rows at scope `all` become one curve per (layer, column).
static int load_dcor(PlotRun *r, DfError *err) {
    char *path = path_join(r->dir, "dcor.csv");
    if (access(path, F_OK) != 0 && errno == ENOENT) { free(path); return 0; }  // no dCor layer configured
    static const char *names[5] = { "epoch", "layer", "column", "scope", "dcor2_u" };
    int c[5], rc = -1;
    CsvTable t = { 0 };
    double *epoch = NULL, *value = NULL;
    r->has_dcor = 1;
    if (csv_read(&t, path, err)) goto out;
    for (int k = 0; k < 5; k++)
        if ((c[k] = csv_column(&t, names[k])) < 0) { df_err(err, "%s: no column '%s' in the header", path, names[k]); goto out; }
    epoch = xmalloc(sizeof(double) * ((size_t)t.nrows + 1));
    value = xmalloc(sizeof(double) * ((size_t)t.nrows + 1));
    // The bias-corrected dCor^2 is a correlation of U-centred distance matrices: in [-1, 1].
    if (csv_numbers(&t, c[0], 1, 1e9, epoch, err) || csv_numbers(&t, c[4], -1, 1, value, err)) goto out;
    for (int i = 0; i < t.nrows; i++) {
        if (isnan(epoch[i])) { df_err(err, "%s:%d: epoch: empty", path, t.line[i]); goto out; }
        if (strcmp(csv_cell(&t, i, c[3]), "all") != 0 || isnan(value[i])) continue;
        DcorCurve *cv = dcor_curve(r, csv_cell(&t, i, c[1]), csv_cell(&t, i, c[2]));
        cv->epoch = xrealloc(cv->epoch, sizeof(double) * (size_t)(cv->n + 1));
        cv->value = xrealloc(cv->value, sizeof(double) * (size_t)(cv->n + 1));
        cv->epoch[cv->n] = epoch[i];
        cv->value[cv->n++] = value[i];
    }
    for (int k = 0; k < r->n_dcor; k++) dcor_sort(&r->dcor[k]);
    rc = 0;
out:
    free(epoch); free(value);
    csv_free(&t);
    free(path);
    return rc;
}

static int load_run(PlotRun *r, const char *dir, DfError *err) {
    memset(r, 0, sizeof *r);
    r->dir = xstrdup(dir);
    size_t len = strlen(r->dir);
    while (len > 1 && r->dir[len - 1] == '/') r->dir[--len] = '\0';
    struct stat st;
    if (stat(r->dir, &st) != 0) return df_err(err, "%s: %s (expected a run directory)", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return df_err(err, "%s: not a directory (expected a run directory)", dir);
    return load_metrics(r, err) || load_dcor(r, err) ? -1 : 0;
}

// Legend labels: the basename; the path as given where two runs share a basename; "#k" after
// a path given twice.
static void name_runs(PlotRun *runs, int n) {
    for (int i = 0; i < n; i++) {
        const char *slash = strrchr(runs[i].dir, '/');
        runs[i].name = xstrdup(slash && slash[1] ? slash + 1 : runs[i].dir);
    }
    int *shared = xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) shared[i] |= i != j && strcmp(runs[i].name, runs[j].name) == 0;
    for (int i = 0; i < n; i++)
        if (shared[i]) { free(runs[i].name); runs[i].name = xstrdup(runs[i].dir); }
    for (int i = 0; i < n; i++) {
        int k = 1;
        for (int j = 0; j < i; j++) k += strcmp(runs[i].dir, runs[j].dir) == 0;
        if (k == 1) continue;
        size_t len = strlen(runs[i].name) + 16;
        char *s = xmalloc(len);
        snprintf(s, len, "%s #%d", runs[i].name, k);
        free(runs[i].name);
        runs[i].name = s;
    }
    free(shared);
}

// ---- the gnuplot script ------------------------------------------------------------------

// Okabe-Ito's colour-blind-safe palette, one colour per run (cycled past eight runs).
static const char *const colours[] = { "#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                       "#E69F00", "#56B4E9", "#000000", "#999933" };
#define COLOUR(r) colours[(r) % 8]

typedef struct {
    FILE *f;
    PlotRun *runs;
    int n;
    int blocks;              // datablocks written so far ($d0, $d1, ...)
    int last_points;         // rows of the last one
    double emin, emax;       // epochs over every run: the same x range on every panel
} Script;

// A curve of a panel: datablock `block` (-1: none, a legend entry only), its colour, dash
// type, point type (0: line only) and legend title (NULL: none).
typedef struct {
    int block, points;  // points: the block's rows
    const char *colour;
    int dt, pt;
    char title[256];
    int has_title;
} Curve;

// A gnuplot single-quoted string: '' is a quote; control characters (a newline in a folder
// name) would end the command, so they become '?'.
static void gp_str(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputs("''", f);
        else fputc((unsigned char)*s < 0x20 ? '?' : *s, f);
    }
    fputc('\'', f);
}

// The finite points (x[i], y[i]) as datablock $d<k>; returns k, or -1 when there are none
// (gnuplot fails on a plot whose every point is undefined).
static int datablock(Script *s, const double *x, const double *y, int n) {
    int any = 0;
    for (int i = 0; i < n; i++) any |= isfinite(x[i]) && isfinite(y[i]);
    if (!any) return -1;
    fprintf(s->f, "$d%d << EOD\n", s->blocks);
    s->last_points = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) { fprintf(s->f, "%.10g %.10g\n", x[i], y[i]); s->last_points++; }
    fprintf(s->f, "EOD\n");
    return s->blocks++;
}

static void panel_begin(Script *s, const char *title, const char *xlabel, const char *ylabel) {
    FILE *f = s->f;
    fprintf(f, "\n# ---- %s\n", title);
    fprintf(f, "unset label; unset arrow; unset logscale; unset xzeroaxis; unset key; unset xtics; unset ytics\n");
    fprintf(f, "set xtics nomirror norotate; set ytics mirror; set grid; set yrange [*:*]; set format y '%%g'\n");
    fprintf(f, "set title "); gp_str(f, title); fputc('\n', f);
    fprintf(f, "set xlabel "); gp_str(f, xlabel); fputc('\n', f);
    fprintf(f, "set ylabel "); gp_str(f, ylabel); fputc('\n', f);
    double pad = s->emax > s->emin ? 0 : 1;  // one epoch: a range around it
    fprintf(f, "set xrange [%g:%g]\n", s->emin - pad, s->emax + pad);
    if (s->emax - s->emin <= 12) fprintf(f, "set xtics 1\n");
}

// A panel with nothing to draw says why in its middle.
static void panel_message(Script *s, const char *msg) {
    fprintf(s->f, "set label 1 "); gp_str(s->f, msg);
    fprintf(s->f, " at graph 0.5, graph 0.5 center font ',13'\n");
    fprintf(s->f, "unset xtics; unset ytics; unset grid; unset border; unset xzeroaxis; set xrange [0:1]; set yrange [0:1]\n"
                  "plot NaN notitle\nset border\n");
}

// Curves (and legend-only entries) as one plot command, or `empty` when no curve has data.
static void plot_curves(Script *s, const Curve *c, int nc, const char *key, const char *empty) {
    int drawn = 0;
    for (int i = 0; i < nc; i++) drawn += c[i].block >= 0;
    if (!drawn) { panel_message(s, empty); return; }
    FILE *f = s->f;
    fprintf(f, "set key %s opaque box lc rgb '#bbbbbb' samplen 3 spacing 1.1\nplot ", key);
    for (int i = 0; i < nc; i++) {
        if (i) fprintf(f, ", \\\n     ");
        if (c[i].block >= 0) fprintf(f, "$d%d using 1:2", c[i].block);
        else fprintf(f, "NaN");
        fprintf(f, " with %s lc rgb '%s' dt %d lw 2", c[i].pt ? "linespoints" : "lines", c[i].colour, c[i].dt);
        // Points mark the epochs, about 20 along a long curve at most.
        if (c[i].pt) fprintf(f, " pt %d ps 0.8 pi %d", c[i].pt, c[i].points > 25 ? (c[i].points + 19) / 20 : 1);
        if (c[i].has_title) { fprintf(f, " title "); gp_str(f, c[i].title); }
        else fprintf(f, " notitle");
    }
    fputc('\n', f);
}

// A curve of the datablock just written (its point count is the script's last_points), or a
// legend entry (block -1).
static Curve curve(const Script *s, int block, const char *colour, int dt, int pt, const char *title) {
    Curve c = { block, block >= 0 ? s->last_points : 0, colour, dt, pt, "", title != NULL };
    if (title) snprintf(c.title, sizeof c.title, "%s", title);
    return c;
}

// A kind of line of panels (a) and (b): a metrics.csv column, drawn in each run's colour.
typedef struct { int metric; const char *title; int dt, pt; } Kind;

// Several runs: the curves carry no titles; the legend lists the runs that drew something,
// by colour, then the kinds of line that did, in black.
static int legend(Script *s, Curve *c, int nc, const int *run_on, const Kind *kinds, const int *kind_on, int nk) {
    for (int r = 0; r < s->n; r++)
        if (run_on[r]) c[nc++] = curve(s, -1, COLOUR(r), 1, 0, s->runs[r].name);
    for (int k = 0; k < nk; k++)
        if (kind_on[k]) c[nc++] = curve(s, -1, "#000000", kinds[k].dt, kinds[k].pt, kinds[k].title);
    return nc;
}

// The range of the values of `kinds` over every run (NaN when there are none).
static void metrics_range(const Script *s, const Kind *kinds, int nk, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int r = 0; r < s->n; r++)
        for (int k = 0; k < nk; k++)
            for (int i = 0; i < s->runs[r].n; i++) {
                double v = s->runs[r].m[kinds[k].metric][i];
                if (isfinite(v)) { *lo = fmin(*lo, v); *hi = fmax(*hi, v); }
            }
    if (*lo > *hi) *lo = *hi = NAN;
}

// Panels (a) and (b): columns of metrics.csv per epoch, one colour per run, a line per kind.
static void panel_metrics(Script *s, const Kind *kinds, int nk, const char *key, const char *empty) {
    Curve *c = xmalloc(sizeof(Curve) * (size_t)(s->n * nk + s->n + nk));
    int *run_on = xcalloc((size_t)s->n, sizeof(int)), *kind_on = xcalloc((size_t)nk, sizeof(int)), nc = 0;
    for (int r = 0; r < s->n; r++)
        for (int k = 0; k < nk; k++) {
            const PlotRun *run = &s->runs[r];
            int b = datablock(s, run->m[M_EPOCH], run->m[kinds[k].metric], run->n);
            if (b < 0) continue;
            run_on[r] = kind_on[k] = 1;
            c[nc++] = curve(s, b, COLOUR(r), kinds[k].dt, kinds[k].pt, s->n == 1 ? kinds[k].title : NULL);
        }
    if (s->n > 1 && nc > 0) nc = legend(s, c, nc, run_on, kinds, kind_on, nk);
    plot_curves(s, c, nc, key, empty);
    free(c); free(run_on); free(kind_on);
}

// (a): the loss on a log scale when it spans more than a decade and a half (a first epoch
// far above the rest would flatten every later difference).
static void panel_loss(Script *s) {
    static const Kind kinds[] = { { M_TRAIN_LOSS, "train", 2, 0 }, { M_VAL_LOSS, "validation", 1, 7 } };
    double lo, hi;
    metrics_range(s, kinds, 2, &lo, &hi);
    panel_begin(s, "(a) loss per epoch", "epoch", "loss (mean per sample)");
    if (lo > 0 && hi / lo > 30) fprintf(s->f, "set logscale y\n");
    panel_metrics(s, kinds, 2, "top right", "no loss values");
}

// (b): accuracies, on a range around them (tenths) within [0, 1]. A regression run has none.
static void panel_accuracy(Script *s) {
    static const Kind kinds[] = { { M_TRAIN_ACC, "train", 2, 0 }, { M_VAL_ACC, "validation", 1, 7 },
                                  { M_VAL_BAL_ACC, "validation, balanced", 4, 5 },
                                  { M_VAL_WORST, "validation, worst group", 3, 9 } };
    double lo, hi;
    metrics_range(s, kinds, 4, &lo, &hi);
    panel_begin(s, "(b) accuracy per epoch", "epoch", "accuracy");
    if (!isnan(lo))
        fprintf(s->f, "set yrange [%g:%g]\n", fmax(0, floor(lo * 10 - 0.2) / 10), fmin(1, ceil(hi * 10 + 0.2) / 10));
    panel_metrics(s, kinds, 4, "bottom right", "no accuracy values (a regression run)");
}

// The distinct (layer, column) curves over every run, in order of appearance: index of cv.
static int dcor_series(const char ***layer, const char ***column, int *ns, const DcorCurve *cv) {
    for (int k = 0; k < *ns; k++)
        if (strcmp((*layer)[k], cv->layer) == 0 && strcmp((*column)[k], cv->column) == 0) return k;
    *layer = xrealloc(*layer, sizeof(char *) * (size_t)(*ns + 1));
    *column = xrealloc(*column, sizeof(char *) * (size_t)(*ns + 1));
    (*layer)[*ns] = cv->layer;
    (*column)[*ns] = cv->column;
    return (*ns)++;
}

// (c): dCor^2 at scope `all` per epoch. One run: a colour per (layer, column); several: the
// run's colour and a point type per (layer, column).
static void panel_dcor(Script *s) {
    static const int pts[] = { 7, 5, 9, 11, 13, 4, 6, 8, 10, 12 };
    const char **layer = NULL, **column = NULL;
    int ns = 0, nc = 0, any_file = 0, total = 0;
    for (int r = 0; r < s->n; r++) total += s->runs[r].n_dcor;
    Curve *c = xmalloc(sizeof(Curve) * (size_t)(2 * total + s->n + 1));
    Kind *kinds = xmalloc(sizeof(Kind) * (size_t)(total + 1));
    int *run_on = xcalloc((size_t)s->n, sizeof(int)), *kind_on = xcalloc((size_t)total + 1, sizeof(int));
    panel_begin(s, "(c) dCor\xc2\xb2 of layer features and confounders (validation)", "epoch",
                "dCor\xc2\xb2 (bias-corrected)");
    fprintf(s->f, "set xzeroaxis lc rgb '#666666' dt 1 lw 1\n");
    for (int r = 0; r < s->n; r++) {
        any_file |= s->runs[r].has_dcor;
        for (int j = 0; j < s->runs[r].n_dcor; j++) {
            const DcorCurve *cv = &s->runs[r].dcor[j];
            int k = dcor_series(&layer, &column, &ns, cv), b = datablock(s, cv->epoch, cv->value, cv->n);
            char title[256];
            snprintf(title, sizeof title, "%s: %s", cv->layer, cv->column);
            kinds[k] = (Kind){ 0, NULL, 1, pts[k % 10] };
            if (b < 0) continue;
            run_on[r] = kind_on[k] = 1;
            c[nc++] = curve(s, b, s->n == 1 ? COLOUR(k) : COLOUR(r), 1, pts[k % 10], s->n == 1 ? title : NULL);
        }
    }
    if (s->n > 1 && nc > 0) {
        char (*titles)[256] = xmalloc(sizeof *titles * (size_t)(ns + 1));
        for (int k = 0; k < ns; k++) {
            snprintf(titles[k], sizeof titles[k], "%s: %s", layer[k], column[k]);
            kinds[k].title = titles[k];
        }
        nc = legend(s, c, nc, run_on, kinds, kind_on, ns);  // copies the titles
        free(titles);
    }
    plot_curves(s, c, nc, "top right", any_file ? "no dCor\xc2\xb2 values at scope 'all' in dcor.csv"
                                                : "no dCor report (no dcor.csv: no [train] dcor_layer)");
    free(c); free(kinds); free(run_on); free(kind_on); free(layer); free(column);
}

// The distinct groups over the runs that have group accuracies, in order of appearance.
static int group_union(const Script *s, const char ***names) {
    int ng = 0;
    *names = NULL;
    for (int r = 0; r < s->n; r++)
        for (int g = 0; g < s->runs[r].n_groups && s->runs[r].group_row >= 0; g++) {
            int k = 0;
            while (k < ng && strcmp((*names)[k], s->runs[r].groups[g]) != 0) k++;
            if (k < ng) continue;
            *names = xrealloc(*names, sizeof(char *) * (size_t)(ng + 1));
            (*names)[ng++] = s->runs[r].groups[g];
        }
    return ng;
}

// The bars of one run in panel (d): its accuracy in each group at x = group + offset, with the
// value above each bar when there is room, and its worst group (val_worst_group) marked.
static int group_bars(Script *s, int r, const char **names, int ng, double offset, int values, int narrow) {
    const PlotRun *run = &s->runs[r];
    double *x = xmalloc(sizeof(double) * (size_t)(ng + 1)), *y = xmalloc(sizeof(double) * (size_t)(ng + 1));
    for (int k = 0; k < ng; k++) {
        x[k] = k + offset;
        y[k] = NAN;
        for (int g = 0; g < run->n_groups; g++)
            if (strcmp(run->groups[g], names[k]) == 0) y[k] = run->group_acc[g];
        if (isnan(y[k])) continue;
        if (values) fprintf(s->f, "set label '%.2f' at %g, %g center font ',8'\n", y[k], x[k], y[k] + 0.025);
        // Inside the bar's top, in white, where neither the values nor the dashed lines are;
        // upright in narrow bars; above a bar too short to hold it.
        if (strcmp(run->worst, names[k]) != 0) continue;
        if (y[k] > 0.25 && narrow)
            fprintf(s->f, "set label 'worst' at %g, %g right rotate by 90 font ',9' tc rgb '#ffffff' front\n", x[k], y[k] - 0.015);
        else if (y[k] > 0.1)
            fprintf(s->f, "set label 'worst' at %g, %g center font ',9' tc rgb '#ffffff' front\n", x[k], y[k] - 0.04);
        else
            fprintf(s->f, "set label 'worst' at %g, %g center font ',9' front\n", x[k], y[k] + (values ? 0.065 : 0.03));
    }
    int b = datablock(s, x, y, ng);
    free(x); free(y);
    return b;
}

// (d): validation accuracy per group at each run's last epoch with group accuracies, a
// cluster of bars per group, a bar per run; a dashed line at the run's overall accuracy.
static void panel_groups(Script *s) {
    const char **names;
    int ng = group_union(s, &names);
    FILE *f = s->f;
    panel_begin(s, "(d) validation accuracy per group, last epoch", "group (confounder=level)", "accuracy");
    if (ng == 0) {
        panel_message(s, "no per-group accuracy (a regression run, or no categorical confounder)");
        return;
    }
    fprintf(f, "unset xtics; set xtics nomirror scale 0 (");
    for (int k = 0; k < ng; k++) { fprintf(f, "%s", k ? ", " : ""); gp_str(f, names[k]); fprintf(f, " %d", k); }
    fprintf(f, ")%s\n", ng > 8 ? " rotate by 30 right" : "");
    // Room above 1 for the values and the legend (a row per three entries, the runs and 'overall').
    fprintf(f, "set xrange [-0.6:%g]; set yrange [0:%g]; set ytics 0, 0.2, 1; set grid noxtics ytics\n", ng - 0.4,
            1.12 + 0.07 * ((s->n + 3) / 3));
    fprintf(f, "set style fill solid 0.85 border rgb '#333333'\n"
               "set key top center horizontal maxcols 3 opaque box lc rgb '#bbbbbb' samplen 3\n");
    double w = 0.8 / s->n;
    int *block = xmalloc(sizeof(int) * (size_t)s->n), any_overall = 0;
    for (int r = 0; r < s->n; r++) {
        block[r] = group_bars(s, r, names, ng, (r - (s->n - 1) / 2.0) * w, ng * s->n <= 16, ng * s->n > 8);
        const PlotRun *run = &s->runs[r];
        double overall = run->group_row >= 0 ? run->m[M_VAL_ACC][run->group_row] : NAN;
        if (block[r] < 0 || isnan(overall)) continue;
        fprintf(f, "set arrow from graph 0, first %.10g to graph 1, first %.10g nohead lc rgb '%s' dt 2 lw 1.5 back\n",
                overall, overall, COLOUR(r));
        any_overall = 1;
    }
    fprintf(f, "plot ");
    for (int r = 0, first = 1; r < s->n; r++) {
        if (block[r] < 0) continue;
        const PlotRun *run = &s->runs[r];
        char title[600];
        snprintf(title, sizeof title, "%s (epoch %g)", run->name, run->m[M_EPOCH][run->group_row]);
        fprintf(f, "%s$d%d using 1:2:(%g) with boxes lc rgb '%s' title ", first ? "" : ", \\\n     ", block[r], w, COLOUR(r));
        gp_str(f, title);
        first = 0;
    }
    if (any_overall) fprintf(f, ", \\\n     NaN with lines lc rgb '#000000' dt 2 lw 1.5 title 'overall accuracy'");
    fputc('\n', f);
    free(block);
    free(names);
}

// The whole script: pngcairo when this gnuplot has it (Debian's gnuplot-nox does), else png.
static int write_script(const char *path, const char *png, PlotRun *runs, int n, DfError *err) {
    Script s = { fopen(path, "w"), runs, n, 0, 0, INFINITY, -INFINITY };
    if (!s.f) return df_err(err, "%s: cannot create: %s", path, strerror(errno));
    for (int r = 0; r < n; r++) {
        for (int i = 0; i < runs[r].n; i++) {
            s.emin = fmin(s.emin, runs[r].m[M_EPOCH][i]);
            s.emax = fmax(s.emax, runs[r].m[M_EPOCH][i]);
        }
    }
    FILE *f = s.f;
    fprintf(f, "# deconfound plot: written by run/plot.c, run once and removed\nset encoding utf8\n");
    fprintf(f, "if (strstrt(' '.GPVAL_TERMINALS.' ', ' pngcairo ') > 0) {\n"
               "    set terminal pngcairo size 1400,1000 font 'Sans,10' noenhanced\n"
               "} else {\n    set terminal png size 1400,1000 noenhanced\n}\n");
    fprintf(f, "set output "); gp_str(f, png); fputc('\n', f);
    char title[1024] = "";
    for (int r = 0; r < n && strlen(title) < 900; r++)
        snprintf(title + strlen(title), sizeof title - strlen(title), "%s%s", r ? ", " : "", runs[r].name);
    fprintf(f, "set multiplot layout 2,2 title "); gp_str(f, title); fprintf(f, " font ',13'\n");
    panel_loss(&s);
    panel_accuracy(&s);
    panel_dcor(&s);
    panel_groups(&s);
    fprintf(f, "unset multiplot\nunset output\n");
    if (ferror(f) | fclose(f)) return df_err(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

// ---- gnuplot -----------------------------------------------------------------------------

// The first line of gnuplot's output that reports an error (else its last line), for messages.
static void log_excerpt(const char *log, char *out, size_t cap) {
    char *text = df_read_text_file(log, NULL, NULL);
    out[0] = '\0';
    if (!text) return;
    char *pick = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!line[strspn(line, " \t^")]) continue;  // blank, or gnuplot's caret under the error
        if (!pick || !strstr(pick, "rror")) pick = line;
    }
    if (pick) snprintf(out, cap, ": %s", pick + strspn(pick, " \t"));
    free(text);
}

// Runs `gnuplot script` with its output into `log`, stdin from /dev/null (an MPI launcher's
// stdin is not for it). 0, or PLOT_NO_GNUPLOT with the reason.
static int run_gnuplot(const char *script, const char *log, DfError *err) {
    const char *prog = getenv("DECONFOUND_GNUPLOT");
    if (!prog || !*prog) prog = "gnuplot";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    char *argv[] = { (char *)prog, (char *)script, NULL };
    pid_t pid;
    int rc = posix_spawnp(&pid, prog, &fa, NULL, argv, environ), status = 0;
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        df_err(err, "cannot run gnuplot ('%s': %s): plots need it; " INSTALL_HINT, prog, strerror(rc));
        return PLOT_NO_GNUPLOT;
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) { df_err(err, "gnuplot ('%s'): waitpid: %s", prog, strerror(errno)); return PLOT_NO_GNUPLOT; }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {  // a C library whose exec failure shows only here
        df_err(err, "cannot run gnuplot ('%s'): plots need it; " INSTALL_HINT, prog);
        return PLOT_NO_GNUPLOT;
    }
    char excerpt[512];
    log_excerpt(log, excerpt, sizeof excerpt);
    if (WIFEXITED(status))
        df_err(err, "gnuplot ('%s') failed with status %d%s (plots need gnuplot with a PNG terminal: " INSTALL_HINT ")",
               prog, WEXITSTATUS(status), excerpt);
    else
        df_err(err, "gnuplot ('%s') ended by signal %d%s", prog, WTERMSIG(status), excerpt);
    return PLOT_NO_GNUPLOT;
}

// ---- the figure --------------------------------------------------------------------------

// A folder for the script and gnuplot's output beside out_png: "<dir>/.plot.XXXXXX".
static char *make_workdir(const char *out_png, DfError *err) {
    const char *slash = strrchr(out_png, '/');
    size_t n = strlen(out_png) + 32;
    char *dir = xmalloc(n);
    if (slash) snprintf(dir, n, "%.*s/.plot.XXXXXX", (int)(slash - out_png), out_png);
    else snprintf(dir, n, ".plot.XXXXXX");
    if (mkdtemp(dir)) return dir;
    df_err(err, "%s: cannot create a temporary folder beside it: %s", out_png, strerror(errno));
    free(dir);
    return NULL;
}

// A gnuplot that exits 0 must still have written a PNG (a stand-in program might not).
static int is_png(const char *path) {
    unsigned char magic[8] = { 0 };
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(magic, 1, 8, f);
    fclose(f);
    return got == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0;
}

// Script, gnuplot, check, rename; on failure the temporary PNG goes, out_png stays as it was.
static int draw(PlotRun *runs, int n, const char *out_png, DfError *err) {
    char *dir = make_workdir(out_png, err);
    if (!dir) return PLOT_BAD_INPUT;
    char *script = path_join(dir, "plot.gp"), *log = path_join(dir, "gnuplot.log"), *png = df_temp_name(out_png);
    int rc = write_script(script, png, runs, n, err) ? PLOT_BAD_INPUT : run_gnuplot(script, log, err);
    if (rc == 0 && !is_png(png)) {
        const char *prog = getenv("DECONFOUND_GNUPLOT");
        df_err(err, "gnuplot ('%s') wrote no PNG; " INSTALL_HINT, prog && *prog ? prog : "gnuplot");
        rc = PLOT_NO_GNUPLOT;
    }
    if (rc == 0 && rename(png, out_png) != 0) rc = df_err(err, "%s: cannot write: %s", out_png, strerror(errno));
    if (rc != 0) unlink(png);
    unlink(script);
    unlink(log);
    rmdir(dir);
    free(script); free(log); free(png); free(dir);
    return rc;
}

int plot_runs(const char *const *run_dirs, int n, const char *out_png, DfError *err) {
    DF_ASSERT(n >= 1 && out_png != NULL);
    PlotRun *runs = xcalloc((size_t)n, sizeof *runs);
    int rc = 0;
    for (int r = 0; r < n && rc == 0; r++) rc = load_run(&runs[r], run_dirs[r], err) ? PLOT_BAD_INPUT : 0;
    if (rc == 0) {
        name_runs(runs, n);
        rc = draw(runs, n, out_png, err);
    }
    for (int r = 0; r < n; r++) run_free(&runs[r]);
    free(runs);
    return rc;
}
