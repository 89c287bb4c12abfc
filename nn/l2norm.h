// l2norm.h: per-sample L2 normalisation in the forward path (EnD's bottleneck):
// out_i = inp_i / max(||inp_i||, eps), as torch.nn.functional.normalize (eps = 1e-12).
#ifndef DF_L2NORM_H
#define DF_L2NORM_H

// out, inp are (B,N); norms (B) saved for backward (the unclamped norm).
void l2norm_forward(float *out, float *norms, const float *inp, int B, int N, float eps);
// dinp += J^T dout, J the Jacobian of the normalisation (identity / eps when clamped).
void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norms, int B, int N, float eps);
#endif
