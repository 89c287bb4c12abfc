// orthogonal: how far a layer's features, as `deconfound eval` wrote them, are from orthogonal
// to metadata columns -- for tests/mdn_ranks.sh, which checks that an MDN layer with
// eval_beta = epoch_eval, evaluated on the training split, returns the least-squares residual
// of exactly those features (no Python in CI).
//
//   tests/orthogonal FILE FEATURE COL...
//
// FILE: eval's output; FEATURE: a dataset under /features, (n, d); COL: a column index of
// /meta (n, k), followed by `c` for a categorical column (each level but the first becomes a
// 0/1 column). Prints the largest |correlation| between a feature and a column, both with
// their class means (/labels) taken out: an MDN layer keeps the label (its default), so its
// output is the least-squares residual plus the label's part; 0 (to rounding) when the
// features are that, from a fit on an intercept, the label and those columns over these very
// samples (Frisch-Waugh-Lovell: the label's part is gone once the class means are).
#include "data/h5util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { MAX_CLASSES = 64 };

// v minus its mean within each class (labels 0..MAX_CLASSES-1).
static void class_centre(double *v, const int *label, int n) {
    double sum[MAX_CLASSES] = { 0 }, count[MAX_CLASSES] = { 0 };
    for (int i = 0; i < n; i++) sum[label[i]] += v[i], count[label[i]] += 1;
    for (int i = 0; i < n; i++) v[i] -= sum[label[i]] / count[label[i]];
}

// |corr(a, b)| within classes (both class-centred here); 0 when either is constant there.
static double abs_corr(double *a, double *b, const int *label, int n) {
    double ab = 0, aa = 0, bb = 0;
    class_centre(a, label, n);
    class_centre(b, label, n);
    for (int i = 0; i < n; i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
    return aa > 0 && bb > 0 ? fabs(ab) / sqrt(aa * bb) : 0.0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE FEATURE COL[c]...\n", argv[0]);
        return 2;
    }
    h5_quiet();
    DfError err;
    hid_t f = h5_open_read(argv[1], &err);
    hsize_t fd[2], md[2];
    char name[256];
    snprintf(name, sizeof name, "features/%s", argv[2]);
    if (f < 0 || h5_dims(f, argv[1], name, fd, 2, &err) != 2 || h5_dims(f, argv[1], "meta", md, 2, &err) != 2) {
        fprintf(stderr, "orthogonal: %s\n", err.msg);
        return 2;
    }
    const int n = (int)fd[0], d = (int)fd[1], k = (int)md[1];
    float *x = malloc(sizeof(float) * (size_t)n * d);
    double *meta = malloc(sizeof(double) * (size_t)n * k), *a = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n);
    int32_t *label = malloc(sizeof(int32_t) * n);
    if (h5_read_f32(f, argv[1], name, x, (size_t)n * d, &err) || h5_read_f64(f, argv[1], "meta", meta, (size_t)n * k, &err) ||
        h5_read_i32(f, argv[1], "labels", label, (size_t)n, &err)) {
        fprintf(stderr, "orthogonal: %s\n", err.msg);
        return 2;
    }
    for (int i = 0; i < n; i++)
        if (label[i] < 0 || label[i] >= MAX_CLASSES) { fprintf(stderr, "orthogonal: label %d\n", label[i]); return 2; }
    double worst = 0;
    for (int c = 3; c < argc; c++) {
        char *end;
        const int col = (int)strtol(argv[c], &end, 10), cat = *end == 'c';
        if (end == argv[c] || col < 0 || col >= k) { fprintf(stderr, "orthogonal: no column '%s'\n", argv[c]); return 2; }
        // a numeric column once; a categorical one as a 0/1 column per level, but the first
        // sample's (with the intercept, any one level is redundant)
        for (int level = 0; level < (cat ? 64 : 1); level++) {
            int seen = 0;
            for (int i = 0; i < n; i++) {
                const double v = meta[(size_t)i * k + col];
                b[i] = cat ? (double)((int)v == level) : v;
                seen += (int)v == level;
            }
            if (cat && (!seen || level == (int)meta[col])) continue;
            for (int j = 0; j < d; j++) {
                for (int i = 0; i < n; i++) a[i] = x[(size_t)i * d + j];
                const double r = abs_corr(a, b, label, n);
                if (r > worst) worst = r;
            }
        }
    }
    printf("%.3g\n", worst);
    free(x); free(meta); free(a); free(b); free(label);
    H5Fclose(f);
    return 0;
}
