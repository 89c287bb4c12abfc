// synth_cmd.c: `deconfound synth`: writes a built-in synthetic cohort as an HDF5 shard.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "commands.h"
#include "comm.h"
#include "nifti.h"
#include "synth.h"

// The cohort as NIfTI files plus a manifest (for pack / manifest training demos and tests).
static void write_nifti_cohort(const char *out, const Cohort *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/subjects.csv", out);
    struct stat st;
    if (stat(path, &st) == 0) df_die(DF_EXIT_INPUT, "synth: %s already exists; choose another --out", path);
    size_t cap = 128 + (size_t)c->n * 96, len = 0;
    char *csv = xmalloc(cap);
    len += (size_t)snprintf(csv + len, cap - len, "# synthetic mri3d cohort (deconfound synth mri3d --nifti)\npath,label,subject,age,sex:categorical,site:categorical\n");
    size_t V = shape_spatial(c->shape);
    for (int i = 0; i < c->n; i++) {
        char name[64];
        snprintf(name, sizeof name, "sub-%05d.nii.gz", i);
        snprintf(path, sizeof path, "%s/%s", out, name);
        NiiWriteSpec sp = { .version = 1, .datatype = 16 /* DT_FLOAT32 */ };
        int64_t dims[8] = { 3, c->shape.w, c->shape.h, c->shape.d, 1, 1, 1, 1 };
        memcpy(sp.dims, dims, sizeof dims);
        sp.pixdim[1] = sp.pixdim[2] = sp.pixdim[3] = 1.5;
        DfError err;
        if (nii_write(path, &sp, c->images + (size_t)i * V, &err)) df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
        len += (size_t)snprintf(csv + len, cap - len, "%s,%d,sub-%05d,%.4f,%d,%d\n", name, c->labels[i], i, c->meta[i * 3],
                                (int)c->meta[i * 3 + 1], (int)c->meta[i * 3 + 2]);
    }
    snprintf(path, sizeof path, "%s/subjects.csv", out);
    DfError err;
    if (df_write_file_atomic(path, csv, len, &err)) df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
    free(csv);
    printf("wrote %s: %d NIfTI volumes of %dx%dx%d and their manifest\n", path, c->n, c->shape.d, c->shape.h, c->shape.w);
}

static const char *synth_help =
    "usage: deconfound synth mri3d|mdn2d|video|biased-fmnist --out DIR [--n N] [--seed S] [--shape D,H,W]\n"
    "\n"
    "Writes DIR/shard-00000.h5: N synthetic 3D volumes (1 channel, default 32x32x32, N default\n"
    "512) with a binary label and the confounders age, sex and site, whose effects on the image\n"
    "overlap the label's (the MDN paper's synthetic design in 3D; docs/formats.md). The same\n"
    "seed gives the same bytes. DIR is created and must not already hold a shard.\n"
    "\n"
    "  --nifti   write DIR/sub-00000.nii.gz, ... (float32 NIfTI-1, 1.5 mm voxels, RAS) and\n"
    "            DIR/subjects.csv (path,label,subject,age,sex,site) instead of a shard: a cohort\n"
    "            to try `deconfound pack` or [data] manifest on\n"
    "\n"
    "mdn2d (the MDN paper's 32x32 set, N default 2000), video (clips 3x8x32x32 with masks,\n"
    "rho 0.9) and biased-fmnist (Fashion-MNIST coloured as Biased MNIST: N training images at\n"
    "rho 0.99 then the 10000 test images at rho 0.1) write one shard with [data]'s defaults\n"
    "(docs/formats.md); --shape applies to mri3d only.\n";

