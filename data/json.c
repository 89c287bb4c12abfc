// json.c: the strict JSON reader of json.h (a recursive descent over the text).
#include "data/json.h"
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *p;           // next character
    const char *line_start;  // of the current line (strings hold no raw newline, so only
    int line;                //   whitespace advances lines)
    const char *origin;
    int depth;
    DfError *err;
} Parser;

static int fail(Parser *ps, const char *what) {
    int col = (int)(ps->p - ps->line_start) + 1;
    if (*ps->p == '\0') return df_err(ps->err, "%s:%d:%d: %s (the text ends here)", ps->origin, ps->line, col, what);
    return df_err(ps->err, "%s:%d:%d: %s", ps->origin, ps->line, col, what);
}

static void skip_ws(Parser *ps) {
    for (;; ps->p++) {
        char c = *ps->p;
        if (c == '\n') { ps->line++; ps->line_start = ps->p + 1; }
        else if (c != ' ' && c != '\t' && c != '\r') return;
    }
}

// Appends code point cp as UTF-8, or with `raw` the byte cp as it is (the file's own UTF-8).
static void put_utf8(char **buf, size_t *n, size_t *cap, unsigned cp, int raw) {
    if (*n + 5 > *cap) { *cap = *cap ? 2 * *cap : 32; *buf = xrealloc(*buf, *cap); }
    char *o = *buf + *n;
    if (cp < 0x80 || raw) { o[0] = (char)cp; *n += 1; }
    else if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); *n += 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); *n += 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); *n += 4;
    }
}

// Four hex digits after "\u".
static int hex4(Parser *ps, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return fail(ps, "\\u needs four hex digits");
        v = v * 16 + (unsigned)d;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

// One \u escape (ps->p after the 'u'), a surrogate pair taking two.
static int unicode_escape(Parser *ps, unsigned *cp) {
    if (hex4(ps, cp)) return -1;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return fail(ps, "a lone low surrogate in a \\u escape");
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        unsigned lo = 0;
        if (ps->p[0] != '\\' || ps->p[1] != 'u') return fail(ps, "a high surrogate \\u escape without its low half");
        ps->p += 2;
        if (hex4(ps, &lo)) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) return fail(ps, "a high surrogate \\u escape without its low half");
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (*cp == 0) return fail(ps, "\\u0000 in a string (not supported)");
    return 0;
}

// A string (ps->p on its opening quote) into a new NUL-terminated copy.
static char *parse_string(Parser *ps) {
    char *buf = NULL;
    size_t n = 0, cap = 0;
    ps->p++;
    for (;;) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') { ps->p++; break; }
        if (c == '\0') { fail(ps, "unterminated string"); goto bad; }
        if (c < 0x20) { fail(ps, "a control character in a string (write it as an escape, e.g. \\n)"); goto bad; }
        if (c != '\\') { put_utf8(&buf, &n, &cap, c, 1); ps->p++; continue; }  // the file's bytes as they are
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *e = strchr(from, ps->p[1]);
        unsigned cp = 0;
        if (ps->p[1] == 'u') {
            ps->p += 2;
            if (unicode_escape(ps, &cp)) goto bad;
            put_utf8(&buf, &n, &cap, cp, 0);
        } else if (ps->p[1] && e) {
            put_utf8(&buf, &n, &cap, (unsigned char)to[e - from], 0);
            ps->p += 2;
        } else {
            ps->p++;
            fail(ps, "unknown escape in a string");
            goto bad;
        }
    }
    put_utf8(&buf, &n, &cap, 'x', 1);  // room for the terminator
    buf[n - 1] = '\0';
    return buf;
bad:
    free(buf);
    return NULL;
}

// A number as RFC 8259 writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
static int parse_number(Parser *ps, JsonValue *v) {
    const char *s = ps->p, *q = s;
    if (*q == '-') q++;
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9') while (*q >= '0' && *q <= '9') q++;
    else return fail(ps, "expected a value");
    if (*q == '.') {
        if (!(*++q >= '0' && *q <= '9')) { ps->p = q; return fail(ps, "a digit must follow the decimal point"); }
        while (*q >= '0' && *q <= '9') q++;
    }
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!(*q >= '0' && *q <= '9')) { ps->p = q; return fail(ps, "a digit must follow the exponent"); }
        while (*q >= '0' && *q <= '9') q++;
    }
    v->type = JSON_NUMBER;
    v->number = strtod(s, NULL);
    ps->p = q;
    return 0;
}

