// fuzz_shard.c: the shard reader (data/shard.c) on arbitrary bytes as an HDF5 file:
// shard_layout (opens the shard, reads and checks its header -- format, shapes, columns,
// kinds, levels, labels, subjects, geometry, masks -- and locates each sample's bytes), then,
// for a shard that passes and is small, the whole shard and one sample's images and mask.
// Inputs are read with HDF5's default (serial) driver, as `deconfound` does outside
// [data] read = mpiio; MPI is not needed.
#include "tests/fuzz/fuzz_util.h"
#include "data/shard.h"
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fuzz_dir(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("in.h5", data, size);
    DfError err;
    ShardLayout l;
    int rc = shard_layout(path, &l, &err);
    if (rc == 0) shard_layout_free(&l);
    // Reading the samples goes through HDF5 itself, which trusts the file's chunk index; only
    // a layout shard_layout verified (rc 0: every chunk where and as large as it should be) is
    // read further, so the run tests this program's checks rather than HDF5's (docs/reliability.md).
    Cohort c;
    if (rc == 0 && shard_read_header(path, &c, &err) == 0) {
        FUZZ_CHECK(c.n >= 1 && c.k >= 0 && c.k <= META_MAX_COLS && c.images == NULL);
        size_t per = shape_numel(c.shape);
        // Small shards only: a header may describe terabytes of (unwritten) samples.
        int small = (size_t)c.n * per <= ((size_t)1 << 22) && per <= ((size_t)1 << 22) / (size_t)c.n;
        if (small) {
            float *img = xmalloc(per * sizeof(float));
            shard_read_images(path, 0, 1, img, &err);
            free(img);
            if (c.has_masks) {
                uint8_t *mk = xmalloc(shape_spatial(c.shape));
                shard_read_masks(path, 0, 1, mk, &err);
                free(mk);
            }
        }
        cohort_free(&c);
        if (small && shard_read(path, &c, &err) == 0) cohort_free(&c);
    }
    free(path);
    return 0;
}
