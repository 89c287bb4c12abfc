// csv.c: the CSV dialect and subject manifests of csv.h.
#include "data/csv.h"
#include "data/cohort.h"
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// ---- CSV ---------------------------------------------------------------------------------

typedef struct { char **items; int n, cap; } StrVec;

static void sv_push(StrVec *v, char *s) {
    if (v->n == v->cap) { v->cap = v->cap ? 2 * v->cap : 16; v->items = xrealloc(v->items, sizeof(char *) * (size_t)v->cap); }
    v->items[v->n++] = s;
}

typedef struct { char *buf; size_t n, cap; } Buf;
static void buf_put(Buf *b, char c) {
    if (b->n + 1 >= b->cap) { b->cap = b->cap ? 2 * b->cap : 64; b->buf = xrealloc(b->buf, b->cap); }
    b->buf[b->n++] = c;
}
static char *buf_take(Buf *b) {
    buf_put(b, '\0');
    char *s = xstrdup(b->buf);
    b->n = 0;
    return s;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

void csv_free(CsvTable *t) {
    if (t->header) for (int j = 0; j < t->ncols; j++) free(t->header[j]);
    if (t->cells) for (size_t i = 0; i < (size_t)t->nrows * (size_t)t->ncols; i++) free(t->cells[i]);
    free(t->header);
    free(t->cells);
    free(t->line);
    free(t->origin);
    memset(t, 0, sizeof *t);
}

int csv_parse(CsvTable *t, const char *text, const char *origin, DfError *err) {
    memset(t, 0, sizeof *t);
    t->origin = xstrdup(origin);
    const char *p = text;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3;
    int line = 1, rc = -1, have_header = 0, rows_cap = 0;
    StrVec cells = { 0 }, row = { 0 };
    Buf b = { 0 };
    while (*p) {
        // Start of a line: skip comments and blank lines.
        const char *q = p;
        while (is_blank(*q)) q++;
        if (*q == '#' || *q == '\n' || (*q == '\r' && q[1] == '\n') || *q == '\0') {
            while (*q && *q != '\n') q++;
            if (*q == '\n') { q++; line++; }
            p = q;
            continue;
        }
        int row_line = line;
        row.n = 0;
        for (;;) {  // one field per iteration
            while (is_blank(*p)) p++;
            if (*p == '"') {
                int open_line = line;
                p++;
                for (;;) {
                    if (*p == '\0') {
                        df_err(err, "%s:%d: unterminated quoted field (the quote opens on line %d)", origin, line, open_line);
                        goto done;
                    }
                    if (*p == '"') {
                        if (p[1] == '"') { buf_put(&b, '"'); p += 2; continue; }
                        p++;
                        break;
                    }
                    if (*p == '\n') line++;
                    buf_put(&b, *p++);
                }
                while (is_blank(*p)) p++;
                if (*p == '\r' && p[1] == '\n') p++;
                if (*p != ',' && *p != '\n' && *p != '\0') {
                    df_err(err, "%s:%d: unexpected text after a closing quote (a quote inside a field must be doubled: \"\")", origin, line);
                    goto done;
                }
            } else {
                while (*p && *p != ',' && *p != '\n') {
                    if (*p == '"') {
                        df_err(err, "%s:%d: a quote inside an unquoted field (quote the whole field and double the quote)", origin, line);
                        goto done;
                    }
                    buf_put(&b, *p++);
                }
                while (b.n > 0 && (is_blank(b.buf[b.n - 1]) || b.buf[b.n - 1] == '\r')) b.n--;
            }
            sv_push(&row, buf_take(&b));
            if (*p == ',') { p++; continue; }
            if (*p == '\n') { p++; line++; }
            break;
        }
        if (!have_header) {
            t->ncols = row.n;
            t->header = xmalloc(sizeof(char *) * (size_t)row.n);
            // Every name is t->header's before any is checked, so a rejected header is freed
            // whole by csv_free (found by fuzzing: it leaked, and freeing it half-filled crashed).
            for (int j = 0; j < row.n; j++) t->header[j] = row.items[j];
            for (int j = 0; j < row.n; j++) {
                if (!t->header[j][0]) {
                    df_err(err, "%s:%d: header column %d has no name", origin, row_line, j + 1);
                    row.n = 0;  // the names are t->header's now: csv_free frees them
                    goto done;
                }
                for (int i = 0; i < j; i++)
                    if (strcmp(t->header[i], t->header[j]) == 0) {
                        df_err(err, "%s:%d: header names column '%s' twice", origin, row_line, t->header[j]);
                        row.n = 0;
                        goto done;
                    }
            }
            row.n = 0;
            have_header = 1;
            continue;
        }
        if (row.n != t->ncols) {
            df_err(err, "%s:%d: %d field%s, but the header has %d columns", origin, row_line, row.n, row.n == 1 ? "" : "s", t->ncols);
            goto done;
        }
        for (int j = 0; j < row.n; j++) sv_push(&cells, row.items[j]);
        row.n = 0;
        if (t->nrows == rows_cap) { rows_cap = rows_cap ? 2 * rows_cap : 64; t->line = xrealloc(t->line, sizeof(int) * (size_t)rows_cap); }
        t->line[t->nrows++] = row_line;
    }
    if (!have_header) { df_err(err, "%s: empty (no header line)", origin); goto done; }
    rc = 0;
done:
    for (int j = 0; j < row.n; j++) free(row.items[j]);
    free(row.items);
    free(b.buf);
    t->cells = cells.items;
    if (rc != 0) {
        // cells holds nrows * ncols complete rows; free them through csv_free. A header
        // rejected for an empty or repeated name is already t->header (ncols of them) and is
        // freed there too (found by fuzzing: keying this on have_header leaked it).
        if (!t->header) t->ncols = 0;
        csv_free(t);
    }
    return rc;
}

int csv_read(CsvTable *t, const char *path, DfError *err) {
    memset(t, 0, sizeof *t);
    char *text = df_read_text_file(path, NULL, err);
    if (!text) return -1;
    int rc = csv_parse(t, text, path, err);
    free(text);
    return rc;
}

int csv_column(const CsvTable *t, const char *name) {
    for (int j = 0; j < t->ncols; j++)
        if (strcmp(t->header[j], name) == 0) return j;
    return -1;
}

int csv_is_missing(const char *v) {
    return !v[0] || !strcmp(v, "NA") || !strcmp(v, "N/A") || !strcmp(v, "n/a") || !strcasecmp(v, "nan");
}

int csv_numbers(const CsvTable *t, int col, double lo, double hi, double *out, DfError *err) {
    for (int i = 0; i < t->nrows; i++) {
        const char *s = csv_cell(t, i, col);
        out[i] = NAN;
        if (!s[0]) continue;
        if (df_parse_double(s, &out[i]) != 0)
            return df_err(err, "%s:%d: %s: '%s' is not a number", t->origin, t->line[i], t->header[col], s);
        if (out[i] < lo || out[i] > hi)
            return df_err(err, "%s:%d: %s: %s is outside [%g, %g]", t->origin, t->line[i], t->header[col], s, lo, hi);
    }
    return 0;
}

// ---- manifest ----------------------------------------------------------------------------

void manifest_free(Manifest *m) {
    for (int i = 0; i < m->n; i++) {
        if (m->paths) free(m->paths[i]);
        if (m->subjects) free(m->subjects[i]);
        if (m->masks) free(m->masks[i]);
    }
    free(m->paths); free(m->subjects); free(m->masks); free(m->labels); free(m->meta); free(m->line);
    for (int i = 0; i < m->n_label_names; i++) free(m->label_names[i]);
    free(m->label_names);
    for (int j = 0; j < META_MAX_COLS; j++) {
        free(m->columns[j]);
        for (int l = 0; l < m->n_levels[j]; l++) free(m->levels[j][l]);
        free(m->levels[j]);
    }
    free(m->origin);
    memset(m, 0, sizeof *m);
}

// Is `name` in the comma-separated list?
static int in_list(const char *list, const char *name) {
    if (!list) return 0;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && t[-1] == ' ') t--;
        if ((size_t)(t - p) == n && strncmp(p, name, n) == 0) return 1;
        p = e;
    }
    return 0;
}

