// bids.c: a BIDS dataset as a manifest (bids.h): participants.tsv, sessions.tsv and their
// JSON sidecars, the anatomical images found by walking DIR; the cells then go through the
// CSV manifest's coding (manifest_from_cells), so both readers number labels and levels and
// infer kinds one way.
#include "data/bids.h"
#include "data/json.h"
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- small helpers ---------------------------------------------------------------------

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

typedef struct { char **s; int n, cap; } Strs;

static void strs_push(Strs *v, char *s) {
    if (v->n == v->cap) { v->cap = v->cap ? 2 * v->cap : 8; v->s = xrealloc(v->s, sizeof(char *) * (size_t)v->cap); }
    v->s[v->n++] = s;
}

static void strs_free(Strs *v) {
    for (int i = 0; i < v->n; i++) free(v->s[i]);
    free(v->s);
    memset(v, 0, sizeof *v);
}

// "a, b, c, ... (7 more)": the first `most` items.
static char *strs_join(const Strs *v, int most) {
    size_t len = 32;
    for (int i = 0; i < v->n && i < most; i++) len += strlen(v->s[i]) + 2;
    char *s = xmalloc(len);
    s[0] = '\0';
    for (int i = 0; i < v->n && i < most; i++) {
        if (i) strcat(s, ", ");
        strcat(s, v->s[i]);
    }
    if (v->n > most) snprintf(s + strlen(s), 32, ", ... (%d more)", v->n - most);
    return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_dir(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISDIR(st.st_mode); }
static int is_file(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISREG(st.st_mode); }
// Something is there (a folder in a file's place is then named by the reader, not "missing").
static int exists(const char *path) { struct stat st; return stat(path, &st) == 0; }
// A symbolic link leading nowhere: in a DataLad or git-annex dataset, a file whose content
// was not fetched. It is not "no file": taking it so would drop a subject, or a sessions
// table or sidecar, silently.
static int dangling(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && stat(path, &st) != 0;
}

// 0, or -1 when path is a dangling link: "PATH: WHAT is a broken symbolic link (to TARGET) ...".
static int check_fetched(const char *path, const char *what, const char *more, DfError *err) {
    if (!dangling(path)) return 0;
    char target[1024];
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    return df_err(err, "%s: %s is a broken symbolic link (to '%s')%s: its content is not here -- in a DataLad or git-annex "
                  "dataset, fetch it first (datalad get, or git annex get)", path, what, target, more ? more : "");
}

// The entries of folder `path` whose names start with `prefix` (sorted), folders only or
// regular files only (symbolic links followed; a dangling one is listed with the files, for
// the caller to refuse). -1 when the folder cannot be opened.
static int list_dir(const char *path, const char *prefix, int dirs, Strs *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || e->d_name[0] == '.') continue;
        char *full = fmt("%s/%s", path, e->d_name);
        if (dirs ? is_dir(full) : is_file(full) || dangling(full)) strs_push(out, xstrdup(e->d_name));
        free(full);
    }
    closedir(d);
    if (out->n) qsort(out->s, (size_t)out->n, sizeof(char *), cmp_str);
    return 0;
}

// Comma-separated names into v (trimmed); an empty name is an error naming `what`.
static int split_names(const char *list, Strs *v, const char *what, DfError *err) {
    memset(v, 0, sizeof *v);
    if (!list) return 0;
    for (const char *p = list;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) { p++; n--; }
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (!n) { strs_free(v); return df_err(err, "%s '%s': an empty column name", what, list); }
        char *s = xmalloc(n + 1);
        memcpy(s, p, n);
        s[n] = '\0';
        strs_push(v, s);
        if (!e) return 0;
        p = e + 1;
    }
}

static int in_strs(const Strs *v, const char *s) {
    for (int i = 0; i < v->n; i++) if (!strcmp(v->s[i], s)) return 1;
    return 0;
}

// ---- TSV ---------------------------------------------------------------------------------

// One field at *pp (a line without its end), quoted or not; *pp left on the tab or the end.
static char *tsv_field(const char **pp, const char *origin, int line, DfError *err) {
    const char *p = *pp;
    while (*p == ' ') p++;
    size_t cap = strlen(p) + 1, n = 0;
    char *s = xmalloc(cap);
    if (*p == '"') {
        for (p++;; p++) {
            if (!*p) { free(s); df_err(err, "%s:%d: unterminated quoted value", origin, line); return NULL; }
            if (*p == '"' && p[1] == '"') { s[n++] = '"'; p++; continue; }
            if (*p == '"') { p++; break; }
            s[n++] = *p;
        }
        while (*p == ' ') p++;
        if (*p && *p != '\t') { free(s); df_err(err, "%s:%d: text after a closing quote", origin, line); return NULL; }
    } else {
        while (*p && *p != '\t') s[n++] = *p++;
        while (n && s[n - 1] == ' ') n--;
    }
    s[n] = '\0';
    *pp = p;
    return s;
}

