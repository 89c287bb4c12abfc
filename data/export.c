// export.c: shards' samples as NIfTI in their source images' space (see export.h).
#include "data/export.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data/nifti.h"
#include "data/pack.h"
#include "data/shard.h"

void export_sample_names(char (*names)[200], char *const *subjects, int n, int first) {
    for (int i = 0; i < n; i++) {
        char base[160];
        if (subjects) snprintf(base, sizeof base, "%s", subjects[i]);
        else snprintf(base, sizeof base, "sample-%05d", first + i);
        for (char *p = base; *p; p++) if (*p == '/') *p = '_';  // ids become file names
        int seen = 1;  // the subject's how-manieth sample
        for (int j = 0; j < i; j++) {
            size_t len = strlen(base);
            seen += strncmp(names[j], base, len) == 0 && (names[j][len] == '\0' || names[j][len] == '_');
        }
        if (seen == 1) snprintf(names[i], 200, "%s", base);
        else snprintf(names[i], 200, "%s_%d", base, seen);
    }
}

int export_sample(const char *dir, const char *name, const char *suffix, const char *path, const Cohort *h, int i, DfError *err) {
    Shape sh = h->shape;
    size_t V = shape_spatial(sh);
    float *x = xmalloc(sizeof(float) * shape_numel(sh));
    if (shard_read_images(path, i, 1, x, err)) { free(x); return -1; }
    double unit[16] = { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 };
    const double *affine = h->affine ? h->source_affine + (size_t)i * 16 : unit;
    int nx = sh.w, ny = sh.h, nz = sh.d;
    if (h->affine) nx = h->source_dims[(size_t)i * 3], ny = h->source_dims[(size_t)i * 3 + 1], nz = h->source_dims[(size_t)i * 3 + 2];
    size_t NV = (size_t)nx * ny * nz;
    float *out = x;
    if (h->affine) {
        out = xmalloc(sizeof(float) * NV * (size_t)sh.c);
        int dims[3] = { nx, ny, nz };
        for (int c = 0; c < sh.c; c++)
            if (prep_to_source(out + (size_t)c * NV, x + (size_t)c * V, sh.d, sh.h, sh.w, h->affine + (size_t)i * 16, affine, dims)) {
                free(out), free(x);
                return df_err(err, "%s: sample %d: its packed affine is singular", path, i);
            }
    }
    NiiWriteSpec sp = { .version = 1, .datatype = NII_DT_FLOAT32, .affine = affine };
    int64_t d[8] = { sh.c > 1 ? 4 : 3, nx, ny, nz, sh.c, 1, 1, 1 };
    memcpy(sp.dims, d, sizeof d);
    for (int a = 0; a < 3; a++)  // voxel sizes: the affine's column lengths
        sp.pixdim[a + 1] = sqrt(affine[a] * affine[a] + affine[4 + a] * affine[4 + a] + affine[8 + a] * affine[8 + a]);
    char file[1200];
    snprintf(file, sizeof file, "%s/%s%s.nii.gz", dir, name, suffix);
    int rc = nii_write(file, &sp, out, err);
    if (out != x) free(out);
    free(x);
    return rc;
}

int export_shards(const char *dir, const char *suffix, char *const *paths, int n_paths, const char *const *subjects,
                  int n_subjects, int rank, int nranks, long *written, DfError *err) {
    *written = 0;
    long k = 0;  // the sample's position in all the shards
    char (*names)[200] = NULL, **ids = NULL;
    int rc = 0, n_all = 0;
    Cohort *h = xcalloc((size_t)(n_paths ? n_paths : 1), sizeof *h);
    for (int f = 0; f < n_paths && rc == 0; f++) rc = shard_read_header(paths[f], &h[f], err), n_all += rc ? 0 : h[f].n;
    if (rc == 0) {  // names over all samples, so a subject's samples count across shards
        ids = xcalloc((size_t)(n_all ? n_all : 1), sizeof(char *));
        for (int f = 0, at = 0; f < n_paths; at += h[f].n, f++)
            for (int i = 0; i < h[f].n; i++) {
                char fallback[32];
                snprintf(fallback, sizeof fallback, "sample-%05d", at + i);
                ids[at + i] = xstrdup(h[f].subjects ? h[f].subjects[i] : fallback);
            }
        names = xcalloc((size_t)(n_all ? n_all : 1), sizeof *names);
        export_sample_names(names, ids, n_all, 0);
    }
    for (int f = 0; f < n_paths && rc == 0; f++)
        for (int i = 0; i < h[f].n && rc == 0; i++, k++) {
            int wanted = n_subjects == 0;
            for (int s = 0; s < n_subjects && !wanted; s++) wanted = h[f].subjects && strcmp(subjects[s], h[f].subjects[i]) == 0;
            if (!wanted || k % nranks != rank) continue;
            rc = export_sample(dir, names[k], suffix, paths[f], &h[f], i, err);
            *written += rc == 0;
        }
    for (int i = 0; ids && i < n_all; i++) free(ids[i]);
    free(ids);
    free(names);
    for (int f = 0; f < n_paths; f++) cohort_free(&h[f]);
    free(h);
    return rc;
}
