// report.c: a training run's output on rank 0 (see report.h).
#include "run/report.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void report_init(Report *r, const char *out_dir, int epochs, int first_epoch, int classification) {
    memset(r, 0, sizeof *r);
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
    if (df_write_file_atomic(path, text, len, &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
}

// metrics.json: one object per epoch run by this process (from first_epoch, so a resumed run
// lists the epochs it ran).
static void write_metrics(const Report *r, int n_epochs) {
    size_t cap = 256 + (size_t)n_epochs * (640 + (size_t)r->n_terms * 180), len = 0;
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
        if (r->classification)
            len += (size_t)snprintf(buf + len, cap - len, ", \"train_acc\": %.9g, \"val_acc\": %s", l->train_acc,
                                    json_num(l->val_acc, va));
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
}

void report_dcor(Report *r, const DcorReport *rep, const char *layer, int epoch) {
    dcor_report_print(rep, layer, epoch + 1, stdout, NULL);
    char *line = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&line, &len);
    dcor_report_print(rep, layer, epoch + 1, NULL, mem);
    fclose(mem);
    r->dcor_json = xrealloc(r->dcor_json, r->dcor_json_len + len + 1);
    memcpy(r->dcor_json + r->dcor_json_len, line, len + 1);
    r->dcor_json_len += len;
    free(line);
    write_file(r->out_dir, "dcor.json", r->dcor_json, r->dcor_json_len);
}

void report_final(const Report *r, int n_val) {
    if (r->epochs <= 0) return;
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
