// csv.h: CSV tables and subject manifests.
//
// CSV dialect (RFC 4180 plus two conveniences): comma-separated; a field may be quoted with
// "..." and then hold commas, newlines and "" (a literal quote); unquoted fields have
// surrounding spaces/tabs trimmed; lines whose first non-blank character is '#' and blank
// lines are skipped (comments); CRLF or LF line ends; a UTF-8 byte-order mark is ignored.
// The first non-comment line is the header. Every row must have as many fields as it.
//
// Manifest (docs/formats.md, "Manifest"): a CSV whose header is
//   path,label[,subject][,mask][,<confounder columns...>]
// `path` is a .nii/.nii.gz (or an HDF5 clip, see data/pack.h), relative paths being relative
// to the manifest's directory; `label` a class index (integer >= 0) or a class name (names
// are numbered in sorted order); `subject` an id (default: the file name without its
// extension) -- rows sharing a subject stay in one split; `mask` an optional foreground
// mask file of the same geometry. Every other column is a confounder, continuous or
// categorical: declared in the header as `name:continuous` / `name:categorical` (or
// `:cont` / `:cat`) or by the caller, otherwise inferred -- a column with a non-numeric
// value is categorical; a numeric column with exactly two distinct integer values (0/1,
// 1/2) is categorical (binary); any other numeric column is continuous. Categorical values
// are stored as the index of their level in sorted order (numeric order when every level
// is a number), and the level names are kept.
#ifndef DF_CSV_H
#define DF_CSV_H
#include "base/common.h"
#include "data/cohort.h"

typedef struct {
    char *origin;     // file name for messages
    int ncols;
    char **header;    // ncols names
    int nrows;
    char **cells;     // nrows * ncols strings, row-major
    int *line;        // nrows: the file line each row starts on (1-based)
} CsvTable;

int csv_parse(CsvTable *t, const char *text, const char *origin, DfError *err);
int csv_read(CsvTable *t, const char *path, DfError *err);
void csv_free(CsvTable *t);
static inline const char *csv_cell(const CsvTable *t, int row, int col) { return t->cells[(size_t)row * t->ncols + col]; }
int csv_column(const CsvTable *t, const char *name);  // index, or -1
// Column `col` as numbers into out[nrows]: an empty cell is NaN ("not available"); any other
// cell must be a finite number in [lo, hi] (pass -INFINITY, INFINITY for any), else an error
// naming the file, the line and the column: "metrics.csv:4: val_acc: 'abc' is not a number".
int csv_numbers(const CsvTable *t, int col, double lo, double hi, double *out, DfError *err);

#define MANIFEST_MAX_LEVELS 256



typedef struct {
    char *origin;
    int n;
    char **paths;        // n, resolved
    char **subjects;     // n
    char **masks;        // n, or NULL when the manifest has no mask column
    int32_t *labels;     // n
    int n_label_names;   // 0 when labels were given as integers
    char **label_names;  // class index -> name
    int k;               // confounder columns
    char *columns[META_MAX_COLS];
    MetaKind kinds[META_MAX_COLS];
    int n_levels[META_MAX_COLS];     // categorical: number of levels
    char **levels[META_MAX_COLS];    // categorical: level index -> name
    double *meta;        // (n, k)
    int *line;           // n: file line of each row, for messages
} Manifest;

// Reads and checks a manifest. categorical / continuous: comma-separated column names the
// caller declares (NULL for none); a name that is not a column is an error. Every row
// error names the file, the line and the column: "subjects.csv:7: age: 'abc' is not a
// number".
int manifest_read(Manifest *m, const char *path, const char *categorical, const char *continuous, DfError *err);
void manifest_free(Manifest *m);

// Where a cell came from, for messages ("participants.tsv", 4): a manifest gathered from
// several files (data/bids.c) names the one each value came from.
typedef struct { const char *file; int line; } CellOrigin;

// A missing value in a table of subjects (a manifest, participants.tsv, sessions.tsv): an
// empty cell, NA, N/A, n/a, or NaN in any case (nan, NAN) -- what R, pandas and BIDS write
// for one. Every reader of such tables asks this one function (docs/formats.md).
int csv_is_missing(const char *v);

// The string cells a manifest is coded from, one row per sample: manifest_read takes them
// from the CSV, data/bids.c from participants.tsv and sessions.tsv. manifest_from_cells does
// the rest for both: paths (relative ones against the folder of t->origin), subject ids
// (default: the file name), masks, labels (class indices or names), and each confounder's
// kind (declared, else inferred as above; a missing cell, csv_is_missing, is an error) and
// values or level codes. m->origin and m->line are t's.
typedef struct {
    const CsvTable *t;
    int path, label, subject, mask;    // columns of t; subject and mask -1 when absent
    int k;                             // confounders
    int col[META_MAX_COLS];            // confounder j's column of t,
    const char *name[META_MAX_COLS];   // its name in the manifest (the shard's column name),
    int declared[META_MAX_COLS];       // its kind (a MetaKind), or -1: inferred from its values
    const CellOrigin *origin;          // nrows * ncols, or NULL: every cell is t->origin:t->line[row]
} ManifestCells;
int manifest_from_cells(Manifest *m, const ManifestCells *c, DfError *err);

// Keeps the rows i with keep[i] != 0, in order (label names and levels unchanged).
void manifest_keep(Manifest *m, const uint8_t *keep);
// A subject list file: one id per line; blank lines and '#' comments skipped; surrounding
// spaces trimmed. *ids (copies) and their *lines (1-based), *n of them; the caller frees
// them. An empty list is an error naming the file.
int subject_list_read(const char *path, char ***ids, int **lines, int *n, DfError *err);
// Keeps only the rows whose subject is listed in `list_path` (subject_list_read), in
// manifest order. An id the manifest lacks is an error naming the list file, the line and
// the id: "keep.txt:3: subject 'sub-99' is not in subjects.csv". Label names and
// categorical levels stay those of the whole manifest, so codes do not depend on the
// selection.
int manifest_select_subjects(Manifest *m, const char *list_path, DfError *err);
#endif
