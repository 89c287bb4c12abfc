// linear.h: fully connected layer, PyTorch layout (weight is (OUT, IN)).
#ifndef DF_LINEAR_H
#define DF_LINEAR_H

// out is (B,OUT), inp is (B,IN), weight is (OUT,IN), bias is (OUT) or NULL. sgemm.
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int IN, int OUT);
// The same, one sample at a time: each row of out comes from its own sgemm call, so a
// sample's output has the same bits whatever B is and wherever the sample sits in the batch
// (a BLAS may round a row differently depending on how many rows share a call). Evaluation
// uses it; training keeps the batched call.
void linear_forward_rows(float *out, const float *inp, const float *weight, const float *bias, int B, int IN, int OUT);
// dinp (or NULL) += dout W, dweight += dout^T inp, dbias (or NULL) += column sums of dout
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int IN, int OUT);
// Plain loops, the test oracle.
void linear_forward_naive(float *out, const float *inp, const float *weight, const float *bias, int B, int IN, int OUT);
void linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, int B, int IN, int OUT);
#endif
