// h5mpi.h: HDF5 property lists for parallel HDF5's MPI-IO driver. They live in mpi/ because
// setting them up names MPI objects (the communicator, MPI_Info); data/loader.c gets plain
// HDF5 ids back. Used by [data] read = mpiio (docs/formats.md, "Loader").
#ifndef DF_H5MPI_H
#define DF_H5MPI_H
#include <hdf5.h>
#include "base/common.h"

// A file-access property list selecting the MPI-IO driver over MPI_COMM_WORLD
// (H5Pset_fapl_mpio, no hints). A file opened with it must be opened -- and closed -- by
// every rank in the same order (H5Fopen/H5Fclose are collective). Needs MPI initialised
// (dist_init). Returns the list (caller H5Pclose-s it) or -1 with err set.
hid_t dist_h5_fapl_mpio(DfError *err);
// A dataset-transfer property list for independent MPI-IO transfers (H5FD_MPIO_INDEPENDENT):
// each rank reads on its own, so ranks may read different numbers of samples (or none).
// Returns the list (caller H5Pclose-s it) or -1 with err set.
hid_t dist_h5_dxpl_independent(DfError *err);
#endif
