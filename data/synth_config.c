// synth_config.c: the generators' settings table and its one parser (see synth_config.h).
#include "data/synth_config.h"
#include "data/synth.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED { "seed", SYNTH_INT, "1", 0, 4611686018427387903.0, "generator seed (same seed, same data)" }
#define END { NULL, SYNTH_INT, NULL, 0, 0, NULL }

static const SynthParam mri3d_params[] = {
    { "n", SYNTH_INT, "256", 4, 1 << 24, "volumes" },
    { "shape", SYNTH_SHAPE, "32", 8, 512, "D,H,W (one value: a cube)" },
    { "masks", SYNTH_INT, "0", 0, 1, "1: also write brain masks (the foreground, for variants and CLAD)" },
    { "site_rho", SYNTH_REAL, "-1", -1, 1, "P(site = the label's: 0 or 2); -1: the weak default table" },
    { "site_outside_only", SYNTH_INT, "0", 0, 1, "1: the site changes only the background, not the brain" },
    { "site_background", SYNTH_REAL, "0", 0, 10, "per-site intensity outside the brain: (0, .5, 1) x this" },
    SEED, END,
};
static const SynthParam mdn2d_params[] = {
    { "n", SYNTH_INT, "2000", 4, 1 << 24, "images (the first half label 0)" },
    SEED, END,
};
static const SynthParam video_params[] = {
    { "n", SYNTH_INT, "256", 4, 1 << 24, "clips" },
    { "shape", SYNTH_SHAPE, "8,32,32", 4, 256, "frames,H,W" },
    { "rho", SYNTH_REAL, "0.9", 0, 1, "probability that the background is the class's own" },
    { "classes", SYNTH_INT, "4", 2, 8, "object shapes" },
    { "brightness", SYNTH_REAL, "0", 0, 1, "a clip brightness tied to the class: gain 1 + b (c_y + N(0,1)/2), column brightness" },
    SEED, END,
};
static const SynthParam fmnist_params[] = {
    { "n", SYNTH_INT, "60000", 10, 60000, "training images (biased at rho)" },
    { "n_test", SYNTH_INT, "10000", 10, 10000, "test images (at rho_test: the validation split)" },
    { "rho", SYNTH_REAL, "0.99", 0, 1, "probability that the background colour is the class's" },
    { "rho_test", SYNTH_REAL, "0.1", 0, 1, "the same for the test images (0.1: unbiased)" },
    { "fmnist_dir", SYNTH_TEXT, SYNTH_FMNIST_DIR, 0, 0, "the IDX files (Debian dataset-fashion-mnist)" },
    SEED, END,
};

const SynthGenerator synth_generators[] = {
    { "mri3d", mri3d_params, "3D volumes with a label and the confounders age, sex, site" },
    { "mdn2d", mdn2d_params, "the MDN paper's 32x32 synthetic set (confounder cf)" },
    { "video", video_params, "clips 3xTxHxW of a moving object over a class-biased background, with masks" },
    { "biased-fmnist", fmnist_params, "Fashion-MNIST coloured as Biased MNIST, with masks" },
    { NULL, NULL, NULL },
};

const SynthGenerator *synth_generator_find(const char *name) {
    for (const SynthGenerator *g = synth_generators; g->name; g++)
        if (strcmp(g->name, name) == 0) return g;
    return NULL;
}

const char *synth_generator_list(void) { return "mri3d, mdn2d, video, biased-fmnist"; }

// The values read: numbers by key, a shape, a text.
typedef struct {
    const SynthGenerator *g;
    double num[8];
    int shape[3];
    const char *text;
} SynthValues;

static double num(const SynthValues *v, const char *key) {
    for (int i = 0; v->g->params[i].key; i++)
        if (strcmp(v->g->params[i].key, key) == 0) return v->num[i];
    DF_ASSERT(!"a generator reads a key its table lacks");
    return 0;
}

