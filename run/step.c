// step.c: one training step (see step.h).
#include "run/step.h"
#include "mpi/comm.h"

int step_run(const Stepper *s, const Batch *b, int epoch, double lr, int check_outputs, LossStats *ls) {
    Net *net = s->net;
    float scale = 1.0f / (float)b->global_n;  // the summed loss's gradient, as the global batch's mean
    const float *logits = net_forward(net, b, 1);
    double bad_output = 0.0;  // before the backward, which may overwrite outputs (nn/fused.h)
    int sample;
    if (check_outputs) bad_output = net_find_nonfinite_output(net, b->n, &sample) >= 0;
    loss_batch(s->loss, logits, s->K, b, s->dlogits, scale, s->scratch, ls);
    if (s->class_tally && b->labels) class_tally(s->class_tally, s->tally_classes, logits, s->K, b);
    terms_joint(s->terms, net, b, epoch, scale);  // their gradients join the backward at their layer
    net_zero_grad(net);
    terms_backward_positives(s->terms);  // CLAD's positives' pass, into the same gradients
    net_backward(net, b, s->dlogits);
    gradsync_finish(s->gs);
    if (check_outputs) dist_allreduce_max_f64(&bad_output, 1);
    // ReLU and max-pooling can hide a NaN from the loss (relu(NaN) = 0), never from the
    // gradients: a NaN anywhere below reaches a weight's gradient through BatchNorm's sums.
    // The state (BatchNorm's running statistics) is the same on every rank too.
    if (bad_output > 0.0 || df_first_nonfinite(net->grads, net->n_params) >= 0 ||
        df_first_nonfinite(net->state, net->n_state) >= 0)
        return 1;
    optim_step(s->opt, net->params, net->grads, lr);
    terms_after_step(s->terms, s, b, epoch, lr);
    return 0;
}
