// predictions.h: the output of `deconfound predict`: an HDF5 file with
//   /logits  float32 [N, K]   network outputs in eval mode, in input order
//   /labels  int32   [N]      the labels of the input shard (for convenience)
// root attributes: format = "deconfound-predictions", version = 1, checkpoint (path).
// Written to a temporary name and renamed.
#ifndef DF_PREDICTIONS_H
#define DF_PREDICTIONS_H
#include "base/common.h"

int predictions_write(const char *path, const float *logits, int n, int k, const int32_t *labels,
                      const char *checkpoint, DfError *err);
#endif
