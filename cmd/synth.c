// synth_cmd.c: `deconfound synth`: writes a built-in synthetic cohort as an HDF5 shard.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "data/nifti.h"
#include "data/synth.h"
#include "data/synth_config.h"

// A write that failed part way (a full disk) leaves no half cohort: the first n volumes go.
static void remove_volumes(const char *out, int n) {
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/sub-%05d.nii.gz", out, i);
        unlink(path);
    }
}

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
        if (nii_write(path, &sp, c->images + (size_t)i * V, &err)) {
            remove_volumes(out, i);
            df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
        }
        len += (size_t)snprintf(csv + len, cap - len, "%s,%d,sub-%05d,%.4f,%d,%d\n", name, c->labels[i], i, c->meta[i * 3],
                                (int)c->meta[i * 3 + 1], (int)c->meta[i * 3 + 2]);
    }
    snprintf(path, sizeof path, "%s/subjects.csv", out);
    DfError err;
    if (df_write_file_atomic(path, csv, len, &err)) {
        remove_volumes(out, c->n);
        df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
    }
    free(csv);
    printf("wrote %s: %d NIfTI volumes of %dx%dx%d and their manifest\n", path, c->n, c->shape.d, c->shape.h, c->shape.w);
}

static const char *synth_help =
    "usage: deconfound synth mri3d|mdn2d|video|biased-fmnist --out DIR [--n N] [--seed S] [--KEY VALUE ...]\n"
    "       deconfound synth mri3d --nifti --out DIR [--n N] [--seed S] [--shape D,H,W]\n"
    "       deconfound synth brain --template FILE --out DIR ...  (NIfTI subjects made from a real\n"
    "                                                             template: synth brain --help)\n"
    "\n"
    "Writes DIR/shard-00000.h5 with a built-in synthetic data set; the same seed gives the same\n"
    "bytes. DIR is created and must not already hold a shard. The settings are those of an\n"
    "experiment's [data] source = synth:NAME, with the same defaults (docs/config.md); each is\n"
    "also an option here (--n-test for n_test):\n"
    "\n"
    "%s"
    "\n"
    "  --nifti   mri3d: write DIR/sub-00000.nii.gz, ... (float32 NIfTI-1, 1.5 mm voxels, RAS) and\n"
    "            DIR/subjects.csv (path,label,subject,age,sex,site) instead of a shard: a cohort\n"
    "            to try `deconfound pack` or [data] manifest on\n";

static void print_help(void) {
    char *params = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&params, &len);
    for (const SynthGenerator *g = synth_generators; g->name; g++) synth_print_params(g, f);
    fclose(f);
    printf(synth_help, params);
    free(params);
}

// `--key value` options become [data] keys ('-' read as '_'): the generator parses them as it
// parses an experiment file, so both share one table of keys, defaults and ranges.
static void add_option(Ini *ini, const char *cmd, const char *opt, const char *value) {
    char set[1024];
    int n = snprintf(set, sizeof set, "data.%s=%s", opt + 2, value);
    if (n < 0 || (size_t)n >= sizeof set) cli_usage_error(cmd, "%s: value too long", opt);
    for (char *c = set + 5; *c && *c != '='; c++)
        if (*c == '-') *c = '_';
    DfError err;
    if (ini_apply_set(ini, set, &err)) cli_usage_error(cmd, "%s", err.msg);
}

int cmd_synth(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "brain")) return cmd_synth_brain(argc, argv);  // its own options
    const char *cmd = "synth", *out = NULL, *kind = NULL;
    int nifti = 0;
    Ini ini;
    DfError err;
    if (ini_parse_string(&ini, "[data]\n", "synth", &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    ini.cli_options = 1;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) print_help(); ini_free(&ini); return 0; }
        else if (cli_opt(argc, argv, &i, "--out", (const char **)&out, cmd)) continue;
        else if (cli_flag(argv, i, "--nifti")) nifti = 1;
        else if (!strncmp(argv[i], "--", 2) && argv[i][2]) {
            if (i + 1 >= argc) cli_usage_error(cmd, "%s needs a value", argv[i]);
            add_option(&ini, cmd, argv[i], argv[i + 1]);
            i++;
        } else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!kind) kind = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!kind) cli_usage_error(cmd, "missing the data set name (%s)", synth_generator_list());
    if (!strcmp(kind, "brain"))
        cli_usage_error(cmd, "'brain' must come first: deconfound synth brain --template FILE --out DIR ...");
    if (!synth_generator_find(kind)) cli_usage_error(cmd, "unknown data set '%s' (available: %s, brain)", kind, synth_generator_list());
    if (strcmp(kind, "mri3d") != 0 && nifti) cli_usage_error(cmd, "--nifti is for mri3d");
    if (!out) cli_usage_error(cmd, "missing --out DIR");
    if (dist_rank() == 0) {  // generation is cheap: one rank writes
        char path[4096];
        snprintf(path, sizeof path, "%s/shard-00000.h5", out);
        struct stat st;
        if (mkdir(out, 0755) != 0 && errno != EEXIST)
            df_die(DF_EXIT_INPUT, "synth: cannot create --out %s: %s", out, strerror(errno));
        if (!nifti && stat(path, &st) == 0) df_die(DF_EXIT_INPUT, "synth: %s already exists; choose another --out", path);
        Cohort c;
        int predefined;
        IniSection *sec = ini_section(&ini, "data");
        if (synth_from_config(&c, kind, &ini, sec, &predefined, &err) || ini_check_unused(&ini, &err))
            df_die(DF_EXIT_INPUT, "%s", err.msg);
        if (nifti) write_nifti_cohort(out, &c);
        else if (shard_write(path, &c, &err)) df_die(DF_EXIT_INPUT, "synth: %s", err.msg);
        else {
            int classes = 0;
            for (int i = 0; i < c.n; i++) classes = DF_MAX(classes, c.labels[i] + 1);
            printf("wrote %s: %d samples of (C,D,H,W) = (%d,%d,%d,%d), %d classes; metadata", path, c.n, c.shape.c,
                   c.shape.d, c.shape.h, c.shape.w, classes);
            for (int j = 0; j < c.k; j++) printf("%s%s", j ? ", " : " ", c.columns[j]);
            printf("%s\n", c.has_masks ? "; masks" : "");
        }
        cohort_free(&c);
    }
    ini_free(&ini);
    dist_barrier();
    return 0;
}
