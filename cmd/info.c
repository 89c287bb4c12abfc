// info.c: `deconfound info PATH [--json]`: what a shard or a checkpoint holds.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data/checkpoint.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "data/nifti.h"
#include "data/shard.h"

static const char *info_help =
    "usage: deconfound info PATH [--json]\n"
    "\n"
    "For a NIfTI file (.nii, .nii.gz, .hdr): NIfTI version, dimensions, voxel size, datatype,\n"
    "byte order, scaling, orientation (axis codes, e.g. RAS; '?' where the voxel-to-world affine\n"
    "is singular or not finite, which is said), min/max/mean of the scaled data (JSON keys dims,\n"
    "pixdim, datatype, min, max, mean, affine, affine_problem, ...).\n"
    "JSON has no NaN or infinity: such a number is written as null.\n"
    "For a shard: sample count and shape, label balance, and a summary of each metadata\n"
    "column (mean/sd/min/max for continuous ones, level counts for categorical ones), and where\n"
    "the samples came from when pack recorded it (a BIDS dataset: JSON key source).\n"
    "For a checkpoint: epoch, step, and each layer's parameters with their shapes.\n";

static void json_string(const char *s);

// A number in JSON, which has no NaN or infinity: those are written as null.
static void json_number(double x, int digits) {
    if (isfinite(x)) printf("%.*g", digits, x);
    else fputs("null", stdout);
}

