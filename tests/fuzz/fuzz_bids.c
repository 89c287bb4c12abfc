// fuzz_bids.c: BIDS participants.tsv (data/bids.c). The bytes are participants.tsv -- and,
// after a form feed (\f), participants.json, so the sidecar's JSON reader is fuzzed too --
// of a fixed small dataset: sub-01 and sub-02 with one T1w image each, sub-03 with two
// sessions. bids_read codes it (label `group`, confounders age and sex), once stopping at
// missing values and once dropping them; bids_tsv_parse reads the same text alone.
#include "tests/fuzz/fuzz_util.h"
#include "data/bids.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    static const char *const files[] = { "bids/sub-01/anat/sub-01_T1w.nii.gz", "bids/sub-02/anat/sub-02_T1w.nii",
                                         "bids/sub-03/ses-1/anat/sub-03_ses-1_T1w.nii.gz",
                                         "bids/sub-03/ses-2/anat/sub-03_ses-2_T1w.nii.gz", NULL };
    for (int i = 0; files[i]; i++) FUZZ_CHECK(fuzz_touch(files[i]) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *ff = memchr(data, '\f', size);
    size_t n_tsv = ff ? (size_t)(ff - data) : size;
    DfError err;
    char *text = fuzz_text(data, n_tsv);
    CsvTable t;
    if (bids_tsv_parse(&t, text, "participants.tsv", &err) == 0) csv_free(&t);
    free(text);
    char *tsv = fuzz_write("bids/participants.tsv", data, n_tsv);
    char *json = ff ? fuzz_write("bids/participants.json", ff + 1, size - n_tsv - 1) : NULL;
    char root[4200];
    snprintf(root, sizeof root, "%s/bids", fuzz_dir());
    for (int drop = 0; drop < 2; drop++) {
        BidsQuery q = { .dir = root, .label = "group", .confounders = "age,sex", .drop_missing = drop };
        Manifest m;
        BidsReport r;
        if (bids_read(&m, &q, &r, &err) == 0) {
            FUZZ_CHECK(m.n >= 1 && m.n <= 4 && m.k == 2);
            for (int i = 0; i < m.n * m.k; i++) FUZZ_CHECK(isfinite(m.meta[i]));
            manifest_free(&m);
            bids_report_free(&r);
        }
    }
    if (json) { unlink(json); free(json); }
    free(tsv);
    return 0;
}
