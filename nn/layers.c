// layers.c: the registry of layer types (one LayerOps table per layer file).
#include "nn/layer.h"
#include <string.h>

static const LayerOps *const registry[] = {
    &conv3d_ops, &maxpool3d_ops, &avgpool3d_ops, &global_avgpool_ops, &batchnorm3d_ops,
    &relu_ops, &leaky_relu_ops, &tanh_ops, &linear_ops, &dropout_ops, &flatten_ops, &l2norm_ops, &mdn_ops,
};
#define N_REGISTRY (sizeof registry / sizeof registry[0])

const LayerOps *layer_ops_find(const char *type) {
    for (size_t i = 0; i < N_REGISTRY; i++)
        if (strcmp(registry[i]->type, type) == 0) return registry[i];
    return NULL;
}

const char *layer_types_list(void) {
    static char buf[512];
    if (!buf[0]) {
        for (size_t i = 0; i < N_REGISTRY; i++) {
            if (i) strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
            strncat(buf, registry[i]->type, sizeof buf - strlen(buf) - 1);
        }
    }
    return buf;
}

