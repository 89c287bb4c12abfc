// clad.h: CLAD's contrastive term, "Contrastive Learning for Background Debiasing"
// (Wang et al., BMVC 2022; ../shared/DESIGN.md 3.4), as plain functions on features. The
// term on a network (positives through the data path, the queues kept identical on every rank
// and in the checkpoint) is built on these.
//
// Anchor i (features a_i, label y_i) has one positive p_i: its foreground pasted onto the
// background of a sample of another class (data/paste.h), through the same network. Its
// negatives are the queue of class y_i: the last `length` detached features of positives whose
// BACKGROUND was of class y_i (the same background class as the anchor's own, another
// foreground). With s(u, v) = u . v / max(|u| |v|, 1e-8) (torch's cosine_similarity) and the
// temperature tau:
//   loss_i = -log( e^{s(a_i,p_i)/tau} / (e^{s(a_i,p_i)/tau} + sum_m e^{s(a_i, q_{y_i,m})/tau}) )
// and the term is the mean of loss_i over the global batch (the network's loss adds lambda
// times it). The gradient reaches a_i and p_i; the queue is detached.
//
// As the reference orders a step: the queues are first pushed with this step's positives
// (in global batch order, each to the queue of its background's class), then the term is
// computed against them. Before the first push every queue is filled from the first batch's
// anchors of other classes (clad_queues_init).
#ifndef DF_CLAD_H
#define DF_CLAD_H

typedef struct {
    int n_classes, length, d;
    float *feat;  // (n_classes, length, d): row m of queue k is its m-th oldest entry
} CladQueues;

// Allocates the queues (zeros).
void clad_queues_alloc(CladQueues *q, int n_classes, int length, int d);
void clad_queues_free(CladQueues *q);

// Queue k = the features of the first `length` anchors of the batch (a: (B, d), labels y)
// whose label is not k, in batch order, taken again from the first when there are fewer (the
// reference tops up with a random draw; cycling keeps it the same on every rank without a
// generator). A class with no anchor of another class in the batch keeps zeros.
void clad_queues_init(CladQueues *q, const float *a, const int *y, int B);

// Pushes p_i (p: (B, d)) onto the queue of class bg[i], in order i = 0..B-1; a full queue
// drops its oldest entry. Labels outside 0..n_classes-1 are the caller's error.
void clad_queues_push(CladQueues *q, const float *p, const int *bg, int B);

// The sum of loss_i over the n rows given (a, p: (n, d), labels y), in double. loss_rows (n),
// when not NULL, receives each loss_i.
double clad_forward(double *loss_rows, const float *a, const float *p, const int *y, int n, const CladQueues *q,
                    double tau);

// da, dp (n, d) += scale * d loss_i / d a_i and d loss_i / d p_i for the n rows given: with
// scale = lambda / B_global, the gradient of lambda times the batch mean.
void clad_backward(float *da, float *dp, const float *a, const float *p, const int *y, int n, const CladQueues *q,
                   double tau, double scale);
#endif
