// gen_seeds.c: writes the generated part of the seed corpus (tests/fuzz/corpus/): small
// NIfTI files of every supported datatype, version and byte order (nii_write), a shard
// (shard_write) and checkpoints of fuzz_checkpoint.c's network (checkpoint_save). Run by hand
// when a format changes; the files are committed (each at most a few KB). From a built tree:
//   mpicc -I. -Ibase -I/usr/include/hdf5/openmpi -I/usr/include/nifti -D_POSIX_C_SOURCE=200809L -std=c11 \
//     tests/fuzz/gen_seeds.c tests/fuzz/fuzz_checkpoint.c tests/fuzz/fuzz_util.c .libs/libdeconfound.a \
//     $(pkg-config --libs hdf5-openmpi scalapack-openmpi openblas) -lnifti2 -lznz -lz -lm -fopenmp -o gen_seeds
//   ./gen_seeds tests/fuzz/corpus
// The other seeds (hand-written CSV, INI and TSV files, nibabel's small NIfTI files) are
// committed as they are.
#include "tests/fuzz/fuzz_util.h"
#include "data/checkpoint.h"
#include "data/cohort.h"
#include "data/nifti.h"
#include "data/shard.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fuzz_checkpoint_setup(Net **n, Optimizer **o, TrainState *ts);

static void check(int rc, const DfError *err) {
    if (rc != 0) { fprintf(stderr, "gen_seeds: %s\n", err->msg); exit(1); }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: gen_seeds CORPUS_DIR\n"); return 2; }
    const char *out = argv[1];
    char path[4096];
    DfError err;

    // NIfTI: 3x2x2 (and one 4-D), every datatype, v1/v2, both byte orders, .nii and .nii.gz.
    static const int dts[] = { 2, 256, 4, 512, 8, 768, 16, 64 };
    float vals[24];
    for (int i = 0; i < 24; i++) vals[i] = (float)(i * 3 % 7);
    for (int d = 0; d < 8; d++) {
        NiiWriteSpec s = { .version = 1 + d % 2, .datatype = dts[d], .big_endian = d % 3 == 0,
                           .dims = { 3, 3, 2, 2 }, .pixdim = { 0, 1, 1.5, 2 }, .slope = d == 4 ? 2 : 0 };
        snprintf(path, sizeof path, "%s/nifti/gen_%s_v%d%s.nii%s", out, nii_datatype_name(dts[d]), s.version,
                 s.big_endian ? "_be" : "", d % 4 == 1 ? ".gz" : "");
        check(nii_write(path, &s, vals, &err), &err);
    }
    static const double aff[16] = { 0, -2, 0, 10, 0, 0, 2, -5, 2, 0, 0, 3, 0, 0, 0, 1 };
    NiiWriteSpec s4 = { .version = 1, .datatype = 16, .dims = { 4, 2, 2, 2, 3 }, .affine = aff };
    snprintf(path, sizeof path, "%s/nifti/gen_4d_affine.nii.gz", out);
    check(nii_write(path, &s4, vals, &err), &err);

    // A shard: 2 samples of 1x2x2x2 with masks, subject ids, class names and a categorical
    // column with level names.
    Cohort c;
    cohort_alloc(&c, 2, (Shape){ 1, 2, 2, 2 }, 2);
    for (int i = 0; i < 16; i++) c.images[i] = (float)i / 4;
    c.labels[0] = 0; c.labels[1] = 1;
    c.meta[0] = 61.5; c.meta[1] = 0; c.meta[2] = 70; c.meta[3] = 1;
    c.columns[0] = strdup("age"); c.kinds[0] = META_CONTINUOUS;
    c.columns[1] = strdup("site"); c.kinds[1] = META_CATEGORICAL;
    c.n_levels[1] = 2;
    c.levels[1] = malloc(2 * sizeof(char *)); c.levels[1][0] = strdup("A"); c.levels[1][1] = strdup("B");
    c.n_label_names = 2;
    c.label_names = malloc(2 * sizeof(char *)); c.label_names[0] = strdup("AD"); c.label_names[1] = strdup("CN");
    c.subjects = malloc(2 * sizeof(char *)); c.subjects[0] = strdup("sub-01"); c.subjects[1] = strdup("sub-02");
    cohort_alloc_masks(&c);
    for (int i = 0; i < 16; i += 3) c.masks[i] = 1;
    snprintf(path, sizeof path, "%s/shard/gen_masks_levels.h5", out);
    check(shard_write(path, &c, &err), &err);
    MetaSchema *schema = calloc(1, sizeof *schema);
    check(meta_schema_build(schema, &c, &err), &err);
    // The bare shard: no optional parts.
    Cohort b;
    cohort_alloc(&b, 1, (Shape){ 1, 1, 2, 2 }, 0);
    snprintf(path, sizeof path, "%s/shard/gen_bare.h5", out);
    check(shard_write(path, &b, &err), &err);
    cohort_free(&b);
    cohort_free(&c);

    // Checkpoints of fuzz_checkpoint.c's network: full (Adam, train state, blob, schema) and
    // parameters only.
    Net *net; Optimizer *opt; TrainState ts;
    fuzz_checkpoint_setup(&net, &opt, &ts);
    for (size_t i = 0; i < net->n_params; i++) net->params[i] = (float)i / 10;
    ts.epoch = 3; ts.step = 12; ts.epoch_step = 2;
    opt->step = 12;
    net->ctx.meta_schema = schema;
    snprintf(path, sizeof path, "%s/checkpoint/gen_full.h5", out);
    check(checkpoint_save(path, "[train]\nepochs = 4\n", net, opt, &ts, &err), &err);
    net->ctx.meta_schema = NULL;
    snprintf(path, sizeof path, "%s/checkpoint/gen_params_only.h5", out);
    check(checkpoint_save(path, "", net, NULL, NULL, &err), &err);
    free(schema);
    printf("gen_seeds: written under %s\n", out);
    return 0;
}
