// reduce.c: the one-rank reducer (identity). mpi/comm.c provides the MPI one.
#include "base/reduce.h"

Reducer reducer_local = { NULL, NULL, 1, NULL };