static int read_shape(const Ini *ini, IniSection *s, const SynthParam *p, int shape[3], DfError *err) {
    int n = 0;
    if (ini_int_list(ini, s, p->key, shape, 3, &n, err)) return -1;
    if (n == 0) {
        ini_note_default(s, p->key, p->def);
        n = sscanf(p->def, "%d,%d,%d", &shape[0], &shape[1], &shape[2]);
    }
    if (n == 1) shape[1] = shape[2] = shape[0];
    char where[640];
    ini_where_key(ini, s, p->key, where, sizeof where);
    if (n != 1 && n != 3) return df_err(err, "%s needs 1 or 3 values (D,H,W)", where);
    for (int i = 0; i < 3; i++)
        if (shape[i] < p->lo || shape[i] > p->hi) return df_err(err, "%s values must be in [%g, %g]", where, p->lo, p->hi);
    return 0;
}

static int read_params(SynthValues *v, const Ini *ini, IniSection *s, DfError *err) {
    for (int i = 0; v->g->params[i].key; i++) {
        const SynthParam *p = &v->g->params[i];
        long l;
        int rc = 0;
        switch (p->type) {
        case SYNTH_INT:
            rc = ini_long(ini, s, p->key, strtol(p->def, NULL, 10), (long)p->lo, (long)p->hi, &l, err);
            v->num[i] = (double)l;
            break;
        case SYNTH_REAL: rc = ini_double(ini, s, p->key, strtod(p->def, NULL), p->lo, p->hi, &v->num[i], err); break;
        case SYNTH_SHAPE: rc = read_shape(ini, s, p, v->shape, err); break;
        case SYNTH_TEXT: v->text = ini_str(s, p->key, p->def); break;
        }
        if (rc) return -1;
    }
    return 0;
}

int synth_from_config(Cohort *out, const char *name, const Ini *ini, IniSection *s, int *predefined, DfError *err) {
    SynthValues v = { .g = synth_generator_find(name) };
    *predefined = 0;
    if (!v.g) {
        char where[512];
        ini_where(ini, s, "source", where, sizeof where);
        return df_err(err, "%s: unknown generator '%s' (available: %s)", where, name, synth_generator_list());
    }
    if (read_params(&v, ini, s, err)) return -1;
    uint64_t seed = (uint64_t)num(&v, "seed");
    int n = (int)num(&v, "n");
    if (!strcmp(name, "mri3d")) {
        SynthMri3dConfig c = { n, v.shape[0], v.shape[1], v.shape[2], seed, (int)num(&v, "masks"), num(&v, "site_rho") >= 0,
                               num(&v, "site_rho"), (int)num(&v, "site_outside_only"), num(&v, "site_background") };
        synth_mri3d(out, &c);
    } else if (!strcmp(name, "mdn2d")) {
        SynthMdn2dConfig c = { n, seed };
        synth_mdn2d(out, &c);
    } else if (!strcmp(name, "video")) {
        SynthVideoConfig c = { .n = n, .T = v.shape[0], .H = v.shape[1], .W = v.shape[2], .classes = (int)num(&v, "classes"),
                               .rho = num(&v, "rho"), .seed = seed, .brightness = num(&v, "brightness") };
        synth_video(out, &c);
    } else {
        SynthFmnistConfig c = { .dir = v.text, .n_train = n, .n_test = (int)num(&v, "n_test"), .rho = num(&v, "rho"),
                                .rho_test = num(&v, "rho_test"), .seed = seed };
        if (synth_biased_fmnist(out, &c, err)) return -1;
        *predefined = c.n_train;
    }
    return 0;
}

void synth_print_params(const SynthGenerator *g, FILE *f) {
    fprintf(f, "%s: %s\n", g->name, g->what);
    for (const SynthParam *p = g->params; p->key; p++) {
        char opt[64];
        snprintf(opt, sizeof opt, "--%s", p->key);
        for (char *c = opt + 2; *c; c++)
            if (*c == '_') *c = '-';
        if (p->type == SYNTH_TEXT) fprintf(f, "  %-14s %s (default %s)\n", opt, p->what, p->def);
        else fprintf(f, "  %-14s %s (default %s, range %.15g..%.15g)\n", opt, p->what, p->def, p->lo, p->hi);
    }
}
