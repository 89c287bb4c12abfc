// saliency.c: input-gradient maps of a trained network (see saliency.h).
#include "run/saliency.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/rng.h"

const char *const saliency_method_names[] = { "grad", "gradxinput", "smoothgrad", NULL };

// dout for the chosen logit of each sample: 1 there, 0 elsewhere.
static void target_grad(float *dout, const float *logits, int K, const Batch *b, int target) {
    memset(dout, 0, sizeof(float) * (size_t)b->n * K);
    for (int i = 0; i < b->n; i++) {
        int k = 0;
        if (K > 1) {
            if (target >= 0) k = target < K ? target : K - 1;
            else if (target == SAL_TARGET_LABEL && b->labels) k = b->labels[i] < K ? b->labels[i] : 0;
            else
                for (int j = 1; j < K; j++) if (logits[(size_t)i * K + j] > logits[(size_t)i * K + k]) k = j;
        }
        dout[(size_t)i * K + k] = 1.0f;
    }
}

// One forward and backward of images x; adds each voxel's value of the method into maps.
static void accumulate(float *maps, Net *net, const Batch *b, const float *x, const SaliencyConfig *cfg, float weight) {
    int K = (int)shape_numel(net->out_shape);
    Shape in = net->in_shape;
    size_t V = shape_spatial(in), per = shape_numel(in);
    Batch nb = *b;
    nb.images = (float *)x;
    const float *logits = net_forward(net, &nb, 0);
    float *dout = xmalloc(sizeof(float) * (size_t)(b->n ? b->n : 1) * K);
    target_grad(dout, logits, K, b, cfg->target);
    net_backward(net, &nb, dout);
    free(dout);
    const float *g = net->dacts[0];
    for (int i = 0; i < b->n; i++) {
        float *m = maps + (size_t)i * V;
        const float *gi = g + (size_t)i * per, *xi = x + (size_t)i * per;
        for (size_t v = 0; v < V; v++) {
            float s = 0;
            for (int c = 0; c < in.c; c++) {
                float gv = gi[(size_t)c * V + v];
                s += cfg->method == SAL_GRADXINPUT ? gv * xi[(size_t)c * V + v] : fabsf(gv);
            }
            m[v] += weight * (cfg->method == SAL_GRADXINPUT ? fabsf(s) : s);
        }
    }
}

void saliency_batch(float *maps, Net *net, const Batch *b, const SaliencyConfig *cfg) {
    Shape in = net->in_shape;
    size_t V = shape_spatial(in), per = shape_numel(in);
    memset(maps, 0, sizeof(float) * (size_t)b->n * V);
    if (cfg->method != SAL_SMOOTHGRAD) {
        accumulate(maps, net, b, b->images, cfg, 1.0f);
        return;
    }
    float *noisy = df_alloc_floats((size_t)(b->n ? b->n : 1) * per);
    for (int s = 0; s < cfg->samples; s++) {
        for (int i = 0; i < b->n; i++) {
            const float *xi = b->images + (size_t)i * per;
            float lo = xi[0], hi = xi[0];
            for (size_t v = 1; v < per; v++) lo = fminf(lo, xi[v]), hi = fmaxf(hi, xi[v]);
            Rng r;  // the sample's own stream: the same noise at any batch size or rank count
            rng_seed_stream(&r, cfg->seed, (uint64_t)(b->first_sample + i), (uint64_t)s + 1);
            double sd = cfg->noise * (hi - lo);
            for (size_t v = 0; v < per; v++) noisy[(size_t)i * per + v] = xi[v] + (float)(sd * rng_normal(&r));
        }
        accumulate(maps, net, b, noisy, cfg, 1.0f / (float)cfg->samples);
    }
    free(noisy);
}
