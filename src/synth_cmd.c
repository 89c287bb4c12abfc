// synth_cmd.c: `deconfound synth`: writes a built-in synthetic cohort as an HDF5 shard.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "commands.h"
#include "comm.h"
#include "synth.h"

static const char *synth_help =
    "usage: deconfound synth mri3d --out DIR [--n N] [--seed S] [--shape D,H,W]\n"
    "\n"
    "Writes DIR/shard-00000.h5: N synthetic 3D volumes (1 channel, default 32x32x32, N default\n"
    "512) with a binary label and the confounders age, sex and site, whose effects on the image\n"
    "overlap the label's (the MDN paper's synthetic design in 3D; docs/formats.md). The same\n"
    "seed gives the same bytes. DIR is created and must not already hold a shard.\n";

int cmd_synth(int argc, char **argv) {
    const char *cmd = "synth", *out = NULL, *v, *kind = NULL;
    SynthMri3dConfig cfg = { 512, 32, 32, 32, 1 };
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(synth_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) out = v;
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
    if (!kind) cli_usage_error(cmd, "missing the data set name (mri3d)");
    if (strcmp(kind, "mri3d") != 0) cli_usage_error(cmd, "unknown data set '%s' (available: mri3d)", kind);
    if (!out) cli_usage_error(cmd, "missing --out DIR");
    int status = 0;
    if (dist_rank() == 0) {  // generation is cheap: one rank writes
        char path[4096];
        snprintf(path, sizeof path, "%s/shard-00000.h5", out);
        struct stat st;
        if (mkdir(out, 0755) != 0 && errno != EEXIST)
            df_die(DF_EXIT_INPUT, "synth: cannot create --out %s: %s", out, strerror(errno));
        if (stat(path, &st) == 0) df_die(DF_EXIT_INPUT, "synth: %s already exists; choose another --out", path);
        Cohort c;
        synth_mri3d(&c, &cfg);
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
