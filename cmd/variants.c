// variants.c: `deconfound variants`: a test shard's Background Challenge variants
// (data/bgvariant.h), one shard each, for measuring how much a network looks at the background.
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "data/bgvariant.h"
#include "data/shard.h"
#include "mpi/comm.h"

static const char *variants_help =
    "usage: deconfound variants SHARD --out DIR [--seed S] [--fill V] [--only NAME[,NAME...]]\n"
    "\n"
    "Writes the Background Challenge's variants of a test shard that has masks, one shard each:\n"
    "  DIR/original.h5     the samples as they are\n"
    "  DIR/mixed-same.h5   each foreground on the background of another sample of its class\n"
    "  DIR/mixed-rand.h5   each foreground on the background of a random other sample\n"
    "  DIR/only-bg.h5      each foreground blanked to V (--fill, a finite number; default 0)\n"
    "Labels, metadata and masks are kept; the foreground's values are kept bit for bit. Evaluate\n"
    "a checkpoint on each (`deconfound eval --accuracy-by` or `predict`); BG-gap = accuracy on\n"
    "mixed-same - accuracy on mixed-rand. The pairs depend only on --seed (default 1). DIR is\n"
    "created; an existing variant file there is not overwritten.\n";

typedef struct {
    const char *in, *out;
    uint64_t seed;
    float fill;
    int want[BG_N_VARIANTS];
} VariantsArgs;

static void parse_only(VariantsArgs *a, const char *list) {
    char *copy = xstrdup(list), *save = NULL;
    memset(a->want, 0, sizeof a->want);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int v = 0;
        while (v < BG_N_VARIANTS && strcmp(bg_variant_names[v], t) != 0) v++;
        if (v == BG_N_VARIANTS) cli_usage_error("variants", "--only: unknown variant '%s' (original, mixed-same, mixed-rand, only-bg)", t);
        a->want[v] = 1;
    }
    free(copy);
}

static int parse_args(VariantsArgs *a, int argc, char **argv) {
    const char *cmd = "variants", *v;
    *a = (VariantsArgs){ .seed = 1, .want = { 1, 1, 1, 1 } };
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(variants_help, stdout); return 1; }
        else if (cli_opt(argc, argv, &i, "--out", &a->out, cmd)) continue;
        else if (cli_opt(argc, argv, &i, "--seed", &v, cmd)) a->seed = (uint64_t)cli_long(cmd, "--seed", v, 0, 1L << 62);
        else if (cli_opt(argc, argv, &i, "--only", &v, cmd)) parse_only(a, v);
        else if (cli_opt(argc, argv, &i, "--fill", &v, cmd)) {
            char *end;
            errno = 0;
            a->fill = strtof(v, &end);
            if (end == v || *end) cli_usage_error(cmd, "--fill: '%s' is not a number", v);
            // a number beyond a float's range overflows to infinity (errno ERANGE); one too small
            // for it underflows towards 0, which is the value meant
            if (errno == ERANGE && isinf(a->fill))
                cli_usage_error(cmd, "--fill: %s is out of range for a float32 voxel (|V| at most %.1e)", v, FLT_MAX);
            // NaN or infinity would write shards every reader refuses (shard values are finite)
            if (!isfinite(a->fill)) cli_usage_error(cmd, "--fill: %s is not a finite number", v);
        } else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!a->in) a->in = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!a->in) cli_usage_error(cmd, "missing SHARD");
    if (!a->out) cli_usage_error(cmd, "missing --out DIR");
    return 0;
}

static void variant_path(char *path, size_t n, const VariantsArgs *a, int v) {
    snprintf(path, n, "%s/%s.h5", a->out, bg_variant_names[v]);
}

// One variant's images from its pairs, written beside the others; the cohort's own images are
// put back afterwards.
static void write_variant(Cohort *c, const VariantsArgs *a, BgVariant v, const int *partner, float *images) {
    char path[4096];
    DfError err;
    variant_path(path, sizeof path, a, v);
    bg_variant_images(images, c, v, partner, a->fill);
    int other_class = 0;
    for (int i = 0; i < c->n; i++) other_class += c->labels[partner[i]] != c->labels[i];
    float *own = c->images;
    c->images = images;
    if (shard_write(path, c, &err)) df_die(DF_EXIT_INPUT, "variants: %s", err.msg);
    c->images = own;
    printf("wrote %s: %d samples", path, c->n);
    if (v == BG_MIXED_SAME || v == BG_MIXED_RAND) printf("; background from another class for %d", other_class);
    printf("\n");
}

int cmd_variants(int argc, char **argv) {
    VariantsArgs a;
    if (parse_args(&a, argc, argv)) return 0;
    if (dist_rank() == 0) {  // a test set is read and written whole, by one rank
        Cohort c;
        DfError err;
        if (shard_read(a.in, &c, &err)) df_die(DF_EXIT_INPUT, "variants: %s", err.msg);
        if (!c.has_masks)
            df_die(DF_EXIT_INPUT, "variants: %s has no /masks: the variants need each sample's foreground mask "
                   "(pack with a mask column; synth video and biased-fmnist write them, mri3d with --masks 1)", a.in);
        // every check before the first file, so a refused run writes nothing
        int *partner[BG_N_VARIANTS] = { 0 };
        for (int v = 0; v < BG_N_VARIANTS; v++) {
            if (!a.want[v]) continue;
            char path[4096];
            struct stat st;
            variant_path(path, sizeof path, &a, v);
            if (stat(path, &st) == 0) df_die(DF_EXIT_INPUT, "variants: %s already exists; choose another --out", path);
            partner[v] = xmalloc(sizeof(int) * (size_t)c.n);
            if (bg_partners(partner[v], &c, (BgVariant)v, a.seed, a.in, &err)) df_die(DF_EXIT_INPUT, "variants: %s", err.msg);
        }
        if (mkdir(a.out, 0755) != 0 && errno != EEXIST)
            df_die(DF_EXIT_INPUT, "variants: cannot create --out %s: %s", a.out, strerror(errno));
        float *images = xmalloc(sizeof(float) * (size_t)c.n * shape_numel(c.shape));
        for (int v = 0; v < BG_N_VARIANTS; v++)
            if (a.want[v]) write_variant(&c, &a, (BgVariant)v, partner[v], images);
        for (int v = 0; v < BG_N_VARIANTS; v++) free(partner[v]);
        free(images);
        cohort_free(&c);
    }
    dist_barrier();
    return 0;
}
