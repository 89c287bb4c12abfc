// export.h (cmd): writing shards' samples out as NIfTI into a new folder, whole or not at all
// -- what `deconfound export` does, and residualize/harmonize with --nifti. Collective.
#ifndef DF_CMD_EXPORT_H
#define DF_CMD_EXPORT_H

// A folder written whole or not at all: rank 0 makes out's temporary twin (out must not
// exist: status 2 otherwise) and every rank gets its name; after every rank's files are
// complete, rank 0 renames it into place. Collective.
void output_folder_begin(const char *out, const char *cmd, char tmp[1200]);
void output_folder_commit(const char *tmp, const char *out, const char *cmd);
// A failure every rank knows of, once no rank writes any more: rank 0 removes the twin.
void output_folder_abandon(const char *tmp);

// Every rank writes its share into out's temporary twin; rank 0 renames it into place. out
// must not exist. Returns the number of files written; a failure ends the job with one
// message (status 2 for bad input such as an existing out, 1 for a write failure).
long export_to_folder(const char *out, const char *suffix, char *const *paths, int n_paths, const char *const *subjects,
                      int n_subjects, const char *cmd);

// residualize/harmonize --nifti: before the work, that DIR/nifti does not exist yet (status 2
// otherwise); after it, the rewritten shards in DIR exported into DIR/nifti.
void export_nifti_check(const char *dir, const char *cmd);
void export_nifti_after(const char *dir, const char *cmd);
#endif
