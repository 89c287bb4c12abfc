// h5mpi.c: HDF5 property lists for the MPI-IO driver (h5mpi.h).
#include "mpi/h5mpi.h"
#include <mpi.h>

hid_t dist_h5_fapl_mpio(DfError *err) {
    int up = 0, down = 0;
    if (MPI_Initialized(&up) != MPI_SUCCESS || MPI_Finalized(&down) != MPI_SUCCESS || !up || down) {
        df_err(err, "[data] read = mpiio: MPI is not running in this program (use read = pread)");
        return -1;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) { df_err(err, "[data] read = mpiio: cannot create an HDF5 file-access property list"); return -1; }
    if (H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL) < 0) {
        H5Pclose(fapl);
        df_err(err, "[data] read = mpiio: cannot select HDF5's MPI-IO driver (H5Pset_fapl_mpio)");
        return -1;
    }
    return fapl;
}

hid_t dist_h5_dxpl_independent(DfError *err) {
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl < 0) { df_err(err, "[data] read = mpiio: cannot create an HDF5 transfer property list"); return -1; }
    if (H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_INDEPENDENT) < 0) {
        H5Pclose(dxpl);
        df_err(err, "[data] read = mpiio: cannot select independent MPI-IO transfers (H5Pset_dxpl_mpio)");
        return -1;
    }
    return dxpl;
}
