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
//           outside it ("texture"). Options (synth.h) make the site a background shortcut:
//           site_rho ties it to the label, site_outside_only keeps it out of the brain,
//           site_background adds a per-site intensity outside the brain.
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
#include "data/synth.h"
#include "base/rng.h"
#include "data/idx.h"
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
    if (cfg->masks) {
        cohort_alloc_masks(out);
        for (int i = 0; i < n; i++)
            for (v = 0; v < V; v++) out->masks[(size_t)i * V + v] = mask[v] >= 0.5f;
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
        if (cfg->tie_site) {  // the label's site (0 or 2) with probability site_rho
            int own = y ? 2 : 0;
            site = u < cfg->site_rho ? own : (own + 1 + (int)rng_below(&r, 2)) % 3;
        }

        out->labels[i] = y;
        out->meta[(size_t)i * 3 + 0] = 20.0 + 12.0 * (a - 1.0);
        out->meta[(size_t)i * 3 + 1] = sex;
        out->meta[(size_t)i * 3 + 2] = site;

        float aL = 0.15f * A, aA = 0.1f * (float)a, aS = 0.15f * (float)sex;
        int in = !cfg->site_outside_only;
        float sc = in ? site_scale[site] : 1.0f, off = in ? site_offset[site] : 0.0f;
        float sin_ = site_noise_in[in ? site : 0], sout = site_noise_out[site];
        float bg = (float)(cfg->site_background * 0.5 * site);
        float *img = out->images + (size_t)i * V;
        for (v = 0; v < V; v++) {
            float m = mask[v];
            float signal = m * (sc * (1.0f + aL * t_label[v] + aA * t_age[v] + aS * t_sex[v]) + off);
            float sd = m * sin_ + (1.0f - m) * sout;
            img[v] = signal + sd * rng_normal_fast(&r);
            if (bg != 0.0f) img[v] += (1.0f - m) * bg;
        }
    }
    free(mask); free(t_label); free(t_age); free(t_sex); free(tmp);
}

// ---- mdn2d -------------------------------------------------------------------------------

// gkern(kernlen, nsig) of the MDN reference: differences of the standard normal CDF at
// kernlen+1 points evenly spaced on [-nsig, nsig], outer product, normalised to sum 1.
static void gkern(double *k, int len, double nsig) {
    double *k1 = xmalloc(sizeof(double) * (size_t)len), sum = 0;
    for (int i = 0; i < len; i++) {
        double a = -nsig + 2.0 * nsig * i / len, b = -nsig + 2.0 * nsig * (i + 1) / len;
        k1[i] = 0.5 * (erf(b / sqrt(2.0)) - erf(a / sqrt(2.0)));
    }
    for (int i = 0; i < len; i++)
        for (int j = 0; j < len; j++) sum += k[i * len + j] = k1[i] * k1[j];
    for (int i = 0; i < len * len; i++) k[i] /= sum;
    free(k1);
}

void synth_mdn2d(Cohort *out, const SynthMdn2dConfig *cfg) {
    int n = cfg->n;
    DF_ASSERT(n >= 0);
    Shape shape = { 1, 1, 32, 32 };
    cohort_alloc(out, n, shape, 1);
    out->columns[0] = xstrdup("cf");
    out->kinds[0] = META_CONTINUOUS;
    double k[256];
    gkern(k, 16, 5.0);
    for (int i = 0; i < n; i++) {
        Rng r;
        rng_seed_stream(&r, cfg->seed, (uint64_t)i, 2);
        int y = i >= n / 2;
        double lo = y ? 3.0 : 1.0;
        double mf = lo + 3.0 * rng_uniform(&r);  // label effect
        double cf = lo + 3.0 * rng_uniform(&r);  // confounder
        out->labels[i] = y;
        out->meta[i] = cf;
        float *img = out->images + (size_t)i * 1024;
        for (int row = 0; row < 32; row++)
            for (int col = 0; col < 32; col++) {
                double v = 0, g = k[(row % 16) * 16 + (col % 16)];
                if (row < 16 && col < 16) v = g * mf;         // top-left: label
                else if (row >= 16 && col < 16) v = g * cf;   // bottom-left: confounder
                else if (row >= 16 && col >= 16) v = g * mf;  // bottom-right: label
                img[row * 32 + col] = (float)(v + 0.01 * rng_normal(&r));
            }
    }
}

