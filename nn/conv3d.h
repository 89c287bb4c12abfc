// conv3d.h: 3D convolution (cross-correlation, as PyTorch's Conv3d), groups = 1, no dilation.
#ifndef DF_CONV3D_H
#define DF_CONV3D_H
#include "nn/conv3d_geom.h"
#include <stddef.h>

// Fills g and computes OD = (D + 2 pd - kd) / sd + 1 etc. Returns -1 if any size or the
// output is < 1 (an impossible shape).
int conv3d_geom_init(Conv3dGeom *g, int C, int D, int H, int W, int OC,
                     const int k[3], const int s[3], const int p[3]);
// Floats of workspace the fast kernels need per thread (independent of the batch size).
size_t conv3d_workspace_floats(const Conv3dGeom *g);

// out is (B,OC,OD,OH,OW), inp is (B,C,D,H,W), weight is (OC,C,kd,kh,kw), bias is (OC) or NULL.
// Fast path: vol2col + OpenBLAS sgemm, per sample. `workspace` holds `threads` slices of
// conv3d_workspace_floats(g); the kernels use up to min(threads, df_threads()) threads, each
// on whole samples (or, in the forward, on row chunks of them) with a single-threaded sgemm.
// The result does not depend on the thread count in the forward; in the backward the weight
// and bias gradients are summed per thread and then over threads, so they differ between
// thread counts by rounding only (and are reproducible for a given count).
void conv3d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int B, const Conv3dGeom *g, float *workspace, int threads);
// dinp (or NULL) += dL/dinp, dweight (or NULL) += dL/dweight, dbias (or NULL) += dL/dbias. (A
// NULL dweight skips the weight GEMM: `deconfound bench conv3d` times the two halves apart.)
void conv3d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int B, const Conv3dGeom *g, float *workspace,
                     int threads);

// Which kernels conv3d_forward / conv3d_backward use. CONV3D_AUTO: the measured rule (direct
// convolution, nn/conv3d_direct.h, for the stride-1 layers with few input channels where it
// beats vol2col + GEMM; GEMM elsewhere). CONV3D_GEMM / CONV3D_DIRECT: one of them wherever it
// applies (direct needs unit strides; a 1x1x1 kernel always takes the plain GEMM). isa_max caps
// the direct kernels' instruction set (4 AVX-512, 3 AVX2 + FMA, 2 the build's SSE4.2; 0: the
// CPU's). Process-wide, for tests and benchmarks; the workspace size does not depend on it.
enum { CONV3D_AUTO, CONV3D_GEMM, CONV3D_DIRECT };
enum { CONV3D_FORWARD, CONV3D_BWD_DATA, CONV3D_BWD_WEIGHTS };
void conv3d_set_kernels(int kernels, int isa_max);
// "gemm", or "direct-v4" (the direct kernels at that instruction-set level): what `phase` of g
// runs on at batch B, for benchmark output.
void conv3d_kernel_name(char *out, size_t n, const Conv3dGeom *g, int phase, int B);

// Plain loops, the test oracle for the fast path (same contracts, no workspace).
void conv3d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                          int B, const Conv3dGeom *g);
void conv3d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int B, const Conv3dGeom *g);
#endif
