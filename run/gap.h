// gap.h: the train/eval gap of the layers that use batch statistics (BatchNorm, MDN;
// LayerOps.batch_statistics), measured on the validation split ([train] train_eval_gap).
// In training such a layer normalises with the global batch's statistics; in evaluation with
// running estimates. When the two disagree, the layers after it see in evaluation inputs they
// never saw in training -- how MDN placed after early convolutions loses its validation
// accuracy (issue 14). Two readings per tracked layer, each
//   gap = sqrt( sum (out_train - out_eval)^2 / sum out_train^2 )
// over the split (0: evaluation reproduces training; 1: the difference is as large as the
// output itself):
//   own         the layer alone: its training-mode output on the very input it had in
//               evaluation, against its eval-mode output;
//   in context  the whole network once more in training mode, so the layer's input comes
//               from training-mode layers too: what the layers after it saw in training
//               against what they see in evaluation (dropout's masks count here as well).
// The network's state (running statistics, R-MDN's estimates) is saved before the
// training-mode passes and restored after, so measuring changes nothing.
#ifndef DF_RUN_GAP_H
#define DF_RUN_GAP_H
#include "nn/net.h"

#define GAP_MAX_LAYERS 16

typedef struct {
    int n;                       // tracked layers
    int layer[GAP_MAX_LAYERS];   // their indices in net->layers
    double sums[4 * GAP_MAX_LAYERS];  // per layer, this rank's: own (diff, ref), in context (diff, ref)
    float **eval;                // (n): each one's eval-mode output for the current batch
    float *out;                  // scratch: a layer's training-mode output
    float *state;                // the network's state while the training-mode passes run
} GapMeter;

// Tracks the first `max` (at most GAP_MAX_LAYERS) layers with batch statistics.
void gap_init(GapMeter *g, Net *net, int max);
void gap_free(GapMeter *g);
// After the eval-mode forward of batch b: the training-mode passes and the sums. Collective
// (the layers' reductions); net->acts then hold the training-mode outputs.
void gap_visit(GapMeter *g, Net *net, const Batch *b);
// Collective: the epoch's gaps into gap (2 g->n: own and in context per layer, in order),
// then the sums start again.
void gap_epoch_end(GapMeter *g, double *gap);
#endif