// ---- video -------------------------------------------------------------------------------

static const float video_palette[8][3] = {
    { 0.9f, 0.2f, 0.2f }, { 0.2f, 0.8f, 0.3f }, { 0.2f, 0.3f, 0.9f }, { 0.9f, 0.8f, 0.2f },
    { 0.8f, 0.3f, 0.8f }, { 0.2f, 0.8f, 0.8f }, { 0.9f, 0.5f, 0.1f }, { 0.5f, 0.5f, 0.5f },
};

// Background scene b at pixel (y, x): the scene's colour modulated by its pattern.
static float scene_value(int b, int ch, int y, int x) {
    float base = video_palette[b][ch], m;
    int period = 3 + b % 3;
    switch (b % 4) {
    case 0: m = 0.8f; break;                                     // flat
    case 1: m = (y / period) % 2 ? 1.0f : 0.5f; break;           // horizontal stripes
    case 2: m = (x / period) % 2 ? 1.0f : 0.5f; break;           // vertical stripes
    default: m = ((x / period) + (y / period)) % 2 ? 1.0f : 0.45f; break;  // checkerboard
    }
    return 0.6f * base * m;
}

// Is (dy, dx) from the object's centre inside shape k of radius r?
static int in_shape(int k, float dy, float dx, float r) {
    float ay = fabsf(dy), ax = fabsf(dx), d2 = dy * dy + dx * dx;
    switch (k) {
    case 0: return ay <= r && ax <= r;                                   // square
    case 1: return d2 <= r * r;                                          // disc
    case 2: return (ay <= r && ax <= r / 3) || (ax <= r && ay <= r / 3); // plus
    case 3: return ay + ax <= r;                                         // diamond
    case 4: return ay <= r / 2.5f && ax <= r;                            // horizontal bar
    case 5: return ax <= r / 2.5f && ay <= r;                            // vertical bar
    case 6: return d2 <= r * r && d2 >= 0.35f * r * r;                   // ring
    default: return ay <= r && ax <= r && fabsf(ay - ax) <= r / 3;       // X
    }
}

void synth_video(Cohort *out, const SynthVideoConfig *cfg) {
    int n = cfg->n, T = cfg->T, H = cfg->H, W = cfg->W, K = cfg->classes;
    DF_ASSERT(n >= 0 && T > 0 && H > 0 && W > 0 && K >= 2 && K <= 8);
    Shape shape = { 3, T, H, W };
    int lit = cfg->brightness > 0;
    cohort_alloc(out, n, shape, lit ? 2 : 1);
    cohort_alloc_masks(out);
    out->columns[0] = xstrdup("background");
    out->kinds[0] = META_CATEGORICAL;
    if (lit) {
        out->columns[1] = xstrdup("brightness");
        out->kinds[1] = META_CONTINUOUS;
    }
    size_t plane = (size_t)H * W, V = (size_t)T * plane;
    float radius = DF_MAX(2.0f, (float)DF_MIN(H, W) / 6.0f);
    for (int i = 0; i < n; i++) {
        Rng r;
        rng_seed_stream(&r, cfg->seed, (uint64_t)i, 3);
        int y = (int)rng_below(&r, (uint64_t)K);
        int b = y;
        if (rng_uniform(&r) >= cfg->rho) b = (y + 1 + (int)rng_below(&r, (uint64_t)(K - 1))) % K;
        out->labels[i] = y;
        out->meta[(size_t)i * out->k] = b;
        float cy = rng_uniformf(&r, radius, H - 1 - radius), cx = rng_uniformf(&r, radius, W - 1 - radius);
        float vy = rng_uniformf(&r, -1.5f, 1.5f), vx = rng_uniformf(&r, -1.5f, 1.5f);
        float col[3];
        for (int ch = 0; ch < 3; ch++) col[ch] = rng_uniformf(&r, 0.7f, 1.0f);
        float *img = out->images + (size_t)i * 3 * V;
        uint8_t *mask = out->masks + (size_t)i * V;
        for (int t = 0; t < T; t++) {
            for (int py = 0; py < H; py++)
                for (int px = 0; px < W; px++) {
                    size_t o = (size_t)t * plane + (size_t)py * W + px;
                    int fg = in_shape(y, py - cy, px - cx, radius);
                    mask[o] = (uint8_t)fg;
                    for (int ch = 0; ch < 3; ch++) {
                        float v = fg ? col[ch] : scene_value(b, ch, py, px);
                        img[(size_t)ch * V + o] = v + 0.02f * rng_normal_fast(&r);
                    }
                }
            // Move, bouncing off the borders.
            cy += vy; cx += vx;
            if (cy < radius || cy > H - 1 - radius) { vy = -vy; cy += 2 * vy; }
            if (cx < radius || cx > W - 1 - radius) { vx = -vx; cx += 2 * vx; }
        }
        if (lit) {  // the illumination, from a stream of its own: the clip's other draws stay
            Rng rl;
            rng_seed_stream(&rl, cfg->seed, (uint64_t)i, 4);
            double g = cfg->brightness * ((2.0 * y / (K - 1) - 1.0) + 0.5 * rng_normal(&rl));
            out->meta[(size_t)i * out->k + 1] = g;
            for (size_t v = 0; v < 3 * V; v++) img[v] *= (float)(1.0 + g);
        }
    }
}