// The fields of one line (CR and line end removed) into row.
static int tsv_line(const char *line, Strs *row, const char *origin, int lineno, DfError *err) {
    const char *p = line;
    for (;;) {
        char *f = tsv_field(&p, origin, lineno, err);
        if (!f) return -1;
        strs_push(row, f);
        if (*p != '\t') return 0;
        p++;
    }
}

// Header checks: every column named, each once.
static int tsv_header(CsvTable *t, Strs *row, int line, DfError *err) {
    t->ncols = row->n;
    t->header = row->s;
    memset(row, 0, sizeof *row);
    for (int j = 0; j < t->ncols; j++) {
        if (!t->header[j][0]) return df_err(err, "%s:%d: header column %d has no name", t->origin, line, j + 1);
        for (int i = 0; i < j; i++)
            if (!strcmp(t->header[i], t->header[j])) return df_err(err, "%s:%d: header names column '%s' twice", t->origin, line, t->header[j]);
    }
    return 0;
}

int bids_tsv_parse(CsvTable *t, const char *text, const char *origin, DfError *err) {
    memset(t, 0, sizeof *t);
    t->origin = xstrdup(origin);
    char *copy = xstrdup(text + ((unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB && (unsigned char)text[2] == 0xBF ? 3 : 0));
    Strs cells = { 0 }, row = { 0 };
    int rc = -1, lineno = 0, cap = 0;
    for (char *line = copy, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        if (strspn(line, " ") == n) continue;  // blank (a line of tabs is a row of empty values)
        if (tsv_line(line, &row, origin, lineno, err)) goto done;
        if (!t->header) { if (tsv_header(t, &row, lineno, err)) goto done; continue; }
        if (row.n != t->ncols) {
            df_err(err, "%s:%d: %d field%s, but the header has %d columns (fields are separated by tabs)", origin, lineno, row.n,
                   row.n == 1 ? "" : "s", t->ncols);
            goto done;
        }
        for (int j = 0; j < row.n; j++) strs_push(&cells, row.s[j]);
        row.n = 0;
        if (t->nrows == cap) { cap = cap ? 2 * cap : 64; t->line = xrealloc(t->line, sizeof(int) * (size_t)cap); }
        t->line[t->nrows++] = lineno;
    }
    if (!t->header) df_err(err, "%s: empty (no header line)", origin);
    else rc = 0;
done:
    strs_free(&row);
    t->cells = cells.s;
    if (!t->cells) t->cells = xmalloc(sizeof(char *));
    free(copy);
    if (rc) csv_free(t);
    return rc;
}

// ---- the tables and their sidecars ----------------------------------------------------------

typedef struct { const char *id; int row; } IdRow;

// By id, then row: equal ids sit together, in file order.
static int cmp_id(const void *a, const void *b) {
    const IdRow *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

typedef struct {
    CsvTable t;
    IdRow *ids;        // the first column's values, sorted (cmp_id), for lookups
    char *json_path;   // the sidecar read, or NULL
    JsonValue json;    // its document (JSON_NULL when none)
    char *kind;        // "participants.json" / "sessions.json", for the summary
} Table;

static void table_free(Table *tb) {
    csv_free(&tb->t);
    free(tb->ids);
    free(tb->json_path);
    json_free(&tb->json);
    free(tb->kind);
    memset(tb, 0, sizeof *tb);
}

// A TSV whose first column is `id_col` with unique values starting with `prefix`, and its
// sidecar (the first of `json_paths` that exists; it must be an object).
static int table_read(Table *tb, const char *path, const char *id_col, const char *prefix, const char *const json_paths[2],
                      const char *kind, DfError *err) {
    memset(tb, 0, sizeof *tb);
    tb->kind = xstrdup(kind);
    char *text = df_read_text_file(path, NULL, err);
    if (!text) return -1;
    int rc = bids_tsv_parse(&tb->t, text, path, err);
    free(text);
    if (rc) return -1;
    const CsvTable *t = &tb->t;
    if (strcmp(t->header[0], id_col) != 0)
        return df_err(err, "%s: the first column must be %s (found '%s')", path, id_col, t->header[0]);
    tb->ids = xmalloc(sizeof(IdRow) * ((size_t)t->nrows + 1));
    for (int i = 0; i < t->nrows; i++) {
        const char *id = csv_cell(t, i, 0);
        if (strncmp(id, prefix, strlen(prefix)) != 0 || !id[strlen(prefix)] || strchr(id, '/'))
            return df_err(err, "%s:%d: %s '%s' is not %s<label>", path, t->line[i], id_col, id, prefix);
        tb->ids[i] = (IdRow){ id, i };
    }
    qsort(tb->ids, (size_t)t->nrows, sizeof(IdRow), cmp_id);
    int dup = -1;  // the earliest row repeating an id
    for (int i = 1; i < t->nrows; i++)
        if (!strcmp(tb->ids[i].id, tb->ids[i - 1].id) && (dup < 0 || tb->ids[i].row < tb->ids[dup].row)) dup = i;
    if (dup >= 0)
        return df_err(err, "%s:%d: %s '%s' appears twice (first on line %d)", path, t->line[tb->ids[dup].row], id_col,
                      tb->ids[dup].id, t->line[tb->ids[dup - 1].row]);
    for (int i = 0; i < 2 && json_paths[i] && !tb->json_path; i++) {
        if (check_fetched(json_paths[i], "the sidecar", NULL, err)) return -1;
        if (is_file(json_paths[i])) tb->json_path = xstrdup(json_paths[i]);
    }
    if (!tb->json_path) return 0;
    if (json_read(&tb->json, tb->json_path, err)) return -1;
    if (tb->json.type != JSON_OBJECT)
        return df_err(err, "%s: %s at the top; a sidecar is an object of column descriptions", tb->json_path, json_type_name(tb->json.type));
    return 0;
}

// What a sidecar says of one column: its Units (years = value * mul / div) and Levels.
typedef struct {
    const char *units;       // NULL when none
    double mul, div;         // 1, 1 unless the units are months, weeks or days
    const JsonValue *levels; // an object, or NULL
} ColInfo;

static int col_info(const Table *tb, const char *col, ColInfo *ci, DfError *err) {
    memset(ci, 0, sizeof *ci);
    ci->mul = ci->div = 1;
    const JsonValue *d = json_get(&tb->json, col), *u, *l;
    if (!d) return 0;
    if (d->type != JSON_OBJECT)
        return df_err(err, "%s:%d:%d: column '%s' is described by %s; a description is an object", tb->json_path, d->line, d->col, col,
                      json_type_name(d->type));
    if ((u = json_get(d, "Units")) && u->type != JSON_STRING)
        return df_err(err, "%s:%d:%d: %s: Units is %s; it must be a string", tb->json_path, u->line, u->col, col, json_type_name(u->type));
    if ((l = json_get(d, "Levels")) && l->type != JSON_OBJECT)
        return df_err(err, "%s:%d:%d: %s: Levels is %s; it must be an object (value: description)", tb->json_path, l->line, l->col, col,
                      json_type_name(l->type));
    ci->levels = l;
    if (!u) return 0;
    ci->units = u->string;
    static const struct { const char *name; double mul, div; } to_years[] = {
        { "month", 1, 12 }, { "months", 1, 12 }, { "week", 7, 365.25 }, { "weeks", 7, 365.25 }, { "day", 1, 365.25 }, { "days", 1, 365.25 } };
    for (size_t i = 0; i < sizeof to_years / sizeof to_years[0]; i++)
        if (!strcasecmp(u->string, to_years[i].name)) { ci->mul = to_years[i].mul; ci->div = to_years[i].div; }
    return 0;
}

// ---- the images -------------------------------------------------------------------------------

// One image found under DIR.
typedef struct {
    char *subject, *session;  // "sub-01"; "ses-1" or NULL
    char *path;               // relative to DIR
    int prow;                 // its participants.tsv row, -1 when none
    int ses;                  // its subject's sessions table (Bids.ses), -1 when none
    Strs more;                // other files of the same subject and session (ambiguous)
} Image;

typedef struct {
    const BidsQuery *q;
    const char *suffix;
    char *session;            // "ses-YY" or NULL
    Strs cols;                // cols.s[0] the label, then the confounders
    int declared[META_MAX_COLS];
    Table part;
    Table *ses;
    int n_ses;
    Image *img;
    int n_img, cap_img;
    uint8_t *selected;        // per participants.tsv row
    Strs units;               // notes: columns converted to years
} Bids;

// The row of `id` in a table, or -1.
static int table_row(const Table *tb, const char *id) {
    int lo = 0, hi = tb->t.nrows;  // the first entry >= id
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(tb->ids[mid].id, id) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < tb->t.nrows && !strcmp(tb->ids[lo].id, id) ? tb->ids[lo].row : -1;
}

static int participant_row(const Bids *B, const char *id) { return table_row(&B->part, id); }

static int ends_with(const char *s, const char *end) {
    size_t n = strlen(s), m = strlen(end);
    return n >= m && !strcmp(s + n - m, end);
}

// The images of DIR/SUB[/SES]/anat: names ending in _<suffix>.nii[.gz]; the first becomes
// an Image, any other is kept as ambiguous. A matching name of another subject or session
// is an error (a file in the wrong folder).
static int scan_anat(Bids *B, const char *sub, const char *ses, DfError *err) {
    char *anat = ses ? fmt("%s/%s/%s/anat", B->q->dir, sub, ses) : fmt("%s/%s/anat", B->q->dir, sub);
    char *prefix = ses ? fmt("%s_%s_", sub, ses) : fmt("%s_", sub);
    char *end1 = fmt("_%s.nii", B->suffix), *end2 = fmt("_%s.nii.gz", B->suffix);
    Strs files;
    int rc = 0;
    Image *cur = NULL;
    if (list_dir(anat, "", 0, &files) == 0)
        for (int i = 0; i < files.n && rc == 0; i++) {
            const char *f = files.s[i];
            if (!ends_with(f, end1) && !ends_with(f, end2)) continue;
            if (strncmp(f, prefix, strlen(prefix)) != 0) {
                rc = df_err(err, "%s/%s: the name does not start with %s, as a file of that folder must", anat, f, prefix);
                break;
            }
            char *rel = ses ? fmt("%s/%s/anat/%s", sub, ses, f) : fmt("%s/anat/%s", sub, f);
            if (cur) { strs_push(&cur->more, rel); continue; }
            if (B->n_img == B->cap_img) { B->cap_img = B->cap_img ? 2 * B->cap_img : 64; B->img = xrealloc(B->img, sizeof(Image) * (size_t)B->cap_img); }
            cur = &B->img[B->n_img++];
            *cur = (Image){ .subject = xstrdup(sub), .session = ses ? xstrdup(ses) : NULL, .path = rel,
                            .prow = participant_row(B, sub), .ses = -1 };
        }
    strs_free(&files);
    free(anat); free(prefix); free(end1); free(end2);
    return rc;
}

// Every sub-*/[ses-*/]anat image (with a session given, only that session's).
static int scan_images(Bids *B, DfError *err) {
    Strs subs;
    if (list_dir(B->q->dir, "sub-", 1, &subs)) return df_err(err, "%s: cannot open the folder", B->q->dir);
    int rc = 0;
    for (int s = 0; s < subs.n && rc == 0; s++) {
        char *sdir = fmt("%s/%s", B->q->dir, subs.s[s]);
        Strs sessions;
        list_dir(sdir, "ses-", 1, &sessions);
        if (B->session) { if (in_strs(&sessions, B->session)) rc = scan_anat(B, subs.s[s], B->session, err); }
        else {
            rc = scan_anat(B, subs.s[s], NULL, err);
            for (int k = 0; k < sessions.n && rc == 0; k++) rc = scan_anat(B, subs.s[s], sessions.s[k], err);
        }
        strs_free(&sessions);
        free(sdir);
    }
    strs_free(&subs);
    return rc;
}

// Several images of one subject and session: an error listing the first such set.
static int check_ambiguous(const Bids *B, DfError *err) {
    int first = -1, count = 0;
    for (int i = 0; i < B->n_img; i++)
        if (B->img[i].more.n) { count++; if (first < 0) first = i; }
    if (first < 0) return 0;
    const Image *im = &B->img[first];
    Strs all = { 0 };
    strs_push(&all, xstrdup(im->path));
    for (int k = 0; k < im->more.n; k++) strs_push(&all, xstrdup(im->more.s[k]));
    char *list = strs_join(&all, 6);
    df_err(err, "%s: %d %s images of %s%s%s: %s; pack takes one image per subject and session (move the others out of the "
           "dataset)%s", B->q->dir, all.n, B->suffix, im->subject, im->session ? " " : "",
           im->session ? im->session : "", list, count > 1 ? " -- and more subjects or sessions have several" : "");
    free(list);
    strs_free(&all);
    return -1;
}

// The sessions.tsv of every subject with session images (a subject's images are adjacent).
static int read_sessions(Bids *B, DfError *err) {
    const char *dir = B->q->dir;
    for (int i = 0; i < B->n_img; i++) {
        Image *im = &B->img[i];
        if (!im->session) continue;
        if (i > 0 && !strcmp(B->img[i - 1].subject, im->subject) && B->img[i - 1].session) { im->ses = B->img[i - 1].ses; continue; }
        char *tsv = fmt("%s/%s/%s_sessions.tsv", dir, im->subject, im->subject);
        char *own = fmt("%s/%s/%s_sessions.json", dir, im->subject, im->subject), *root = fmt("%s/sessions.json", dir);
        const char *sidecars[2] = { own, root };
        int rc = check_fetched(tsv, "the sessions table", NULL, err);
        if (rc == 0 && is_file(tsv)) {
            B->ses = xrealloc(B->ses, sizeof(Table) * (size_t)(B->n_ses + 1));
            rc = table_read(&B->ses[B->n_ses++], tsv, "session_id", "ses-", sidecars, "sessions.json", err);
            im->ses = B->n_ses - 1;
        }
        free(tsv); free(own); free(root);
        if (rc) return -1;
    }
    return 0;
}

// ---- columns and cells ----------------------------------------------------------------------

// The kind a sidecar implies: Levels -> categorical, Units -> continuous, else -1 (inferred).
static int sidecar_kind(const Bids *B, const char *col, int *kind, DfError *err) {
    *kind = -1;
    for (int k = -1; k < B->n_ses; k++) {
        ColInfo ci;
        if (col_info(k < 0 ? &B->part : &B->ses[k], col, &ci, err)) return -1;
        if (ci.levels) { *kind = META_CATEGORICAL; return 0; }
        if (ci.units) *kind = META_CONTINUOUS;
    }
    return 0;
}

// Every named column is one of participants.tsv or of a sessions.tsv, the label is not also
// a confounder, and --categorical / --continuous name confounders. Sets B->declared.
static int check_columns(Bids *B, DfError *err) {
    const char *origin = B->part.t.origin;
    for (int c = 0; c < B->cols.n; c++) {
        const char *col = B->cols.s[c];
        if (c > 0 && !strcmp(col, B->cols.s[0])) return df_err(err, "%s: '%s' is the label; it cannot be a confounder too", B->q->dir, col);
        int found = csv_column(&B->part.t, col) >= 0;
        for (int k = 0; k < B->n_ses && !found; k++) found = csv_column(&B->ses[k].t, col) >= 0;
        if (found) continue;
        Strs have = { 0 };
        for (int j = 1; j < B->part.t.ncols; j++) strs_push(&have, xstrdup(B->part.t.header[j]));
        char *list = strs_join(&have, 20);
        df_err(err, "%s: %s names column '%s', which neither it nor a sessions.tsv has (its columns: %s)", origin,
               c == 0 ? "the label" : "the confounders", col, have.n ? list : "none but participant_id");
        free(list);
        strs_free(&have);
        return -1;
    }
    Strs decl[2];
    const char *opt[2] = { "--categorical", "--continuous" };
    if (split_names(B->q->categorical, &decl[0], opt[0], err)) return -1;
    if (split_names(B->q->continuous, &decl[1], opt[1], err)) { strs_free(&decl[0]); return -1; }
    int rc = 0;
    for (int L = 0; L < 2 && rc == 0; L++)
        for (int i = 0; i < decl[L].n && rc == 0; i++) {
            int found = 0;
            for (int c = 1; c < B->cols.n; c++) found |= !strcmp(B->cols.s[c], decl[L].s[i]);
            if (!found) rc = df_err(err, "%s: %s names '%s', which is not one of the confounders", B->q->dir, opt[L], decl[L].s[i]);
        }
    for (int c = 1; c < B->cols.n && rc == 0; c++) {
        int *d = &B->declared[c - 1];
        if (in_strs(&decl[1], B->cols.s[c])) *d = META_CONTINUOUS;
        else if (in_strs(&decl[0], B->cols.s[c])) *d = META_CATEGORICAL;
        else rc = sidecar_kind(B, B->cols.s[c], d, err);
    }
    strs_free(&decl[0]);
    strs_free(&decl[1]);
    return rc;
}

// Where the value of `col` for image im is: its session's row of its sessions.tsv when that
// table has the column and the session, else its participants.tsv row (*j = -1 when
// participants.tsv lacks the column: a missing value).
static const Table *cell_source(const Bids *B, const Image *im, const char *col, int *row, int *j) {
    if (im->ses >= 0) {
        const Table *tb = &B->ses[im->ses];
        int jj = csv_column(&tb->t, col), r = jj >= 0 ? table_row(tb, im->session) : -1;
        if (r >= 0) { *row = r; *j = jj; return tb; }
    }
    *row = im->prow;
    *j = csv_column(&B->part.t, col);
    return &B->part;
}

// A value outside the column's Levels: an error listing them.
static int not_a_level(const Table *tb, const CellOrigin *at, const char *col, const char *v, const JsonValue *levels, DfError *err) {
    Strs keys = { 0 };
    for (int i = 0; i < levels->n; i++) strs_push(&keys, xstrdup(levels->keys[i]));
    char *list = strs_join(&keys, 12);
    df_err(err, "%s:%d: %s: '%s' is not one of the Levels %s gives (%s)", at->file, at->line, col, v, tb->json_path, list);
    free(list);
    strs_free(&keys);
    return -1;
}

// The value of column c (0: the label) for image im into *out (NULL when missing) and where
// it is into *at; checked against the column's Levels, and converted to years when its
// Units are months, weeks or days (not the label's).
static int cell_value(Bids *B, const Image *im, int c, char **out, CellOrigin *at, DfError *err) {
    const char *col = B->cols.s[c];
    int row, j;
    const Table *tb = cell_source(B, im, col, &row, &j);
    *at = (CellOrigin){ tb->t.origin, tb->t.line[row] };
    *out = NULL;
    const char *v = j >= 0 ? csv_cell(&tb->t, row, j) : "";
    if (csv_is_missing(v)) return 0;
    ColInfo ci;
    if (col_info(tb, col, &ci, err)) return -1;
    if (ci.levels && !json_get(ci.levels, v)) return not_a_level(tb, at, col, v, ci.levels, err);
    if (c == 0 || (ci.mul == 1 && ci.div == 1)) { *out = xstrdup(v); return 0; }
    double x;
    if (df_parse_double(v, &x) != 0)
        return df_err(err, "%s:%d: %s: '%s' is not a number (%s gives its Units as %s)", at->file, at->line, col, v, tb->json_path, ci.units);
    *out = fmt("%.17g", x * ci.mul / ci.div);
    char *note = fmt("%s: %s in %s, converted to years", col, ci.units, tb->kind);
    if (in_strs(&B->units, note)) free(note);
    else strs_push(&B->units, note);
    return 0;
}

// ---- rows, missing data, coding -------------------------------------------------------------

// One image of a participant: its cells (label, confounders) and where each is.
typedef struct {
    const Image *im;
    char **vals;       // B->cols.n, NULL where missing
    CellOrigin *at;
    int complete;
} Row;

static char *image_id(const Image *im) { return im->session ? fmt("%s/%s", im->subject, im->session) : xstrdup(im->subject); }

static int cmp_image_order(const void *a, const void *b) {
    const Image *x = *(const Image *const *)a, *y = *(const Image *const *)b;
    return x->prow != y->prow ? (x->prow < y->prow ? -1 : 1) : (x < y ? -1 : x > y);
}

// The rows, in participants.tsv order (a participant's sessions in name order); *n_rows.
// Rows with a missing cell are listed in `na` when their participant is selected.
static Row *gather_rows(Bids *B, int *n_rows, Strs *na, DfError *err) {
    const Image **order = xmalloc(sizeof(Image *) * (size_t)(B->n_img + 1));
    int n = 0;
    for (int i = 0; i < B->n_img; i++) if (B->img[i].prow >= 0) order[n++] = &B->img[i];
    qsort(order, (size_t)n, sizeof(Image *), cmp_image_order);
    Row *rows = xcalloc((size_t)n + 1, sizeof(Row));
    int rc = 0;
    for (int r = 0; r < n && rc == 0; r++) {
        Row *w = &rows[r];
        w->im = order[r];
        w->vals = xcalloc((size_t)B->cols.n, sizeof(char *));
        w->at = xcalloc((size_t)B->cols.n, sizeof(CellOrigin));
        Strs which = { 0 };
        for (int c = 0; c < B->cols.n && rc == 0; c++) {
            rc = cell_value(B, w->im, c, &w->vals[c], &w->at[c], err);
            if (rc == 0 && !w->vals[c]) strs_push(&which, xstrdup(B->cols.s[c]));
        }
        w->complete = which.n == 0;
        if (!w->complete && B->selected[w->im->prow]) {
            char *id = image_id(w->im), *cols = strs_join(&which, B->cols.n);
            strs_push(na, fmt("%s (%s)", id, cols));
            free(id);
            free(cols);
        }
        strs_free(&which);
    }
    free(order);
    *n_rows = n;
    if (rc == 0) return rows;
    for (int r = 0; r < n; r++) {
        for (int c = 0; rows[r].vals && c < B->cols.n; c++) free(rows[r].vals[c]);
        free(rows[r].vals);
        free(rows[r].at);
    }
    free(rows);
    return NULL;
}

// Selected participants without an image, and (without a subject list) images without a
// participants.tsv row.
static void find_unmatched(const Bids *B, Strs *no_image, Strs *orphans) {
    int np = B->part.t.nrows;
    int *count = xcalloc((size_t)np + 1, sizeof(int));
    for (int i = 0; i < B->n_img; i++) {
        if (B->img[i].prow >= 0) count[B->img[i].prow]++;
        else if (!B->q->subjects) strs_push(orphans, image_id(&B->img[i]));
    }
    for (int p = 0; p < np; p++)
        if (B->selected[p] && !count[p]) strs_push(no_image, xstrdup(csv_cell(&B->part.t, p, 0)));
    free(count);
}

// Missing data: one error naming every kind, or (drop_missing) a report line per kind.
static int missing_data(const Bids *B, Strs kinds[3], BidsReport *r, DfError *err) {
    if (!kinds[0].n && !kinds[1].n && !kinds[2].n) return 0;
    int most = B->q->drop_missing ? 20 : 5;
    char *ses = B->session ? fmt(" in %s", B->session) : xstrdup("");
    Strs parts = { 0 };
    for (int k = 0; k < 3; k++) {
        if (!kinds[k].n) continue;
        int n = kinds[k].n;
        char *list = strs_join(&kinds[k], most);
        if (k == 0) strs_push(&parts, fmt("%d participant%s of participants.tsv without a %s image%s: %s", n, n == 1 ? "" : "s", B->suffix, ses, list));
        if (k == 1) strs_push(&parts, fmt("%d %s image%s without a participants.tsv row: %s", n, B->suffix, n == 1 ? "" : "s", list));
        if (k == 2) strs_push(&parts, fmt("%d image%s with n/a in the label or a confounder: %s", n, n == 1 ? "" : "s", list));
        free(list);
    }
    free(ses);
    if (B->q->drop_missing) {
        r->dropped = xmalloc(sizeof(char *) * (size_t)parts.n);
        for (int i = 0; i < parts.n; i++) r->dropped[r->n_dropped++] = fmt("%s: dropped %s", B->q->dir, parts.s[i]);
        strs_free(&parts);
        return 0;
    }
    char *all = xstrdup("");
    for (int i = 0; i < parts.n; i++) {
        char *next = fmt("%s%s%s", all, i ? "; " : "", parts.s[i]);
        free(all);
        all = next;
    }
    df_err(err, "%s: missing data: %s -- drop them with --drop-missing ([data] drop_missing = true)", B->q->dir, all);
    free(all);
    strs_free(&parts);
    return -1;
}

// The complete rows as the cells of a manifest (path, subject, label, confounders), coded
// by manifest_from_cells; then only the selected participants' rows are kept (levels and
// classes stay those of every complete row, as --subjects leaves a CSV manifest's).
static int code_rows(const Bids *B, const Row *rows, int n, Manifest *m, DfError *err) {
    int nc = 2 + B->cols.n, nr = 0;
    for (int r = 0; r < n; r++) nr += rows[r].complete;
    CsvTable t = { .origin = xstrdup(B->part.t.origin), .ncols = nc, .nrows = nr };
    t.header = xmalloc(sizeof(char *) * (size_t)nc);
    t.header[0] = xstrdup("path");
    t.header[1] = xstrdup("subject");
    for (int c = 0; c < B->cols.n; c++) t.header[2 + c] = xstrdup(B->cols.s[c]);
    t.cells = xmalloc(sizeof(char *) * ((size_t)nr * nc + 1));
    t.line = xmalloc(sizeof(int) * ((size_t)nr + 1));
    CellOrigin *at = xmalloc(sizeof(CellOrigin) * ((size_t)nr * nc + 1));
    uint8_t *keep = xmalloc((size_t)nr + 1);
    for (int r = 0, i = 0; r < n; r++) {
        if (!rows[r].complete) continue;
        const Image *im = rows[r].im;
        t.line[i] = B->part.t.line[im->prow];
        t.cells[(size_t)i * nc] = xstrdup(im->path);
        t.cells[(size_t)i * nc + 1] = xstrdup(im->subject);
        at[(size_t)i * nc] = at[(size_t)i * nc + 1] = (CellOrigin){ t.origin, t.line[i] };
        for (int c = 0; c < B->cols.n; c++) {
            t.cells[(size_t)i * nc + 2 + c] = xstrdup(rows[r].vals[c]);
            at[(size_t)i * nc + 2 + c] = rows[r].at[c];
        }
        keep[i++] = B->selected[im->prow];
    }
    ManifestCells mc = { .t = &t, .path = 0, .subject = 1, .label = 2, .mask = -1, .k = B->cols.n - 1, .origin = at };
    for (int j = 0; j < mc.k; j++) { mc.col[j] = 3 + j; mc.name[j] = B->cols.s[1 + j]; mc.declared[j] = B->declared[j]; }
    int rc = manifest_from_cells(m, &mc, err);
    if (rc == 0) manifest_keep(m, keep);
    free(keep);
    free(at);
    csv_free(&t);
    return rc;
}

// ---- the reader ------------------------------------------------------------------------------

static void bids_free(Bids *B, Row *rows, int n_rows) {
    for (int r = 0; rows && r < n_rows; r++) {
        for (int c = 0; c < B->cols.n; c++) free(rows[r].vals[c]);
        free(rows[r].vals);
        free(rows[r].at);
    }
    free(rows);
    for (int i = 0; i < B->n_img; i++) {
        free(B->img[i].subject); free(B->img[i].session); free(B->img[i].path);
        strs_free(&B->img[i].more);
    }
    free(B->img);
    for (int k = 0; k < B->n_ses; k++) table_free(&B->ses[k]);
    free(B->ses);
    table_free(&B->part);
    free(B->selected);
    free(B->session);
    strs_free(&B->cols);
    strs_free(&B->units);
}

// The query's columns and session, participants.tsv and participants.json.
static int read_participants(Bids *B, DfError *err) {
    const BidsQuery *q = B->q;
    if (!q->label || !q->label[0]) return df_err(err, "%s: no label column given (--label COLUMN)", q->dir);
    strs_push(&B->cols, xstrdup(q->label));
    Strs conf;
    if (split_names(q->confounders, &conf, "--confounders", err)) return -1;
    for (int i = 0; i < conf.n; i++) strs_push(&B->cols, xstrdup(conf.s[i]));
    strs_free(&conf);
    if (B->cols.n - 1 > META_MAX_COLS) return df_err(err, "%s: more than %d confounders", q->dir, META_MAX_COLS);
    if (!B->suffix[0] || strpbrk(B->suffix, "/_.-"))
        return df_err(err, "%s: '%s' is not a BIDS suffix (T1w, T2w, FLAIR, ...)", q->dir, B->suffix);
    if (q->session) B->session = strncmp(q->session, "ses-", 4) ? fmt("ses-%s", q->session) : xstrdup(q->session);
    if (B->session && (strchr(B->session, '/') || !B->session[4])) return df_err(err, "%s: '%s' is not a session label", q->dir, q->session);
    if (!is_dir(q->dir)) return df_err(err, "%s: not a folder (a BIDS dataset's root)", q->dir);
    char *tsv = fmt("%s/participants.tsv", q->dir), *json = fmt("%s/participants.json", q->dir);
    const char *sidecars[2] = { json, NULL };
    int rc = check_fetched(tsv, "the participants table", NULL, err) ? -1
           : exists(tsv) ? table_read(&B->part, tsv, "participant_id", "sub-", sidecars, "participants.json", err)
                          : df_err(err, "%s: missing (pack --bids reads the label and the confounders from it)", tsv);
    free(tsv);
    free(json);
    if (rc) return -1;
    int np = B->part.t.nrows;
    B->selected = xmalloc((size_t)np + 1);
    memset(B->selected, 1, (size_t)np + 1);
    return 0;
}

// With a subject list, only its participants are selected; an id participants.tsv lacks
// is an error naming the list and line.
static int select_subjects(Bids *B, DfError *err) {
    if (!B->q->subjects) return 0;
    char **ids;
    int *lines, n, rc = 0;
    if (subject_list_read(B->q->subjects, &ids, &lines, &n, err)) return -1;
    memset(B->selected, 0, (size_t)B->part.t.nrows);
    for (int i = 0; i < n && rc == 0; i++) {
        int p = participant_row(B, ids[i]);
        if (p < 0) rc = df_err(err, "%s:%d: subject '%s' is not in %s", B->q->subjects, lines[i], ids[i], B->part.t.origin);
        else B->selected[p] = 1;
    }
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lines);
    return rc;
}

// An image of a selected participant that is a dangling link: an error even with
// drop_missing (the image exists, its content was not fetched), naming the first and
// counting the others.
static int check_images_fetched(const Bids *B, DfError *err) {
    int first = -1, count = 0;
    for (int i = 0; i < B->n_img; i++) {
        const Image *im = &B->img[i];
        if (im->prow < 0 || !B->selected[im->prow]) continue;
        char *full = fmt("%s/%s", B->q->dir, im->path);
        if (dangling(full)) { count++; if (first < 0) first = i; }
        free(full);
    }
    if (first < 0) return 0;
    char *full = fmt("%s/%s", B->q->dir, B->img[first].path), *more = count > 1 ? fmt(" (and %d more images are)", count - 1) : NULL;
    check_fetched(full, "the image", more, err);
    free(full);
    free(more);
    return -1;
}

// No image at all (a wrong --suffix or --session): an error saying where they were sought.
static int check_found(const Bids *B, DfError *err) {
    if (B->n_img) return 0;
    return df_err(err, "%s: no images sub-*/%s%sanat/sub-*_%s.nii[.gz]", B->q->dir, B->session ? B->session : "[ses-*/]",
                  B->session ? "/" : "", B->suffix);
}

// The rows left to pack after dropping: none is an error.
static int check_left(const Bids *B, const Row *rows, int n, DfError *err) {
    for (int r = 0; r < n; r++)
        if (rows[r].complete && B->selected[rows[r].im->prow]) return 0;
    return df_err(err, "%s: no %s image of a selected participant with a label and every confounder", B->q->dir, B->suffix);
}

int bids_read(Manifest *m, const BidsQuery *q, BidsReport *r, DfError *err) {
    memset(m, 0, sizeof *m);
    memset(r, 0, sizeof *r);
    Bids B = { .q = q, .suffix = q->suffix ? q->suffix : "T1w" };
    Row *rows = NULL;
    Strs kinds[3] = { { 0 } };  // participants without an image, images without a participant, rows with n/a
    int n_rows = 0, rc = -1;
    if (read_participants(&B, err) || select_subjects(&B, err) || scan_images(&B, err) || check_found(&B, err) ||
        check_ambiguous(&B, err) || check_images_fetched(&B, err) || read_sessions(&B, err) || check_columns(&B, err))
        goto done;
    if (!(rows = gather_rows(&B, &n_rows, &kinds[2], err))) goto done;
    find_unmatched(&B, &kinds[0], &kinds[1]);
    if (missing_data(&B, kinds, r, err) || check_left(&B, rows, n_rows, err) || code_rows(&B, rows, n_rows, m, err)) goto done;
    r->n_units = B.units.n;
    r->units = B.units.s;
    memset(&B.units, 0, sizeof B.units);
    rc = 0;
done:
    for (int k = 0; k < 3; k++) strs_free(&kinds[k]);
    bids_free(&B, rows, n_rows);
    if (rc) bids_report_free(r);
    return rc;
}

void bids_report_free(BidsReport *r) {
    for (int i = 0; i < r->n_dropped; i++) free(r->dropped[i]);
    for (int i = 0; i < r->n_units; i++) free(r->units[i]);
    free(r->dropped);
    free(r->units);
    memset(r, 0, sizeof *r);
}

char *bids_describe(const BidsQuery *q) {
    const char *ses = q->session ? q->session : "all";
    return fmt("bids:%s suffix=%s session=%s%s label=%s confounders=%s%s", q->dir, q->suffix ? q->suffix : "T1w",
               q->session && strncmp(ses, "ses-", 4) ? "ses-" : "", ses, q->label ? q->label : "", q->confounders ? q->confounders : "none",
               q->drop_missing ? " drop_missing" : "");
}
