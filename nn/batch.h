// batch.h: a batch is one value. It is this rank's share of one global batch: the images and
// everything that belongs to them -- labels, metadata rows (coded as the network's schema,
// nn/metadata.h), masks, CLAD's positives, and where the samples sit in the data set and in
// the epoch. The loader fills it (data/loader.h); the network's forward and backward take
// it, and so do the layers that need more than the images (MDN reads the metadata) and the
// losses.
// Nothing about the current samples travels any other way.
#ifndef DF_BATCH_H
#define DF_BATCH_H
#include <stdint.h>

typedef struct {
    int n;               // samples here (this rank's share of the global batch; may be 0)
    int global_n;        // samples in the global batch: summed losses are divided by this
    int offset;          // where this rank's samples start within the global batch (0..global_n)
    long first_sample;   // global position of the first sample (in the epoch's order, or in
                         // the data for inference): per-sample randomness and messages use it
    int step;            // the global batch's index within the epoch
    float *images;       // (n, C, D, H, W)
    int32_t *labels;     // (n) class indices, or NULL
    double *meta;        // (n, n_meta) metadata rows, or NULL
    int n_meta;          // metadata columns per row
    uint8_t *masks;      // (n, 1, D, H, W) foreground masks, or NULL
    // CLAD's positives (nn/clad.h), when the loader makes them (LoaderConfig.positives): sample
    // i's foreground pasted onto the background of another class's sample of the same global
    // batch, augmented as sample i; positive_bg[i] is that background's class. Else NULL.
    float *positives;    // (n, C, D, H, W)
    int32_t *positive_bg; // (n)
    int *index;          // (n) sample indices into the data set, or NULL
} Batch;

// A batch of images alone, all of it on this rank (tests, benchmarks, networks that read
// nothing but the images).
static inline Batch batch_of_images(float *images, int n) {
    Batch b = { .n = n, .global_n = n, .images = images };
    return b;
}
#endif