static void describe_shard(const char *path, int json) {
    Cohort c;
    DfError err;
    if (shard_read_header(path, &c, &err)) df_die(DF_EXIT_INPUT, "info: %s", err.msg);
    // Label balance over the labels present (class indices; anything else counted apart).
    int maxlab = 0;
    long other = 0;
    for (int i = 0; i < c.n; i++) maxlab = DF_MAX(maxlab, DF_MIN(c.labels[i], 4095));
    long *counts = xcalloc((size_t)maxlab + 1, sizeof(long));
    for (int i = 0; i < c.n; i++) {
        if (c.labels[i] >= 0 && c.labels[i] <= maxlab) counts[c.labels[i]]++;
        else other++;
    }
    if (json) {
        printf("{\"path\": \"%s\", \"kind\": \"shard\", \"n\": %d, \"shape\": [%d, %d, %d, %d], \"labels\": {", path, c.n,
               c.shape.c, c.shape.d, c.shape.h, c.shape.w);
        for (int y = 0; y <= maxlab; y++) printf("%s\"%d\": %ld", y ? ", " : "", y, counts[y]);
        if (other) printf(", \"other\": %ld", other);
        printf("}, \"columns\": [");
    } else {
        printf("%s: shard, %d samples of shape (C,D,H,W) = (%d,%d,%d,%d)\nlabels:", path, c.n, c.shape.c, c.shape.d,
               c.shape.h, c.shape.w);
        for (int y = 0; y <= maxlab; y++) printf(" %d: %ld", y, counts[y]);
        if (other) printf(" (not a class index: %ld)", other);
        printf("\n");
    }
    for (int j = 0; j < c.k; j++) {
        double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < c.n; i++) {
            double v = c.meta[(size_t)i * c.k + j];
            sum += v; sq += v * v; lo = fmin(lo, v); hi = fmax(hi, v);
        }
        double mean = sum / c.n, sd = sqrt(fmax(0.0, sq / c.n - mean * mean));
        const char *kind = c.kinds[j] == META_CATEGORICAL ? "categorical" : "continuous";
        if (json) {
            printf("%s{\"name\": \"%s\", \"kind\": \"%s\", \"mean\": ", j ? ", " : "", c.columns[j], kind);
            json_number(mean, 6), printf(", \"sd\": "), json_number(sd, 6), printf(", \"min\": "), json_number(lo, 6);
            printf(", \"max\": "), json_number(hi, 6), printf("}");
        } else if (c.kinds[j] == META_CATEGORICAL) {
            printf("  %-12s categorical:", c.columns[j]);
            for (int level = (int)lo; level <= (int)hi && level - (int)lo < 64; level++) {
                long n = 0;
                for (int i = 0; i < c.n; i++) n += c.meta[(size_t)i * c.k + j] == level;
                if (n) printf(" %d: %ld", level, n);
            }
            printf("\n");
        } else {
            printf("  %-12s continuous: mean %.4g sd %.4g min %.4g max %.4g\n", c.columns[j], mean, sd, lo, hi);
        }
    }
    int distinct = 0;
    if (c.subjects)
        for (int i = 0; i < c.n; i++) {
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = strcmp(c.subjects[i], c.subjects[j]) == 0;
            distinct += !seen;
        }
    if (json) {
        printf("], \"masks\": %s, \"subjects\": %d, \"geometry\": %s", c.has_masks ? "true" : "false", distinct,
               c.affine ? "true" : "false");
        if (c.source) { printf(", \"source\": "); json_string(c.source); }
        printf("}\n");
    }
    else printf("masks: %s; subject ids: %s", c.has_masks ? "yes" : "no", c.subjects ? "" : "none\n");
    if (!json && c.subjects) printf("%d distinct\n", distinct);
    if (!json && c.derived_by) printf("derived by: %s\n", c.derived_by);
    if (!json && c.source) printf("source: %s\n", c.source);
    if (!json && c.preprocessing) printf("preprocessing: %s\n", c.preprocessing);
    if (!json && c.affine) {  // the first sample's, as an example
        const double *A = c.affine;
        printf("geometry: each sample's source image and affine; sample 0 from %s (%dx%dx%d), packed voxel -> mm:\n",
               c.sources[0], c.source_dims[0], c.source_dims[1], c.source_dims[2]);
        for (int r = 0; r < 3; r++) printf("  [%9.4f %9.4f %9.4f %9.4f]\n", A[r * 4], A[r * 4 + 1], A[r * 4 + 2], A[r * 4 + 3]);
    }
    free(counts);
    cohort_free(&c);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int is_nifti_path(const char *p) {
    return ends_with(p, ".nii") || ends_with(p, ".nii.gz") || ends_with(p, ".hdr") || ends_with(p, ".img") ||
           ends_with(p, ".hdr.gz") || ends_with(p, ".img.gz");
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static void describe_nifti(const char *path, int json) {
    NiiVolume v;
    DfError err;
    if (nii_read(path, &v, 1, &err)) df_die(DF_EXIT_INPUT, "info: %s", err.msg);
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    long nonfinite = 0;
    for (int64_t i = 0; i < v.nvox; i++) {
        double x = v.data[i];
        if (!isfinite(x)) { nonfinite++; continue; }
        lo = fmin(lo, x); hi = fmax(hi, x); sum += x;
    }
    int none = v.nvox == nonfinite;  // no finite voxel
    double mean = none ? NAN : sum / (double)(v.nvox - nonfinite);
    const char *bad = nii_affine_problem(&v);  // "is singular", ...: pack refuses such a volume
    if (json) {
        printf("{\"path\": ");
        json_string(path);
        printf(", \"kind\": \"nifti\", \"version\": %d, \"dims\": [", v.version);
        for (int i = 1; i <= v.ndim; i++) printf("%s%lld", i > 1 ? ", " : "", (long long)v.dim[i]);
        printf("], \"pixdim\": [");
        for (int i = 1; i <= v.ndim; i++) printf("%s", i > 1 ? ", " : ""), json_number(v.pixdim[i], 9);
        printf("], \"datatype\": \"%s\", \"byte_order\": \"%s\", \"scl_slope\": %.9g, \"scl_inter\": %.9g, "
               "\"orientation\": \"%s\", \"min\": ", nii_datatype_name(v.datatype), v.big_endian ? "big" : "little", v.slope,
               v.inter, v.orient);
        // no finite voxel: min, max and mean are null
        json_number(none ? NAN : lo, 9), printf(", \"max\": "), json_number(none ? NAN : hi, 9), printf(", \"mean\": ");
        json_number(mean, 9), printf(", \"nonfinite\": %ld, \"affine\": [", nonfinite);
        for (int r = 0; r < 3; r++) {  // voxel -> world mm (sform, else qform), rows 1-3
            for (int c = 0; c < 4; c++) printf("%s", c ? ", " : r ? ", [" : "["), json_number(v.affine[r][c], 9);
            printf("]");
        }
        printf("], \"affine_problem\": ");
        if (bad) json_string(bad);
        else fputs("null", stdout);
        printf("}\n");
    } else {
        printf("%s: NIfTI-%d, %s-endian %s, dims", path, v.version, v.big_endian ? "big" : "little",
               nii_datatype_name(v.datatype));
        for (int i = 1; i <= v.ndim; i++) printf("%s%lld", i > 1 ? " x " : " ", (long long)v.dim[i]);
        printf(", voxel size");
        for (int i = 1; i <= DF_MIN(v.ndim, 3); i++) printf("%s%.4g", i > 1 ? " x " : " ", v.pixdim[i]);
        printf(" mm, orientation %s\n", v.orient);
        if (bad) printf("the voxel-to-world affine (sform, else qform) %s: no place in world space (pack refuses it)\n", bad);
        if (v.slope != 1.0 || v.inter != 0.0) printf("scaling: value = raw * %.9g + %.9g\n", v.slope, v.inter);
        if (none) printf("scaled data: no finite voxel (%ld NaN or infinite)\n", nonfinite);
        else {
            printf("scaled data: min %.6g max %.6g mean %.6g", lo, hi, mean);
            if (nonfinite) printf(" (%ld non-finite voxels left out)", nonfinite);
            printf("\n");
        }
    }
    nii_free(&v);
}

int cmd_info(int argc, char **argv) {
    const char *cmd = "info", *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(info_help, stdout); return 0; }
        else if (cli_flag(argv, i, "--json")) json = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!path) cli_usage_error(cmd, "missing PATH");
    if (dist_rank() == 0 && is_nifti_path(path)) {
        describe_nifti(path, json);
    } else if (dist_rank() == 0) {
        DfError err;
        int kind = checkpoint_probe(path, &err);
        if (kind < 0) df_die(DF_EXIT_INPUT, "info: %s", err.msg);
        if (kind == 1) {
            if (checkpoint_describe(path, stdout, json, &err)) df_die(DF_EXIT_INPUT, "info: %s", err.msg);
        } else {
            describe_shard(path, json);
        }
    }
    dist_barrier();
    return 0;
}
