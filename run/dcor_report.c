// dcor_report.c: residual confounding in a layer's features (see dcor_report.h).
#include "run/dcor_report.h"
#include "run/infer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mpi/comm.h"
#include "nn/dcor.h"

typedef struct {
    float *F;          // (n, d) features by position in the split
    long *first, *count;  // (nb) the row ranges this rank filled: one per batch
    int nb, cap;
    int d, act, n;
} ReportRows;

static void place_rows(void *arg, const Net *net, const Batch *b) {
    ReportRows *r = arg;
    const float *feat = net->acts[r->act];
    DF_ASSERT(b->first_sample >= 0 && b->first_sample + b->n <= r->n);
    memcpy(r->F + (size_t)b->first_sample * r->d, feat, sizeof(float) * (size_t)b->n * r->d);
    if (r->nb == r->cap) {
        r->cap = DF_MAX(16, 2 * r->cap);
        r->first = xrealloc(r->first, sizeof(long) * (size_t)r->cap);
        r->count = xrealloc(r->count, sizeof(long) * (size_t)r->cap);
    }
    r->first[r->nb] = b->first_sample;
    r->count[r->nb++] = b->n;
}

int dcor_report_run(DcorReport *rep, Net *net, Loader *l, const Dataset *ds, const int *split_idx, int n_split,
                    int layer_out, const int *cols, int n_cols, DfError *err) {
    memset(rep, 0, sizeof *rep);
    const Cohort *c = &ds->cohort;
    int d = (int)shape_numel(layer_out == 0 ? net->in_shape : net->layers[layer_out - 1].out_shape);
    // Every rank writes its samples' features at their positions in the split, in float as
    // the network makes them; then each rank's rows are broadcast from it into the others'
    // matrices. A rank's positions are not contiguous (each global batch is split over the
    // ranks, data/loader.c), so the ranges go by position, one per batch. The (n, d) float
    // matrix is the only full-size buffer: no double copy (nn/dcor.c reads float rows
    // directly) and no staging copy of this rank's rows (1000 x 262 144 features: 1 GB).
    ReportRows rows = { xcalloc((size_t)n_split * d, sizeof(float)), NULL, NULL, 0, 0, d, layer_out, n_split };
    float *F = rows.F;
    int failed = infer_run(net, l, place_rows, &rows, err);
    if (!failed) dist_share_rows_f32(F, (size_t)d, rows.first, rows.count, rows.nb);
    free(rows.first);
    free(rows.count);
    if (failed) { free(F); return -1; }

    DcorOptions opt = dcor_options_default();
    opt.unbiased = 0;
    opt.red = dist_reducer();
    opt.rank = dist_rank();
    opt.nranks = dist_size();
    double *labels = xmalloc((size_t)n_split * sizeof(double));
    int max_label = 0, min_label = 0;
    for (int p = 0; p < n_split; p++) {
        labels[p] = c->labels[split_idx[p]];
        max_label = DF_MAX(max_label, c->labels[split_idx[p]]);
        min_label = p ? DF_MIN(min_label, c->labels[split_idx[p]]) : c->labels[split_idx[p]];
    }
    // z: the label one-hot (labels are class indices >= 0), for the partial dCor given it
    int dz = max_label + 1, has_z = min_label < max_label;
    double *Z = xcalloc((size_t)n_split * dz, sizeof(double));
    for (int p = 0; p < n_split; p++) Z[(size_t)p * dz + c->labels[split_idx[p]]] = 1.0;
    DcorVar z = { Z, n_split, dz };
    rep->n = n_split;
    rep->n_classes = DF_MIN(max_label + 1, REPORT_MAX_CLASSES);
    rep->n_cols = DF_MIN(n_cols, REPORT_MAX_COLS);
    DcorVar x = { NULL, n_split, d, F };
    int rc = 0;
    for (int j = 0; j < rep->n_cols && !rc; j++) {
        int col = cols[j];
        snprintf(rep->names[j], sizeof rep->names[j], "%s", c->columns[col]);
        // y: the value, or one-hot over the column's levels
        int dy = 1;
        double *Y = xmalloc(sizeof(double) * (size_t)n_split);
        for (int p = 0; p < n_split; p++) Y[p] = c->meta[(size_t)split_idx[p] * c->k + col];
        if (c->kinds[col] == META_CATEGORICAL) {
            double *codes = Y;
            Y = dcor_one_hot(codes, n_split, &dy);
            free(codes);
        }
        DcorVar y = { Y, n_split, dy };
        DcorResult r;
        rc = dcor_compute(&r, &x, &y, has_z ? &z : NULL, &opt, err);
        if (!rc) rep->all[j] = r.dcor2_u, rep->given_label[j] = has_z ? r.pdcor2_u : NAN;
        DcorGroups g;
        if (!rc) rc = dcor_by_group(&g, &x, &y, NULL, labels, &opt, err);
        for (int k = 0; k < REPORT_MAX_CLASSES; k++) rep->by_class[j][k] = NAN;
        if (!rc)
            for (int q = 0; q < g.n_groups; q++) {
                int cls = (int)g.value[q];
                if (cls >= 0 && cls < REPORT_MAX_CLASSES) rep->by_class[j][cls] = g.r[q].dcor2_u;
            }
        free(Y);
    }
    free(labels);
    free(Z);
    free(F);
    return rc;
}

