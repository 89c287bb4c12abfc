// main.c: the `deconfound` program: MPI set-up, then one subcommand from the library.
#include <stdio.h>
#include <string.h>
#include "base/blas_core.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "base/common.h"
#include "config.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *what;
} commands[] = {
    { "train", cmd_train, "train a network from an INI experiment file (data-parallel over MPI ranks)" },
    { "predict", cmd_predict, "write each sample's logits for a shard, from a checkpoint" },
    { "synth", cmd_synth, "write a built-in synthetic data set (HDF5 shard), or NIfTI subjects from a T1 template (brain)" },
    { "pack", cmd_pack, "turn a manifest of NIfTI volumes into HDF5 shards (parallel over MPI ranks)" },
    { "info", cmd_info, "describe a NIfTI file, a shard or a checkpoint" },
    { "eval", cmd_eval, "write the features of named layers for every sample, from a checkpoint" },
    { "variants", cmd_variants, "write a test shard's background variants (original, mixed-same, mixed-rand, only-bg)" },
    { "residualize", cmd_residualize, "voxel-wise confound regression of shards' images (ScaLAPACK least squares)" },
    { "harmonize", cmd_harmonize, "ComBat site harmonisation of shards' images (learn on training shards, apply to any)" },
    { "cv", cmd_cv, "k-fold cross-validation: every fold trained in turn, then compared" },
    { "compare", cmd_compare, "runs side by side: accuracy, balanced and worst-group accuracy, dCor²; mean ± sd, paired tests" },
    { "plot", cmd_plot, "draw training runs' curves into one PNG (loss, accuracy, dCor, groups; needs gnuplot)" },
    { "export", cmd_export, "shards' images as NIfTI, each in its subject's original image space" },
    { "saliency", cmd_saliency, "saliency maps of a checkpoint, as NIfTI in each subject's own image space" },
    { "dcor", cmd_dcor, "distance correlation (biased, bias-corrected, partial, per group, p-value)" },
    { "bench", cmd_bench, "time kernels and a training step (sgemm, brnet3d)" },
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: deconfound COMMAND [ARGS...]   (run under mpirun / srun for several ranks)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\n'deconfound COMMAND --help' describes each. deconfound %s\n", PACKAGE_VERSION);
}

int main(int argc, char **argv) {
    blas_core_select(argv);  // may execute the program again, before MPI and any BLAS call
    dist_init(&argc, &argv);
    int status;
    if (argc < 2) {
        if (dist_rank() == 0) usage(stderr);
        df_die_collective(DF_EXIT_INPUT, "missing COMMAND");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        if (dist_rank() == 0) usage(stdout);
        status = 0;
    } else if (strcmp(argv[1], "--version") == 0) {
        char blas[256];
        blas_core_describe(blas, sizeof blas);
        if (dist_rank() == 0) printf("deconfound %s\n%s\n", PACKAGE_VERSION, blas);
        status = 0;
    } else {
        int i = 0;
        while (i < N_COMMANDS && strcmp(commands[i].name, argv[1]) != 0) i++;
        if (i == N_COMMANDS) df_die_collective(DF_EXIT_INPUT, "unknown command '%s' (see 'deconfound --help')", argv[1]);
        status = commands[i].run(argc - 1, argv + 1);
    }
    fflush(stdout);
    dist_finalize();
    return status;
}
