// synth.c: the synthetic mri3d cohort (see synth.h; design in docs/formats.md).
//
// The MDN paper's 2D synthetic set, in 3D. Every volume is a smooth ellipsoidal "brain"
// (intensity ~1) in a dark background, plus Gaussian blobs whose amplitudes carry the signal:
//   label:  two blobs (left-front, right-back), amplitude 0.15 * A, A ~ U(1,4) if y=0, U(3,6) if y=1
//   age:    one blob (right-front), amplitude 0.1 * a, a ~ U(1,4) if y=0, U(3,6) if y=1
//           (the metadata holds age in years, 20 + 12 (a - 1), in [20, 80))
//   sex:    one small blob (left-back), amplitude 0.15 * sex, sex ~ Bernoulli(1/2)
//   site:   P(site | y) = (.5,.3,.2) for y=0 and (.2,.3,.5) for y=1; each site has its own
//           intensity scale and offset inside the brain and its own noise level inside and
//           outside it ("texture").
// The A ranges overlap, so the label alone is ~83% predictable from the blobs; age and site
// are correlated with the label, so a network can do better by also reading the confounder
// regions -- the shortcut a deconfounding method has to remove. The sizes and amplitudes
// were chosen so pipelines/quickstart.ini's small CNN reaches ~80% validation accuracy in
// 10 epochs: narrower/fainter blobs (or a larger site scale, which moves the whole brain's
// intensity) left it near chance in that budget.
//
// Determinism: sample i draws only from rng_seed_stream(seed, i, 0) (and its label from
// the stream of its pair, see below), so the bytes do not depend on generation order or
// on n: a cohort of n samples is a prefix of one of 2n samples with the same seed.
#include "synth.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { float x, y, z, sigma; } Blob;  // centre and width in [-1,1] coordinates

// x is the W axis (NIfTI i, left -> right), y the H axis (j, posterior -> anterior),
// z the D axis (k, inferior -> superior).
static const Blob blob_label1 = { -0.35f, 0.40f, 0.10f, 0.25f };  // left-front
static const Blob blob_label2 = { 0.35f, -0.40f, 0.10f, 0.25f };  // right-back
static const Blob blob_age = { 0.35f, 0.40f, -0.15f, 0.25f };     // right-front, lower
static const Blob blob_sex = { -0.35f, -0.40f, -0.15f, 0.15f };   // left-back, lower

static const float brain_rx = 0.70f, brain_ry = 0.85f, brain_rz = 0.65f;  // ellipsoid radii
static const float brain_edge = 0.04f;  // width of the sigmoid edge, in radius units

static const double site_prob[2][3] = { { 0.5, 0.3, 0.2 }, { 0.2, 0.3, 0.5 } };
static const float site_scale[3] = { 1.00f, 1.06f, 0.95f };
static const float site_offset[3] = { 0.00f, 0.06f, -0.04f };
static const float site_noise_in[3] = { 0.05f, 0.07f, 0.06f };
static const float site_noise_out[3] = { 0.01f, 0.03f, 0.05f };

// Voxel centre of index i on an axis of n voxels, in (-1, 1).
static inline float coord(int i, int n) { return (2.0f * (float)i + 1.0f) / (float)n - 1.0f; }

// A separable Gaussian blob times the mask, as a (D,H,W) template.
static void blob_template(float *t, const float *mask, const Blob *b, int D, int H, int W) {
    float *gx = xmalloc(sizeof(float) * (size_t)W), *gy = xmalloc(sizeof(float) * (size_t)H),
          *gz = xmalloc(sizeof(float) * (size_t)D);
    float inv = 1.0f / (2.0f * b->sigma * b->sigma);
    for (int w = 0; w < W; w++) { float u = coord(w, W) - b->x; gx[w] = expf(-u * u * inv); }
    for (int h = 0; h < H; h++) { float u = coord(h, H) - b->y; gy[h] = expf(-u * u * inv); }
    for (int d = 0; d < D; d++) { float u = coord(d, D) - b->z; gz[d] = expf(-u * u * inv); }
    size_t v = 0;
    for (int d = 0; d < D; d++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++, v++) t[v] = gz[d] * gy[h] * gx[w] * mask[v];
    free(gx); free(gy); free(gz);
}

