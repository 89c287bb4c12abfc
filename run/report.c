// report.c: a training run's output on rank 0 (see report.h).
#include "run/report.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void report_init(Report *r, const char *out_dir, int epochs, int first_epoch, int classification, const GroupSet *groups) {
    memset(r, 0, sizeof *r);
    if (groups && classification) r->groups = *groups;
    snprintf(r->out_dir, sizeof r->out_dir, "%s", out_dir);
    r->epochs = epochs;
    r->first_epoch = first_epoch;
    r->classification = classification;
    r->log = xcalloc((size_t)epochs + 1, sizeof *r->log);
}

void report_add_column(Report *r, const char *name) {
    DF_ASSERT(r->n_terms < REPORT_MAX_TERM_COLS);
    snprintf(r->term_names[r->n_terms++], sizeof r->term_names[0], "%s", name);
}

void report_free(Report *r) {
    free(r->log);
    free(r->dcor_json);
    free(r->kept_csv);
    free(r->kept_jsonl);
    free(r->dcor_csv);
    memset(r, 0, sizeof *r);
}

// A number for JSON, which has no NaN: a value that does not exist (no validation split) is null.
static const char *json_num(double v, char buf[32]) {
    if (!isfinite(v)) return "null";
    snprintf(buf, 32, "%.9g", v);
    return buf;
}

static void write_file(const char *dir, const char *name, const char *text, size_t len) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    DfError err;
    if (df_write_file_atomic(path, text, len, &err)) df_die(DF_EXIT_INPUT, "%s", err.msg);  // the disk or folder: exit 2
}

// metrics.json: one object per epoch run by this process (from first_epoch, so a resumed run
// lists the epochs it ran).
static void write_metrics(const Report *r, int n_epochs) {
    size_t cap = 256 + (size_t)n_epochs * (800 + (size_t)r->n_terms * 180), len = 0;
    char *buf = xmalloc(cap);
    len += (size_t)snprintf(buf, cap, "{\"epochs\": [");
    for (int e = r->first_epoch; e < n_epochs; e++) {
        const EpochLog *l = &r->log[e];
        char vl[32], va[32];
        len += (size_t)snprintf(buf + len, cap - len,
                                "%s\n  {\"epoch\": %d, \"lr\": %.9g, \"train_loss\": %.9g, \"val_loss\": %s, "
                                "\"seconds\": %.3f, \"samples_per_s\": %.2f, \"comm_wait_ms_per_step\": %.3f, "
                                "\"data_wait_ms_per_step\": %.3f",
                                e > r->first_epoch ? "," : "", e + 1, l->lr, l->train_loss, json_num(l->val_loss, vl),
                                l->seconds, l->samples_per_s, l->comm_wait_ms, l->data_wait_ms);
        if (r->classification) {
            char vb[32], au[32], tb[32];
            len += (size_t)snprintf(buf + len, cap - len, ", \"train_acc\": %.9g, \"val_acc\": %s", l->train_acc,
                                    json_num(l->val_acc, va));
            len += (size_t)snprintf(buf + len, cap - len, ", \"train_bal_acc\": %s, \"val_bal_acc\": %s, \"val_auc\": %s",
                                    json_num(l->train_bal_acc, tb), json_num(l->val_bal_acc, vb), json_num(l->val_auc, au));
        }
        if (!isnan(l->val_acc_aligned) || !isnan(l->val_acc_conflicting))
            len += (size_t)snprintf(buf + len, cap - len, ", \"val_acc_aligned\": %s", json_num(l->val_acc_aligned, va)),
            len += (size_t)snprintf(buf + len, cap - len, ", \"val_acc_conflicting\": %s", json_num(l->val_acc_conflicting, va));
        for (int j = 0; j < r->n_terms; j++)
            len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\": %s", j ? ", " : ", \"terms\": {", r->term_names[j],
                                    json_num(l->terms[j], vl));
        if (r->n_terms) len += (size_t)snprintf(buf + len, cap - len, "}");
        len += (size_t)snprintf(buf + len, cap - len, "}");
    }
    len += (size_t)snprintf(buf + len, cap - len, "\n]}\n");
    write_file(r->out_dir, "metrics.json", buf, len);
    free(buf);
}

