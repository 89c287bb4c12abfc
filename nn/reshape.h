// reshape.h: flatten (B,C,D,H,W) -> (B, C*D*H*W). Data are contiguous, so forward is a
// copy and backward an accumulate; the layer exists so shapes are explicit in the config.
#ifndef DF_RESHAPE_H
#define DF_RESHAPE_H
#include <stddef.h>

void flatten_forward(float *out, const float *inp, size_t n);
void flatten_backward(float *dinp, const float *dout, size_t n);
#endif
