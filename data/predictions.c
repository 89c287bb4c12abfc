// predictions.c: writes `deconfound predict` output (see predictions.h).
#include "data/predictions.h"
#include "data/h5util.h"
#include <stdlib.h>
#include <unistd.h>

int predictions_write(const char *path, const float *logits, int n, int k, const int32_t *labels,
                      const char *checkpoint, DfError *err) {
    h5_quiet();
    char *tmp = df_temp_name(path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        df_err(err, "%s: cannot create (does the directory exist and is it writable?)", path);
        free(tmp);
        return -1;
    }
    hsize_t dl[2] = { (hsize_t)n, (hsize_t)k }, dn[1] = { (hsize_t)n };
    int rc = h5_write_f32(f, path, "logits", logits, 2, dl, err);
    if (!rc) rc = h5_write_i32(f, path, "labels", labels, 1, dn, err);
    if (!rc) rc = h5_attr_write_string(f, path, "format", "deconfound-predictions", err);
    if (!rc) rc = h5_attr_write_i64(f, path, "version", 1, err);
    if (!rc) rc = h5_attr_write_string(f, path, "checkpoint", checkpoint, err);
    if (H5Fclose(f) < 0 && !rc) rc = df_err(err, "%s: closing failed", path);
    if (!rc && rename(tmp, path) != 0) rc = df_err(err, "%s: cannot rename temporary file into place", path);
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