static int is_number(const char *s) { double v; return df_parse_double(s, &v) == 0; }

// "FILE:LINE" of cell (row, col), for messages.
static const char *cell_at(const ManifestCells *c, int row, int col, char *buf, size_t n) {
    if (c->origin) {
        const CellOrigin *o = &c->origin[(size_t)row * c->t->ncols + col];
        snprintf(buf, n, "%s:%d", o->file, o->line);
    } else {
        snprintf(buf, n, "%s:%d", c->t->origin, c->t->line[row]);
    }
    return buf;
}

// Sorted distinct values of column `col` (numeric order when all are numbers).
static int level_set(const ManifestCells *c, int col, char ***out, int *nout, const char *what, DfError *err) {
    const CsvTable *t = c->t;
    char **lv = xmalloc(sizeof(char *) * MANIFEST_MAX_LEVELS), at[1200];
    int n = 0;
    for (int i = 0; i < t->nrows; i++) {
        const char *v = csv_cell(t, i, col);
        int seen = 0;
        for (int l = 0; l < n && !seen; l++) seen = strcmp(lv[l], v) == 0;
        if (seen) continue;
        if (n == MANIFEST_MAX_LEVELS) {
            for (int l = 0; l < n; l++) free(lv[l]);
            free(lv);
            return df_err(err, "%s: %s: more than %d distinct values for a categorical column", cell_at(c, i, col, at, sizeof at),
                          what, MANIFEST_MAX_LEVELS);
        }
        lv[n++] = xstrdup(v);
    }
    cohort_sort_names(lv, n);
    *out = lv;
    *nout = n;
    return 0;
}

