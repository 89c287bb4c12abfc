// ini.h: the plain-text experiment format. Sections keep their order and may repeat
// (each network layer is one section, Darknet style), except the settings sections [data],
// [train] and [loss]; every key remembers its line so errors can say "file:line: problem";
// keys never read are reported as unknown.
#ifndef DF_INI_H
#define DF_INI_H
#include "base/common.h"

typedef struct {
    char *key, *value;
    int line;   // 1-based line in the file, 0 for values given by --set, -1 for a default
    int used;   // set when a getter reads it
    // 1 for a key the file did not set: a getter recorded the default it applied, so the
    // configuration as run (ini_serialize) lists every value that was used. ini_entry does
    // not see these: the key is still "absent" for every other purpose.
    int is_default;
} IniEntry;

typedef struct {
    char *name;  // the text between [ and ], lower-case
    int line;
    IniEntry *entries;
    int n, cap;
} IniSection;

typedef struct {
    char *origin;  // file name used in messages
    // 1 when values given by ini_apply_set are a command's own options (`deconfound synth
    // --n 5`), so messages name them "--n" rather than "--set data.n".
    int cli_options;
    char *text;    // the original text (saved verbatim in checkpoints)
    IniSection *sections;
    int n, cap;
} Ini;

int ini_parse_string(Ini *ini, const char *text, const char *origin, DfError *err);
int ini_parse_file(Ini *ini, const char *path, DfError *err);
void ini_free(Ini *ini);
// ini_parse_file, then each "section.key=value" of sets[0..n_sets) (command-line --set).
int ini_load(Ini *ini, const char *path, const char *const *sets, int n_sets, DfError *err);

// Applies "section.key=value" (a command-line --set). The section is the one with that
// header (refused, -1, when several have it: [conv3d] twice), or the layer section whose
// `name` key equals it. Missing keys are added. Section,
// key and value are trimmed as a file's are; a value with a line break, or with ';' or '#'
// after whitespace (a comment in a file), is refused (-1), as the configuration as run could
// not hold it.
int ini_apply_set(Ini *ini, const char *assignment, DfError *err);

IniSection *ini_section(Ini *ini, const char *name);  // first section with that header
IniEntry *ini_entry(IniSection *s, const char *key);  // does not mark used; NULL for a default
const char *ini_str(IniSection *s, const char *key, const char *def);  // marks used

// Typed getters: 0 if absent (out = def) or valid, -1 with "file:line: ..." in err when the
// value does not parse or is outside [lo, hi]. A default they apply is recorded (see
// IniEntry.is_default); ini_str records a non-empty default only.
int ini_long(const Ini *ini, IniSection *s, const char *key, long def, long lo, long hi, long *out, DfError *err);
int ini_int(const Ini *ini, IniSection *s, const char *key, int def, int lo, int hi, int *out, DfError *err);
int ini_double(const Ini *ini, IniSection *s, const char *key, double def, double lo, double hi, double *out, DfError *err);
int ini_bool(const Ini *ini, IniSection *s, const char *key, int def, int *out, DfError *err);
// Comma separated integers, e.g. "3" or "3,3,1": n_out gets the count (at most max).
int ini_int_list(const Ini *ini, IniSection *s, const char *key, int *out, int max, int *n_out, DfError *err);
// One of a fixed set of words; *out is the index into choices (NULL-terminated).
int ini_choice(const Ini *ini, IniSection *s, const char *key, const char *def, const char *const *choices, int *out, DfError *err);

// Records that a key absent from s takes `value` (for getters outside this file, such as a
// list with a default; see IniEntry.is_default).
void ini_note_default(IniSection *s, const char *key, const char *value);

// "file:line: [section] key" for a key's messages (the section's line when the key is
// absent), or "cmd: --key" for a command's own option (Ini.cli_options).
void ini_where_key(const Ini *ini, const IniSection *s, const char *key, char *buf, size_t n);
// "file:line: " prefix for a key's messages (line of the section when the key is absent).
void ini_where(const Ini *ini, const IniSection *s, const char *key, char *buf, size_t n);

// The configuration as it now stands (after --set), as INI text, with the defaults the
// getters applied marked "; default" (so after parsing and building everything, it is the
// configuration as run, every value filled in). Caller frees.
#define INI_RESOLVED_MARK "defaults marked"
char *ini_serialize(const Ini *ini);

// Reports the first key nobody read as "file:line: unknown key 'k' in [section]".
int ini_check_unused(const Ini *ini, DfError *err);
#endif