// ---- metrics.csv and metrics.jsonl ---------------------------------------------------------

// A CSV field: as it is, or quoted when it holds a comma, quote or line break.
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, ",%.9g", v);
    else fputc(',', f);
}

static void json_key(FILE *f, const char *name) {
    fputs(", \"", f);
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        fputc(*p, f);
    }
    fputs("\": ", f);
}

static void json_num_f(FILE *f, const char *name, double v) {
    json_key(f, name);
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

// The figures of one epoch, by column name, in the order of the CSV header. Both files are
// written from this one list, so they always agree.
typedef struct { const char *name; double v; const char *text; } Cell;

static int epoch_cells(const Report *r, int e, Cell *cells, char names[][FIG_GROUP_NAME + 16]) {
    const EpochLog *l = &r->log[e];
    int c = 0, cl = r->classification;
    double none = NAN;
    int w = cl ? l->val.worst : -1;
    cells[c++] = (Cell){ "epoch", e + 1, NULL };
    cells[c++] = (Cell){ "lr", l->lr, NULL };
    cells[c++] = (Cell){ "seconds", l->seconds, NULL };
    cells[c++] = (Cell){ "samples_per_s", l->samples_per_s, NULL };
    cells[c++] = (Cell){ "train_loss", l->train_loss, NULL };
    cells[c++] = (Cell){ "train_acc", cl ? l->train_acc : none, NULL };
    cells[c++] = (Cell){ "train_bal_acc", cl ? l->train_bal_acc : none, NULL };
    cells[c++] = (Cell){ "val_loss", l->val_loss, NULL };
    cells[c++] = (Cell){ "val_acc", cl ? l->val_acc : none, NULL };
    cells[c++] = (Cell){ "val_bal_acc", cl ? l->val_bal_acc : none, NULL };
    cells[c++] = (Cell){ "val_auc", cl ? l->val_auc : none, NULL };
    cells[c++] = (Cell){ "val_acc_aligned", l->val_acc_aligned, NULL };
    cells[c++] = (Cell){ "val_acc_conflicting", l->val_acc_conflicting, NULL };
    cells[c++] = (Cell){ "val_worst_group", none, w >= 0 ? r->groups.name[w] : "" };
    cells[c++] = (Cell){ "val_worst_group_acc", w >= 0 ? l->val.group_acc[w] : none, NULL };
    for (int g = 0; g < r->groups.n; g++) {
        snprintf(names[g], FIG_GROUP_NAME + 16, "val_acc[%s]", r->groups.name[g]);
        cells[c++] = (Cell){ names[g], l->val.group_acc[g], NULL };
    }
    for (int j = 0; j < r->n_terms; j++) cells[c++] = (Cell){ r->term_names[j], l->terms[j], NULL };
    return c;
}

#define REPORT_MAX_CELLS (16 + FIG_MAX_GROUPS + REPORT_MAX_TERM_COLS)

static char *csv_header(const Report *r) {
    Cell cells[REPORT_MAX_CELLS];
    static char names[FIG_MAX_GROUPS][FIG_GROUP_NAME + 16];
    int n = epoch_cells(r, r->first_epoch, cells, names);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        csv_field(f, cells[i].name);
    }
    fputc('\n', f);
    fclose(f);
    return text;
}

// The rows of an earlier run's file for epochs up to `upto` (1-based), when its first line
// is `header` (NULL: no header line, JSON Lines): a resumed run continues the same table.
// Rows of later epochs (written before a crash the checkpoint predates) are dropped.
static char *keep_rows(const char *dir, const char *name, const char *header, int upto) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    char *kept = NULL, *line = NULL;
    size_t klen = 0, cap = 0;
    if (!f) return NULL;
    FILE *out = open_memstream(&kept, &klen);
    ssize_t got;
    int first = 1;
    while ((got = getline(&line, &cap, f)) > 0) {
        if (first && header && strcmp(line, header) != 0) break;  // other columns: start afresh
        if (first && header) { first = 0; continue; }
        first = 0;
        const char *p = line + (header ? 0 : strspn(line, "{\"epoch: "));
        long e = strtol(p, NULL, 10);
        if (e >= 1 && e <= upto) fputs(line, out);
    }
    free(line);
    fclose(f);
    fclose(out);
    return kept;
}

