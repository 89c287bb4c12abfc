// rng.h: a small, fast, seedable generator (xoshiro256**) whose whole state is four
// 64-bit words, so checkpoints can save it and a resumed run draws the same numbers.
#ifndef DF_RNG_H
#define DF_RNG_H
#include <stdint.h>
#include <stddef.h>

typedef struct { uint64_t s[4]; } Rng;

void rng_seed(Rng *r, uint64_t seed);               // splitmix64 expansion of the seed
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r);                         // [0, 1), 53 random bits
float rng_uniformf(Rng *r, float lo, float hi);     // [lo, hi)
double rng_normal(Rng *r);                          // N(0, 1), Box-Muller
uint64_t rng_below(Rng *r, uint64_t n);             // uniform integer in [0, n), unbiased
void rng_permutation(Rng *r, int *perm, int n);     // Fisher-Yates over 0..n-1
// An independent stream for (seed, a, b), e.g. (run seed, epoch, sample index).
void rng_seed_stream(Rng *r, uint64_t seed, uint64_t a, uint64_t b);
// Approximately N(0,1) from one 64-bit draw: the per-voxel noise of the synthetic generators
// and of the noise augmentation. The sum of four 16-bit uniforms (Irwin-Hall, variance 4/12)
// rescaled to unit variance. Exact Box-Muller would cost a log and a cos per voxel (most of
// the generation time) for no visible difference in the images.
static inline float rng_normal_fast(Rng *r) {
    uint64_t x = rng_u64(r);
    uint32_t s = (uint32_t)(x & 0xffff) + (uint32_t)((x >> 16) & 0xffff) + (uint32_t)((x >> 32) & 0xffff) +
                 (uint32_t)(x >> 48);
    return ((float)s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;  // sqrt(3)
}
#endif