static int parse_value(Parser *ps, JsonValue *v);

static void push_item(JsonValue *v, int *cap, char *key) {
    if (v->n == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        v->items = xrealloc(v->items, sizeof(JsonValue) * (size_t)*cap);
        if (v->type == JSON_OBJECT) v->keys = xrealloc(v->keys, sizeof(char *) * (size_t)*cap);
    }
    memset(&v->items[v->n], 0, sizeof(JsonValue));
    if (v->type == JSON_OBJECT) v->keys[v->n] = key;
    v->n++;
}

// An array or object (ps->p on its bracket); members are added as they parse, so json_free
// releases a partial one.
static int parse_container(Parser *ps, JsonValue *v) {
    int object = *ps->p == '{', cap = 0;
    char close = object ? '}' : ']';
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    if (++ps->depth > JSON_MAX_DEPTH) return fail(ps, "nested more than 64 levels deep");
    ps->p++;
    skip_ws(ps);
    if (*ps->p == close) { ps->p++; ps->depth--; return 0; }
    for (;;) {
        char *key = NULL;
        if (object) {
            if (*ps->p != '"') return fail(ps, "expected a member name in double quotes");
            const char *at = ps->p;
            if (!(key = parse_string(ps))) return -1;
            for (int i = 0; i < v->n; i++)
                if (!strcmp(v->keys[i], key)) {
                    ps->p = at;
                    fail(ps, "a member name appears twice in this object");
                    snprintf(ps->err->msg + strlen(ps->err->msg), sizeof ps->err->msg - strlen(ps->err->msg), ": '%s'", key);
                    free(key);
                    return -1;
                }
            skip_ws(ps);
            if (*ps->p != ':') { free(key); return fail(ps, "expected ':' after a member name"); }
            ps->p++;
            skip_ws(ps);
        }
        push_item(v, &cap, key);
        if (parse_value(ps, &v->items[v->n - 1])) return -1;
        skip_ws(ps);
        if (*ps->p == ',') { ps->p++; skip_ws(ps); if (*ps->p == close) return fail(ps, "a trailing comma"); continue; }
        if (*ps->p == close) { ps->p++; ps->depth--; return 0; }
        return fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

// One value at ps->p (whitespace skipped before).
static int parse_value(Parser *ps, JsonValue *v) {
    memset(v, 0, sizeof *v);
    v->line = ps->line;
    v->col = (int)(ps->p - ps->line_start) + 1;
    static const struct { const char *word; JsonType type; int b; } words[] = {
        { "null", JSON_NULL, 0 }, { "true", JSON_BOOL, 1 }, { "false", JSON_BOOL, 0 } };
    for (int i = 0; i < 3; i++)
        if (!strncmp(ps->p, words[i].word, strlen(words[i].word))) {
            v->type = words[i].type;
            v->boolean = words[i].b;
            ps->p += strlen(words[i].word);
            return 0;
        }
    if (*ps->p == '{' || *ps->p == '[') return parse_container(ps, v);
    if (*ps->p == '"') {
        v->type = JSON_STRING;
        return (v->string = parse_string(ps)) ? 0 : -1;
    }
    return parse_number(ps, v);
}

int json_parse(JsonValue *v, const char *text, const char *origin, DfError *err) {
    Parser ps = { .p = text, .line_start = text, .line = 1, .origin = origin, .err = err };
    if ((unsigned char)ps.p[0] == 0xEF && (unsigned char)ps.p[1] == 0xBB && (unsigned char)ps.p[2] == 0xBF) ps.p += 3;
    skip_ws(&ps);
    if (*ps.p == '\0') { memset(v, 0, sizeof *v); return df_err(err, "%s: empty (no JSON value)", origin); }
    int rc = parse_value(&ps, v);
    if (rc == 0) {
        skip_ws(&ps);
        if (*ps.p) rc = fail(&ps, "text after the JSON value");
    }
    if (rc) json_free(v);
    return rc;
}

int json_read(JsonValue *v, const char *path, DfError *err) {
    memset(v, 0, sizeof *v);
    char *text = df_read_text_file(path, NULL, err);
    if (!text) return -1;
    int rc = json_parse(v, text, path, err);
    free(text);
    return rc;
}

void json_free(JsonValue *v) {
    for (int i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    memset(v, 0, sizeof *v);
}

const JsonValue *json_get(const JsonValue *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

const char *json_type_name(JsonType t) {
    static const char *const names[] = { "null", "a boolean", "a number", "a string", "an array", "an object" };
    return names[t];
}
