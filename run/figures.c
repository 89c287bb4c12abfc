// figures.c: the validation figures of an epoch (see figures.h).
#include "run/figures.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn/metrics.h"

void groups_from_schema(GroupSet *g, const MetaSchema *s) {
    memset(g, 0, sizeof *g);
    for (int j = 0; j < s->n_cols; j++) {
        if (!s->categorical[j] || s->absent[j]) continue;
        for (int l = 0; l < s->n_levels[j] && g->n < FIG_MAX_GROUPS; l++) {
            snprintf(g->name[g->n], FIG_GROUP_NAME, "%s=%s", s->names[j], s->level_names[j][l]);
            g->col[g->n] = j;
            g->level[g->n++] = s->levels[j][l];
        }
    }
}

void figures_recorder_init(FigureRecorder *r, int n_split, int K) {
    r->n = n_split;
    r->K = K;
    r->rows = xcalloc((size_t)(n_split > 0 ? n_split : 1) * 4, sizeof(double));
}

void figures_recorder_free(FigureRecorder *r) {
    free(r->rows);
    memset(r, 0, sizeof *r);
}

void figures_record(FigureRecorder *r, const float *logits, const Batch *b) {
    for (int i = 0; i < b->n; i++) {
        long pos = b->first_sample + i;
        DF_ASSERT(pos >= 0 && pos < r->n);
        const float *o = logits + (size_t)i * r->K;
        int pred = 0;
        double score = NAN;
        if (r->K == 1) pred = o[0] > 0.0f, score = o[0];
        else
            for (int k = 1; k < r->K; k++) if (o[k] > o[pred]) pred = k;
        if (r->K == 2) score = (double)o[1] - (double)o[0];  // orders samples as p(class 1) does
        double *row = r->rows + (size_t)pos * 4;
        row[0] = b->labels ? b->labels[i] : 0;
        row[1] = pred;
        row[2] = score;
        row[3] = 1;
    }
}

void figures_record_meta(double *meta_rows, int k, const Batch *b, int n_split) {
    for (int i = 0; i < b->n && b->meta; i++) {
        long pos = b->first_sample + i;
        DF_ASSERT(pos >= 0 && pos < n_split && b->n_meta == k);
        memcpy(meta_rows + (size_t)pos * k, b->meta + (size_t)i * k, (size_t)k * sizeof(double));
    }
}

void figures_compute(Figures *f, const FigureRecorder *r, const double *meta_rows, int k, const GroupSet *g) {
    int n = r->n, C = r->K == 1 ? 2 : r->K;
    int *label = xmalloc((size_t)(n + 1) * sizeof(int)), *pred = xmalloc((size_t)(n + 1) * sizeof(int)),
        *hit = xmalloc((size_t)(n + 1) * sizeof(int)), *group = xmalloc((size_t)(n + 1) * sizeof(int));
    double *score = xmalloc((size_t)(n + 1) * sizeof(double));
    int m = 0, binary = C == 2;
    for (int p = 0; p < n; p++) {
        const double *row = r->rows + (size_t)p * 4;
        DF_ASSERT(row[3] == 1.0);  // every position recorded exactly once
        label[m] = (int)row[0];
        pred[m] = (int)row[1];
        hit[m] = label[m] == pred[m];
        score[m] = row[2];
        binary &= label[m] == 0 || label[m] == 1;
        m++;
    }
    f->bal_acc = metric_balanced_accuracy(label, pred, m, C);
    f->auc = binary ? metric_roc_auc(score, label, m) : NAN;
    // Group membership, one categorical column at a time (a sample is in one group per column).
    for (int q = 0; q < FIG_MAX_GROUPS; q++) f->group_acc[q] = NAN, f->group_n[q] = 0;
    f->worst = -1;
    for (int q0 = 0; q0 < g->n;) {
        int col = g->col[q0], q1 = q0;
        while (q1 < g->n && g->col[q1] == col) q1++;
        for (int p = 0; p < m; p++) {
            group[p] = -1;
            for (int q = q0; q < q1; q++) if (meta_rows[(size_t)p * k + col] == g->level[q]) group[p] = q - q0;
        }
        metric_group_accuracy(f->group_acc + q0, f->group_n + q0, group, hit, m, q1 - q0);
        q0 = q1;
    }
    for (int q = 0; q < g->n; q++)  // the worst over every column's groups
        if (f->group_n[q] > 0 && (f->worst < 0 || f->group_acc[q] < f->group_acc[f->worst])) f->worst = q;
    free(label), free(pred), free(hit), free(group), free(score);
}
