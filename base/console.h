// console.h: a run's log. Rank 0's standard output and error are copied, line by line as
// they are written, into a log file beside the run's other records, so the log holds exactly
// what the user saw (minus a terminal's updating progress line, which base/progress writes
// past stdio). Both streams stay what they were: a terminal, a file, a Slurm log.
#ifndef DF_CONSOLE_H
#define DF_CONSOLE_H
#include "base/common.h"

// From now on, everything written to stdout and stderr is also appended to `path` (created
// if absent; a resumed run adds to its log). -1 with err when the file cannot be opened.
int console_tee(const char *path, DfError *err);
// Stops copying (flushing both streams first) and closes the log. Harmless when not teeing.
void console_tee_end(void);
#endif