static int level_index(char **lv, int n, const char *v) {
    for (int l = 0; l < n; l++) if (strcmp(lv[l], v) == 0) return l;
    return -1;
}

// The directory part of path ("" when none), to resolve relative paths against.
static char *resolve(const char *manifest, const char *p) {
    if (p[0] == '/') return xstrdup(p);
    const char *slash = strrchr(manifest, '/');
    if (!slash) return xstrdup(p);
    size_t d = (size_t)(slash - manifest + 1), n = d + strlen(p) + 1;
    char *s = xmalloc(n);
    memcpy(s, manifest, d);
    strcpy(s + d, p);
    return s;
}

// File name without directory and without .nii/.nii.gz/.h5/.hdf5. For an HDF5 clip
// `FILE.h5:DATASET` the dataset part is dropped first: every clip of one file is one
// subject (clips cut from one recording must not straddle a split).
static char *default_subject(const char *p0) {
    char *p = xstrdup(p0);
    static const char *const h5ext[] = { ".h5:", ".hdf5:", NULL };
    for (int i = 0; h5ext[i]; i++) {
        char *at = strstr(p, h5ext[i]);
        if (at) { at[strlen(h5ext[i]) - 1] = '\0'; break; }
    }
    const char *slash = strrchr(p, '/');
    char *s = xstrdup(slash ? slash + 1 : p);
    free(p);
    static const char *ext[] = { ".nii.gz", ".nii", ".hdr", ".h5", ".hdf5", NULL };
    size_t n = strlen(s);
    for (int i = 0; ext[i]; i++) {
        size_t m = strlen(ext[i]);
        if (n > m && strcmp(s + n - m, ext[i]) == 0) { s[n - m] = '\0'; break; }
    }
    return s;
}

