// fuzz_ini.c: the INI parser (base/ini.c, ini_parse_string) and what is done with a parsed
// file: every typed getter on every key, a --set on the first key, and the configuration as
// run (ini_serialize), which must parse again to the same sections and keys (checkpoints
// store it and `--resume` reads it back).
#include "tests/fuzz/fuzz_util.h"
#include "base/ini.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    DfError err;
    char *text = fuzz_text(data, size);
    Ini ini;
    if (ini_parse_string(&ini, text, "in.ini", &err) != 0) { free(text); return 0; }
    static const char *const choices[] = { "sgd", "adam", "adamw", NULL };
    for (int i = 0; i < ini.n; i++) {
        IniSection *s = &ini.sections[i];
        int n = s->n;  // getters append defaults: only the file's keys
        for (int j = 0; j < n; j++) {
            char *key = xstrdup(s->entries[j].key);  // the getters may grow s->entries
            long l; double d; int b, c, list[8], nl;
            ini_long(&ini, s, key, 0, -100, 100, &l, &err);
            ini_double(&ini, s, key, 0, -1e9, 1e9, &d, &err);
            ini_bool(&ini, s, key, 0, &b, &err);
            ini_int_list(&ini, s, key, list, 8, &nl, &err);
            ini_choice(&ini, s, key, "adam", choices, &c, &err);
            char where[800];
            ini_where_key(&ini, s, key, where, sizeof where);
            free(key);
        }
        ini_str(s, "fuzz_absent", "dflt");
        int x;
        ini_int(&ini, s, "fuzz_absent_int", 3, 0, 10, &x, &err);
    }
    ini_check_unused(&ini, &err);
    if (ini.n > 0 && ini.sections[0].n > 0) {
        size_t n = strlen(ini.sections[0].name) + strlen(ini.sections[0].entries[0].key) + 8;
        char *set = xmalloc(n);
        snprintf(set, n, "%s.%s=1", ini.sections[0].name, ini.sections[0].entries[0].key);
        ini_apply_set(&ini, set, &err);
        free(set);
    }
    // The configuration as run must read back as the same sections and keys.
    char *out = ini_serialize(&ini);
    Ini back;
    if (ini_parse_string(&back, out, "as-run.ini", &err) != 0) {
        fprintf(stderr, "serialized configuration does not parse: %s\n---\n%s---\n", err.msg, out);
        FUZZ_CHECK(0);
    }
    int same = back.n == ini.n;
    for (int i = 0; i < ini.n && same; i++) {
        same = strcmp(back.sections[i].name, ini.sections[i].name) == 0 && back.sections[i].n == ini.sections[i].n;
        for (int j = 0; j < ini.sections[i].n && same; j++)
            same = strcmp(back.sections[i].entries[j].key, ini.sections[i].entries[j].key) == 0 &&
                   strcmp(back.sections[i].entries[j].value, ini.sections[i].entries[j].value) == 0;
    }
    if (!same) {
        char *again = ini_serialize(&back);
        fprintf(stderr, "the configuration as run reads back differently:\n---\n%s---\n%s---\n", out, again);
        free(again);
        FUZZ_CHECK(0);
    }
    ini_free(&back);
    free(out);
    ini_free(&ini);
    free(text);
    return 0;
}