// Approximately N(0,1) from one 64-bit draw: the sum of four 16-bit uniforms (Irwin-Hall,
// variance 4/12) rescaled to unit variance. Exact Box-Muller would cost a log and a cos per
// voxel (most of the generation time) for no visible difference in the images.
static inline float fast_normal(Rng *r) {
    uint64_t x = rng_u64(r);
    uint32_t s = (uint32_t)(x & 0xffff) + (uint32_t)((x >> 16) & 0xffff) + (uint32_t)((x >> 32) & 0xffff) +
                 (uint32_t)(x >> 48);
    return ((float)s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;  // sqrt(3)
}

// Label of sample i: samples (2p, 2p+1) form a pair with one of each label, and the pair's
// own stream decides which is which -- balanced, independent of n, no index pattern.
static int pair_label(uint64_t seed, int i) {
    Rng r;
    rng_seed_stream(&r, seed, (uint64_t)(i / 2), 1);
    return (int)((rng_u64(&r) >> 63) ^ (uint64_t)(i & 1));
}

void synth_mri3d(Cohort *out, const SynthMri3dConfig *cfg) {
    int n = cfg->n, D = cfg->D, H = cfg->H, W = cfg->W;
    DF_ASSERT(n >= 0 && D > 0 && H > 0 && W > 0);
    Shape shape = { 1, D, H, W };
    cohort_alloc(out, n, shape, 3);
    out->columns[0] = xstrdup("age");
    out->kinds[0] = META_CONTINUOUS;
    out->columns[1] = xstrdup("sex");
    out->kinds[1] = META_CATEGORICAL;
    out->columns[2] = xstrdup("site");
    out->kinds[2] = META_CATEGORICAL;

    // Templates shared by every sample: only the amplitudes vary per sample.
    size_t V = shape_spatial(shape);
    float *mask = df_alloc_floats(V), *t_label = df_alloc_floats(V), *t_age = df_alloc_floats(V),
          *t_sex = df_alloc_floats(V), *tmp = df_alloc_floats(V);
    size_t v = 0;
    for (int d = 0; d < D; d++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++, v++) {
                float x = coord(w, W) / brain_rx, y = coord(h, H) / brain_ry, z = coord(d, D) / brain_rz;
                float r = sqrtf(x * x + y * y + z * z);
                mask[v] = 1.0f / (1.0f + expf((r - 1.0f) / brain_edge));
            }
    blob_template(t_label, mask, &blob_label1, D, H, W);
    blob_template(tmp, mask, &blob_label2, D, H, W);
    for (v = 0; v < V; v++) t_label[v] += tmp[v];
    blob_template(t_age, mask, &blob_age, D, H, W);
    blob_template(t_sex, mask, &blob_sex, D, H, W);

    for (int i = 0; i < n; i++) {
        Rng r;
        rng_seed_stream(&r, cfg->seed, (uint64_t)i, 0);
        int y = pair_label(cfg->seed, i);
        double lo = y ? 3.0 : 1.0;
        float A = (float)(lo + 3.0 * rng_uniform(&r));  // label effect strength
        double a = lo + 3.0 * rng_uniform(&r);          // confounder: raw age in [1,6)
        int sex = (int)rng_below(&r, 2);
        double u = rng_uniform(&r);
        int site = u < site_prob[y][0] ? 0 : u < site_prob[y][0] + site_prob[y][1] ? 1 : 2;

        out->labels[i] = y;
        out->meta[(size_t)i * 3 + 0] = 20.0 + 12.0 * (a - 1.0);
        out->meta[(size_t)i * 3 + 1] = sex;
        out->meta[(size_t)i * 3 + 2] = site;

        float aL = 0.15f * A, aA = 0.1f * (float)a, aS = 0.15f * (float)sex;
        float sc = site_scale[site], off = site_offset[site];
        float sin_ = site_noise_in[site], sout = site_noise_out[site];
        float *img = out->images + (size_t)i * V;
        for (v = 0; v < V; v++) {
            float m = mask[v];
            float signal = m * (sc * (1.0f + aL * t_label[v] + aA * t_age[v] + aS * t_sex[v]) + off);
            float sd = m * sin_ + (1.0f - m) * sout;
            img[v] = signal + sd * fast_normal(&r);
        }
    }
    free(mask); free(t_label); free(t_age); free(t_sex); free(tmp);
}
