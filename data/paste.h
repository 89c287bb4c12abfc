// paste.h: a sample's foreground on another sample's background, by its mask -- CLAD's
// positives (nn/clad.h) and the Background Challenge's test variants (mixed-same, mixed-rand,
// only-bg). A mask is (1, D, H, W), nonzero on the foreground, and applies to every channel.
// "Another sample's background" is paste_background_only of it: its own object removed.
#ifndef DF_PASTE_H
#define DF_PASTE_H
#include <stdint.h>
#include "base/shape.h"

// out (C, D, H, W) = fg where mask != 0, else bg: the foreground's values bit for bit and every
// background voxel from bg. out may be fg or bg itself.
void paste_foreground(float *out, const float *fg, const uint8_t *mask, const float *bg, Shape s);
// out (C, D, H, W) = x's background alone, its foreground filled from its own background:
// each foreground voxel takes the value of the nearest background voxel along the first
// spatial axis D (in a clip, the same pixel in the nearest frame where the object is not --
// it moves; in a volume, the nearest slice outside the foreground), the lower d on a tie,
// or, where the whole line is foreground, the mean of x's background in that channel (0
// without any). So a pasted foreground sits on a scene without the other sample's object,
// as the Background Challenge's backgrounds (objects removed) are. out may not be x.
void paste_background_only(float *out, const float *x, const uint8_t *mask, Shape s);
// out (C, D, H, W) = x where mask == 0, else fill: the foreground blanked (only-bg).
void paste_blank_foreground(float *out, const float *x, const uint8_t *mask, float fill, Shape s);
#endif