// The confounder columns of a CSV header: every column after path,label but subject and
// mask; a "name:kind" header, or the caller's lists, declare the kind (-1 when not). The
// names are the header's without ":kind", in names[] (the caller frees them).
static int csv_confounders(ManifestCells *c, const char *origin, const char *categorical, const char *continuous, char **names,
                           DfError *err) {
    const CsvTable *t = c->t;
    for (int j = 2; j < t->ncols; j++) {
        if (j == c->subject || j == c->mask) continue;
        if (c->k == META_MAX_COLS) return df_err(err, "%s: more than %d confounder columns", origin, META_MAX_COLS);
        char *name = xstrdup(t->header[j]), *colon = strchr(name, ':');
        int kind = -1;
        if (colon) {
            *colon = '\0';
            const char *k = colon + 1;
            if (!strcmp(k, "categorical") || !strcmp(k, "cat")) kind = META_CATEGORICAL;
            else if (!strcmp(k, "continuous") || !strcmp(k, "cont")) kind = META_CONTINUOUS;
            else {
                df_err(err, "%s: column '%s': unknown kind '%s' (categorical or continuous)", origin, t->header[j], k);
                free(name);
                return -1;
            }
        }
        if (in_list(categorical, name)) kind = META_CATEGORICAL;
        if (in_list(continuous, name)) kind = META_CONTINUOUS;
        c->col[c->k] = j;
        c->declared[c->k] = kind;
        names[c->k] = name;
        c->name[c->k] = name;
        c->k++;
    }
    // Names the caller declared must exist.
    const char *lists[2] = { categorical, continuous };
    for (int L = 0; L < 2; L++) {
        if (!lists[L]) continue;
        char *copy = xstrdup(lists[L]);
        int rc = 0;
        for (char *tok = strtok(copy, ", "); tok && !rc; tok = strtok(NULL, ", ")) {
            int found = 0;
            for (int i = 0; i < c->k; i++) found |= !strcmp(c->name[i], tok);
            if (!found)
                rc = df_err(err, "%s: --%s names column '%s', which the manifest does not have", origin,
                            L == 0 ? "categorical" : "continuous", tok);
        }
        free(copy);
        if (rc) return -1;
    }
    return 0;
}

// The confounders' names into m->columns: non-empty, without ',' or '|' (the shard's
// attributes separate by them), each once.
static int manifest_names(Manifest *m, const ManifestCells *c, DfError *err) {
    if (c->k > META_MAX_COLS) return df_err(err, "%s: more than %d confounder columns", m->origin, META_MAX_COLS);
    for (int j = 0; j < c->k; j++) {
        const char *name = c->name[j];
        int bad = !name[0] || strchr(name, ',') || strchr(name, '|'), twice = 0;
        for (int i = 0; i < j; i++) twice |= !strcmp(m->columns[i], name);
        if (bad || twice)
            return df_err(err, bad ? "%s: column name '%s' is empty or contains ',' or '|'" : "%s: column '%s' appears twice", m->origin,
                          name);
        m->columns[j] = xstrdup(name);
        m->k = j + 1;
    }
    return 0;
}

// Each row's image path, subject id and mask path (relative paths against the manifest's folder).
static int manifest_paths(Manifest *m, const ManifestCells *c, DfError *err) {
    const CsvTable *t = c->t;
    char at[1200];
    for (int i = 0; i < m->n; i++) {
        m->line[i] = t->line[i];
        const char *p = csv_cell(t, i, c->path);
        if (!p[0]) return df_err(err, "%s: path is empty", cell_at(c, i, c->path, at, sizeof at));
        m->paths[i] = resolve(m->origin, p);
        const char *s = c->subject >= 0 ? csv_cell(t, i, c->subject) : "";
        m->subjects[i] = s[0] ? xstrdup(s) : default_subject(p);
        if (c->mask >= 0) {
            const char *mk = csv_cell(t, i, c->mask);
            if (!mk[0]) return df_err(err, "%s: mask is empty (every row needs one when the column exists)", cell_at(c, i, c->mask, at, sizeof at));
            m->masks[i] = resolve(m->origin, mk);
        }
    }
    return 0;
}

// Why s is not a number, for messages: "" for a word, or that it is one strtod reads but
// not as a finite double ("inf", "1e400").
static const char *not_number_why(const char *s) {
    char *end;
    (void)strtod(s, &end);
    return end != s && *end == '\0' ? " (infinite, or beyond the range of a double)" : "";
}

// A column mixing numbers and words: which value to blame. The kind most of its rows hold is
// taken as meant (numbers on a tie: a word in a numeric column -- a typo, or "unknown"
// where NA was meant -- is the usual slip), and the first value of the other kind is the odd one. *odd: its row; *other:
// the first row of the majority kind, for the message. Returns 1 when the odd one is a word.
static int odd_one(int n_num, int n_word, int first_num, int first_word, int *odd, int *other) {
    int word = n_num >= n_word;
    *odd = word ? first_word : first_num;
    *other = word ? first_num : first_word;
    return word;
}

