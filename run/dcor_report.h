// dcor_report.h: how much of a confounder is left in a layer's features -- the bias-corrected
// squared distance correlation (R energy's bcdcor) between the features of every
// validation sample at a named layer and each metadata column, over the whole split and
// within each class (the MDN paper's protocol), and the partial dCor^2 given the label (R
// energy's pdcor: the association left once what the label explains is removed from both,
// the principled form of the per-class figure). Continuous columns are used as values,
// categorical ones -- and the label -- one-hot coded (so codes' order means nothing).
#ifndef DF_DCOR_REPORT_H
#define DF_DCOR_REPORT_H
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/metadata.h"
#include "nn/net.h"

#define REPORT_MAX_COLS 16
#define REPORT_MAX_CLASSES 16

typedef struct {
    int n;                                   // samples
    int n_cols;
    char names[REPORT_MAX_COLS][64];
    double all[REPORT_MAX_COLS];             // dCor^2 (bias-corrected), whole split
    int n_classes;
    double by_class[REPORT_MAX_COLS][REPORT_MAX_CLASSES];  // NAN for a class of < 4 samples
    double given_label[REPORT_MAX_COLS];     // partial dCor^2 given the label; NAN with one class
} DcorReport;

// Collective. layer_out is the index into net->acts of the layer's output
// (net_layer_output_index); cols are cohort metadata columns. The loader covers the split in
// its order (no shuffle); split_idx maps positions to cohort indices.
int dcor_report_run(DcorReport *rep, Net *net, Loader *l, const Dataset *ds, const int *split_idx, int n_split,
                    int layer_out, const int *cols, int n_cols, DfError *err);
// A table on `f` and a JSON object (one line) on `json` (either may be NULL).
void dcor_report_print(const DcorReport *rep, const char *layer, int epoch, FILE *f, FILE *json);
// dcor.csv rows "epoch,layer,column,scope,dcor2_u": scope "all", "class=K", "given_label".
void dcor_report_csv(const DcorReport *rep, const char *layer, int epoch, FILE *csv);
#endif
