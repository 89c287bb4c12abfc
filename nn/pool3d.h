// pool3d.h: 3D max and average pooling (PyTorch MaxPool3d / AvgPool3d semantics:
// floor output size, max pads with -inf, avg counts padding (count_include_pad = True)),
// and global average pooling to (B, C).
#ifndef DF_POOL3D_H
#define DF_POOL3D_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int C, D, H, W;
    int kd, kh, kw, sd, sh, sw, pd, ph, pw;
    int OD, OH, OW;  // set by pool3d_geom_init
} Pool3dGeom;

// stride defaults to the kernel in the layer; here all are explicit. -1 on impossible shapes
// (also when padding exceeds half the kernel, as PyTorch refuses).
int pool3d_geom_init(Pool3dGeom *g, int C, int D, int H, int W, const int k[3], const int s[3], const int p[3]);

// out is (B,C,OD,OH,OW); argmax (same shape) records the winning input offset within its
// (D,H,W) plane, for backward.
void maxpool3d_forward(float *out, int32_t *argmax, const float *inp, int B, const Pool3dGeom *g);
// The general loop (any kernel/stride/pad): the reference for the kernel-2 stride-2 fast
// path that maxpool3d_forward picks when it applies. Same contract.
void maxpool3d_forward_naive(float *out, int32_t *argmax, const float *inp, int B, const Pool3dGeom *g);
// One (D,H,W) plane of one channel: out (OD,OH,OW), argmax (OD,OH,OW) from inp (D,H,W),
// with the fast path where it applies; g->C is ignored. For fused kernels (nn/fused.c).
void maxpool3d_forward_plane(float *out, int32_t *argmax, const float *inp, const Pool3dGeom *g);
// Whether g is the 2x2x2 stride-2 unpadded pooling with its own fast kernels.
int maxpool3d_is_k2s2(const Pool3dGeom *g);
// dinp += dout routed to the argmax positions
void maxpool3d_backward(float *dinp, const float *dout, const int32_t *argmax, int B, const Pool3dGeom *g);
void avgpool3d_forward(float *out, const float *inp, int B, const Pool3dGeom *g);
void avgpool3d_backward(float *dinp, const float *dout, int B, const Pool3dGeom *g);

// out is (B,C), inp is (B,C,S) with S = D*H*W
void global_avgpool_forward(float *out, const float *inp, int B, int C, size_t S);
void global_avgpool_backward(float *dinp, const float *dout, int B, int C, size_t S);

// The layer's own struct (Layer.impl of a [maxpool3d] or [avgpool3d]), for the network's
// fused kernels.
typedef struct {
    Pool3dGeom g;
    int32_t *argmax;  // (max_batch, C, OD, OH, OW), maxpool only
} PoolImpl;
#endif
