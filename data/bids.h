// bids.h: a BIDS dataset as a manifest (data/csv.h) -- the same Manifest a CSV gives, so
// `deconfound pack --bids` packs it as `pack --manifest` does (docs/formats.md, "BIDS").
//
// Read from DIR:
//   participants.tsv   tab-separated, first column participant_id (sub-XX); n/a = missing
//   participants.json  optional: per column "Units" (months, weeks and days are converted to
//                      years) and "Levels" (the column is categorical; every value must be
//                      one of its keys, which stay the level names)
//   sub-XX[/ses-YY]/anat/sub-XX[_ses-YY][_<entity>-<label>...]_<suffix>.nii[.gz]
//   sub-XX/sub-XX_sessions.tsv  optional: first column session_id (ses-YY); a column it
//                      shares with the label or confounders gives that session's value
//                      (e.g. the age at that scan), n/a there being missing; a session it
//                      does not list takes participants.tsv's values. Its sidecar is
//                      sub-XX/sub-XX_sessions.json, else DIR/sessions.json.
// One row per image: the subject is participant_id (a participant's sessions stay in one
// split), the label and confounders the named columns. Several images of one subject and
// session (runs, acquisitions) are an error listing them: pack takes one per session.
// Missing data -- a participant without an image, an image without a participants.tsv row,
// n/a (or an empty cell, or NA) in the label or a confounder -- is collected over the whole
// dataset and reported in one message, or with drop_missing those rows are left out and
// listed in the report.
#ifndef DF_BIDS_H
#define DF_BIDS_H
#include "base/common.h"
#include "data/csv.h"

typedef struct {
    const char *dir;
    const char *suffix;       // the images' suffix (NULL: T1w)
    const char *session;      // "ses-2" or "2": that session only; NULL: every session
    const char *label;        // the class column (required)
    const char *confounders;  // comma-separated columns, or NULL for none
    const char *categorical, *continuous;  // confounders whose kind is declared (comma lists) or NULL
    const char *subjects;     // a subject list file (data/csv.h): only those participants, or NULL
    int drop_missing;
} BidsQuery;

// What the reader has to tell: one line per kind of dropped row (drop_missing), one per
// column converted to years ("age: months in participants.json, converted to years").
typedef struct {
    int n_dropped, n_units;
    char **dropped, **units;
} BidsReport;

// Every rank may call it: it only reads. m->origin is DIR/participants.tsv and m->line each
// row's line there. Errors name the file (and line, and column) or DIR.
int bids_read(Manifest *m, const BidsQuery *q, BidsReport *r, DfError *err);
void bids_report_free(BidsReport *r);
// Where the samples came from, for the shard's `source` attribute:
// "bids:DIR suffix=T1w session=all label=group confounders=age,sex".
char *bids_describe(const BidsQuery *q);

// A BIDS TSV file: tab-separated, the first line the header; a UTF-8 byte-order mark, CR
// line ends and blank lines ignored; spaces around a value trimmed; a value in double
// quotes may hold tabs ("" is a quote). Every row must have as many fields as the header.
// No comments: '#' is a character like any other.
int bids_tsv_parse(CsvTable *t, const char *text, const char *origin, DfError *err);
#endif
