// progress.h: progress of long work (train, pack, eval, dcor, residualize, harmonize) for the
// person waiting: one updating line on a terminal, plain lines in a file or a Slurm log.
//
// On a terminal: "<what is done> 42% 123.4 samples/s ETA 0:01:02", redrawn in place (carriage
// return, the text, erase to the end of the line) at most 5 times a second, written with
// write(2) on the terminal's descriptor -- never through stdio, so that whatever copies
// stdout into a log (rank 0's tee into log.txt) does not get the redraws. Anything else
// printed must first remove the line: progress_clear() (df_die does, and progress_end).
//
// Elsewhere (a file, a pipe, a Slurm log): "<what is done> 123.4 samples/s ETA 0:01:02" on
// stdout every DECONFOUND_PROGRESS_EVERY seconds (default 30; 0: at every update), lines a
// caller forces (training's [train] log_every), and "<what>: N/N units in 0:01:02 (rate)" at
// the end. These go through stdio, so the log gets them.
//
// Which one. The terminal line needs the place the user watches to be a terminal:
// - Under Open MPI's mpirun (OMPI_COMM_WORLD_SIZE set, stdout a terminal, stderr not): every
//   rank's stdout is a pseudo-terminal Open MPI makes (so that stdio buffers by lines) even
//   when mpirun's own output goes to a file, and stderr is a pipe. Neither says where the
//   output ends up; mpirun's own stdout does: the terminal line is drawn when the launcher's
//   (the parent process's) fd 1 is a terminal (/proc/PPID/fd/1 -> /dev/pts/N or /dev/ttyX).
//   It goes on fd 1, the results' own channel: mpirun forwards stdout and stderr separately
//   and may reorder them, so a clear on stderr could land after the next result line. (An
//   error message, on stderr, may still overtake the clear and follow the line's text.)
// - Otherwise (one process run directly, a singleton MPI run, srun, other launchers): when
//   stderr is a terminal, on fd 2. stderr rather than stdout because launchers give ranks a
//   pseudo-terminal stdout (as above), while a terminal stderr is one the user sees; and
//   `deconfound ... > results.txt` then keeps its progress on the screen.
// - Under srun both are pipes or files: plain lines, even when srun itself runs on a
//   terminal (its tasks cannot see that); `srun --pty` gives them one, and the line.
// A rank 0 on another node than mpirun (its parent an orted, whose stdout is no terminal)
// prints plain lines; they still reach mpirun's output.
// Checked by tests/progress.sh (directly and under mpirun, in a pseudo-terminal and into a
// file), and by hand under a one-node Slurm: srun into a file or from a terminal, and srun --pty.
//
// Only one process reports: progress_enable(rank == 0 && !quiet) in cmd/ (base/ knows no
// ranks). One piece of work at a time: progress_begin replaces the one before.
#ifndef DF_PROGRESS_H
#define DF_PROGRESS_H
#include <stddef.h>

// Switches reporting on (this process reports) or off, and decides where it goes (above).
// DECONFOUND_PROGRESS_EVERY=SECONDS sets the plain lines' interval (a bad value: a warning,
// and the default).
void progress_enable(int on);
// 1: the updating terminal line; 0: plain lines (or nothing, when reporting is off).
int progress_on_terminal(void);

// Starts a piece of work: `total` items of `unit` ("samples", "volumes"), `done` of them
// already (a resumed run), for the lines "<what>: done/total unit ...". Copies the strings.
void progress_begin(const char *what, const char *unit, double done, double total);
// `done` items so far; draws or prints when due. Cheap when not due (a clock read).
void progress_update(double done);
// For callers with their own text: records `done` and returns 1 when a line is due now --
// `force`: also in a file when the interval has not passed (training's log_every) -- then
// the caller formats its text and calls progress_show.
int progress_at(double done, int force);
// Draws (terminal) or prints (file) the line now; text NULL: "<what>: done/total unit".
void progress_show(const char *text);
// Ends the work: clears the terminal line; in a file, prints the line at the end.
void progress_end(void);
// Removes the terminal line, if one is shown, so that other output starts on a clean line.
// Safe to call at any time, on any rank.
void progress_clear(void);

// The formatting, pure (tests/test_progress.c).
// Seconds as "h:mm:ss" (hours unbounded); "-:--:--" when negative or not finite.
void progress_format_duration(double seconds, char *buf, size_t n);
// A count or a rate: "%.1f" below 10 000 (rates) or whole (counts, `integer`: rounded down),
// else with k, M, G, T: "12.3k", "4.6M".
void progress_format_number(double v, int integer, char *buf, size_t n);
// A running line: "<text>[ <percent>%] <rate> <unit>/s ETA <eta>" (percent < 0: left out;
// rate or eta < 0: not known yet, shown as "?" and "-:--:--").
void progress_format_line(char *buf, size_t n, const char *text, double percent, double rate, const char *unit, double eta);
// The line at the end: "<what>: <done>/<total> <unit> in <elapsed> (<rate> <unit>/s)".
void progress_format_end(char *buf, size_t n, const char *what, double done, double total, const char *unit, double elapsed,
                         double rate);
#endif
