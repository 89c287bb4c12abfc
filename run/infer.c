// infer.c: applying a checkpoint to data (see infer.h).
#include "run/infer.h"
#include "data/checkpoint.h"
#include "data/cohort.h"
#include <stdio.h>
#include <stdlib.h>

int infer_schema(MetaSchema *schema, Cohort *c, const char *checkpoint, const char *origin, DfError *err) {
    MetaSchema *model = xmalloc(sizeof *model);  // large (level names): not on the stack
    int found = checkpoint_read_schema(checkpoint, model, err), rc;
    if (found < 0) rc = -1;
    else if (found == 0 && (rc = meta_schema_build(schema, c, err)) != 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        df_err(err, "%s: %s", origin, msg);
    }
    else rc = cohort_map_to_schema(c, model, schema, origin, err);
    free(model);
    return rc;
}
