// record.c: run.json and the run directory's name (see record.h).
#include "run/record.h"
#include "base/blas_core.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base/version.h"

void record_default_dir(char *buf, size_t n, const char *config, const char *tag) {
    const char *base = strrchr(config, '/');
    base = base ? base + 1 : config;
    char stem[200];
    snprintf(stem, sizeof stem, "%s", base);
    size_t len = strlen(stem);
    if (len > 4 && strcmp(stem + len - 4, ".ini") == 0) stem[len - 4] = '\0';
    if (tag && *tag) snprintf(stem + strlen(stem), sizeof stem - strlen(stem), "-%s", tag);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y%m%d-%H%M%S", &tm);
    snprintf(buf, n, "runs/%s-%s", stem, when);
    struct stat st;
    for (int k = 2; stat(buf, &st) == 0 && k < 1000; k++) snprintf(buf, n, "runs/%s-%s-%d", stem, when, k);
}

// One argument for a POSIX shell: as it is when it holds only safe characters, else in
// single quotes (a quote inside becomes '\'').
static void quote_arg(char **out, size_t *len, size_t *cap, const char *a) {
    int plain = *a != '\0';
    for (const char *p = a; *p; p++) plain &= strchr("@%+=:,./-_", *p) || (*p >= '0' && *p <= '9') ||
                                             (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
    size_t need = *len + 4 * strlen(a) + 4;
    if (need > *cap) *out = xrealloc(*out, *cap = 2 * need);
    char *o = *out + *len;
    if (plain) o += sprintf(o, "%s", a);
    else {
        *o++ = '\'';
        for (const char *p = a; *p; p++) {
            if (*p == '\'') { memcpy(o, "'\\''", 4); o += 4; }
            else *o++ = *p;
        }
        *o++ = '\'';
        *o = '\0';
    }
    *len = (size_t)(o - *out);
}

char *record_quote_command(int argc, char *const *argv) {
    size_t cap = 256, len = 0;
    char *out = xmalloc(cap);
    len = (size_t)snprintf(out, cap, "deconfound");
    for (int i = 0; i < argc; i++) {
        out[len++] = ' ';
        out[len] = '\0';
        quote_arg(&out, &len, &cap, argv[i]);
    }
    return out;
}

void record_now_iso(char buf[32]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

// A JSON string (quotes, backslashes and control characters escaped).
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int record_write(const RunRecord *r, DfError *err) {
    char *text = NULL, host[256] = "unknown", cpu[256];
    size_t len = 0;
    gethostname(host, sizeof host - 1);
    cpu_model_describe(cpu, sizeof cpu);
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "{\n  \"format\": \"deconfound-run 1\",\n  \"dir\": ");
    json_str(f, r->dir);
    fprintf(f, ",\n  \"config\": ");
    json_str(f, r->config);
    fprintf(f, ",\n  \"command\": ");
    json_str(f, r->command ? r->command : "");
    fprintf(f, ",\n  \"version\": ");
    json_str(f, df_code_version());
    fprintf(f, ",\n  \"host\": ");
    json_str(f, host);
    fprintf(f, ",\n  \"cpu\": ");
    json_str(f, cpu);
    fprintf(f, ",\n  \"cores_online\": %ld,\n  \"ranks\": %d,\n  \"threads_per_rank\": %d,\n  \"blas\": ",
            sysconf(_SC_NPROCESSORS_ONLN), r->ranks, r->threads);
    json_str(f, r->blas);
    fprintf(f, ",\n  \"started\": ");
    json_str(f, r->started);
    fprintf(f, ",\n  \"finished\": ");
    if (r->finished[0]) json_str(f, r->finished);
    else fprintf(f, "null");
    fprintf(f, ",\n  \"status\": ");
    json_str(f, r->status);
    fprintf(f, ",\n  \"resumed_from\": ");
    if (r->resumed_from[0]) json_str(f, r->resumed_from);
    else fprintf(f, "null");
    fprintf(f, ",\n  \"task\": \"%s\",\n  \"seed\": %ld,\n  \"kfold\": %d,\n  \"fold\": %d,\n  \"epochs\": %d,\n"
               "  \"epochs_done\": %d\n}\n",
            r->classification ? "classification" : "regression", r->seed, r->kfold, r->fold, r->epochs, r->epochs_done);
    fclose(f);
    char path[600];
    snprintf(path, sizeof path, "%s/run.json", r->dir);
    int rc = df_write_file_atomic(path, text, len, err);
    free(text);
    return rc;
}
