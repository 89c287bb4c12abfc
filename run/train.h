// train.h: the training loop behind `deconfound train`, data-parallel over ranks.
// The global batch (the config's [train] batch) is split over the ranks: rank r takes
// samples [B*r/P, B*(r+1)/P) of each global batch, so the same global batches are seen at
// any rank count. The loss is the mean over the global batch; gradients are summed over
// ranks; batch statistics are global through the reducer.
#ifndef DF_TRAIN_H
#define DF_TRAIN_H
#include "data/checkpoint.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"

typedef struct {
    LossKind kind;
    int target_column;  // MSE: meta column used as the target; -1 = the label
} LossConfig;

typedef struct {
    int epochs;
    int batch;            // global batch size
    OptConfig opt;
    Schedule sched;
    LossConfig loss;
    uint64_t seed;        // initialisation, shuffling and dropout
    char out_dir[512];    // checkpoint.h5 and metrics.json go here
    int checkpoint_every; // epochs (0 = only at the end)
    int log_every;        // steps between progress lines
    int threads;          // BLAS threads per rank (0 = cores / ranks on the node)
    double bucket_mb;     // gradient all-reduce bucket size (MiB)
    char dcor_layer[64];  // report dCor of this layer's features vs metadata ("" = none)
    int dcor_every;       // epochs between reports (0: at the end only)
    int dcor_cols[16], n_dcor_cols;  // metadata columns reported
} TrainConfig;

// Parses [train] and [loss]. The cohort (for the MSE target column) may be NULL.
int train_config_parse(TrainConfig *tc, const Ini *ini, const Cohort *cohort, DfError *err);

typedef struct {
    double loss_sum;  // summed over the samples
    long correct;     // classification only
    long count;
} EvalStats;

// Loss (summed over the local samples) and its gradient (scaled by `scale`) for logits
// (B, K); targets come from labels (or the MSE target column). correct += argmax hits.
double loss_forward_backward(const LossConfig *lc, const float *logits, float *dlogits, float *probs,
                             const int *labels, const float *targets, int B, int K, float scale, long *correct);

// Evaluation over a loader's split (each rank its share), with the network in eval mode.
// ncols: metadata columns of the data. Collective: every rank calls it. Stats are global.
EvalStats evaluate(Net *net, const LossConfig *lc, Loader *l, int ncols, DfError *err);

// `deconfound train CONFIG [--set s.k=v ...] [--resume CKPT] [--threads N]`
int cmd_train(int argc, char **argv);
#endif
