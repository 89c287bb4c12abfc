// infer.h: what `predict`, `eval` and a resumed `train` share when they apply a checkpoint
// to data: the metadata schema the network is built with.
#ifndef DF_INFER_H
#define DF_INFER_H
#include "nn/metadata.h"
#include "data/shard.h"

// The schema to build the checkpoint's network with for data c (from `origin`): the one the
// checkpoint stores, with c recoded to it by level and class name (io/cohort.h) -- a level
// or class the model never saw is an error naming origin, the column and the level; or, for
// a checkpoint that stores none (written before schemas were stored), c's own.
int infer_schema(MetaSchema *schema, Cohort *c, const char *checkpoint, const char *origin, DfError *err);
#endif
