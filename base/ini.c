// ini.c: parser for the experiment files (see ini.h and docs/config.md).
#include "base/ini.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static IniSection *add_section(Ini *ini, const char *name, int line) {
    if (ini->n == ini->cap) {
        ini->cap = ini->cap ? 2 * ini->cap : 16;
        ini->sections = xrealloc(ini->sections, (size_t)ini->cap * sizeof *ini->sections);
    }
    IniSection *s = &ini->sections[ini->n++];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(name);
    for (char *p = s->name; *p; p++) *p = (char)tolower((unsigned char)*p);
    s->line = line;
    return s;
}

static IniEntry *add_entry(IniSection *s, const char *key, const char *value, int line) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->entries = xrealloc(s->entries, (size_t)s->cap * sizeof *s->entries);
    }
    IniEntry *e = &s->entries[s->n++];
    e->key = xstrdup(key);
    for (char *p = e->key; *p; p++) *p = (char)tolower((unsigned char)*p);
    e->value = xstrdup(value);
    e->line = line;
    e->used = 0;
    e->is_default = 0;
    return e;
}

// The entry for key, including a recorded default.
static IniEntry *find_any(IniSection *s, const char *key) {
    if (!s) return NULL;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0) return &s->entries[i];
    return NULL;
}

// Records the default a getter applied for an absent key (once).
void ini_note_default(IniSection *s, const char *key, const char *value) {
    if (!s || find_any(s, key)) return;
    IniEntry *e = add_entry(s, key, value, -1);
    e->used = 1;
    e->is_default = 1;
}

// Sections of settings: each is read as one (ini_section takes the first), so a second one
// would have its keys reported unknown, or silently ignored when the first holds them too.
// Layer sections ([relu] ...) and loss terms ([debias], [feature_l2]) may repeat.
static const char *const single_sections[] = { "data", "train", "loss", NULL };

