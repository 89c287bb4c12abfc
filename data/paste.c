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
