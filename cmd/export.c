// export.c: `deconfound export SHARDS --out DIR`: shards' samples as NIfTI in each subject's
// own image space (data/export.h), and the folder writer residualize/harmonize --nifti share.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/export.h"
#include "data/export.h"
#include "data/shard.h"
#include "mpi/comm.h"

static const char *export_help =
    "usage: deconfound export SHARDS --out DIR [--subject ID ...] [--quiet]\n"
    "\n"
    "Writes every sample of the shards (files or folders of them, comma-separated; or only the\n"
    "named subjects' samples) as DIR/<subject>.nii.gz (_2, _3 ... for a subject's further\n"
    "samples), in the space of the NIfTI file `pack` made it from: that file's dimensions,\n"
    "affine and orientation, recorded in the shard. So images rewritten by residualize or\n"
    "harmonize -- or packed ones -- open over the subject's original scan in any viewer.\n"
    "Samples of shards without that record (synthetic data) keep the shard's grid, unit voxels.\n"
    "A sample of several channels is a 4D file. Samples are split over the MPI ranks; DIR is\n"
    "written whole or not at all: every shard is read before DIR is made.\n";

void output_folder_begin(const char *out, const char *cmd, char tmp[1200]) {
    char msg[1400] = "";
    int rc = 0;
    if (dist_rank() == 0) {
        struct stat st;
        snprintf(tmp, 1200, "%s.tmp-%ld", out, (long)getpid());
        if (stat(out, &st) == 0) rc = 1, snprintf(msg, sizeof msg, "%s: %s: already exists", cmd, out);
        else if (mkdir(tmp, 0755) != 0) rc = 1, snprintf(msg, sizeof msg, "%s: %s: cannot create: %s", cmd, out, strerror(errno));
    }
    dist_bcast(&rc, sizeof rc, 0);
    if (rc) df_die_collective(DF_EXIT_INPUT, "%s", msg);
    dist_bcast(tmp, 1200, 0);
}

void output_folder_commit(const char *tmp, const char *out, const char *cmd) {
    dist_barrier();  // every rank's files are complete
    int rc = dist_rank() == 0 && rename(tmp, out) != 0;
    dist_bcast(&rc, sizeof rc, 0);
    if (rc) df_die_collective(DF_EXIT_FAIL, "%s: cannot rename %s to %s", cmd, tmp, out);
}

void output_folder_abandon(const char *tmp) {
    if (dist_rank() == 0) df_remove_tree(tmp);
}

long export_to_folder(const char *out, const char *suffix, char *const *paths, int n_paths, const char *const *subjects,
                      int n_subjects, const char *cmd) {
    DfError err = { "" };
    // every shard read before the folder exists: a file that is not a shard, or a sample with
    // no usable geometry, stops the command with nothing written
    if (dist_agree(dist_rank() == 0 ? export_check(paths, n_paths, &err) : 0, &err))
        df_die_collective(DF_EXIT_INPUT, "%s: %s", cmd, err.msg);
    char tmp[1200];
    output_folder_begin(out, cmd, tmp);
    long written = 0;
    int rc = export_shards(tmp, suffix, paths, n_paths, subjects, n_subjects, dist_rank(), dist_size(), &written, &err);
    if (dist_agree(rc, &err)) {
        // a sample that cannot be read or a file that cannot be written (a full disk): the
        // folder is removed, as every writer here does, rather than kept under a name the user
        // never gave -- a half folder on a full disk would keep the disk full. The message names
        // the file as it would have been, DIR/<name>, not the temporary folder.
        df_err_rename(&err, tmp, out);
        output_folder_abandon(tmp);
        df_die_collective(DF_EXIT_INPUT, "%s: %s", cmd, err.msg);
    }
    double total = (double)written;
    dist_allreduce_sum_f64(&total, 1);
    output_folder_commit(tmp, out, cmd);
    return (long)total;
}

void export_nifti_check(const char *dir, const char *cmd) {
    char path[1100];
    struct stat st;
    snprintf(path, sizeof path, "%s/nifti", dir);
    if (stat(path, &st) == 0) df_die_collective(DF_EXIT_INPUT, "%s: --nifti: %s already exists", cmd, path);
}

void export_nifti_after(const char *dir, const char *cmd) {
    char **paths = NULL, out[1100];
    int n = 0;
    DfError err;
    if (shard_list_source(dir, &paths, &n, &err)) df_die_collective(DF_EXIT_FAIL, "%s: --nifti: %s", cmd, err.msg);
    snprintf(out, sizeof out, "%s/nifti", dir);
    long written = export_to_folder(out, "", paths, n, NULL, 0, cmd);
    if (dist_rank() == 0) printf("%s: wrote %ld NIfTI files into %s (each in its subject's original image space)\n", cmd, written, out);
    for (int f = 0; f < n; f++) free(paths[f]);
    free(paths);
}

int cmd_export(int argc, char **argv) {
    const char *cmd = "export", *v, *data = NULL, *out = NULL;
    const char **subjects = xcalloc((size_t)argc, sizeof(char *));
    int n_subjects = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(export_help, stdout); free(subjects); return 0; }
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) out = v;
        else if (cli_opt(argc, argv, &i, "--subject", &v, cmd)) subjects[n_subjects++] = v;
        else if (cli_flag(argv, i, "--quiet")) continue;  // nothing long enough to need progress
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!data) data = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!data) cli_usage_error(cmd, "missing SHARDS");
    if (!out) cli_usage_error(cmd, "missing --out DIR");
    char **paths = NULL;
    int n = 0;
    DfError err;
    if (shard_list_source(data, &paths, &n, &err)) df_die_collective(DF_EXIT_INPUT, "export: %s", err.msg);
    for (int s = 0; s < n_subjects; s++) {  // every subject asked for must exist
        int found = 0;
        for (int f = 0; f < n && !found; f++) {
            Cohort h;
            if (shard_read_header(paths[f], &h, &err)) df_die_collective(DF_EXIT_INPUT, "export: %s", err.msg);
            for (int i = 0; i < h.n && !found && h.subjects; i++) found = strcmp(h.subjects[i], subjects[s]) == 0;
            cohort_free(&h);
        }
        if (!found) df_die_collective(DF_EXIT_INPUT, "export: --subject %s: %s has no sample of that subject", subjects[s], data);
    }
    long written = export_to_folder(out, "", paths, n, subjects, n_subjects, cmd);
    if (dist_rank() == 0) printf("export: wrote %ld NIfTI file%s into %s\n", written, written == 1 ? "" : "s", out);
    for (int f = 0; f < n; f++) free(paths[f]);
    free(paths);
    free(subjects);
    return 0;
}
