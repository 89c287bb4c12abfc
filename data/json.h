// json.h: a small strict JSON reader (RFC 8259) for the sidecar files of a BIDS dataset
// (participants.json, sessions.json: data/bids.c). The whole document becomes a tree of
// values. Strict: no comments, no trailing commas, no duplicate keys in an object, no
// control characters or \u0000 in strings, numbers as the grammar writes them, one value
// per document (a UTF-8 byte-order mark is ignored), at most 64 levels of nesting. Every
// error names the file, line and column: "participants.json:3:14: expected ',' or '}'".
#ifndef DF_JSON_H
#define DF_JSON_H
#include "base/common.h"

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct JsonValue {
    JsonType type;
    int line, col;             // where the value starts (1-based), for messages
    int boolean;               // JSON_BOOL
    double number;             // JSON_NUMBER
    char *string;              // JSON_STRING: UTF-8, \u escapes decoded
    int n;                     // JSON_ARRAY / JSON_OBJECT: members
    struct JsonValue *items;   // n values
    char **keys;               // JSON_OBJECT: n keys, in file order
} JsonValue;

int json_parse(JsonValue *v, const char *text, const char *origin, DfError *err);
int json_read(JsonValue *v, const char *path, DfError *err);
void json_free(JsonValue *v);
// The member `key` of an object; NULL when obj is not an object or has no such member.
const JsonValue *json_get(const JsonValue *obj, const char *key);
const char *json_type_name(JsonType t);  // "an object", "a string", ... for messages
#endif