void report_columns_done(Report *r) {
    if (r->first_epoch <= 0) return;
    char *header = csv_header(r);
    r->kept_csv = keep_rows(r->out_dir, "metrics.csv", header, r->first_epoch);
    r->kept_jsonl = keep_rows(r->out_dir, "metrics.jsonl", NULL, r->first_epoch);
    free(header);
    static const char dcor_header[] = "epoch,layer,column,scope,dcor2_u\n";
    char *dcor = keep_rows(r->out_dir, "dcor.csv", dcor_header, r->first_epoch);
    if (dcor) {  // the header, then the earlier rows
        r->dcor_csv_len = strlen(dcor_header) + strlen(dcor);
        r->dcor_csv = xmalloc(r->dcor_csv_len + 1);
        snprintf(r->dcor_csv, r->dcor_csv_len + 1, "%s%s", dcor_header, dcor);
        free(dcor);
    }
}

static void write_tables(const Report *r, int n_epochs) {
    char *csv = NULL, *jsonl = NULL, *header = csv_header(r);
    size_t csv_len = 0, jsonl_len = 0;
    FILE *fc = open_memstream(&csv, &csv_len), *fj = open_memstream(&jsonl, &jsonl_len);
    fputs(header, fc);
    if (r->kept_csv) fputs(r->kept_csv, fc);
    if (r->kept_jsonl) fputs(r->kept_jsonl, fj);
    static char names[FIG_MAX_GROUPS][FIG_GROUP_NAME + 16];
    for (int e = r->first_epoch; e < n_epochs; e++) {
        Cell cells[REPORT_MAX_CELLS];
        int n = epoch_cells(r, e, cells, names);
        fprintf(fc, "%d", e + 1);
        fprintf(fj, "{\"epoch\": %d", e + 1);
        for (int i = 1; i < n; i++) {
            if (cells[i].text) {
                fputc(',', fc);
                csv_field(fc, cells[i].text);
                json_key(fj, cells[i].name);
                if (cells[i].text[0]) fprintf(fj, "\"%s\"", cells[i].text);  // group names hold no quotes
                else fputs("null", fj);
            } else {
                csv_num(fc, cells[i].v);
                json_num_f(fj, cells[i].name, cells[i].v);
            }
        }
        fputc('\n', fc);
        fputs("}\n", fj);
    }
    fclose(fc);
    fclose(fj);
    write_file(r->out_dir, "metrics.csv", csv, csv_len);
    write_file(r->out_dir, "metrics.jsonl", jsonl, jsonl_len);
    free(csv);
    free(jsonl);
    free(header);
}

