// cli.c: argument parsing helpers shared by the subcommands.
#include "cmd/cli.h"
#include "base/common.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void cli_usage_error(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    df_die_collective(DF_EXIT_INPUT, "%s: %s (see 'deconfound %s --help')", cmd, msg, cmd);
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **value, const char *cmd) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') { *value = a + n + 1; return 1; }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) cli_usage_error(cmd, "option %s needs a value", name);
    *value = argv[++*i];
    return 1;
}

int cli_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }

int cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

long cli_long(const char *cmd, const char *opt, const char *value, long lo, long hi) {
    long v;
    if (df_parse_long(value, &v) != 0 || v < lo || v > hi)
        cli_usage_error(cmd, "%s %s: expected an integer in [%ld, %ld]", opt, value, lo, hi);
    return v;
}

double cli_double(const char *cmd, const char *opt, const char *value, double lo, double hi) {
    double v;
    if (df_parse_double(value, &v) != 0 || !(v >= lo && v <= hi))
        cli_usage_error(cmd, "%s %s: expected a number in [%g, %g]", opt, value, lo, hi);
    return v;
}
