// shape.h: the per-sample shape of a tensor, shared by the network (nn/) and the file formats
// (data/). Tensors are float32, NCDHW, contiguous; a sample is (C, D, H, W). A 1D feature
// vector of n values is the shape (c = n, d = h = w = 1).
#ifndef DF_SHAPE_H
#define DF_SHAPE_H
#include <stddef.h>

typedef struct { int c, d, h, w; } Shape;  // per-sample shape
static inline size_t shape_numel(Shape s) { return (size_t)s.c * s.d * s.h * s.w; }
static inline size_t shape_spatial(Shape s) { return (size_t)s.d * s.h * s.w; }
#endif
