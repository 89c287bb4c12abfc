// conv3d_geom.h: the shape of a 3D convolution, shared by nn/conv3d.h and the direct kernels
// (nn/conv3d_direct.h) without either including the other.
#ifndef DF_CONV3D_GEOM_H
#define DF_CONV3D_GEOM_H

typedef struct {
    int C, D, H, W;          // input channels and spatial size
    int OC;                  // output channels
    int kd, kh, kw;          // kernel
    int sd, sh, sw;          // stride
    int pd, ph, pw;          // zero padding
    int OD, OH, OW;          // output size, set by conv3d_geom_init (nn/conv3d.h)
} Conv3dGeom;
#endif
