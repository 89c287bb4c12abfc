// outputs.h: what the voxel-wise baselines share around the computation: agreeing on a
// failure that may have happened on one rank only, and writing every set of rewritten
// shards into one folder whole or not at all (data/voxels.h's protocol, with the barriers).
#ifndef DF_PREP_OUTPUTS_H
#define DF_PREP_OUTPUTS_H
#include "data/voxels.h"

// Collective. Outputs for n sets of shards into dir (base names unique across the sets),
// created by rank 0 with `what` recorded in each (`derived_by`), then opened by every rank.
// Temporary names carry `cmd` and rank 0's process id.
int prep_outputs_open(ShardOut *outs, const ShardRows *const *rows, int n, const char *dir, const char *cmd, const char *what,
                      DfError *err);
// Collective: every rank flushes and closes, then rank 0 renames them all into place.
int prep_outputs_commit(ShardOut *outs, int n, DfError *err);
// Rank 0 removes the temporary files of sets that got that far; frees every set's names.
void prep_outputs_free(ShardOut *outs, int n, int failed);
#endif
