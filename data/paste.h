// paste.h: a sample's foreground on another sample's background, by its mask -- CLAD's
// positives (nn/clad.h) and the Background Challenge's test variants (mixed-same, mixed-rand,
// only-bg). A mask is (1, D, H, W), nonzero on the foreground, and applies to every channel.
#ifndef DF_PASTE_H
#define DF_PASTE_H
#include <stdint.h>
#include "base/shape.h"

// out (C, D, H, W) = fg where mask != 0, else bg: the foreground's values bit for bit and every
// background voxel from bg. out may be fg or bg itself.
void paste_foreground(float *out, const float *fg, const uint8_t *mask, const float *bg, Shape s);
// out (C, D, H, W) = x where mask == 0, else fill: the foreground blanked (only-bg).
void paste_blank_foreground(float *out, const float *x, const uint8_t *mask, float fill, Shape s);
#endif
