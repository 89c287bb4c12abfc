// test_conv_pool.c: conv3d (fast vs naive, finite differences, hand-computed values, layer
// build) and max / average / global average pooling.
#include "base/threads.h"
#include "nn/conv3d.h"
#include "nn/layer.h"
#include "nn/pool3d.h"
#include "testutil.h"
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *fbuf(size_t n) { return df_alloc_floats(n); }

static float *frand(size_t n, Rng *rng) { return tu_rand(n, -1.0f, 1.0f, rng); }

// ---- conv: fast vs naive ---------------------------------------------------------------------

typedef struct {
    int B, C, D, H, W, OC;
    int k[3], s[3], p[3];
    int bias, dinp_null;
} ConvCase;

static const ConvCase conv_cases[] = {
    { 1, 2, 5, 6, 7, 3, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },  // "same" padding, odd sizes
    { 3, 3, 7, 5, 9, 4, { 3, 3, 3 }, { 2, 2, 2 }, { 1, 1, 1 }, 0, 0 },  // stride 2
    { 2, 2, 6, 7, 5, 3, { 3, 1, 2 }, { 1, 2, 1 }, { 1, 0, 1 }, 1, 1 },  // non-cubic, dinp NULL
    { 1, 4, 4, 4, 4, 5, { 1, 1, 1 }, { 1, 1, 1 }, { 0, 0, 0 }, 1, 0 },  // pointwise (no col buffer)
    { 3, 4, 3, 5, 4, 2, { 1, 1, 1 }, { 1, 1, 1 }, { 0, 0, 0 }, 0, 1 },  // pointwise, batch 3, dinp NULL
    { 2, 3, 5, 5, 5, 2, { 1, 1, 1 }, { 2, 2, 2 }, { 0, 0, 0 }, 1, 0 },  // 1x1x1 but strided
    { 3, 2, 9, 8, 10, 3, { 2, 3, 3 }, { 2, 1, 2 }, { 0, 1, 1 }, 1, 0 },
    { 2, 2, 4, 5, 3, 2, { 2, 2, 2 }, { 1, 1, 1 }, { 2, 2, 2 }, 1, 0 },  // pad > kernel/2, OW != W
    { 1, 1, 3, 3, 3, 2, { 5, 5, 5 }, { 1, 1, 1 }, { 2, 2, 2 }, 1, 0 },  // kernel wider than the input
    // K*N above the 1M-float column budget: two chunks, the first ending inside an od plane
    { 2, 16, 8, 16, 32, 2, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
    { 1, 3, 5, 9, 70, 2, { 3, 3, 3 }, { 1, 2, 3 }, { 1, 1, 1 }, 0, 0 },  // strided rows
    { 1, 64, 4, 24, 40, 2, { 3, 3, 3 }, { 1, 2, 2 }, { 1, 1, 1 }, 1, 0 },  // strided, two chunks
    // stride 1 with few input channels: the direct kernels' edges (nn/conv3d_direct.c): rows
    // of 64 (whole tiles), 19 and 33 (a partial vector), OW < 16; 16 output channels (one full
    // tile), 17 and 5 (the one-channel remainder tiles); odd H (the last row of a pair); pads
    // 0, 1, 2 and mixed
    { 2, 1, 5, 7, 64, 16, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },  // the BR-Net conv1 shape, small
    { 3, 1, 4, 5, 19, 5, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 0, 0 },
    { 1, 2, 3, 6, 33, 17, { 3, 3, 3 }, { 1, 1, 1 }, { 2, 2, 2 }, 1, 0 },
    { 2, 1, 4, 6, 7, 3, { 3, 3, 3 }, { 1, 1, 1 }, { 0, 0, 0 }, 1, 1 },      // OW = 5, dinp NULL
    { 2, 2, 5, 5, 40, 3, { 2, 3, 3 }, { 1, 1, 1 }, { 1, 0, 2 }, 0, 0 },    // OW = 42
    { 1, 1, 2, 3, 20, 4, { 1, 1, 3 }, { 1, 1, 1 }, { 0, 0, 1 }, 1, 0 },    // kd = kh = 1
    { 3, 2, 4, 3, 16, 2, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },    // H = 3, rows of one vector
    { 2, 1, 4, 5, 32, 11, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },   // 8-channel tiles + 3 remainder
    // bwd-data taking dy's channels 4 at a time, each group through every plane (4 + 2 here);
    // rows of two tiles
    { 2, 2, 3, 5, 128, 6, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 0, 0 },
    // one input channel: a group of 4 through the AVX2 tiles with that loop unrolled
    // (BD_UNROLL), then the 2 left through the others; odd H
    { 2, 1, 3, 5, 64, 6, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
    // bwd-wt partial sums over 1M floats in lanes ((K+1) x OC x 16): each tile sums its lanes
    { 1, 64, 2, 3, 5, 40, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
    // bwd-wt by blocks of planes (rows of whole vecs, OW = 32), here whole samples of 3
    // planes, on 1, 2 and 3 threads (at least 2 samples each); the cases above with such rows
    // take it on 1 thread only. Mixed pads, 0 in depth.
    { 6, 2, 5, 5, 30, 7, { 3, 3, 3 }, { 1, 1, 1 }, { 0, 1, 2 }, 1, 0 },
    // blocks of 8 planes of 32 x 16 x 32 (dy's block within 512 KB), the last one of 2
    { 4, 2, 10, 16, 32, 32, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
    // forward with each 8 x 8 plane as one row of 80 (16 positions computed and dropped): 20
    // channels (a 16-channel tile and 4 single ones), 5 channels; and 6 x 6 planes, whose 48
    // positions end where a vec does
    { 2, 4, 3, 8, 8, 20, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
    { 3, 2, 4, 8, 8, 5, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 0, 0 },
    { 2, 3, 3, 6, 6, 17, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
    // bwd-data as the flat forward of dy with the kernel flipped (conv3d_direct_backward_data_flat),
    // which the 8 x 8 and 6 x 6 cases above take too: a non-cubic kernel, pads 1, 0 and 2 (dy
    // padded by 1, 1 and 0), OW = 11, planes of dx 7 x 9
    { 2, 3, 4, 7, 9, 6, { 3, 2, 3 }, { 1, 1, 1 }, { 1, 0, 2 }, 1, 0 },
    // bwd-wt with 16 samples in the lanes (conv3d_direct_dw_samples_in_lanes), which the flat
    // cases above take when the direct kernels are forced: a batch of 16 (the default rule
    // takes it too), and 17, a group of 16 and one of a single sample
    { 16, 2, 2, 6, 6, 5, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
    { 17, 3, 2, 6, 6, 5, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 0, 1 },
    // the forward and bwd-data with 16 samples in the lanes (the batch of 16 above takes them
    // too): groups of 16 and 12; rows of 11 (a tile of 8 positions and one running 5 past the
    // row) and of dx 9; 5 output channels (tiles of 3 + 2, or 2 + 2 + 1) and 3 input ones
    { 28, 3, 4, 7, 9, 5, { 3, 2, 3 }, { 1, 1, 1 }, { 1, 0, 2 }, 1, 0 },
    // a sample's padded input over 1M floats: by planes on every thread count
    { 1, 40, 30, 30, 16, 2, { 3, 3, 3 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 1 },
};

// threads: the fast kernels' thread count (base/threads.h); each thread gets its workspace slice.
static void conv_compare_case(const ConvCase *c, int idx, int threads) {
    Rng rng;
    rng_seed(&rng, 100 + idx);
    Conv3dGeom g;
    CU_ASSERT_FATAL(conv3d_geom_init(&g, c->C, c->D, c->H, c->W, c->OC, c->k, c->s, c->p) == 0);
    size_t xn = (size_t)c->B * c->C * c->D * c->H * c->W;
    size_t yn = (size_t)c->B * c->OC * g.OD * g.OH * g.OW;
    size_t wn = (size_t)c->OC * c->C * c->k[0] * c->k[1] * c->k[2];
    float *x = frand(xn, &rng), *w = frand(wn, &rng), *b = c->bias ? frand(c->OC, &rng) : NULL;
    float *dy = frand(yn, &rng);
    float *y1 = fbuf(yn), *y2 = fbuf(yn);
    size_t wsn = conv3d_workspace_floats(&g) * (size_t)threads;
    float *ws = fbuf(wsn);
    df_threads_set(threads);
    // the workspace is shared with other layers: it holds garbage on every call
    for (size_t i = 0; i < wsn; i++) ws[i] = 1e30f;
    // poison the outputs: forward must overwrite, not accumulate
    for (size_t i = 0; i < yn; i++) y1[i] = y2[i] = 7.0f;
    conv3d_forward_naive(y1, x, w, b, c->B, &g);
    conv3d_forward(y2, x, w, b, c->B, &g, ws, threads);
    char what[64];
    snprintf(what, sizeof what, "conv case %d forward, %d threads", idx, threads);
    TU_ASSERT_CLOSE(y2, y1, yn, 1e-4, 1e-4, what);
    // gradients start non-zero: backward must add (+=)
    float *dx1 = c->dinp_null ? NULL : frand(xn, &rng), *dx2 = dx1 ? tu_copy(dx1, xn) : NULL;
    float *dw1 = frand(wn, &rng), *dw2 = tu_copy(dw1, wn);
    float *db1 = c->bias ? frand(c->OC, &rng) : NULL, *db2 = db1 ? tu_copy(db1, c->OC) : NULL;
    conv3d_backward_naive(dx1, dw1, db1, dy, x, w, c->B, &g);
    for (size_t i = 0; i < wsn; i++) ws[i] = NAN;  // a read of it that is not overwritten first shows
    conv3d_backward(dx2, dw2, db2, dy, x, w, c->B, &g, ws, threads);
    snprintf(what, sizeof what, "conv case %d dweight", idx);
    TU_ASSERT_CLOSE(dw2, dw1, wn, 1e-4, 1e-4, what);
    if (db1) {
        snprintf(what, sizeof what, "conv case %d dbias", idx);
        TU_ASSERT_CLOSE(db2, db1, c->OC, 1e-4, 1e-4, what);
    }
    if (dx1) {
        snprintf(what, sizeof what, "conv case %d dinp", idx);
        TU_ASSERT_CLOSE(dx2, dx1, xn, 1e-4, 1e-4, what);
    }
    df_threads_set(1);
    free(x); free(w); free(b); free(dy); free(y1); free(y2); free(ws);
    free(dx1); free(dx2); free(dw1); free(dw2); free(db1); free(db2);
}

// 1 thread, and 2 and 3 threads (work split over samples, row chunks or planes; the weight
// gradient summed per thread): every count must equal the naive loops to rounding. Each kernel
// choice: the default rule, GEMM and the direct kernels forced wherever they apply, the latter
// at each instruction-set level (capped at what this CPU has).
static void test_conv_fast_vs_naive(void) {
    static const int modes[][2] = { { CONV3D_AUTO, 0 }, { CONV3D_GEMM, 0 }, { CONV3D_DIRECT, 4 },
                                    { CONV3D_DIRECT, 3 }, { CONV3D_DIRECT, 2 } };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        conv3d_set_kernels(modes[m][0], modes[m][1]);
        for (int t = 1; t <= 3; t++)
            for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
                conv_compare_case(&conv_cases[i], (int)i, t);
    }
    conv3d_set_kernels(CONV3D_AUTO, 0);
}

// The chunked fast path must give the same answer whatever the batch split: B samples at
// once equals B calls of one sample (the workspace is reused across samples and chunks).
static void test_conv_batch_consistency(void) {
    const ConvCase *c = &conv_cases[9];
    Rng rng;
    rng_seed(&rng, 7);
    Conv3dGeom g;
    CU_ASSERT_FATAL(conv3d_geom_init(&g, c->C, c->D, c->H, c->W, c->OC, c->k, c->s, c->p) == 0);
    size_t xs = (size_t)c->C * c->D * c->H * c->W, ys = (size_t)c->OC * g.OD * g.OH * g.OW;
    size_t wn = (size_t)c->OC * c->C * 27;
    float *x = frand(2 * xs, &rng), *w = frand(wn, &rng), *b = frand(c->OC, &rng);
    float *ya = fbuf(2 * ys), *yb = fbuf(2 * ys), *ws = fbuf(conv3d_workspace_floats(&g));
    conv3d_forward(ya, x, w, b, 2, &g, ws, 1);
    conv3d_forward(yb + ys, x + xs, w, b, 1, &g, ws, 1);
    conv3d_forward(yb, x, w, b, 1, &g, ws, 1);
    CU_ASSERT(memcmp(ya, yb, 2 * ys * sizeof(float)) == 0);
    free(x); free(w); free(b); free(ya); free(yb); free(ws);
}

// ---- conv: hand-computed values --------------------------------------------------------------

static void conv_both(float *out_naive, float *out_fast, const float *x, const float *w, const float *b, int B,
                      const Conv3dGeom *g) {
    float *ws = fbuf(conv3d_workspace_floats(g));
    conv3d_forward_naive(out_naive, x, w, b, B, g);
    conv3d_forward(out_fast, x, w, b, B, g, ws, 1);
    free(ws);
}

static void test_conv_hand_values(void) {
    // all ones, 2 channels of 3x3x3, one 3x3x3 all-ones filter, pad 1, bias 0.5: each output
    // counts the in-bounds neighbours: 2 per axis on a border, 3 inside.
    {
        int k[3] = { 3, 3, 3 }, s[3] = { 1, 1, 1 }, p[3] = { 1, 1, 1 };
        Conv3dGeom g;
        CU_ASSERT_FATAL(conv3d_geom_init(&g, 2, 3, 3, 3, 1, k, s, p) == 0);
        CU_ASSERT(g.OD == 3 && g.OH == 3 && g.OW == 3);
        float x[54], w[54], b = 0.5f, y1[27], y2[27];
        for (int i = 0; i < 54; i++) x[i] = w[i] = 1.0f;
        conv_both(y1, y2, x, w, &b, 1, &g);
        CU_ASSERT_DOUBLE_EQUAL(y1[0], 16.5, 1e-6);    // corner: 2 * 2*2*2 + 0.5
        CU_ASSERT_DOUBLE_EQUAL(y1[1], 24.5, 1e-6);    // edge: 2 * 2*2*3
        CU_ASSERT_DOUBLE_EQUAL(y1[4], 36.5, 1e-6);    // face centre: 2 * 2*3*3
        CU_ASSERT_DOUBLE_EQUAL(y1[13], 54.5, 1e-6);   // centre: 2 * 27
        for (int d = 0; d < 3; d++)
            for (int h = 0; h < 3; h++)
                for (int ww = 0; ww < 3; ww++) {
                    int n = (d == 1 ? 3 : 2) * (h == 1 ? 3 : 2) * (ww == 1 ? 3 : 2);
                    CU_ASSERT_DOUBLE_EQUAL(y1[(d * 3 + h) * 3 + ww], 2 * n + 0.5, 1e-6);
                    CU_ASSERT_DOUBLE_EQUAL(y2[(d * 3 + h) * 3 + ww], 2 * n + 0.5, 1e-6);
                }
    }
    // cross-correlation, not convolution (the kernel is not flipped), as PyTorch:
    // x = [1,2,3], w = [1,10,100], pad 1 -> [0*1+1*10+2*100, 1+20+300, 2+30+0]
    {
        int k[3] = { 1, 1, 3 }, s[3] = { 1, 1, 1 }, p[3] = { 0, 0, 1 };
        Conv3dGeom g;
        CU_ASSERT_FATAL(conv3d_geom_init(&g, 1, 1, 1, 3, 1, k, s, p) == 0);
        float x[3] = { 1, 2, 3 }, w[3] = { 1, 10, 100 }, y1[3], y2[3];
        conv_both(y1, y2, x, w, NULL, 1, &g);
        const float want[3] = { 210, 321, 32 };
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_DOUBLE_EQUAL(y1[i], want[i], 1e-5);
            CU_ASSERT_DOUBLE_EQUAL(y2[i], want[i], 1e-5);
        }
    }
    // kernel 2 stride 2 on x[i] = i over 4x4x4: each output is the sum of its 2x2x2 block
    {
        int k[3] = { 2, 2, 2 }, s[3] = { 2, 2, 2 }, p[3] = { 0, 0, 0 };
        Conv3dGeom g;
        CU_ASSERT_FATAL(conv3d_geom_init(&g, 1, 4, 4, 4, 1, k, s, p) == 0);
        float x[64], w[8], y1[8], y2[8];
        for (int i = 0; i < 64; i++) x[i] = (float)i;
        for (int i = 0; i < 8; i++) w[i] = 1.0f;
        conv_both(y1, y2, x, w, NULL, 1, &g);
        for (int od = 0; od < 2; od++)
            for (int oh = 0; oh < 2; oh++)
                for (int ow = 0; ow < 2; ow++) {
                    double sum = 0;
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++)
                            for (int e = 0; e < 2; e++) sum += ((2 * od + a) * 4 + 2 * oh + b) * 4 + 2 * ow + e;
                    CU_ASSERT_DOUBLE_EQUAL(y1[(od * 2 + oh) * 2 + ow], sum, 1e-5);
                    CU_ASSERT_DOUBLE_EQUAL(y2[(od * 2 + oh) * 2 + ow], sum, 1e-5);
                }
        CU_ASSERT_DOUBLE_EQUAL(y1[0], 0 + 1 + 4 + 5 + 16 + 17 + 20 + 21, 1e-6);
    }
}

static void test_conv_geom(void) {
    Conv3dGeom g;
    int k3[3] = { 3, 3, 3 }, s1[3] = { 1, 1, 1 }, s2[3] = { 2, 2, 2 }, p0[3] = { 0, 0, 0 }, p1[3] = { 1, 1, 1 };
    CU_ASSERT(conv3d_geom_init(&g, 1, 7, 8, 9, 2, k3, s2, p1) == 0);
    CU_ASSERT(g.OD == 4 && g.OH == 4 && g.OW == 5);  // floor((n + 2 - 3) / 2) + 1
    CU_ASSERT(conv3d_geom_init(&g, 1, 3, 3, 3, 2, k3, s1, p0) == 0);
    CU_ASSERT(g.OD == 1 && g.OH == 1 && g.OW == 1);
    CU_ASSERT(conv3d_geom_init(&g, 1, 2, 3, 3, 2, k3, s1, p0) == -1);  // kernel larger than the input
    CU_ASSERT(conv3d_geom_init(&g, 1, 1, 1, 1, 2, k3, s2, p0) == -1);
    int bad_s[3] = { 1, 0, 1 }, bad_p[3] = { 0, -1, 0 }, bad_k[3] = { 3, 0, 3 };
    CU_ASSERT(conv3d_geom_init(&g, 1, 5, 5, 5, 2, k3, bad_s, p0) == -1);
    CU_ASSERT(conv3d_geom_init(&g, 1, 5, 5, 5, 2, k3, s1, bad_p) == -1);
    CU_ASSERT(conv3d_geom_init(&g, 1, 5, 5, 5, 2, bad_k, s1, p0) == -1);
    CU_ASSERT(conv3d_geom_init(&g, 0, 5, 5, 5, 2, k3, s1, p0) == -1);
    CU_ASSERT(conv3d_geom_init(&g, 1, 5, 5, 5, 0, k3, s1, p0) == -1);
    int k1[3] = { 1, 1, 1 };
    CU_ASSERT(conv3d_geom_init(&g, 3, 5, 5, 5, 2, k1, s1, p0) == 0);
    CU_ASSERT(conv3d_workspace_floats(&g) == 0);  // pointwise: the input is the column matrix
    CU_ASSERT(conv3d_geom_init(&g, 3, 5, 5, 5, 2, k3, s1, p1) == 0);
    CU_ASSERT(conv3d_workspace_floats(&g) >= (size_t)3 * 27 * 5);  // at least one output row
}

// ---- finite differences ----------------------------------------------------------------------

typedef enum { FD_CONV_NAIVE, FD_CONV_FAST, FD_MAXPOOL, FD_AVGPOOL, FD_GAP } FdKind;

typedef struct {
    FdKind kind;
    int B;
    Conv3dGeom cg;
    Pool3dGeom pg;
    int C;
    size_t S;
    float *x, *w, *b, *y, *r, *ws;
    int32_t *am;
    size_t yn;
} FdCtx;

static void fd_forward(FdCtx *c) {
    switch (c->kind) {
    case FD_CONV_NAIVE: conv3d_forward_naive(c->y, c->x, c->w, c->b, c->B, &c->cg); break;
    case FD_CONV_FAST: conv3d_forward(c->y, c->x, c->w, c->b, c->B, &c->cg, c->ws, 1); break;
    case FD_MAXPOOL: maxpool3d_forward(c->y, c->am, c->x, c->B, &c->pg); break;
    case FD_AVGPOOL: avgpool3d_forward(c->y, c->x, c->B, &c->pg); break;
    case FD_GAP: global_avgpool_forward(c->y, c->x, c->B, c->C, c->S); break;
    }
}

static double fd_loss(void *ctx) {
    FdCtx *c = ctx;
    fd_forward(c);
    return tu_dot(c->y, c->r, c->yn);
}

// direct: a stride-1 geometry through the direct kernels (the strided one cannot use them)
static void conv_fd(FdKind kind, int direct) {
    Rng rng;
    rng_seed(&rng, 31 + kind);
    FdCtx c = { .kind = kind, .B = 2 };
    int k[3] = { 3, 2, 3 }, s[3] = { 2, 1, 1 }, p[3] = { 1, 1, 0 };
    if (direct) s[0] = 1, p[2] = 1;
    CU_ASSERT_FATAL(conv3d_geom_init(&c.cg, 2, 5, 4, 6, 3, k, s, p) == 0);
    conv3d_set_kernels(direct ? CONV3D_DIRECT : CONV3D_AUTO, 0);
    size_t xn = (size_t)c.B * 2 * 5 * 4 * 6, wn = 3 * 2 * 18;
    c.yn = (size_t)c.B * 3 * c.cg.OD * c.cg.OH * c.cg.OW;
    c.x = frand(xn, &rng); c.w = frand(wn, &rng); c.b = frand(3, &rng);
    c.y = fbuf(c.yn); c.r = frand(c.yn, &rng); c.ws = fbuf(conv3d_workspace_floats(&c.cg));
    float *dx = fbuf(xn), *dw = fbuf(wn), *db = fbuf(3);
    // loss = <y, r>, so dL/dy = r
    if (kind == FD_CONV_NAIVE)
        conv3d_backward_naive(dx, dw, db, c.r, c.x, c.w, c.B, &c.cg);
    else
        conv3d_backward(dx, dw, db, c.r, c.x, c.w, c.B, &c.cg, c.ws, 1);
    // the loss is linear in each tensor, so a large step costs no truncation error
    CU_ASSERT(tu_fd_check(fd_loss, &c, c.x, dx, xn, 60, 1e-2, 1e-3, 1e-3, "conv dinp") <= 1.0);
    CU_ASSERT(tu_fd_check(fd_loss, &c, c.w, dw, wn, 60, 1e-2, 1e-3, 1e-3, "conv dweight") <= 1.0);
    CU_ASSERT(tu_fd_check(fd_loss, &c, c.b, db, 3, 3, 1e-2, 1e-3, 1e-3, "conv dbias") <= 1.0);
    conv3d_set_kernels(CONV3D_AUTO, 0);
    free(c.x); free(c.w); free(c.b); free(c.y); free(c.r); free(c.ws); free(dx); free(dw); free(db);
}

static void test_conv_fd_naive(void) { conv_fd(FD_CONV_NAIVE, 0); }
static void test_conv_fd_fast(void) { conv_fd(FD_CONV_FAST, 0); }
static void test_conv_fd_direct(void) { conv_fd(FD_CONV_FAST, 1); }

static void pool_fd(FdKind kind, const int k[3], const int s[3], const int p[3], int D, int H, int W) {
    Rng rng;
    rng_seed(&rng, 77 + kind);
    FdCtx c = { .kind = kind, .B = 2, .C = 2 };
    size_t xn;
    if (kind == FD_GAP) {
        c.S = (size_t)D * H * W;
        xn = (size_t)c.B * c.C * c.S;
        c.yn = (size_t)c.B * c.C;
    } else {
        CU_ASSERT_FATAL(pool3d_geom_init(&c.pg, c.C, D, H, W, k, s, p) == 0);
        xn = (size_t)c.B * c.C * D * H * W;
        c.yn = (size_t)c.B * c.C * c.pg.OD * c.pg.OH * c.pg.OW;
    }
    c.x = kind == FD_MAXPOOL ? tu_ramp(xn, &rng) : frand(xn, &rng);
    c.y = fbuf(c.yn);
    c.r = frand(c.yn, &rng);
    c.am = xmalloc(c.yn * sizeof(int32_t));
    float *dx = fbuf(xn);
    fd_forward(&c);
    if (kind == FD_MAXPOOL) maxpool3d_backward(dx, c.r, c.am, c.B, &c.pg);
    if (kind == FD_AVGPOOL) avgpool3d_backward(dx, c.r, c.B, &c.pg);
    if (kind == FD_GAP) global_avgpool_backward(dx, c.r, c.B, c.C, c.S);
    CU_ASSERT(tu_fd_check(fd_loss, &c, c.x, dx, xn, xn, 1e-3, 1e-3, 1e-3, "pool dinp") <= 1.0);
    free(c.x); free(c.y); free(c.r); free(c.am); free(dx);
}

static void test_maxpool_fd(void) {
    int k2[3] = { 2, 2, 2 }, k3[3] = { 3, 3, 2 }, s2[3] = { 2, 2, 2 }, s21[3] = { 2, 1, 2 };
    int p0[3] = { 0, 0, 0 }, p1[3] = { 1, 1, 1 };
    pool_fd(FD_MAXPOOL, k2, s2, p0, 5, 4, 6);   // fast path, odd depth dropped
    pool_fd(FD_MAXPOOL, k3, s21, p1, 5, 4, 6);  // general path with padding, overlapping windows
}

static void test_avgpool_fd(void) {
    int k3[3] = { 3, 2, 3 }, s[3] = { 2, 1, 2 }, p[3] = { 1, 1, 1 };
    pool_fd(FD_AVGPOOL, k3, s, p, 5, 4, 6);
    int k2[3] = { 2, 2, 2 }, p0[3] = { 0, 0, 0 };
    pool_fd(FD_AVGPOOL, k2, k2, p0, 4, 4, 5);
}

static void test_gap_fd(void) { pool_fd(FD_GAP, NULL, NULL, NULL, 3, 4, 5); }

// ---- pooling values --------------------------------------------------------------------------

static void test_pool_geom(void) {
    Pool3dGeom g;
    int k2[3] = { 2, 2, 2 }, k3[3] = { 3, 3, 3 }, p0[3] = { 0, 0, 0 }, p1[3] = { 1, 1, 1 }, p2[3] = { 2, 2, 2 };
    CU_ASSERT(pool3d_geom_init(&g, 1, 5, 6, 7, k2, k2, p0) == 0);
    CU_ASSERT(g.OD == 2 && g.OH == 3 && g.OW == 3);
    CU_ASSERT(pool3d_geom_init(&g, 1, 5, 6, 7, k2, k2, p1) == 0);  // pad = k/2 is allowed
    CU_ASSERT(g.OD == 3 && g.OH == 4 && g.OW == 4);
    CU_ASSERT(pool3d_geom_init(&g, 1, 5, 6, 7, k3, k2, p2) == -1);  // pad > k/2, as PyTorch refuses
    CU_ASSERT(pool3d_geom_init(&g, 1, 1, 6, 7, k2, k2, p0) == -1);  // empty output
    CU_ASSERT(pool3d_geom_init(&g, 1, 3, 3, 3, k3, k2, p1) == 0);
    CU_ASSERT(g.OD == 2);
}

static void test_maxpool_values(void) {
    // 2x2x2 -> 1: max and its offset, plus routing of the gradient
    int k2[3] = { 2, 2, 2 }, p0[3] = { 0, 0, 0 };
    Pool3dGeom g;
    CU_ASSERT_FATAL(pool3d_geom_init(&g, 1, 2, 2, 2, k2, k2, p0) == 0);
    float x[8] = { 1, 5, 3, -2, 4, 9, 0, 2 }, y, dx[8] = { 0 }, dy = 2.5f;
    int32_t am;
    maxpool3d_forward(&y, &am, x, 1, &g);
    CU_ASSERT_DOUBLE_EQUAL(y, 9.0, 0);
    CU_ASSERT_EQUAL(am, 5);
    maxpool3d_backward(dx, &dy, &am, 1, &g);
    CU_ASSERT_DOUBLE_EQUAL(dx[5], 2.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(dx[0] + dx[1] + dx[2] + dx[3] + dx[4] + dx[6] + dx[7], 0.0, 0);
    // padding acts as -inf: all-negative input, kernel 3 stride 2 pad 1 on 3x3x3
    int k3[3] = { 3, 3, 3 }, p1[3] = { 1, 1, 1 };
    CU_ASSERT_FATAL(pool3d_geom_init(&g, 1, 3, 3, 3, k3, k2, p1) == 0);
    float xn[27], yn[8];
    int32_t amn[8];
    for (int i = 0; i < 27; i++) xn[i] = -100.0f + (float)i;  // max of a window = its last element
    maxpool3d_forward(yn, amn, xn, 1, &g);
    CU_ASSERT_DOUBLE_EQUAL(yn[0], -100.0 + 13, 0);  // window [0,1]^3 -> element (1,1,1) = 13
    CU_ASSERT_EQUAL(amn[0], 13);
    CU_ASSERT_DOUBLE_EQUAL(yn[7], -100.0 + 26, 0);  // window [1,2]^3 -> element 26
    CU_ASSERT_EQUAL(amn[7], 26);
    // a window of -inf still points inside itself (backward must not touch another element)
    for (int i = 0; i < 27; i++) xn[i] = -INFINITY;
    maxpool3d_forward(yn, amn, xn, 1, &g);
    CU_ASSERT(isinf(yn[7]) && yn[7] < 0);
    CU_ASSERT_EQUAL(amn[7], 13);  // window [1,2]^3 starts at (1,1,1)
    // ties: the first element in scan order wins (PyTorch's rule)
    CU_ASSERT_FATAL(pool3d_geom_init(&g, 1, 2, 2, 2, k2, k2, p0) == 0);
    float xt[8] = { 0, 3, 1, 3, 3, 0, 0, 0 };
    maxpool3d_forward(&y, &am, xt, 1, &g);
    CU_ASSERT_EQUAL(am, 1);
}

// The kernel-2 stride-2 fast path against the general loops, on odd sizes and with many ties
// (values from a small set), which must resolve identically; backward accumulates.
static void test_maxpool_fast_vs_general(void) {
    Rng rng;
    rng_seed(&rng, 5);
    int k2[3] = { 2, 2, 2 }, p0[3] = { 0, 0, 0 };
    const int dims[][3] = { { 7, 9, 5 }, { 8, 8, 8 }, { 2, 3, 2 } };
    for (int t = 0; t < 3; t++) {
        Pool3dGeom g;
        CU_ASSERT_FATAL(pool3d_geom_init(&g, 3, dims[t][0], dims[t][1], dims[t][2], k2, k2, p0) == 0);
        int B = 2;
        size_t xn = (size_t)B * 3 * dims[t][0] * dims[t][1] * dims[t][2], yn = (size_t)B * 3 * g.OD * g.OH * g.OW;
        float *x = fbuf(xn), *y1 = fbuf(yn), *y2 = fbuf(yn);
        for (size_t i = 0; i < xn; i++) x[i] = (float)rng_below(&rng, 5);  // lots of ties
        int32_t *a1 = xmalloc(yn * sizeof(int32_t)), *a2 = xmalloc(yn * sizeof(int32_t));
        maxpool3d_forward_naive(y1, a1, x, B, &g);
        maxpool3d_forward(y2, a2, x, B, &g);
        CU_ASSERT(memcmp(y1, y2, yn * sizeof(float)) == 0);
        CU_ASSERT(memcmp(a1, a2, yn * sizeof(int32_t)) == 0);
        // backward adds into what is there
        float *dy = frand(yn, &rng), *dx = frand(xn, &rng), *dx0 = tu_copy(dx, xn);
        maxpool3d_backward(dx, dy, a2, B, &g);
        size_t plane = (size_t)dims[t][0] * dims[t][1] * dims[t][2], oplane = (size_t)g.OD * g.OH * g.OW;
        for (size_t i = 0; i < yn; i++) dx0[(i / oplane) * plane + a1[i]] += dy[i];
        TU_ASSERT_CLOSE(dx, dx0, xn, 1e-6, 1e-6, "maxpool backward");
        free(x); free(y1); free(y2); free(a1); free(a2); free(dy); free(dx); free(dx0);
    }
}

static void test_avgpool_values(void) {
    // AvgPool3d(3, stride 1, padding 1) of ones: padding counts in the divisor, so a corner
    // is 8/27, an edge 12/27, a face centre 18/27 and the centre 1
    int k3[3] = { 3, 3, 3 }, s1[3] = { 1, 1, 1 }, p1[3] = { 1, 1, 1 };
    Pool3dGeom g;
    CU_ASSERT_FATAL(pool3d_geom_init(&g, 1, 3, 3, 3, k3, s1, p1) == 0);
    float x[27], y[27], dx[27] = { 0 }, dy[27];
    for (int i = 0; i < 27; i++) { x[i] = 1.0f; dy[i] = 1.0f; }
    avgpool3d_forward(y, x, 1, &g);
    CU_ASSERT_DOUBLE_EQUAL(y[0], 8.0 / 27, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(y[1], 12.0 / 27, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(y[4], 18.0 / 27, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(y[13], 1.0, 1e-6);
    // the adjoint: every input is in the same number of windows as an output has inputs
    avgpool3d_backward(dx, dy, 1, &g);
    CU_ASSERT_DOUBLE_EQUAL(dx[0], 8.0 / 27, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(dx[13], 1.0, 1e-6);
    // global average: mean of 1..6 and of -1..-6
    float xg[12], yg[2], dyg[2] = { 6.0f, -12.0f }, dxg[12];
    for (int i = 0; i < 6; i++) { xg[i] = (float)(i + 1); xg[6 + i] = -(float)(i + 1); }
    for (int i = 0; i < 12; i++) dxg[i] = 1.0f;
    global_avgpool_forward(yg, xg, 2, 1, 6);
    CU_ASSERT_DOUBLE_EQUAL(yg[0], 3.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(yg[1], -3.5, 1e-6);
    global_avgpool_backward(dxg, dyg, 1, 2, 6);  // same memory seen as B = 1, C = 2
    CU_ASSERT_DOUBLE_EQUAL(dxg[0], 2.0, 1e-6);   // 1 + 6/6
    CU_ASSERT_DOUBLE_EQUAL(dxg[11], -1.0, 1e-6); // 1 - 12/6
}

// ---- LayerOps --------------------------------------------------------------------------------

// Layers built with the shared fixture (testutil.h, tu_layer_build).

static void test_conv_layer_build(void) {
    TuLayer b;
    int b_rc;
    Shape in = { 2, 6, 5, 4 };
    b_rc = tu_layer_build(&b, "[conv3d]\nout = 4\nkernel = 3\npad = 1\n", in, 2, NULL, NULL);
    CU_ASSERT_FATAL(b_rc == 0);
    CU_ASSERT(b.L.out_shape.c == 4 && b.L.out_shape.d == 6 && b.L.out_shape.h == 5 && b.L.out_shape.w == 4);
    CU_ASSERT(b.L.n_params == (size_t)4 * 2 * 27 + 4);
    CU_ASSERT_FATAL(b.L.n_params_info == 2);
    CU_ASSERT_STRING_EQUAL(b.L.params_info[0].name, "weight");
    CU_ASSERT(b.L.params_info[0].ndim == 5 && b.L.params_info[0].dims[0] == 4 && b.L.params_info[0].dims[1] == 2 &&
              b.L.params_info[0].dims[4] == 3);
    CU_ASSERT_STRING_EQUAL(b.L.params_info[1].name, "bias");
    CU_ASSERT(b.L.params_info[1].count == 4);
    CU_ASSERT(b.L.workspace_floats > 0);
    CU_ASSERT(ini_check_unused(&b.ini, &b.err) == 0);
    // init: PyTorch default bound 1/sqrt(fan_in), fan_in = 2*27
    float *params = fbuf(b.L.n_params), *grads = fbuf(b.L.n_params);
    b.L.params = params;
    b.L.grads = grads;
    Rng rng;
    rng_seed(&rng, 3);
    b.L.ops->init(&b.L, &rng);
    double bound = 1.0 / sqrt(54.0), maxabs = 0;
    for (size_t i = 0; i < b.L.n_params; i++) maxabs = fmax(maxabs, fabs(params[i]));
    CU_ASSERT(maxabs <= bound && maxabs > 0.5 * bound);
    // forward / backward through the table equal the plain functions
    size_t xn = 2 * shape_numel(in), yn = 2 * shape_numel(b.L.out_shape);
    float *x = frand(xn, &rng), *y = fbuf(yn), *yref = fbuf(yn), *dy = frand(yn, &rng);
    float *dx = fbuf(xn), *dxref = fbuf(xn), *gref = fbuf(b.L.n_params);
    b.ctx.workspace_floats = b.L.workspace_floats;
    b.ctx.workspace = fbuf(b.ctx.workspace_floats);
    b.L.in = x; b.L.out = y; b.L.dout = dy; b.L.din = dx;
    tu_layer_forward(&b, 2, 1);
    tu_layer_backward(&b, 2);
    const float *w = params + b.L.params_info[0].offset, *bias = params + b.L.params_info[1].offset;
    Conv3dGeom g;
    int k[3] = { 3, 3, 3 }, s1[3] = { 1, 1, 1 }, p1[3] = { 1, 1, 1 };
    CU_ASSERT_FATAL(conv3d_geom_init(&g, 2, 6, 5, 4, 4, k, s1, p1) == 0);
    conv3d_forward_naive(yref, x, w, bias, 2, &g);
    conv3d_backward_naive(dxref, gref + b.L.params_info[0].offset, gref + b.L.params_info[1].offset, dy, x, w, 2, &g);
    TU_ASSERT_CLOSE(y, yref, yn, 1e-5, 1e-4, "conv layer forward");
    TU_ASSERT_CLOSE(dx, dxref, xn, 1e-5, 1e-4, "conv layer dinp");
    TU_ASSERT_CLOSE(grads, gref, b.L.n_params, 1e-5, 1e-4, "conv layer grads");
    free(x); free(y); free(yref); free(dy); free(dx); free(dxref); free(gref);
    free(params); free(grads); free(b.ctx.workspace);
    tu_layer_free(&b);

    // no bias, non-cubic kernel and stride, xavier init
    b_rc = tu_layer_build(&b, "[conv3d]\nout = 3\nkernel = 3,1,2\nstride = 2,1,1\nbias = false\ninit = xavier_uniform\n",
                in, 2, NULL, NULL);
    CU_ASSERT_FATAL(b_rc == 0);
    CU_ASSERT(b.L.n_params == (size_t)3 * 2 * 6 && b.L.n_params_info == 1);
    CU_ASSERT(b.L.params_info[0].dims[2] == 3 && b.L.params_info[0].dims[3] == 1 && b.L.params_info[0].dims[4] == 2);
    CU_ASSERT(b.L.out_shape.c == 3 && b.L.out_shape.d == 2 && b.L.out_shape.h == 5 && b.L.out_shape.w == 3);
    CU_ASSERT(ini_check_unused(&b.ini, &b.err) == 0);
    tu_layer_free(&b);

    // pointwise: no workspace
    b_rc = tu_layer_build(&b, "[conv3d]\nout = 3\nkernel = 1\n", in, 2, NULL, NULL);
    CU_ASSERT(b_rc == 0 && b.L.workspace_floats == 0);
    tu_layer_free(&b);
}

static void expect_build_error(const char *text, Shape in, const char *want1, const char *want2) {
    TuLayer b;
    int b_rc;
    b_rc = tu_layer_build(&b, text, in, 2, NULL, NULL);
    CU_ASSERT(b_rc == -1);
    if (b_rc == -1) {
        CU_ASSERT(strstr(b.err.msg, want1) != NULL);
        if (want2) CU_ASSERT(strstr(b.err.msg, want2) != NULL);
        if (!strstr(b.err.msg, want1) || (want2 && !strstr(b.err.msg, want2)))
            fprintf(stderr, "  unexpected message: %s\n", b.err.msg);
    }
    tu_layer_free(&b);
}

static void test_conv_layer_errors(void) {
    Shape in = { 1, 3, 3, 3 };
    // kernel larger than the (unpadded) input: names the kernel line
    expect_build_error("[conv3d]\nout = 4\nkernel = 5\n", in, "test.ini:3", "kernel");
    // missing `out`: names the section line
    expect_build_error("[conv3d]\nkernel = 3\n", in, "test.ini:1", "out");
    expect_build_error("[conv3d]\nout = 0\n", in, "test.ini:2", "out");
    expect_build_error("[conv3d]\nout = 2\nkernel = 3,3\n", in, "test.ini:3", "1 or 3");
    expect_build_error("[conv3d]\nout = 2\nstride = 0\n", in, "test.ini:3", "stride");
    expect_build_error("[conv3d]\nout = 2\npad = -1\n", in, "test.ini:3", "pad");
    expect_build_error("[conv3d]\nout = 2\ninit = magic\n", in, "test.ini:3", "init");
    expect_build_error("[conv3d]\nout = 2\nbias = maybe\n", in, "test.ini:3", "bias");
}

static void test_pool_layers(void) {
    Shape in = { 3, 8, 7, 6 };
    TuLayer b;
    int b_rc;
    b_rc = tu_layer_build(&b, "[maxpool3d]\nkernel = 2\n", in, 2, NULL, NULL);
    CU_ASSERT_FATAL(b_rc == 0);
    CU_ASSERT(b.L.out_shape.c == 3 && b.L.out_shape.d == 4 && b.L.out_shape.h == 3 && b.L.out_shape.w == 3);
    CU_ASSERT(b.L.n_params == 0);
    CU_ASSERT(ini_check_unused(&b.ini, &b.err) == 0);
    {
        // forward/backward through the table on a full batch of max_batch samples
        Rng rng;
        rng_seed(&rng, 11);
        size_t xn = 2 * shape_numel(in), yn = 2 * shape_numel(b.L.out_shape);
        float *x = tu_ramp(xn, &rng), *y = fbuf(yn), *dy = frand(yn, &rng), *dx = fbuf(xn);
        b.L.in = x; b.L.out = y; b.L.dout = dy; b.L.din = dx;
        tu_layer_forward(&b, 2, 1);
        tu_layer_backward(&b, 2);
        double sx = 0, sy = 0;  // every dout lands somewhere exactly once
        for (size_t i = 0; i < xn; i++) sx += dx[i];
        for (size_t i = 0; i < yn; i++) sy += dy[i];
        CU_ASSERT_DOUBLE_EQUAL(sx, sy, 1e-4);
        free(x); free(y); free(dy); free(dx);
    }
    tu_layer_free(&b);

    b_rc = tu_layer_build(&b, "[maxpool3d]\nkernel = 3,3,2\nstride = 2\npad = 1,1,0\n", in, 1, NULL, NULL);
    CU_ASSERT(b_rc == 0);
    CU_ASSERT(b.L.out_shape.d == 4 && b.L.out_shape.h == 4 && b.L.out_shape.w == 3);
    tu_layer_free(&b);

    b_rc = tu_layer_build(&b, "[avgpool3d]\nkernel = 2\nstride = 1\n", in, 1, NULL, NULL);
    CU_ASSERT(b_rc == 0);
    CU_ASSERT(b.L.out_shape.c == 3 && b.L.out_shape.d == 7 && b.L.out_shape.h == 6 && b.L.out_shape.w == 5);
    CU_ASSERT(ini_check_unused(&b.ini, &b.err) == 0);
    tu_layer_free(&b);

    b_rc = tu_layer_build(&b, "[global_avgpool]\n", in, 1, NULL, NULL);
    CU_ASSERT(b_rc == 0);
    CU_ASSERT(b.L.out_shape.c == 3 && b.L.out_shape.d == 1 && b.L.out_shape.h == 1 && b.L.out_shape.w == 1);
    tu_layer_free(&b);

    expect_build_error("[maxpool3d]\nstride = 2\n", in, "test.ini:1", "kernel");
    expect_build_error("[maxpool3d]\nkernel = 3\npad = 2\n", in, "test.ini:3", "pad");
    expect_build_error("[avgpool3d]\nkernel = 9\n", in, "test.ini:2", "kernel");
    expect_build_error("[avgpool3d]\nkernel = 2,2\n", in, "test.ini:2", "1 or 3");
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite conv = CU_add_suite("conv3d", NULL, NULL);
    CU_add_test(conv, "geometry", test_conv_geom);
    CU_add_test(conv, "hand-computed values", test_conv_hand_values);
    CU_add_test(conv, "fast vs naive, forward and backward", test_conv_fast_vs_naive);
    CU_add_test(conv, "batch split consistency", test_conv_batch_consistency);
    CU_add_test(conv, "finite differences (naive)", test_conv_fd_naive);
    CU_add_test(conv, "finite differences (fast)", test_conv_fd_fast);
    CU_add_test(conv, "finite differences (direct)", test_conv_fd_direct);
    CU_add_test(conv, "layer build", test_conv_layer_build);
    CU_add_test(conv, "layer build errors", test_conv_layer_errors);
    CU_pSuite pool = CU_add_suite("pool3d", NULL, NULL);
    CU_add_test(pool, "geometry", test_pool_geom);
    CU_add_test(pool, "maxpool values", test_maxpool_values);
    CU_add_test(pool, "maxpool k2s2 fast vs general", test_maxpool_fast_vs_general);
    CU_add_test(pool, "maxpool finite differences", test_maxpool_fd);
    CU_add_test(pool, "avgpool and global avgpool values", test_avgpool_values);
    CU_add_test(pool, "avgpool finite differences", test_avgpool_fd);
    CU_add_test(pool, "global avgpool finite differences", test_gap_fd);
    CU_add_test(pool, "layer tables", test_pool_layers);
    return tu_run_all();
}
