// plot.h: one PNG summarising training runs, drawn by gnuplot from their run directories'
// metrics.csv and dcor.csv (docs/formats.md, "Plots"): `deconfound plot` and the end of a
// training run. Rank 0 only; no MPI.
//
// The figure is a 2x2 multiplot: (a) train and validation loss per epoch; (b) train,
// validation, balanced and worst-group validation accuracy per epoch; (c) dCor^2 at scope
// `all` per epoch, one curve per (layer, column); (d) validation accuracy per confounder
// group at the last epoch that has it, one bar per run, the worst group marked. Several runs
// overlay: one colour per run, named by the directory's basename (made unique); the line
// style tells train from validation.
#ifndef DF_PLOT_H
#define DF_PLOT_H
#include "base/common.h"

// plot_runs's results besides 0 (written).
enum {
    PLOT_BAD_INPUT = -1,  // a run directory or its files are missing or malformed, or the
                          // output's folder cannot be written: err names the file and problem
    PLOT_NO_GNUPLOT = 1,  // gnuplot could not be run or failed: err says so and how to get it
                          // (apt-get install gnuplot-nox); a training run says it once, carries on
};

// Reads run_dirs[0..n-1] (each holding metrics.csv, and dcor.csv when the run had a dCor
// report) and writes out_png. gnuplot is $DECONFOUND_GNUPLOT, else `gnuplot` on PATH, started
// with posix_spawnp (no shell, no fork of this possibly large MPI process). Its script lives
// in a temporary folder beside out_png, removed afterwards; the PNG is written under a
// temporary name in out_png's folder and renamed, so on any failure nothing is left behind
// and an existing out_png is untouched. Returns 0, PLOT_BAD_INPUT or PLOT_NO_GNUPLOT.
int plot_runs(const char *const *run_dirs, int n, const char *out_png, DfError *err);
#endif
