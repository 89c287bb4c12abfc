// export.c: shards' samples as NIfTI in their source images' space (see export.h).
#include "data/export.h"
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

int export_grid(const char *file, const float *x, Shape sh, const double *affine, const double *source_affine,
                const int *source_dims, DfError *err) {
    static const double unit[16] = { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 };
    size_t V = shape_spatial(sh);
    int back = affine && source_affine;  // to the source's grid, else the packed grid as it is
    int nx = back ? source_dims[0] : sh.w, ny = back ? source_dims[1] : sh.h, nz = back ? source_dims[2] : sh.d;
    size_t NV = (size_t)nx * ny * nz;
    const float *out = x;
    float *resampled = NULL;
    if (back) {
        out = resampled = xmalloc(sizeof(float) * NV * (size_t)sh.c);
        for (int c = 0; c < sh.c; c++)
            if (prep_to_source(resampled + (size_t)c * NV, x + (size_t)c * V, sh.d, sh.h, sh.w, affine, source_affine, source_dims)) {
                free(resampled);
                return df_err(err, "%s: the packed grid's affine is singular", file);
            }
    }
    // voxel sizes: nii_write takes them from the affine
    NiiWriteSpec sp = { .version = 1, .datatype = NII_DT_FLOAT32, .affine = back ? source_affine : affine ? affine : unit };
    int64_t d[8] = { sh.c > 1 ? 4 : 3, nx, ny, nz, sh.c, 1, 1, 1 };
    memcpy(sp.dims, d, sizeof d);
    int rc = nii_write(file, &sp, out, err);
    free(resampled);
    return rc;
}

int export_sample(const char *dir, const char *name, const char *suffix, const char *path, const Cohort *h, int i, DfError *err) {
    float *x = xmalloc(sizeof(float) * shape_numel(h->shape));
    char file[1200];
    snprintf(file, sizeof file, "%s/%s%s.nii.gz", dir, name, suffix);
    int rc = shard_read_images(path, i, 1, x, err);
    if (rc == 0)
        rc = export_grid(file, x, h->shape, h->affine ? h->affine + (size_t)i * 16 : NULL,
                         h->affine ? h->source_affine + (size_t)i * 16 : NULL, h->affine ? h->source_dims + (size_t)i * 3 : NULL, err);
    free(x);
    return rc;
}

int export_check(char *const *paths, int n_paths, DfError *err) {
    for (int f = 0; f < n_paths; f++) {
        Cohort h;
        if (shard_read_header(paths[f], &h, err)) return -1;
        int rc = 0;
        for (int i = 0; i < h.n && h.affine && rc == 0; i++) {
            const int32_t *d = h.source_dims + (size_t)i * 3;
            char who[300];
            cohort_sample_name(who, sizeof who, i, h.subjects ? h.subjects[i] : NULL);
            float probe = 0, one = 0;  // one voxel to one voxel: prep_to_source's own check, nothing more
            int dims1[3] = { 1, 1, 1 };
            if (d[0] < 1 || d[1] < 1 || d[2] < 1)
                rc = df_err(err, "%s: %s, source_dims: %d x %d x %d is not an image's size", paths[f], who, d[0], d[1], d[2]);
            else if (prep_to_source(&probe, &one, 1, 1, 1, h.affine + (size_t)i * 16, h.source_affine + (size_t)i * 16, dims1))
                rc = df_err(err, "%s: %s: the packed grid's affine (/affine) is singular: it cannot be taken back to its source",
                            paths[f], who);
        }
        cohort_free(&h);
        if (rc) return rc;
    }
    return 0;
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