int cmd_synth(int argc, char **argv) {
    const char *cmd = "synth", *out = NULL, *v, *kind = NULL;
    int nifti = 0;
    SynthMri3dConfig cfg = { 512, 32, 32, 32, 1 };
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(synth_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) out = v;
        else if (cli_flag(argv, i, "--nifti")) nifti = 1;
        else if (cli_opt(argc, argv, &i, "--n", &v, cmd)) cfg.n = (int)cli_long(cmd, "--n", v, 2, 1 << 24);
        else if (cli_opt(argc, argv, &i, "--seed", &v, cmd)) cfg.seed = (uint64_t)cli_long(cmd, "--seed", v, 0, INT64_MAX >> 1);
        else if (cli_opt(argc, argv, &i, "--shape", &v, cmd)) {
            if (sscanf(v, "%d,%d,%d", &cfg.D, &cfg.H, &cfg.W) != 3 || cfg.D < 8 || cfg.H < 8 || cfg.W < 8 ||
                cfg.D > 512 || cfg.H > 512 || cfg.W > 512)
                cli_usage_error(cmd, "--shape %s: expected D,H,W with each in [8, 512]", v);
        } else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!kind) kind = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!kind) cli_usage_error(cmd, "missing the data set name (mri3d, mdn2d, video, biased-fmnist)");
    int which = !strcmp(kind, "mri3d") ? 0 : !strcmp(kind, "mdn2d") ? 1 : !strcmp(kind, "video") ? 2 : !strcmp(kind, "biased-fmnist") ? 3 : -1;
    if (which < 0) cli_usage_error(cmd, "unknown data set '%s' (available: mri3d, mdn2d, video, biased-fmnist)", kind);
    if (which != 0 && nifti) cli_usage_error(cmd, "--nifti is for mri3d");
    if (!out) cli_usage_error(cmd, "missing --out DIR");
    int status = 0;
    if (dist_rank() == 0) {  // generation is cheap: one rank writes
        char path[4096];
        snprintf(path, sizeof path, "%s/shard-00000.h5", out);
        struct stat st;
        if (mkdir(out, 0755) != 0 && errno != EEXIST)
            df_die(DF_EXIT_INPUT, "synth: cannot create --out %s: %s", out, strerror(errno));
        if (!nifti && stat(path, &st) == 0) df_die(DF_EXIT_INPUT, "synth: %s already exists; choose another --out", path);
        Cohort c;
        if (which != 0) {  // the other generators with their [data] defaults (docs/formats.md)
            DfError err;
            if (which == 1) {
                SynthMdn2dConfig mc = { cfg.n == 512 ? 2000 : cfg.n, cfg.seed };
                synth_mdn2d(&c, &mc);
            } else if (which == 2) {
                SynthVideoConfig vc = { .n = cfg.n, .T = 8, .H = 32, .W = 32, .classes = 4, .rho = 0.9, .seed = cfg.seed };
                synth_video(&c, &vc);
            } else {
                SynthFmnistConfig fc = { .dir = SYNTH_FMNIST_DIR, .n_train = DF_MIN(cfg.n, 60000), .n_test = 10000, .rho = 0.99,
                                         .rho_test = 0.1, .seed = cfg.seed };
                if (synth_biased_fmnist(&c, &fc, &err)) df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
            }
            if (shard_write(path, &c, &err)) df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
            printf("wrote %s: %d samples of (C,D,H,W) = (%d,%d,%d,%d)%s\n", path, c.n, c.shape.c, c.shape.d, c.shape.h, c.shape.w,
                   c.has_masks ? " with masks" : "");
            cohort_free(&c);
            dist_barrier();
            return 0;
        }
        synth_mri3d(&c, &cfg);
        if (nifti) {
            write_nifti_cohort(out, &c);
            cohort_free(&c);
            dist_barrier();
            return 0;
        }
        DfError err;
        if (shard_write(path, &c, &err)) df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
        int n1 = 0;
        for (int i = 0; i < c.n; i++) n1 += c.labels[i] == 1;
        printf("wrote %s: %d volumes of %dx%dx%d, %d with label 0 and %d with label 1, columns age, sex, site\n", path,
               c.n, cfg.D, cfg.H, cfg.W, c.n - n1, n1);
        cohort_free(&c);
    }
    dist_barrier();
    return status;
}
