// bench.h: the built-in benchmark networks, shared by `deconfound bench` and the tests.
#ifndef DF_BENCH_H
#define DF_BENCH_H
#include "layer.h"

// The BR-Net / MDN HIV-style 3D CNN (DESIGN.md section 5), as deconfound INI text: four
// Conv3d 3^3 (pad 1) - BatchNorm - ReLU - MaxPool 2 blocks of 16/32/64/32 channels, then
// fc 1024 -> 64 -> ReLU -> 2. Input (1, 32, 64, 64).
extern const char *const brnet3d_ini;
extern const Shape brnet3d_input;
#endif
