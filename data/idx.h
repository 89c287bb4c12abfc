// idx.h: the IDX format of (Fashion-)MNIST: big-endian magic 0x00 0x00 <type> <ndim>, ndim
// big-endian uint32 dimensions, then the data in C order. Plain or gzip-compressed files.
#ifndef DF_IDX_H
#define DF_IDX_H
#include <stdint.h>
#include "base/common.h"

typedef struct {
    int ndim;
    int64_t dims[4];
    uint8_t *data;  // product(dims) bytes (type 0x08, unsigned byte: the only one MNIST uses)
} IdxArray;

// Reads an unsigned-byte IDX array (type 0x08) of 1 to 4 dimensions; checks the magic, the
// dimensions (each >= 1, at most 2^31 bytes in all) and that the file holds all the data.
int idx_read(IdxArray *a, const char *path, DfError *err);
void idx_free(IdxArray *a);
#endif