void report_epoch(Report *r, int epoch, int has_val, int multi_rank) {
    const EpochLog *l = &r->log[epoch];
    char comm[96] = "", val[96] = "no validation split";
    if (multi_rank) snprintf(comm, sizeof comm, ", comm wait %.1f ms/step", l->comm_wait_ms);
    if (l->data_wait_ms >= 0.05) snprintf(comm + strlen(comm), sizeof comm - strlen(comm), ", data wait %.1f ms/step", l->data_wait_ms);
    if (has_val && r->classification && !isnan(l->val_acc_conflicting))
        snprintf(val, sizeof val, "val loss %.4f acc %.3f (aligned %.3f, conflicting %.3f)", l->val_loss, l->val_acc,
                 l->val_acc_aligned, l->val_acc_conflicting);
    else if (has_val && r->classification) snprintf(val, sizeof val, "val loss %.4f acc %.3f", l->val_loss, l->val_acc);
    else if (has_val) snprintf(val, sizeof val, "val loss %.4f", l->val_loss);
    // " | end(feat) 0.41 [R_perp 0.05, R_par 0.36, ...]": a term's value, then its logs
    char terms[REPORT_MAX_TERM_COLS * 160] = "";
    for (int j = 0; j < r->n_terms; j++) {
        const char *sub = strstr(r->term_names[j], ").");
        int first_sub = sub && (j == 0 || !strstr(r->term_names[j - 1], ").")),
            last_sub = sub && (j + 1 == r->n_terms || !strstr(r->term_names[j + 1], ")."));
        size_t at = strlen(terms);
        if (sub)
            snprintf(terms + at, sizeof terms - at, "%s%s %.4g%s", first_sub ? " [" : ", ", sub + 2, l->terms[j], last_sub ? "]" : "");
        else
            snprintf(terms + at, sizeof terms - at, " | %s %.4g", r->term_names[j], l->terms[j]);
    }
    if (r->classification)
        printf("epoch %d/%d done: train loss %.4f acc %.3f%s | %s | %.1f samples/s, %.1f s%s\n", epoch + 1, r->epochs,
               l->train_loss, l->train_acc, terms, val, l->samples_per_s, l->seconds, comm);
    else
        printf("epoch %d/%d done: train loss %.4f%s | %s | %.1f samples/s, %.1f s%s\n", epoch + 1, r->epochs, l->train_loss,
               terms, val, l->samples_per_s, l->seconds, comm);
    write_metrics(r, epoch + 1);
    write_tables(r, epoch + 1);
}

// Appends a memory stream's text to a growing file image, then rewrites the file whole.
static void append_and_write(const Report *r, const char *name, char **text, size_t *len, char *more, size_t more_len) {
    *text = xrealloc(*text, *len + more_len + 1);
    memcpy(*text + *len, more, more_len + 1);
    *len += more_len;
    free(more);
    write_file(r->out_dir, name, *text, *len);
}

void report_dcor(Report *r, const DcorReport *rep, const char *layer, int epoch) {
    dcor_report_print(rep, layer, epoch + 1, stdout, NULL);
    char *line = NULL, *rows = NULL;
    size_t len = 0, rows_len = 0;
    FILE *mem = open_memstream(&line, &len);
    dcor_report_print(rep, layer, epoch + 1, NULL, mem);
    fclose(mem);
    append_and_write(r, "dcor.json", &r->dcor_json, &r->dcor_json_len, line, len);
    mem = open_memstream(&rows, &rows_len);
    if (!r->dcor_csv) fputs("epoch,layer,column,scope,dcor2_u\n", mem);
    dcor_report_csv(rep, layer, epoch + 1, mem);
    fclose(mem);
    append_and_write(r, "dcor.csv", &r->dcor_csv, &r->dcor_csv_len, rows, rows_len);
}

void report_final(const Report *r, int n_val) {
    if (r->epochs <= 0) return;
    if (r->first_epoch >= r->epochs) {  // resumed from the last epoch's checkpoint
        printf("final: nothing left to train: the checkpoint finished all %d epochs (metrics.csv has them)\n", r->epochs);
        return;
    }
    const EpochLog *l = &r->log[r->epochs - 1];
    if (r->classification && n_val == 0)
        printf("final: train accuracy %.3f (no validation split)\n", l->train_acc);
    else if (r->classification && !isnan(l->val_acc_conflicting))
        printf("final: train accuracy %.3f, validation accuracy %.3f (%d validation samples; bias-aligned %.3f, bias-conflicting "
               "%.3f)\n", l->train_acc, l->val_acc, n_val, l->val_acc_aligned, l->val_acc_conflicting);
    else if (r->classification)
        printf("final: train accuracy %.3f, validation accuracy %.3f (%d validation samples)\n", l->train_acc, l->val_acc, n_val);
    else
        printf("final: train loss %.4f, validation loss %.4f\n", l->train_loss, l->val_loss);
}