// 0, or -1 with "origin:line: section [name] given twice (first at line N)".
static int check_single(const Ini *ini, const char *name, const char *origin, int line, DfError *err) {
    char lower[64];
    snprintf(lower, sizeof lower, "%s", name);
    for (char *p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
    for (int k = 0; single_sections[k]; k++) {
        if (strcmp(single_sections[k], lower) != 0) continue;
        for (int i = 0; i < ini->n; i++)
            if (strcmp(ini->sections[i].name, lower) == 0)
                return df_err(err, "%s:%d: section [%s] given twice (first at line %d)", origin, line, lower,
                              ini->sections[i].line);
    }
    return 0;
}

int ini_parse_string(Ini *ini, const char *text, const char *origin, DfError *err) {
    memset(ini, 0, sizeof *ini);
    ini->origin = xstrdup(origin);
    ini->text = xstrdup(text);
    // A UTF-8 byte order mark (Windows editors write one) is not part of the first line: left
    // in, it made "[data]" an invisible "expected 'key = value'". The CSV reader skips it too.
    const char *body = (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB && (unsigned char)text[2] == 0xBF ? text + 3 : text;
    char *copy = xstrdup(body);
    IniSection *cur = NULL;
    int lineno = 0, rc = 0;
    char *save = NULL;
    // strtok_r would skip empty lines and so lose line numbers: split by hand.
    for (char *line = copy; line; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        lineno++;
        // Comments start with ';' or '#' at the start of a line or after whitespace.
        for (char *p = line; *p; p++)
            if ((*p == ';' || *p == '#') && (p == line || isspace((unsigned char)p[-1]))) { *p = '\0'; break; }
        char *s = trim(line);
        if (!*s) continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || trim(close + 1)[0] != '\0') {
                rc = df_err(err, "%s:%d: malformed section header '%s' (expected [name])", origin, lineno, s);
                break;
            }
            *close = '\0';
            char *name = trim(s + 1);
            if (!*name) { rc = df_err(err, "%s:%d: empty section name", origin, lineno); break; }
            if ((rc = check_single(ini, name, origin, lineno, err)) != 0) break;
            cur = add_section(ini, name, lineno);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) { rc = df_err(err, "%s:%d: expected 'key = value', got '%s'", origin, lineno, s); break; }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (!*key) { rc = df_err(err, "%s:%d: missing key before '='", origin, lineno); break; }
        if (!cur) { rc = df_err(err, "%s:%d: key '%s' outside any [section]", origin, lineno, key); break; }
        // Keys are stored lower-case, so the repeat check must compare lower-case too:
        // otherwise "Epochs = 5" then "epochs = 10" were both kept and the first silently won
        // (found by fuzzing: the configuration as run then no longer parsed).
        for (char *p = key; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (ini_entry(cur, key)) {
            rc = df_err(err, "%s:%d: key '%s' given twice in [%s] (line %d)", origin, lineno, key, cur->name,
                        ini_entry(cur, key)->line);
            break;
        }
        add_entry(cur, key, value, lineno);
    }
    free(copy);
    if (rc) ini_free(ini);
    return rc;
}

int ini_parse_file(Ini *ini, const char *path, DfError *err) {
    char *text = df_read_text_file(path, NULL, err);
    if (!text) { memset(ini, 0, sizeof *ini); return -1; }
    int rc = ini_parse_string(ini, text, path, err);
    free(text);
    return rc;
}

int ini_load(Ini *ini, const char *path, const char *const *sets, int n_sets, DfError *err) {
    if (ini_parse_file(ini, path, err)) return -1;
    for (int i = 0; i < n_sets; i++)
        if (ini_apply_set(ini, sets[i], err)) { ini_free(ini); return -1; }
    return 0;
}

void ini_free(Ini *ini) {
    for (int i = 0; i < ini->n; i++) {
        IniSection *s = &ini->sections[i];
        for (int j = 0; j < s->n; j++) { free(s->entries[j].key); free(s->entries[j].value); }
        free(s->entries);
        free(s->name);
    }
    free(ini->sections);
    free(ini->origin);
    free(ini->text);
    memset(ini, 0, sizeof *ini);
}

IniSection *ini_section(Ini *ini, const char *name) {
    for (int i = 0; i < ini->n; i++)
        if (strcmp(ini->sections[i].name, name) == 0) return &ini->sections[i];
    return NULL;
}

IniEntry *ini_entry(IniSection *s, const char *key) {
    IniEntry *e = find_any(s, key);
    return e && !e->is_default ? e : NULL;
}

// 1 when the text, written as a key or a value in the configuration as run, would read back
// otherwise: a line break ends the line, and ';' or '#' after whitespace starts a comment.
static int unwritable(const char *v) {
    for (const char *p = v; *p; p++)
        if (*p == '\n' || *p == '\r' || ((*p == ';' || *p == '#') && p > v && isspace((unsigned char)p[-1])))
            return 1;
    return 0;
}

int ini_apply_set(Ini *ini, const char *assignment, DfError *err) {
    // The key is what follows the last '.' before the '=' (keys have none; a layer's name may)
    const char *eq = strchr(assignment, '='), *dot = NULL;
    for (const char *p = assignment; eq && p < eq; p++)
        if (*p == '.') dot = p;
    if (!dot || !eq || dot == assignment || eq == dot + 1)
        return df_err(err, "--set '%s': expected section.key=value", assignment);
    char sec[128], key[128];
    size_t ls = (size_t)(dot - assignment), lk = (size_t)(eq - dot - 1);
    if (ls >= sizeof sec || lk >= sizeof key) return df_err(err, "--set '%s': name too long", assignment);
    memcpy(sec, assignment, ls); sec[ls] = '\0';
    memcpy(key, dot + 1, lk); key[lk] = '\0';
    // Section, key and value are trimmed as in a file ("train.lr = 0.1" sets lr to "0.1"), and
    // what a file could not hold is refused: the configuration as run (config.ini, the
    // checkpoint's /config, --resume) must read back as what ran. Found by fuzzing: a value
    // given with a leading space was kept with it, and read back without; a key starting with
    // ';' was written as a line that reads back as a comment.
    char *s = trim(sec), *k = trim(key), *value = xstrdup(eq + 1), *v = trim(value);
    if (!*s || !*k || strchr("[;#", *k) || unwritable(k) || unwritable(v)) {
        free(value);
        return df_err(err, "--set '%s': expected section.key=value on one line, with no ';' or '#' after a space "
                           "(they start a comment in an experiment file)", assignment);
    }
    for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    for (char *p = k; *p; p++) *p = (char)tolower((unsigned char)*p);
    IniSection *sect = ini_section(ini, s);
    // A section type that repeats ([conv3d] twice) does not say which one is meant: refused,
    // naming a layer name that does, rather than the first one changed silently.
    int same = 0;
    char lines[128] = "";
    const char *named = NULL;
    for (int i = 0; sect && i < ini->n; i++) {
        if (strcmp(ini->sections[i].name, s) != 0) continue;
        size_t at = strlen(lines);
        if (at < sizeof lines - 16) snprintf(lines + at, sizeof lines - at, "%s%d", same ? ", " : "", ini->sections[i].line);
        IniEntry *e = ini_entry(&ini->sections[i], "name");
        if (e && !named) named = e->value;
        same++;
    }
    if (same > 1) {
        int rc = named ? df_err(err, "--set '%s': %s has %d [%s] sections (lines %s): name the layer meant, e.g. --set %s.%s=%s",
                                assignment, ini->origin, same, s, lines, named, k, v)
                       : df_err(err, "--set '%s': %s has %d [%s] sections (lines %s): give the layer meant a name (name = "
                                "NAME) and --set NAME.%s=%s", assignment, ini->origin, same, s, lines, k, v);
        free(value);
        return rc;
    }
    if (!sect) {  // a layer addressed by its name, in any case (as sections are)
        for (int i = 0; i < ini->n; i++) {
            IniEntry *e = ini_entry(&ini->sections[i], "name");
            if (!e || strcasecmp(e->value, s) != 0) continue;
            if (sect) {
                free(value);
                return df_err(err, "--set '%s': %s has two layers named '%s' apart from case", assignment,
                              ini->origin, s);
            }
            sect = &ini->sections[i];
        }
    }
    if (!sect) {
        free(value);
        return df_err(err, "--set '%s': %s has no section or layer named '%s'", assignment, ini->origin, s);
    }
    IniEntry *e = find_any(sect, k);
    if (e) {
        free(e->value);
        e->value = xstrdup(v);
        e->line = 0;
        e->is_default = 0;
    } else {
        add_entry(sect, k, v, 0);
    }
    free(value);
    return 0;
}

void ini_where(const Ini *ini, const IniSection *s, const char *key, char *buf, size_t n) {
    int line = s ? s->line : 0;
    if (s && key) {
        IniEntry *e = ini_entry((IniSection *)s, key);
        if (e) line = e->line;
        if (e && e->line == 0 && ini->cli_options) { snprintf(buf, n, "%s", ini->origin); return; }
        if (e && e->line == 0) { snprintf(buf, n, "%s: --set %s.%s", ini->origin, s->name, key); return; }
    }
    snprintf(buf, n, "%s:%d", ini->origin, line);
}

void ini_where_key(const Ini *ini, const IniSection *s, const char *key, char *buf, size_t n) {
    IniEntry *e = s ? ini_entry((IniSection *)s, key) : NULL;
    if (e && e->line == 0 && ini->cli_options) {  // a command's own option: "synth: --n-test"
        snprintf(buf, n, "%s: --%s", ini->origin, key);
        for (char *c = buf + strlen(ini->origin) + 4; *c; c++)
            if (*c == '_') *c = '-';
        return;
    }
    char where[512];
    ini_where(ini, s, key, where, sizeof where);
    snprintf(buf, n, "%s: [%s] %s", where, s ? s->name : "", key);
}

const char *ini_str(IniSection *s, const char *key, const char *def) {
    IniEntry *e = ini_entry(s, key);
    if (!e) {
        if (def && *def) ini_note_default(s, key, def);
        return def;
    }
    e->used = 1;
    return e->value;
}

int ini_long(const Ini *ini, IniSection *s, const char *key, long def, long lo, long hi, long *out, DfError *err) {
    const char *v = ini_str(s, key, NULL);
    if (!v) {
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", def);
        ini_note_default(s, key, buf);
        *out = def;
        return 0;
    }
    char where[640];
    ini_where_key(ini, s, key, where, sizeof where);
    long x;
    int rc = df_parse_long(v, &x);
    if (rc == -2) return df_err(err, "%s = %s is out of range [%ld, %ld]", where, v, lo, hi);
    if (rc != 0) return df_err(err, "%s = '%s' is not an integer", where, v);
    if (x < lo || x > hi)
        return df_err(err, "%s = %ld is out of range [%ld, %ld]", where, x, lo, hi);
    *out = x;
    return 0;
}

int ini_int(const Ini *ini, IniSection *s, const char *key, int def, int lo, int hi, int *out, DfError *err) {
    long x;
    if (ini_long(ini, s, key, def, lo, hi, &x, err)) return -1;
    *out = (int)x;
    return 0;
}

int ini_double(const Ini *ini, IniSection *s, const char *key, double def, double lo, double hi, double *out, DfError *err) {
    const char *v = ini_str(s, key, NULL);
    if (!v) {
        char buf[40];  // the shortest form that reads back as def
        snprintf(buf, sizeof buf, "%.15g", def);
        if (strtod(buf, NULL) != def) snprintf(buf, sizeof buf, "%.17g", def);
        ini_note_default(s, key, buf);
        *out = def;
        return 0;
    }
    char where[640];
    ini_where_key(ini, s, key, where, sizeof where);
    double x;
    int rc = df_parse_double(v, &x);
    if (rc == -2) {  // a number, but no double holds it: too large, or too close to 0 (1e-320)
        double r = strtod(v, NULL);
        return df_err(err, "%s = %s is out of range: too %s for a double (allowed [%g, %g])", where, v,
                      r > -1.0 && r < 1.0 ? "close to 0" : "large", lo, hi);
    }
    if (rc != 0) return df_err(err, "%s = '%s' is not a number", where, v);
    if (x < lo || x > hi)
        return df_err(err, "%s = %g is out of range [%g, %g]", where, x, lo, hi);
    *out = x;
    return 0;
}

int ini_bool(const Ini *ini, IniSection *s, const char *key, int def, int *out, DfError *err) {
    const char *v = ini_str(s, key, NULL);
    if (!v) {
        ini_note_default(s, key, def ? "true" : "false");
        *out = def;
        return 0;
    }
    if (df_parse_bool(v, out) != 0) {
        char where[640];
        ini_where_key(ini, s, key, where, sizeof where);
        return df_err(err, "%s = '%s' is not true/false", where, v);
    }
    return 0;
}

int ini_int_list(const Ini *ini, IniSection *s, const char *key, int *out, int max, int *n_out, DfError *err) {
    const char *v = ini_str(s, key, NULL);
    *n_out = 0;
    if (!v) return 0;
    char where[640];
    ini_where_key(ini, s, key, where, sizeof where);
    char *copy = xstrdup(v), *save = NULL;
    int n = 0, rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long x;
        if (n == max) { rc = df_err(err, "%s = '%s' has more than %d values", where, v, max); break; }
        if (df_parse_long(trim(tok), &x) != 0 || x < -(1L << 30) || x > (1L << 30)) {
            rc = df_err(err, "%s = '%s' is not a list of integers", where, v);
            break;
        }
        out[n++] = (int)x;
    }
    free(copy);
    if (!rc && n == 0) rc = df_err(err, "%s is empty", where);
    if (!rc) *n_out = n;
    return rc;
}

