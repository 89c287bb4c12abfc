// gap.h: the train/eval gap of the layers that use batch statistics (BatchNorm, MDN;
// LayerOps.batch_statistics), measured on the validation split ([train] train_eval_gap).
// In training such a layer normalises with the global batch's statistics; in evaluation with
// running estimates. When the two disagree, the layers after it see in evaluation inputs they
// never saw in training -- how MDN placed after early convolutions loses its validation
// accuracy (issue 14). For every validation batch the network runs once more, in training
// mode (its state -- running statistics, R-MDN's estimates -- saved before and restored
// after, so nothing changes), and per tracked layer
//   gap = sqrt( sum (out_train - out_eval)^2 / sum out_train^2 )
// over the split: 0 when evaluation reproduces training, 1 when the difference is as large as
// the output itself. Upstream layers run in their own mode in each pass, so a layer's gap
// includes what reached it (dropout's masks too: read it for layers after a dropout with
// that in mind).
#ifndef DF_RUN_GAP_H
#define DF_RUN_GAP_H
#include "nn/net.h"

#define GAP_MAX_LAYERS 32

typedef struct {
    int n;                       // tracked layers
    int layer[GAP_MAX_LAYERS];   // their indices in net->layers
    double sums[2 * GAP_MAX_LAYERS];  // this epoch's sum (train - eval)^2 and sum train^2, this rank's
    float **eval;                // (n): a copy of each one's eval-mode output for the current batch
    float *state;                // the network's state while the training-mode pass runs
} GapMeter;

// Tracks the first `max` (at most GAP_MAX_LAYERS) layers with batch statistics.
void gap_init(GapMeter *g, const Net *net, int max);
void gap_free(GapMeter *g);
// After the eval-mode forward of batch b: the training-mode pass and the sums. Collective (the
// layers' reductions); net->acts then hold the training-mode outputs.
void gap_visit(GapMeter *g, Net *net, const Batch *b);
// Collective: the epoch's gap per tracked layer into gap (g->n), then the sums start again.
void gap_epoch_end(GapMeter *g, double *gap);
#endif
