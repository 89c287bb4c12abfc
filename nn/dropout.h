// dropout.h: inverted dropout. Each sample's mask is drawn from its own stream
// rng_seed_stream(seed, step, global sample index), so masks do not depend on how the
// global batch is split over ranks. The layer passes seed = run seed XOR a hash of its name,
// so two dropout layers draw different masks for the same sample and step.
#ifndef DF_DROPOUT_H
#define DF_DROPOUT_H
#include <stddef.h>
#include <stdint.h>

// out, inp, mask are (B, N); mask holds 0 or 1/(1-p). p in [0, 1).
void dropout_forward(float *out, float *mask, const float *inp, int B, size_t N, float p,
                     uint64_t seed, uint64_t step, long first_sample);
// dinp += dout * mask
void dropout_backward(float *dinp, const float *dout, const float *mask, int B, size_t N);
#endif