int ini_choice(const Ini *ini, IniSection *s, const char *key, const char *def, const char *const *choices, int *out, DfError *err) {
    const char *v = ini_str(s, key, def);
    for (int i = 0; choices[i]; i++)
        if (v && strcmp(v, choices[i]) == 0) { *out = i; return 0; }
    char where[640], list[512] = "";
    ini_where_key(ini, s, key, where, sizeof where);
    for (int i = 0; choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    return df_err(err, "%s = '%s' is not one of: %s", where, v ? v : "", list);
}

int ini_check_unused(const Ini *ini, DfError *err) {
    for (int i = 0; i < ini->n; i++) {
        IniSection *s = &ini->sections[i];
        for (int j = 0; j < s->n; j++) {
            if (s->entries[j].used) continue;
            if (s->entries[j].line == 0 && ini->cli_options)
                return df_err(err, "%s: unknown option --%s", ini->origin, s->entries[j].key);
            if (s->entries[j].line == 0)
                return df_err(err, "%s: --set %s.%s: unknown key '%s' in [%s]", ini->origin, s->name,
                              s->entries[j].key, s->entries[j].key, s->name);
            return df_err(err, "%s:%d: unknown key '%s' in [%s]", ini->origin, s->entries[j].line,
                          s->entries[j].key, s->name);
        }
    }
    return 0;
}

char *ini_serialize(const Ini *ini) {
    size_t cap = 256 + strlen(ini->origin), len = 0;
    for (int i = 0; i < ini->n; i++) {
        cap += strlen(ini->sections[i].name) + 4;
        for (int j = 0; j < ini->sections[i].n; j++)
            cap += strlen(ini->sections[i].entries[j].key) + strlen(ini->sections[i].entries[j].value) + 16;
    }
    char *out = xmalloc(cap);
    len += (size_t)snprintf(out + len, cap - len, "; %s as run (%s)\n", ini->origin, INI_RESOLVED_MARK);
    for (int i = 0; i < ini->n; i++) {
        const IniSection *s = &ini->sections[i];
        len += (size_t)snprintf(out + len, cap - len, "%s[%s]\n", i ? "\n" : "", s->name);
        for (int j = 0; j < s->n; j++) {
            // A value that starts with ';' or '#' follows the '=' directly: after a space it
            // would read back as a comment (found by fuzzing: "k =;x" came back as "k = ").
            const char *v = s->entries[j].value;
            len += (size_t)snprintf(out + len, cap - len, "%s =%s%s%s\n", s->entries[j].key, (v[0] == ';' || v[0] == '#') ? "" : " ",
                                    v, s->entries[j].is_default ? "  ; default" : "");
        }
    }
    return out;
}