// Labels: all non-negative integers (class indices), or all names (numbered in sorted order).
// A mix names its odd value (odd_one) and the first of the others.
static int manifest_labels(Manifest *m, const ManifestCells *c, DfError *err) {
    const CsvTable *t = c->t;
    const char *name = t->header[c->label];
    char at[1200], at2[1200];
    for (int i = 0; i < m->n; i++)  // "NaN" or "NA" would otherwise become a class of its own
        if (csv_is_missing(csv_cell(t, i, c->label)))
            return df_err(err, "%s: %s: missing value", cell_at(c, i, c->label, at, sizeof at), name);
    int n_num = 0, n_word = 0, first_num = -1, first_word = -1, first_frac = -1;
    for (int i = 0; i < m->n; i++) {
        const char *v = csv_cell(t, i, c->label);
        long x;
        if (is_number(v)) {
            if (n_num++ == 0) first_num = i;
            if (first_frac < 0 && df_parse_long(v, &x) != 0) first_frac = i;  // 1.5, 1e3, 0x10: numbers, not indices
        } else if (n_word++ == 0) first_word = i;
    }
    if (n_num > 0 && n_word > 0) {
        int odd, other, word = odd_one(n_num, n_word, first_num, first_word, &odd, &other);
        cell_at(c, odd, c->label, at, sizeof at);
        cell_at(c, other, c->label, at2, sizeof at2);
        const char *v = csv_cell(t, odd, c->label), *w = csv_cell(t, other, c->label);
        if (word)
            return df_err(err, "%s: %s: '%s' is not a class index%s, but %d of the %d labels %s'%s' at %s): use class "
                          "indices 0, 1, ... or names throughout", at, name, v, not_number_why(v), n_num, m->n,
                          n_num == 1 ? "is a number (" : "are numbers (the first ", w, at2);
        return df_err(err, "%s: %s: '%s' is a number, but %d of the %d labels %s'%s' at %s): use class indices 0, "
                      "1, ... or names throughout", at, name, v, n_word, m->n,
                      n_word == 1 ? "is a name (" : "are names (the first ", w, at2);
    }
    if (first_frac >= 0)
        return df_err(err, "%s: %s: '%s' is not a class index (labels are whole numbers 0, 1, ..., or names)",
                      cell_at(c, first_frac, c->label, at, sizeof at), name, csv_cell(t, first_frac, c->label));
    int int_labels = n_word == 0;
    for (int i = 0; i < m->n && int_labels; i++) {
        long x = 0;
        df_parse_long(csv_cell(t, i, c->label), &x);
        if (x < 0 || x > 1000000)
            return df_err(err, "%s: %s: %ld is not a class index (0, 1, ...)", cell_at(c, i, c->label, at, sizeof at), name, x);
        m->labels[i] = (int32_t)x;
    }
    if (int_labels) return 0;
    if (level_set(c, c->label, &m->label_names, &m->n_label_names, name, err)) return -1;
    for (int i = 0; i < m->n; i++) m->labels[i] = level_index(m->label_names, m->n_label_names, csv_cell(t, i, c->label));
    return 0;
}

