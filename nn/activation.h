// activation.h: element-wise nonlinearities. n is the total element count (B * per-sample).
#ifndef DF_ACTIVATION_H
#define DF_ACTIVATION_H
#include <stddef.h>

// out = max(inp, 0)
void relu_forward(float *out, const float *inp, size_t n);
// dinp += dout * (inp > 0)
void relu_backward(float *dinp, const float *dout, const float *inp, size_t n);
// out = inp > 0 ? inp : slope * inp
void leaky_relu_forward(float *out, const float *inp, size_t n, float slope);
void leaky_relu_backward(float *dinp, const float *dout, const float *inp, size_t n, float slope);
// out = tanh(inp); backward uses the output: dinp += dout * (1 - out^2)
void tanh_forward(float *out, const float *inp, size_t n);
void tanh_backward(float *dinp, const float *dout, const float *out, size_t n);
#endif
