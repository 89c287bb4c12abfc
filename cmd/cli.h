// cli.h: small helpers for the subcommands' argument parsing. Usage errors exit with
// status 2 and one message naming the command and the problem.
#ifndef DF_CLI_H
#define DF_CLI_H

// True when argv[*i] is `name`; then the value is argv[*i + 1] (a missing value is a usage
// error) and *i is advanced past it. Also accepts "--name=value".
int cli_opt(int argc, char **argv, int *i, const char *name, const char **value, const char *cmd);
int cli_flag(char **argv, int i, const char *name);
int cli_is_help(const char *arg);
// Strict integer option value in [lo, hi], else a usage error.
long cli_long(const char *cmd, const char *opt, const char *value, long lo, long hi);
// Strict real option value in [lo, hi], else a usage error.
double cli_double(const char *cmd, const char *opt, const char *value, double lo, double hi);
_Noreturn void cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
