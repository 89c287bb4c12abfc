// apply.h: the options of the commands that apply a checkpoint to data (`predict`, `eval`):
//   CONFIG.ini --checkpoint CKPT (--data SHARDS | --split train|val|test) --out OUT [--batch N]
//   [--threads N] [--set s.k=v ...]
// and, for eval, --features LAYER[,LAYER...] [--accuracy-by COLUMN] [--quiet]. A usage error exits 2
// with one message.
#ifndef DF_APPLY_H
#define DF_APPLY_H
#include "data/dataset.h"

typedef struct {
    const char *config, *checkpoint, *data, *out, *features;
    const char *accuracy_by;  // eval: --accuracy-by COLUMN, or NULL
    int quiet;                // eval: --quiet, no progress lines
    int split;                // --split: SPLIT_TRAIN/VAL/TEST of CONFIG's [data]; SPLIT_ALL with --data
    const char **sets;   // --set values, in order (free with apply_args_free)
    int n_sets;
    int batch;           // samples per rank per forward pass (default 32)
    int threads;         // OpenBLAS threads per rank (default 1: the results are then the
                         // same bits at any rank count; use more ranks for more cores)
} ApplyArgs;

// Parses argv (argv[0] is the command). Returns 1 when --help was given (help printed on
// rank 0), else 0. `features`: whether --features is taken (and required).
int apply_args_parse(ApplyArgs *a, int argc, char **argv, const char *cmd, const char *help, int features);
void apply_args_free(ApplyArgs *a);
// Collective: ends the job (exit 2, one message) when --out is one of the inputs -- the
// checkpoint, CONFIG.ini or a shard of ds -- however it is spelt (df_same_file).
void apply_check_out(const ApplyArgs *a, const Dataset *ds, const char *cmd);
#endif