// The kind of an undeclared confounder column, from its values: numbers throughout ->
// continuous (two distinct integers: categorical); names throughout -> categorical; a mix is
// an error naming its odd value (odd_one: the first of the minority kind) and the first value
// of the other kind, each with its file and line.
static int infer_kind(const Manifest *m, const ManifestCells *c, int j, DfError *err) {
    const CsvTable *t = c->t;
    int col = c->col[j], first_num = -1, first_str = -1, n_num = 0, n_str = 0;
    for (int i = 0; i < m->n; i++) {
        if (is_number(csv_cell(t, i, col))) { if (n_num++ == 0) first_num = i; }
        else if (n_str++ == 0) first_str = i;
    }
    if (n_num > 0 && n_str > 0) {
        int odd, other, word = odd_one(n_num, n_str, first_num, first_str, &odd, &other);
        char at[1200], at2[1200];
        cell_at(c, odd, col, at, sizeof at);
        cell_at(c, other, col, at2, sizeof at2);
        const char *v = csv_cell(t, odd, col), *w = csv_cell(t, other, col);
        if (word)
            return df_err(err, "%s: %s: '%s' is not a number%s, but %d of the %d rows %s'%s' at %s); declare "
                          "the column %s:categorical if it is one", at, m->columns[j], v, not_number_why(v), n_num, m->n,
                          n_num == 1 ? "holds a number (" : "hold numbers (the first ", w, at2, m->columns[j]);
        return df_err(err, "%s: %s: '%s' is a number, but %d of the %d rows %s'%s' at %s); declare the column "
                      "%s:categorical if its values are categories", at, m->columns[j], v, n_str, m->n,
                      n_str == 1 ? "holds a name (" : "hold names (the first ", w, at2, m->columns[j]);
    }
    if (first_str >= 0) return META_CATEGORICAL;
    double a = 0, b = 0;
    int distinct = 0, integral = 1;
    for (int i = 0; i < m->n && distinct <= 2; i++) {
        double v = strtod(csv_cell(t, i, col), NULL);
        integral &= v == floor(v);  // (not through a long: 5e56 does not fit one)
        if (distinct == 0) { a = v; distinct = 1; }
        else if (v != a && (distinct == 1 || v != b)) { if (distinct == 1) b = v; distinct++; }
    }
    return (distinct == 2 && integral) ? META_CATEGORICAL : META_CONTINUOUS;
}

// Confounder j of every row: its kind and values (level numbers if categorical).
static int manifest_confounder(Manifest *m, const ManifestCells *c, int j, DfError *err) {
    const CsvTable *t = c->t;
    int col = c->col[j];
    char at[1200];
    for (int i = 0; i < m->n; i++)
        if (csv_is_missing(csv_cell(t, i, col)))
            return df_err(err, "%s: %s: missing value", cell_at(c, i, col, at, sizeof at), m->columns[j]);
    int kind = c->declared[j] >= 0 ? c->declared[j] : infer_kind(m, c, j, err);
    if (kind < 0) return -1;
    m->kinds[j] = (MetaKind)kind;
    if (kind == META_CATEGORICAL) {
        if (level_set(c, col, &m->levels[j], &m->n_levels[j], m->columns[j], err)) return -1;
        for (int i = 0; i < m->n; i++) m->meta[(size_t)i * m->k + j] = level_index(m->levels[j], m->n_levels[j], csv_cell(t, i, col));
        return 0;
    }
    for (int i = 0; i < m->n; i++)
        if (df_parse_double(csv_cell(t, i, col), &m->meta[(size_t)i * m->k + j]) != 0)
            return df_err(err, "%s: %s: '%s' is not a number%s (the column is continuous)", cell_at(c, i, col, at, sizeof at),
                          m->columns[j], csv_cell(t, i, col), not_number_why(csv_cell(t, i, col)));
    return 0;
}

int manifest_from_cells(Manifest *m, const ManifestCells *c, DfError *err) {
    memset(m, 0, sizeof *m);
    const CsvTable *t = c->t;
    m->origin = xstrdup(t->origin);
    int rc = -1, n = m->n = t->nrows;
    if (n == 0) { df_err(err, "%s: no subjects (only a header)", m->origin); goto done; }
    if (manifest_names(m, c, err)) goto done;
    m->paths = xcalloc((size_t)n, sizeof(char *));
    m->subjects = xcalloc((size_t)n, sizeof(char *));
    if (c->mask >= 0) m->masks = xcalloc((size_t)n, sizeof(char *));
    m->labels = xcalloc((size_t)n, sizeof(int32_t));
    m->meta = xcalloc((size_t)n * (size_t)(m->k ? m->k : 1), sizeof(double));
    m->line = xmalloc(sizeof(int) * (size_t)n);
    if (manifest_paths(m, c, err) || manifest_labels(m, c, err)) goto done;
    for (int j = 0; j < m->k; j++)
        if (manifest_confounder(m, c, j, err)) goto done;
    rc = 0;
done:
    if (rc != 0) manifest_free(m);
    return rc;
}

