// pack.c: `deconfound pack`: a manifest of NIfTI files, or a BIDS dataset, into HDF5 shards
// (data/pack.c, data/bids.c).
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "data/pack.h"

static const char *pack_help =
    "usage: deconfound pack --manifest SUBJECTS.csv --out DIR [OPTIONS]\n"
    "       deconfound pack --bids DATASET --label COL [--confounders COLS] [--suffix T1w]\n"
    "                       [--session SES] [--drop-missing] --out DIR [OPTIONS]\n"
    "OPTIONS: [--shape D,H,W] [--spacing MM] [--shard-size N] [--fit crop|resize]\n"
    "         [--normalize none|zscore|minmax] [--reorient|--no-reorient] [--4d channels|frames]\n"
    "         [--clip-layout THWC|CTHW] [--clip-uint8 scale|raw] [--subjects LIST]\n"
    "         [--categorical COLS] [--continuous COLS] [--quiet]\n"
    "\n"
    "Reads the manifest (CSV header path,label[,subject][,mask][,confounders...]; docs/formats.md),\n"
    "loads every .nii/.nii.gz (NIfTI-1 or -2, any byte order, scl_slope/scl_inter applied) and\n"
    "every HDF5 video clip (a path FILE.h5:DATASET, or FILE.h5 holding a single dataset),\n"
    "reorients it to RAS+, resamples it to --spacing mm (trilinear), fits it to --shape by\n"
    "centred crop/zero pad (or trilinear resize with --fit resize), normalises intensities per\n"
    "channel, and writes DIR/shard-00000.h5, ... with N samples each (default 64), labels,\n"
    "confounders, subject ids and masks. Under mpirun the volumes are loaded in parallel over\n"
    "the ranks; the shards written are the same bytes as with one rank. DIR must not exist; it\n"
    "appears only when every shard is written.\n"
    "\n"
    "With --bids, the rows come from a BIDS dataset instead (docs/formats.md, \"BIDS\"): one per\n"
    "image DATASET/sub-XX[/ses-YY]/anat/sub-XX[_ses-YY][_...]_T1w.nii[.gz], the subject its\n"
    "participant_id, the label and confounders columns of participants.tsv -- or, for a\n"
    "session, of sub-XX/sub-XX_sessions.tsv when it has them (e.g. the age at that scan).\n"
    "participants.json's Units of months, weeks or days are converted to years; a column with\n"
    "Levels is categorical. Several images of one subject and session (runs) are an error.\n"
    "Participants without an image, images without a participants.tsv row and n/a values are\n"
    "all reported in one message (exit 2), or dropped and listed with --drop-missing.\n"
    "\n"
    "  --bids DATASET    a BIDS dataset's root (participants.tsv, sub-*/...) instead of --manifest\n"
    "  --label COL       the column holding the class (class indices 0, 1, ... or names)\n"
    "  --confounders C   comma-separated columns to keep as confounders (kinds as a manifest's)\n"
    "  --suffix S        the images' BIDS suffix (default T1w; T2w, FLAIR, ...)\n"
    "  --session SES     only session SES (ses-SES); default: every session's image is a row\n"
    "  --drop-missing    leave out participants without an image, images without a row and\n"
    "                    rows with n/a in the label or a confounder, listing them\n"
    "  --shape D,H,W     common sample shape (required when the volumes differ)\n"
    "  --spacing MM      isotropic voxel size to resample to (default: keep each grid)\n"
    "  --shard-size N    samples per shard (default 64)\n"
    "  --fit MODE        crop (default: centred crop / zero pad) or resize (trilinear)\n"
    "  --normalize MODE  none (default), zscore or minmax, per volume and channel (over the\n"
    "                    mask's voxels when the manifest has masks)\n"
    "  --no-reorient     keep the voxel axes as stored (default: reorient to RAS+)\n"
    "  --4d MODE         channels (default: the 4th dimension is channels) or frames (a clip:\n"
    "                    dim 4 = frames, dim 3 = colour planes)\n"
    "  --clip-layout L   HDF5 clips: THWC (default: frames, rows, columns, colour, as numpy/\n"
    "                    OpenCV/PyAV write them) or CTHW (PyTorch's video layout); 1-4 colour\n"
    "                    planes; uint8, float32 or float64; stored as (C, D = frames, H, W)\n"
    "  --clip-uint8 M    HDF5 clips of uint8: scale (default: divide by 255 into [0,1]) or raw\n"
    "  --subjects LIST   pack only the subjects listed in LIST (one id per line, # comments);\n"
    "                    an id the manifest (participants.tsv) lacks is an error naming LIST\n"
    "                    and the line\n"
    "  --categorical C   comma-separated confounder columns to treat as categorical\n"
    "  --continuous C    comma-separated confounder columns to treat as continuous\n"
    "  --quiet           no progress (on a terminal an updating line, in a file a line every\n"
    "                    DECONFOUND_PROGRESS_EVERY seconds, default 30); the summary stays\n";