void dcor_report_print(const DcorReport *rep, const char *layer, int epoch, FILE *f, FILE *json) {
    if (f) {
        fprintf(f, "dCor^2 (bias-corrected) of %s features vs metadata, validation set (n = %d), epoch %d:\n", layer,
                rep->n, epoch);
        fprintf(f, "  %-12s %8s", "column", "all");
        for (int k = 0; k < rep->n_classes; k++) fprintf(f, "  class %-2d", k);
        fprintf(f, "  %11s\n", "given label");
        for (int j = 0; j < rep->n_cols; j++) {
            fprintf(f, "  %-12s %8.4f", rep->names[j], rep->all[j]);
            for (int k = 0; k < rep->n_classes; k++) fprintf(f, "  %8.4f", rep->by_class[j][k]);
            fprintf(f, "  %11.4f\n", rep->given_label[j]);
        }
    }
    if (json) {
        fprintf(json, "{\"epoch\": %d, \"layer\": \"%s\", \"n\": %d, \"columns\": {", epoch, layer, rep->n);
        for (int j = 0; j < rep->n_cols; j++) {
            fprintf(json, "%s\"%s\": {\"dcor2_u\": ", j ? ", " : "", rep->names[j]);
            if (isfinite(rep->all[j])) fprintf(json, "%.6g", rep->all[j]);
            else fprintf(json, "null");
            fprintf(json, ", \"by_class\": [");
            for (int k = 0; k < rep->n_classes; k++) {
                if (isfinite(rep->by_class[j][k])) fprintf(json, "%s%.6g", k ? ", " : "", rep->by_class[j][k]);
                else fprintf(json, "%snull", k ? ", " : "");
            }
            fprintf(json, "], \"given_label\": ");
            if (isfinite(rep->given_label[j])) fprintf(json, "%.6g}", rep->given_label[j]);
            else fprintf(json, "null}");
        }
        fprintf(json, "}}\n");
    }
}

static void csv_row(FILE *csv, int epoch, const char *layer, const char *col, const char *scope, double v) {
    fprintf(csv, "%d,%s,%s,%s,", epoch, layer, col, scope);
    if (isfinite(v)) fprintf(csv, "%.6g", v);
    fputc('\n', csv);
}

// Layer and column names are identifiers (no commas): written as they are.
void dcor_report_csv(const DcorReport *rep, const char *layer, int epoch, FILE *csv) {
    for (int j = 0; j < rep->n_cols; j++) {
        csv_row(csv, epoch, layer, rep->names[j], "all", rep->all[j]);
        for (int k = 0; k < rep->n_classes; k++) {
            char scope[32];
            snprintf(scope, sizeof scope, "class=%d", k);
            csv_row(csv, epoch, layer, rep->names[j], scope, rep->by_class[j][k]);
        }
        csv_row(csv, epoch, layer, rep->names[j], "given_label", rep->given_label[j]);
    }
}
