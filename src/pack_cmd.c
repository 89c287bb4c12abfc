// pack_cmd.c: `deconfound pack`: a manifest of NIfTI files into HDF5 shards (io/pack.c).
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "commands.h"
#include "comm.h"
#include "pack.h"

static const char *pack_help =
    "usage: deconfound pack --manifest SUBJECTS.csv --out DIR [--shape D,H,W] [--spacing MM]\n"
    "                       [--shard-size N] [--fit crop|resize] [--normalize none|zscore|minmax]\n"
    "                       [--reorient|--no-reorient] [--4d channels|frames]\n"
    "                       [--clip-layout THWC|CTHW] [--clip-uint8 scale|raw] [--subjects LIST]\n"
    "                       [--categorical COLS] [--continuous COLS] [--quiet]\n"
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
    "                    an id the manifest lacks is an error naming LIST and the line\n"
    "  --categorical C   comma-separated confounder columns to treat as categorical\n"
    "  --continuous C    comma-separated confounder columns to treat as continuous\n";

static int choice(const char *cmd, const char *opt, const char *v, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0) return i;
    cli_usage_error(cmd, "%s %s: unknown value", opt, v);
}

int cmd_pack(int argc, char **argv) {
    const char *cmd = "pack", *v;
    PackConfig cfg = { 0 };
    cfg.shard_size = 64;
    cfg.prep.reorient = 1;
    cfg.verbose = 1;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(pack_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--manifest", &v, cmd)) cfg.manifest = v;
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) cfg.out = v;
        else if (cli_opt(argc, argv, &i, "--shape", &v, cmd)) {
            int *s = cfg.prep.shape;
            char tail;
            if (sscanf(v, "%d,%d,%d%c", &s[0], &s[1], &s[2], &tail) != 3 || s[0] < 1 || s[1] < 1 || s[2] < 1 || s[0] > 2048 ||
                s[1] > 2048 || s[2] > 2048)
                cli_usage_error(cmd, "--shape %s: expected D,H,W with each in [1, 2048]", v);
        } else if (cli_opt(argc, argv, &i, "--spacing", &v, cmd)) {
            if (df_parse_double(v, &cfg.prep.spacing) != 0 || cfg.prep.spacing <= 0 || cfg.prep.spacing > 100)
                cli_usage_error(cmd, "--spacing %s: expected millimetres in (0, 100]", v);
        } else if (cli_opt(argc, argv, &i, "--shard-size", &v, cmd)) cfg.shard_size = (int)cli_long(cmd, "--shard-size", v, 1, 1 << 20);
        else if (cli_opt(argc, argv, &i, "--fit", &v, cmd)) cfg.prep.fit = (PackFit)choice(cmd, "--fit", v, pack_fit_names);
        else if (cli_opt(argc, argv, &i, "--normalize", &v, cmd)) cfg.prep.norm = (PackNorm)choice(cmd, "--normalize", v, pack_norm_names);
        else if (cli_opt(argc, argv, &i, "--4d", &v, cmd)) cfg.prep.four_d = (Pack4D)choice(cmd, "--4d", v, pack_4d_names);
        else if (cli_opt(argc, argv, &i, "--clip-layout", &v, cmd)) cfg.prep.clip_layout = (ClipLayout)choice(cmd, "--clip-layout", v, clip_layout_names);
        else if (cli_opt(argc, argv, &i, "--clip-uint8", &v, cmd)) {
            static const char *const u8[] = { "scale", "raw", NULL };
            cfg.prep.clip_raw = choice(cmd, "--clip-uint8", v, u8);
        } else if (cli_opt(argc, argv, &i, "--subjects", &v, cmd)) cfg.subjects = v;
        else if (cli_opt(argc, argv, &i, "--categorical", &v, cmd)) cfg.categorical = v;
        else if (cli_opt(argc, argv, &i, "--continuous", &v, cmd)) cfg.continuous = v;
        else if (cli_flag(argv, i, "--reorient")) cfg.prep.reorient = 1;
        else if (cli_flag(argv, i, "--no-reorient")) cfg.prep.reorient = 0;
        else if (cli_flag(argv, i, "--quiet")) cfg.verbose = 0;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!cfg.manifest) cli_usage_error(cmd, "missing --manifest SUBJECTS.csv");
    if (!cfg.out) cli_usage_error(cmd, "missing --out DIR");
    if (cfg.prep.fit == PACK_FIT_RESIZE && cfg.prep.shape[0] == 0) cli_usage_error(cmd, "--fit resize needs --shape D,H,W");
    DfError err;
    if (pack_run(&cfg, &err) != 0) df_die_collective(DF_EXIT_INPUT, "pack: %s", err.msg);
    return 0;
}