// The options that are manifest settings (data/pack.h, ManifestSettings) become [data] keys,
// read by the parser training from a manifest uses: one set of names, defaults and checks.
static const char *const setting_options[] = { "--shape", "--spacing", "--fit", "--normalize", "--4d", "--clip-layout",
                                                "--clip-uint8", "--subjects", "--categorical", "--continuous", NULL };
// A BIDS dataset's options and their [data] keys (bids_query_from_ini).
static const char *const bids_options[][2] = { { "--suffix", "--bids-suffix" }, { "--session", "--bids-session" },
                                               { "--label", "--label" }, { "--confounders", "--confounders" } };

static void add_setting(Ini *ini, const char *cmd, const char *opt, const char *value) {
    char set[4096];
    int n = snprintf(set, sizeof set, "data.%s=%s", opt + 2, value);
    if (n < 0 || (size_t)n >= sizeof set) cli_usage_error(cmd, "%s: value too long", opt);
    for (char *c = set + 5; *c != '='; c++)
        if (*c == '-') *c = '_';
    DfError err;
    if (ini_apply_set(ini, set, &err)) cli_usage_error(cmd, "%s", err.msg);
}

int cmd_pack(int argc, char **argv) {
    const char *cmd = "pack", *v;
    PackConfig cfg = { 0 };
    cfg.shard_size = 64;
    cfg.verbose = 1;
    int quiet = 0;
    const char *bids = NULL, *bids_opt = NULL;  // --bids DIR; a BIDS option given
    Ini ini;
    DfError err;
    if (ini_parse_string(&ini, "[data]\n", "pack", &err)) df_die(DF_EXIT_FAIL, "%s", err.msg);
    ini.cli_options = 1;
    for (int i = 1; i < argc; i++) {
        int setting = 0;
        for (int k = 0; setting_options[k] && !setting; k++)
            if (cli_opt(argc, argv, &i, setting_options[k], &v, cmd)) { add_setting(&ini, cmd, setting_options[k], v); setting = 1; }
        for (int k = 0; k < 4 && !setting; k++)
            if (cli_opt(argc, argv, &i, bids_options[k][0], &v, cmd)) {
                add_setting(&ini, cmd, bids_options[k][1], v);
                setting = 1;
                bids_opt = bids_options[k][0];
            }
        if (setting) continue;
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(pack_help, stdout); ini_free(&ini); return 0; }
        else if (cli_opt(argc, argv, &i, "--manifest", &v, cmd)) cfg.manifest = v;
        else if (cli_opt(argc, argv, &i, "--bids", &v, cmd)) bids = v;
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) cfg.out = v;
        else if (cli_opt(argc, argv, &i, "--shard-size", &v, cmd)) cfg.shard_size = (int)cli_long(cmd, "--shard-size", v, 1, 1 << 20);
        else if (cli_flag(argv, i, "--reorient")) add_setting(&ini, cmd, "--reorient", "true");
        else if (cli_flag(argv, i, "--no-reorient")) add_setting(&ini, cmd, "--reorient", "false");
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else if (cli_flag(argv, i, "--drop-missing")) { add_setting(&ini, cmd, "--drop-missing", "true"); bids_opt = argv[i]; }
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (cfg.manifest && bids) cli_usage_error(cmd, "--manifest and --bids: give one");
    if (!cfg.manifest && !bids) cli_usage_error(cmd, "missing --manifest SUBJECTS.csv (or --bids DATASET)");
    if (bids_opt && !bids) cli_usage_error(cmd, "%s goes with --bids DATASET", bids_opt);
    if (bids && !ini_entry(ini_section(&ini, "data"), "label")) cli_usage_error(cmd, "--bids needs --label COLUMN (the class)");
    if (!cfg.out) cli_usage_error(cmd, "missing --out DIR");
    progress_enable(dist_rank() == 0 && !quiet);
    ManifestSettings ms;
    BidsQuery query;
    IniSection *data = ini_section(&ini, "data");
    if (manifest_settings_from_ini(&ms, &ini, data, &err) || (bids && bids_query_from_ini(&query, bids, &ms, &ini, data, &err)) ||
        ini_check_unused(&ini, &err))
        df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (bids) cfg.bids = &query;
    cfg.prep = ms.prep;
    cfg.categorical = ms.categorical;
    cfg.continuous = ms.continuous;
    cfg.subjects = ms.subjects;
    int rc = pack_run(&cfg, &err);
    ini_free(&ini);  // after pack_run: cfg's strings point into it
    if (rc != 0) df_die_collective(DF_EXIT_INPUT, "pack: %s", err.msg);
    return 0;
}
