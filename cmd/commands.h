// commands.h: the subcommands of the `deconfound` program. Each takes the arguments after
// the subcommand name (argv[0] is the subcommand) and returns the exit status; usage and
// input errors end the job with status 2 and one message.
#ifndef DF_COMMANDS_H
#define DF_COMMANDS_H
int cmd_train(int argc, char **argv);    // cmd/train.c
int cmd_predict(int argc, char **argv);  // cmd/predict.c
int cmd_bench(int argc, char **argv);    // cmd/bench.c
int cmd_synth(int argc, char **argv);    // cmd/synth.c
int cmd_synth_brain(int argc, char **argv);  // cmd/synth_brain.c (synth brain: argv[1] is "brain")
int cmd_info(int argc, char **argv);     // cmd/info.c
int cmd_pack(int argc, char **argv);     // cmd/pack.c
int cmd_dcor(int argc, char **argv);     // cmd/dcor.c
int cmd_eval(int argc, char **argv);     // cmd/eval.c
int cmd_variants(int argc, char **argv); // cmd/variants.c
int cmd_residualize(int argc, char **argv); // cmd/residualize.c
int cmd_harmonize(int argc, char **argv);  // cmd/harmonize.c
int cmd_plot(int argc, char **argv);     // cmd/plot.c
int cmd_compare(int argc, char **argv);    // cmd/compare.c
int cmd_cv(int argc, char **argv);         // cmd/cv.c
int cmd_saliency(int argc, char **argv);   // cmd/saliency.c
int cmd_export(int argc, char **argv);     // cmd/export.c
#endif
