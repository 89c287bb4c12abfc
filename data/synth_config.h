// synth_config.h: the built-in generators' settings, in one table that both `[data] source =
// synth:NAME` (an experiment file) and `deconfound synth NAME --key value` (the command line)
// read through synth_from_config -- so both take the same keys with the same defaults and
// ranges. docs/config.md lists them.
#ifndef DF_SYNTH_CONFIG_H
#define DF_SYNTH_CONFIG_H
#include "base/ini.h"
#include "data/shard.h"

typedef enum { SYNTH_INT, SYNTH_REAL, SYNTH_SHAPE, SYNTH_TEXT } SynthParamType;

typedef struct {
    const char *key;       // [data] key; the command line's option is --key ('-' for '_')
    SynthParamType type;
    const char *def;       // default, as written in a config ("32" or "8,32,32" for a shape)
    double lo, hi;         // range (a shape's D, H and W each)
    const char *what;
} SynthParam;

typedef struct {
    const char *name;          // "mri3d", ...: source = synth:<name>
    const SynthParam *params;  // terminated by an entry with key NULL
    const char *what;
} SynthGenerator;

extern const SynthGenerator synth_generators[];  // terminated by name NULL
const SynthGenerator *synth_generator_find(const char *name);
// "mri3d, mdn2d, video, biased-fmnist", for messages.
const char *synth_generator_list(void);

// Generates `name`'s cohort from the keys of section s. *predefined: for biased-fmnist, the
// training images that lead the cohort (it brings its own validation split), else 0.
// -1 with "file:line: ..." (or "cmd: --key ...") in err for an unknown generator or a bad
// value; the defaults applied are recorded in the section (base/ini.h).
int synth_from_config(Cohort *out, const char *name, const Ini *ini, IniSection *s, int *predefined, DfError *err);

// Writes a generator's settings for --help: one line per key with default and range.
void synth_print_params(const SynthGenerator *g, FILE *f);
#endif
