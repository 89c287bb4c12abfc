// step.c: one training step (see step.h).
#include "run/step.h"

void step_run(const Stepper *s, const Batch *b, int epoch, double lr, LossStats *ls) {
    Net *net = s->net;
    float scale = 1.0f / (float)b->global_n;  // the summed loss's gradient, as the global batch's mean
    const float *logits = net_forward(net, b, 1);
    loss_batch(s->loss, logits, s->K, b, s->dlogits, scale, s->scratch, ls);
    if (s->class_tally && b->labels) class_tally(s->class_tally, s->tally_classes, logits, s->K, b);
    terms_joint(s->terms, net, b, epoch, scale);  // their gradients join the backward at their layer
    net_zero_grad(net);
    terms_backward_positives(s->terms);  // CLAD's positives' pass, into the same gradients
    net_backward(net, b, s->dlogits);
    gradsync_finish(s->gs);
    optim_step(s->opt, net->params, net->grads, lr);
    terms_after_step(s->terms, s, b, epoch, lr);
}
