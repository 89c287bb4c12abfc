// optim.h: optimisers over the flat parameter buffer, with PyTorch's exact update rules,
// and learning-rate schedules evaluated per epoch (as torch.optim.lr_scheduler steps them).
#ifndef DF_OPTIM_H
#define DF_OPTIM_H
#include <stddef.h>

typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW } OptKind;
extern const char *const opt_kind_names[];  // "sgd", "adam", "adamw", NULL

typedef struct {
    OptKind kind;
    double momentum;      // SGD (dampening 0)
    int nesterov;         // SGD
    double weight_decay;  // SGD/Adam: L2 added to the gradient; AdamW: decoupled
    double beta1, beta2, eps;  // Adam/AdamW
} OptConfig;

typedef struct {
    OptConfig cfg;
    size_t n;
    float *m;   // SGD momentum buffer, or Adam first moment (n)
    float *v;   // Adam second moment (n); NULL for SGD
    long step;  // number of steps taken (Adam bias correction; SGD's first-step buffer copy)
} Optimizer;

void optim_init(Optimizer *o, const OptConfig *cfg, size_t n);
// One update of params (n) with grads (n) at learning rate lr.
void optim_step(Optimizer *o, float *params, const float *grads, double lr);
void optim_free(Optimizer *o);

typedef enum { SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE } SchedKind;
extern const char *const sched_kind_names[];  // "constant", "step", "cosine", NULL

typedef struct {
    SchedKind kind;
    double base_lr;
    int step_size;   // step: multiply by gamma every step_size epochs
    double gamma;
    int total_epochs;  // cosine: T_max
    double min_lr;     // cosine: eta_min
    int warmup_epochs; // linear warm-up from base_lr/ (warmup+1) before the schedule (0 = none)
} Schedule;

// Learning rate used during epoch `epoch` (0-based). With W = warmup_epochs:
//   epoch < W:  base_lr * (epoch + 1) / (W + 1)   (so base_lr/(W+1), ..., base_lr*W/(W+1))
//   otherwise the schedule runs on e = epoch - W, i.e. it starts from base_lr after warm-up:
//     constant: base_lr
//     step:     base_lr * gamma^floor(e / step_size)
//     cosine:   min_lr + (base_lr - min_lr) (1 + cos(pi e / T)) / 2 with T = total_epochs - W
//               (at least 1), so the cosine still reaches min_lr at epoch total_epochs.
// This is torch's SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W), <schedule>],
// milestones=[W]) with CosineAnnealingLR(T_max = total_epochs - W); W = 0 is the bare schedule.
double schedule_lr(const Schedule *s, int epoch);
#endif
