// conv3d_direct.h: direct 3D convolution for stride-1 layers (nn/conv3d_direct.c). Internal to
// nn/conv3d.c, whose conv3d_forward / conv3d_backward decide which layers and phases use it.
#ifndef DF_CONV3D_DIRECT_H
#define DF_CONV3D_DIRECT_H
#include "nn/conv3d_geom.h"
#include <stddef.h>

// The direct kernels can compute this geometry: unit strides (any kernel and padding).
int conv3d_direct_legal(const Conv3dGeom *g);
// Floats of workspace the direct kernels need per thread (0 if not legal). Every slice holds
// the same layout; the transposed weights live in slice 0's copy and are shared.
size_t conv3d_direct_workspace_floats(const Conv3dGeom *g);
// Caps the instruction set: 4 (AVX-512), 3 (AVX2 + FMA), 2 (the build's baseline, SSE4.2);
// 0 (the default) takes what the CPU has. For tests and benchmarks. It is the cap of every
// multi-width kernel (base/multiarch.h: df_isa_set_max), not only of these.
void conv3d_direct_set_isa(int isa_max);
// The level in use (after the cap): df_isa_level().
int conv3d_direct_isa(void);

// Whether the forward takes each output plane as one row (planes narrower than 16 floats,
// when at least 3/4 of the positions it computes are kept). On such planes a batch that fills
// 3/4 of the lanes of groups of 16 samples is taken with the samples in the lanes instead (so
// is bwd-data when conv3d_direct_backward_data_flat).
int conv3d_direct_forward_flat(const Conv3dGeom *g);
// Whether the data gradient is taken as the flat forward of dout with the kernel flipped
// (planes of dinp narrower than 16 floats, padding at most kernel - 1).
int conv3d_direct_backward_data_flat(const Conv3dGeom *g);
// Whether conv3d_direct_backward_weights puts 16 samples in a vec's lanes for g (planes
// narrower than 16 floats, a 3-wide kernel) and a batch of B fills at least 3/4 of the lanes
// of the groups of 16 it takes: where GEMM loses to it.
int conv3d_direct_dw_samples_in_lanes(const Conv3dGeom *g, int B);
// Same contracts as conv3d_forward; `slice` is the floats per thread in `workspace` (at least
// conv3d_direct_workspace_floats(g)).
void conv3d_direct_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                           const Conv3dGeom *g, float *workspace, size_t slice, int threads);
// The output planes the weight gradient takes per work item at most: 1, or a block whose dout
// stays in L2 (rows of whole 16-float vectors; up to a whole sample), the form that beats
// vol2col + GEMM on small planes. 0 when the direct kernels cannot compute g.
int conv3d_direct_dw_planes_per_item(const Conv3dGeom *g);
// dweight += dL/dweight and (dbias non-NULL) dbias += dL/dbias. Per-thread partial sums, added
// in thread order: reproducible for a given thread count.
void conv3d_direct_backward_weights(float *dweight, float *dbias, const float *dout, const float *inp, int B,
                                    const Conv3dGeom *g, float *workspace, size_t slice, int threads);
// dinp += dL/dinp: the forward of dout with the kernel flipped and transposed.
void conv3d_direct_backward_data(float *dinp, const float *dout, const float *weight, int B, const Conv3dGeom *g,
                                 float *workspace, size_t slice, int threads);
#endif