// ---- biased Fashion-MNIST ----------------------------------------------------------------

const uint8_t synth_fmnist_colours[10][3] = {
    { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 225, 225, 0 }, { 225, 0, 225 },
    { 0, 255, 255 }, { 255, 128, 0 }, { 255, 0, 128 }, { 128, 0, 255 }, { 128, 128, 128 },
};

// One of the IDX files: "<dir>/<name>" or "<dir>/<name>.gz".
static int read_fmnist_file(IdxArray *a, const char *dir, const char *name, DfError *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    else snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    return idx_read(a, path, err);
}

static int colour_part(Cohort *c, int at, const char *dir, const char *images, const char *labels, int n, double rho,
                       uint64_t seed, uint64_t stream, DfError *err) {
    IdxArray im, lb;
    if (read_fmnist_file(&im, dir, images, err)) return -1;
    if (read_fmnist_file(&lb, dir, labels, err)) { idx_free(&im); return -1; }
    int rc = -1;
    if (im.ndim != 3 || im.dims[1] != 28 || im.dims[2] != 28) { df_err(err, "%s/%s: expected [N, 28, 28] images", dir, images); goto done; }
    if (lb.ndim != 1 || lb.dims[0] != im.dims[0]) { df_err(err, "%s/%s: expected one label per image", dir, labels); goto done; }
    if (im.dims[0] < n) { df_err(err, "%s/%s: holds %lld images, %d asked for", dir, images, (long long)im.dims[0], n); goto done; }
    for (int i = 0; i < n; i++) {
        int y = lb.data[i];
        if (y > 9) { df_err(err, "%s/%s: label %d of image %d is not 0-9", dir, labels, y, i); goto done; }
        Rng r;
        rng_seed_stream(&r, seed, (uint64_t)i, stream);
        int b = y;
        if (rng_uniform(&r) >= rho) b = (y + 1 + (int)rng_below(&r, 9)) % 10;
        int s = at + i;
        c->labels[s] = y;
        c->meta[s] = b;
        const uint8_t *px = im.data + (size_t)i * 784;
        float *img = c->images + (size_t)s * 3 * 784;
        uint8_t *mask = c->masks + (size_t)s * 784;
        for (int p = 0; p < 784; p++) {
            int fg = px[p] != 0;
            mask[p] = (uint8_t)fg;
            for (int ch = 0; ch < 3; ch++) img[(size_t)ch * 784 + p] = fg ? 1.0f : synth_fmnist_colours[b][ch] / 255.0f;
        }
    }
    rc = 0;
done:
    idx_free(&im);
    idx_free(&lb);
    return rc;
}

int synth_biased_fmnist(Cohort *out, const SynthFmnistConfig *cfg, DfError *err) {
    Shape shape = { 3, 1, 28, 28 };
    cohort_alloc(out, cfg->n_train + cfg->n_test, shape, 1);
    cohort_alloc_masks(out);
    out->columns[0] = xstrdup("colour");
    out->kinds[0] = META_CATEGORICAL;
    if (colour_part(out, 0, cfg->dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", cfg->n_train, cfg->rho, cfg->seed, 4, err) ||
        colour_part(out, cfg->n_train, cfg->dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", cfg->n_test, cfg->rho_test,
                    cfg->seed, 5, err)) {
        cohort_free(out);
        return -1;
    }
    return 0;
}
