// idx.c: IDX (MNIST-family) arrays, plain or gzipped (zlib's gzread reads both).
#include "data/idx.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int idx_read(IdxArray *a, const char *path, DfError *err) {
    memset(a, 0, sizeof *a);
    gzFile f = gzopen(path, "rb");
    if (!f) return df_err(err, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
    int rc = -1;
    unsigned char head[4];
    if (gzread(f, head, 4) != 4) { df_err(err, "%s: not an IDX file (shorter than its 4-byte magic)", path); goto done; }
    if (head[0] != 0 || head[1] != 0) { df_err(err, "%s: not an IDX file (bad magic)", path); goto done; }
    if (head[2] != 0x08) { df_err(err, "%s: IDX element type 0x%02x is not supported (only unsigned bytes, 0x08)", path, head[2]); goto done; }
    if (head[3] < 1 || head[3] > 4) { df_err(err, "%s: IDX array of %d dimensions (1 to 4 supported)", path, head[3]); goto done; }
    a->ndim = head[3];
    int64_t total = 1;
    for (int i = 0; i < a->ndim; i++) {
        unsigned char b[4];
        if (gzread(f, b, 4) != 4) { df_err(err, "%s: truncated IDX header", path); goto done; }
        a->dims[i] = ((int64_t)b[0] << 24) | ((int64_t)b[1] << 16) | ((int64_t)b[2] << 8) | b[3];
        if (a->dims[i] < 1 || total > ((int64_t)1 << 31) / a->dims[i]) {
            df_err(err, "%s: IDX dimension %d = %lld is absurd", path, i, (long long)a->dims[i]);
            goto done;
        }
        total *= a->dims[i];
    }
    a->data = xmalloc((size_t)total);
    int64_t got = 0;
    while (got < total) {
        int want = (int)DF_MIN(total - got, (int64_t)1 << 30);
        int r = gzread(f, a->data + got, (unsigned)want);
        if (r <= 0) break;
        got += r;
    }
    if (got != total) { df_err(err, "%s: truncated: %lld of %lld data bytes", path, (long long)got, (long long)total); goto done; }
    rc = 0;
done:
    gzclose(f);
    if (rc) idx_free(a);
    return rc;
}

void idx_free(IdxArray *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}
