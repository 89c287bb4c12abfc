// fuzz_nifti.c: the NIfTI reader (data/nifti.c, nii_read) on arbitrary bytes as a file:
// named .nii.gz when they start with gzip's magic bytes (the reader then decompresses), .nii
// otherwise. Header only, then header and voxel data.
#include "tests/fuzz/fuzz_util.h"
#include "data/nifti.h"
#include <math.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fuzz_dir(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    char *path = fuzz_write(gz ? "in.nii.gz" : "in.nii", data, size);
    DfError err;
    NiiVolume v;
    if (nii_read(path, &v, 0, &err) == 0) {
        FUZZ_CHECK(v.data == NULL && v.nvox >= 1 && v.nvox <= NII_MAX_VOXELS && v.ndim >= 1 && v.ndim <= 7);
        nii_free(&v);
        if (nii_read(path, &v, 1, &err) == 0) {
            FUZZ_CHECK(v.data != NULL);
            double sum = 0;  // touches every voxel (ASan sees a short buffer)
            for (int64_t i = 0; i < v.nvox; i++) sum += v.data[i];
            (void)sum;
            nii_free(&v);
        }
    }
    free(path);
    return 0;
}