int manifest_read(Manifest *m, const char *path, const char *categorical, const char *continuous, DfError *err) {
    memset(m, 0, sizeof *m);
    CsvTable t;
    if (csv_read(&t, path, err)) return -1;
    ManifestCells c = { .t = &t, .path = 0, .label = 1, .subject = csv_column(&t, "subject"), .mask = csv_column(&t, "mask") };
    char *names[META_MAX_COLS] = { NULL };
    int rc = -1;
    if (csv_column(&t, "path") != 0 || csv_column(&t, "label") != 1)
        df_err(err, "%s: the header must start with path,label (then optional subject, mask and confounder columns)", path);
    else if (t.nrows == 0) df_err(err, "%s: no subjects (only a header)", path);
    else if (csv_confounders(&c, path, categorical, continuous, names, err) == 0) rc = manifest_from_cells(m, &c, err);
    for (int j = 0; j < c.k; j++) free(names[j]);
    csv_free(&t);
    return rc;
}

// ---- subject lists --------------------------------------------------------------------------

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void manifest_keep(Manifest *m, const uint8_t *keep) {
    int kept = 0;
    for (int i = 0; i < m->n; i++) {
        if (!keep[i]) {
            free(m->paths[i]); free(m->subjects[i]);
            if (m->masks) free(m->masks[i]);
            continue;
        }
        m->paths[kept] = m->paths[i];
        m->subjects[kept] = m->subjects[i];
        if (m->masks) m->masks[kept] = m->masks[i];
        m->labels[kept] = m->labels[i];
        m->line[kept] = m->line[i];
        if (m->k) memmove(m->meta + (size_t)kept * m->k, m->meta + (size_t)i * m->k, sizeof(double) * (size_t)m->k);
        kept++;
    }
    m->n = kept;
}

int subject_list_read(const char *path, char ***ids, int **lines, int *n, DfError *err) {
    *ids = NULL;
    *lines = NULL;
    *n = 0;
    char *text = df_read_text_file(path, NULL, err);
    if (!text) return -1;
    int cap = 0, lineno = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        // Trim spaces, tabs and a CR; skip blank and '#' lines.
        if (lineno == 1 && (unsigned char)line[0] == 0xEF && (unsigned char)line[1] == 0xBB && (unsigned char)line[2] == 0xBF) line += 3;
        while (*line == ' ' || *line == '\t') line++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r')) line[--len] = '\0';
        if (!len || line[0] == '#') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            *ids = xrealloc(*ids, sizeof(char *) * (size_t)cap);
            *lines = xrealloc(*lines, sizeof(int) * (size_t)cap);
        }
        (*ids)[*n] = xstrdup(line);
        (*lines)[(*n)++] = lineno;
    }
    free(text);
    if (*n == 0) return df_err(err, "%s: lists no subjects (one subject id per line)", path);
    return 0;
}

int manifest_select_subjects(Manifest *m, const char *list_path, DfError *err) {
    char **wanted;
    int *lines, nw, rc = -1;
    if (subject_list_read(list_path, &wanted, &lines, &nw, err)) return -1;
    // Sorted subject ids of the manifest, for lookups.
    char **sorted = xmalloc(sizeof(char *) * (size_t)m->n);
    memcpy(sorted, m->subjects, sizeof(char *) * (size_t)m->n);
    qsort(sorted, (size_t)m->n, sizeof(char *), cmp_str_ptr);
    for (int w = 0; w < nw; w++)
        if (!bsearch(&wanted[w], sorted, (size_t)m->n, sizeof(char *), cmp_str_ptr)) {
            df_err(err, "%s:%d: subject '%s' is not in %s", list_path, lines[w], wanted[w], m->origin);
            goto done;
        }
    qsort(wanted, (size_t)nw, sizeof(char *), cmp_str_ptr);
    uint8_t *keep = xmalloc((size_t)m->n + 1);
    for (int i = 0; i < m->n; i++) keep[i] = bsearch(&m->subjects[i], wanted, (size_t)nw, sizeof(char *), cmp_str_ptr) != NULL;
    manifest_keep(m, keep);
    free(keep);
    rc = 0;
done:
    for (int w = 0; w < nw; w++) free(wanted[w]);
    free(wanted);
    free(lines);
    free(sorted);
    return rc;
}
