// fuzz_manifest.c: the CSV dialect and the subject manifest (data/csv.c). The bytes are the
// manifest file (manifest_read: CSV, header, paths, labels, confounder kinds and levels), and
// the same text goes through csv_parse and csv_numbers on every column.
#include "tests/fuzz/fuzz_util.h"
#include "data/csv.h"
#include <math.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fuzz_dir(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    DfError err;
    char *text = fuzz_text(data, size);
    CsvTable t;
    if (csv_parse(&t, text, "in.csv", &err) == 0) {
        FUZZ_CHECK(t.ncols >= 1 && t.nrows >= 0);
        double *x = xmalloc(sizeof(double) * ((size_t)t.nrows + 1));
        for (int j = 0; j < t.ncols; j++) csv_numbers(&t, j, -INFINITY, INFINITY, x, &err);
        free(x);
        csv_free(&t);
    }
    free(text);
    char *path = fuzz_write("manifest.csv", data, size);
    Manifest m;
    if (manifest_read(&m, path, NULL, NULL, &err) == 0) {
        FUZZ_CHECK(m.n >= 1 && m.k >= 0 && m.k <= META_MAX_COLS);
        for (int i = 0; i < m.n; i++) {
            FUZZ_CHECK(m.paths[i] && m.subjects[i] && m.labels[i] >= 0);
            if (m.n_label_names) FUZZ_CHECK(m.labels[i] < m.n_label_names);
            for (int j = 0; j < m.k; j++) {
                double v = m.meta[(size_t)i * m.k + j];
                FUZZ_CHECK(isfinite(v));
                if (m.kinds[j] == META_CATEGORICAL) FUZZ_CHECK(v >= 0 && v < m.n_levels[j]);
            }
        }
        manifest_free(&m);
    }
    free(path);
    return 0;
}
