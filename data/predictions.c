// predictions.c: writes `deconfound predict` output (see predictions.h).
#include "data/predictions.h"
#include "data/h5util.h"
#include <stdlib.h>

int predictions_write(const char *path, const float *logits, int n, int k, const int32_t *labels,
                      const char *checkpoint, DfError *err) {
    char *tmp;
    hid_t f = h5_create_atomic(path, &tmp, err);
    if (f < 0) return -1;
    hsize_t dl[2] = { (hsize_t)n, (hsize_t)k }, dn[1] = { (hsize_t)n };
    int rc = h5_write_f32(f, path, "logits", logits, 2, dl, err);
    if (!rc) rc = h5_write_i32(f, path, "labels", labels, 1, dn, err);
    if (!rc) rc = h5_attr_write_string(f, path, "format", "deconfound-predictions", err);
    if (!rc) rc = h5_attr_write_i64(f, path, "version", 1, err);
    if (!rc) rc = h5_attr_write_string(f, path, "checkpoint", checkpoint, err);
    rc = h5_finish_atomic(f, tmp, path, rc == 0, err);
    free(tmp);
    return rc;
}
