// outputs.c: whole-or-nothing outputs of the voxel-wise baselines.
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "mpi/comm.h"
#include "prep/outputs.h"

int prep_outputs_open(ShardOut *outs, const ShardRows *const *rows, int n, const char *dir, const char *cmd, const char *what,
                      DfError *err) {
    double pid = dist_rank() == 0 ? (double)getpid() : 0.0;
    dist_allreduce_sum_f64(&pid, 1);  // rank 0's: one name for the job's temporary files
    char tag[64];
    snprintf(tag, sizeof tag, "%s-%.0f", cmd, pid);
    int rc = 0;
    for (int s = 0; s < n && !rc; s++) rc = shard_out_init(&outs[s], rows[s], dir, tag, err);
    for (int s = 0; s < n && !rc; s++)
        for (int t = 0; t < s && !rc; t++)
            for (int a = 0; a < outs[s].n_shards && !rc; a++)
                for (int b = 0; b < outs[t].n_shards && !rc; b++)
                    if (!strcmp(outs[s].final[a], outs[t].final[b]))
                        rc = df_err(err, "%s and %s: both would be written as %s", rows[t]->paths[b], rows[s]->paths[a],
                                    outs[s].final[a]);
    // shard_out_init saw each set's outputs against its own inputs; these are the other sets'.
    for (int s = 0; s < n && !rc; s++)
        for (int t = 0; t < n && !rc; t++)
            for (int a = 0; t != s && a < outs[s].n_shards && !rc; a++)
                for (int b = 0; b < rows[t]->n_shards && !rc; b++)
                    if (df_same_file(outs[s].final[a], rows[t]->paths[b]))
                        rc = df_err(err, "%s: the output would overwrite an input, %s (choose another --out)",
                                    outs[s].final[a], rows[t]->paths[b]);
    if (dist_agree(rc, err)) return -1;  // nothing created yet
    if (dist_rank() == 0)
        for (int s = 0; s < n && !rc; s++) rc = shard_out_create(&outs[s], rows[s], what, err);
    if (dist_agree(rc, err)) return -1;
    for (int s = 0; s < n && !rc; s++) rc = shard_out_open(&outs[s], err);
    return dist_agree(rc, err) ? -1 : 0;
}

int prep_outputs_commit(ShardOut *outs, int n, DfError *err) {
    int rc = 0;
    for (int s = 0; s < n; s++) rc |= shard_out_close(&outs[s], err);
    if (dist_agree(rc, err)) return -1;
    if (dist_rank() == 0)
        for (int s = 0; s < n && !rc; s++) rc = shard_out_commit(&outs[s], err);
    return dist_agree(rc, err) ? -1 : 0;
}

void prep_outputs_free(ShardOut *outs, int n, int failed) {
    for (int s = 0; s < n; s++) {
        if (failed && dist_rank() == 0 && outs[s].n_shards) shard_out_abandon(&outs[s]);
        shard_out_free(&outs[s]);
    }
}
