// paste.c: foreground pasting (see paste.h).
#include "data/paste.h"

void paste_foreground(float *out, const float *fg, const uint8_t *mask, const float *bg, Shape s) {
    size_t n = shape_spatial(s);
    for (int c = 0; c < s.c; c++, out += n, fg += n, bg += n)
        for (size_t v = 0; v < n; v++) out[v] = mask[v] ? fg[v] : bg[v];
}

void paste_blank_foreground(float *out, const float *x, const uint8_t *mask, float fill, Shape s) {
    size_t n = shape_spatial(s);
    for (int c = 0; c < s.c; c++, out += n, x += n)
        for (size_t v = 0; v < n; v++) out[v] = mask[v] ? fill : x[v];
}

// One channel: fg voxels from the nearest bg voxel along D, else the channel's bg mean.
static void fill_channel(float *out, const float *x, const uint8_t *mask, int D, size_t plane) {
    double sum = 0.0;
    size_t n_bg = 0, n = (size_t)D * plane;
    for (size_t v = 0; v < n; v++)
        if (!mask[v]) { sum += x[v]; n_bg++; }
    float mean = n_bg ? (float)(sum / (double)n_bg) : 0.0f;
    for (size_t p = 0; p < plane; p++)
        for (int d = 0; d < D; d++) {
            size_t v = (size_t)d * plane + p;
            if (!mask[v]) { out[v] = x[v]; continue; }
            out[v] = mean;
            for (int k = 1; k < D; k++) {  // nearest first, the lower d on a tie
                if (d - k >= 0 && !mask[(size_t)(d - k) * plane + p]) { out[v] = x[(size_t)(d - k) * plane + p]; break; }
                if (d + k < D && !mask[(size_t)(d + k) * plane + p]) { out[v] = x[(size_t)(d + k) * plane + p]; break; }
            }
        }
}

void paste_background_only(float *out, const float *x, const uint8_t *mask, Shape s) {
    size_t n = shape_spatial(s), plane = (size_t)s.h * s.w;
    for (int c = 0; c < s.c; c++) fill_channel(out + (size_t)c * n, x + (size_t)c * n, mask, s.d, plane);
}
