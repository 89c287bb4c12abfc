// conv3d.c: 3D convolution (PyTorch Conv3d, groups = 1, no dilation), naive and fast.
//
// The fast path is the classic vol2col + GEMM (OpenBLAS sgemm). For one sample, with
// K = C*kd*kh*kw and N = OD*OH*OW:
//   forward   out (OC,N)    = W (OC,K) x col (K,N)  (+ bias)
//   backward  dW^T (K,OC)  += col (K,N) x dout^T (N,OC)   (added into dweight at the end)
//             dcol (K,N)    = W^T (K,OC) x dout (OC,N), then col2vol adds dcol into dinp
// The column matrix is never built for a whole sample: the output rows (od,oh) are cut into
// chunks of at most CONV_COL_CAP column floats, so the workspace is a few MB whatever B and
// the volume, and sgemm writes straight into out / reads straight from dout with ld = N.
// Measured on the BR-Net shapes (OpenBLAS 0.3.21, 1 thread, Zen 4): sgemm runs as fast on
// 256..4096-column chunks as on a whole sample (often faster: the chunk stays in cache), so
// batching several samples into one GEMM did not pay and is not done.
#include "nn/conv3d.h"
#include "base/common.h"
#include "nn/conv3d_direct.h"
#include "nn/layer.h"
#include "base/multiarch.h"
#include "base/threads.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Column-block budget in floats (4 MB). Single-threaded, 128K..1M made no measurable
// difference; the larger chunks give OpenBLAS more work per call when it runs threaded.
// CONV_MIN_COLS: the narrowest chunk worth an sgemm call (below ~256 columns OpenBLAS
// loses efficiency), which matters when K*OW is large.
#ifndef CONV_COL_CAP
#define CONV_COL_CAP (1u << 20)
#endif
#ifndef CONV_MIN_COLS
#define CONV_MIN_COLS 256
#endif

int conv3d_geom_init(Conv3dGeom *g, int C, int D, int H, int W, int OC,
                     const int k[3], const int s[3], const int p[3]) {
    memset(g, 0, sizeof *g);
    g->C = C; g->D = D; g->H = H; g->W = W; g->OC = OC;
    g->kd = k[0]; g->kh = k[1]; g->kw = k[2];
    g->sd = s[0]; g->sh = s[1]; g->sw = s[2];
    g->pd = p[0]; g->ph = p[1]; g->pw = p[2];
    if (C < 1 || D < 1 || H < 1 || W < 1 || OC < 1) return -1;
    for (int i = 0; i < 3; i++)
        if (k[i] < 1 || s[i] < 1 || p[i] < 0) return -1;
    // (D + 2p - k) must be >= 0 before dividing: C's division truncates toward zero, so a
    // negative numerator would otherwise yield a bogus output size of 1.
    long nd = (long)D + 2L * p[0] - k[0], nh = (long)H + 2L * p[1] - k[1], nw = (long)W + 2L * p[2] - k[2];
    if (nd < 0 || nh < 0 || nw < 0) return -1;
    g->OD = (int)(nd / s[0] + 1);
    g->OH = (int)(nh / s[1] + 1);
    g->OW = (int)(nw / s[2] + 1);
    return 0;
}

static size_t conv_K(const Conv3dGeom *g) { return (size_t)g->C * g->kd * g->kh * g->kw; }
static size_t conv_N(const Conv3dGeom *g) { return (size_t)g->OD * g->OH * g->OW; }

// A 1x1x1 kernel with stride 1 and no padding: the input sample already is col (C x N).
static int conv_is_pointwise(const Conv3dGeom *g) {
    return g->kd == 1 && g->kh == 1 && g->kw == 1 && g->sd == 1 && g->sh == 1 && g->sw == 1 &&
           g->pd == 0 && g->ph == 0 && g->pw == 0;
}

// Output rows (od,oh) per chunk: enough to fill CONV_COL_CAP, at least CONV_MIN_COLS wide.
static int conv_chunk_rows(const Conv3dGeom *g) {
    size_t rows_total = (size_t)g->OD * g->OH;
    size_t row_floats = conv_K(g) * g->OW;
    size_t rows = CONV_COL_CAP / row_floats;
    size_t min_rows = (CONV_MIN_COLS + g->OW - 1) / g->OW;
    if (rows < min_rows) rows = min_rows;
    if (rows < 1) rows = 1;
    if (rows > rows_total) rows = rows_total;
    return (int)rows;
}

// Workspace per thread: the column block (K x chunk columns), then dW^T (K x OC) and dbias
// (OC) -- see conv3d_backward.
static size_t conv_col_floats(const Conv3dGeom *g) { return conv_K(g) * (size_t)conv_chunk_rows(g) * g->OW; }

// Room for the direct kernels whenever they could run (conv3d_set_kernels can force them), so
// the workspace does not depend on the CPU or the mode.
size_t conv3d_workspace_floats(const Conv3dGeom *g) {
    if (conv_is_pointwise(g)) return 0;
    size_t gemm = conv_col_floats(g) + conv_K(g) * (size_t)g->OC + (size_t)g->OC;
    // A whole number of cache lines (16 floats), so that every thread's slice starts on one:
    // conv1's direct bwd-data with slices 16 bytes off the line ran its second thread 8 % slower
    // (9.2-9.6 ms against 8.4-8.8, 2 threads, Zen 5); BR-Net's own slices showed no difference.
    return (DF_MAX(gemm, conv3d_direct_workspace_floats(g)) + 15) / 16 * 16;
}

static int conv_kernels = CONV3D_AUTO;

void conv3d_set_kernels(int kernels, int isa_max) {
    conv_kernels = kernels;
    conv3d_direct_set_isa(isa_max);
}

// Whether `phase` (CONV3D_FORWARD, _BWD_DATA, _BWD_WEIGHTS) runs the direct kernels
// (nn/conv3d_direct.c) instead of vol2col + GEMM. Measured with `deconfound bench conv3d
// --kernels gemm|direct` on Zen 4 (AVX-512, OpenBLAS Cooperlake kernels), 1 thread, as % of sgemm:
//   conv1 K=27   W=64  forward 91 vs 35, bwd-wt 63 vs 31, bwd-data 57 vs 43
//   conv2 K=432  W=32  forward 94 vs 76, bwd-wt 79 vs 66, bwd-data 48 vs 73 (4-vec tiles;
//                      102 vs 73 with the 2-vec tile for rows of at most 32, bd_plane_v4_narrow)
//   conv3 K=864  W=16  forward 106 vs 91, bwd-wt 52 vs 90, bwd-data 28 vs 91 (58 vs 86 with
//                      the 2-vec tile; forward 100 vs 84 on 2026-12-01)
//   conv4 K=1728 W=8   forward 52 vs 75, bwd-wt 13 vs 67, bwd-data 16 vs 70; the forward
//                      with each plane as one row (conv3d_direct_forward_flat, 2026-12-02,
//                      Zen 5): 3.7 ms against GEMM's 4.6-4.7 in the same runs; bwd-data
//                      as that flat forward of dout with the kernel flipped
//                      (conv3d_direct_backward_data_flat): 4.1-4.4 ms against 4.5-4.7;
//                      bwd-wt with 16 samples in the lanes (conv3d_direct_dw_samples_in_lanes,
//                      batch 16): 2.5 ms against 3.9; batches that fill less than 3/4 of the
//                      lanes keep GEMM. With such a batch the forward and bwd-data put the
//                      samples in the lanes too (nn/conv3d_direct.c, fws): 2.5-2.6 ms against
//                      the flat forms' 3.7-3.8 (2026-12-02, Zen 5)
// bwd-wt above is by planes; by blocks of planes (conv3d_direct_dw_planes_per_item; as whole
// samples on 2026-12-02) conv1 87-90, conv2 100-105, conv3 94-99 vs GEMM's 85-87. The direct
// tiles want whole 16-float rows; the weight and data gradients also want few channels.
// With AVX2 (each 16-float vec in two registers, 16 registers in all: smaller tiles, and no
// AVX-512 for GEMM either) the direct kernels win only on the first layer, on bwd-data and
// on conv2's bwd-wt; `bench conv3d`, Zen 3 (OpenBLAS Zen kernels), 1 thread, 3 runs
// alternated, ms (with the first AVX2 tile shapes; the final ones are faster still,
// docs/performance.md; conv2's bwd-data with 2-vec tiles, bd_plane_v3_narrow: 118-142 vs
// 152-166; bwd-wt with a vec's registers summed into one, dw_tile: conv2 117-126
// vs 125-161, conv3 64-87 vs 55-63):
//   conv1 forward 36-42 vs 46-55, bwd-data 56-59 vs 65-84, bwd-wt 50-54 vs 66-82
//   conv2 forward 153-159 vs 119-135, bwd-data 157-170 vs 148-176, bwd-wt 193-215 vs 127-143
//   conv3 every phase 1.1-1.9x GEMM's time; conv4 forward 10-14 vs 8-10, bwd-data
//   (flat) 10.5-11.1 vs 11.4-13.1, bwd-wt 11.1-11.4 vs 10.3-11.5
// With the final tiles conv2's forward came level (2026-12-04, best of 5 runs alternated 6
// times: direct 106-109 ms, GEMM 107-114), too close to change the rule.
// The SSE build (x86-64-v2) keeps GEMM everywhere.
// B: the batch (bwd-wt with samples in the lanes wants enough of them).
static int conv_direct(const Conv3dGeom *g, int phase, int B) {
    if (conv_is_pointwise(g) || !conv3d_direct_legal(g)) return 0;
    if (conv_kernels != CONV3D_AUTO) return conv_kernels == CONV3D_DIRECT;
    if (conv3d_direct_isa() < 3) return 0;
    if (phase == CONV3D_BWD_DATA) return (conv_K(g) <= 512 && g->W >= 32) || conv3d_direct_backward_data_flat(g);
    if (conv3d_direct_isa() == 3)
        return phase == CONV3D_FORWARD ? conv_K(g) <= 64 && g->OW >= 16 : conv_K(g) <= 512 && g->OW >= 32;
    if (phase == CONV3D_FORWARD) return (conv_K(g) <= 1024 && g->OW >= 16) || conv3d_direct_forward_flat(g);
    return conv3d_direct_dw_planes_per_item(g) > 1 || (conv_K(g) <= 512 && g->OW >= 32) ||
           conv3d_direct_dw_samples_in_lanes(g, B);
}

void conv3d_kernel_name(char *out, size_t n, const Conv3dGeom *g, int phase, int B) {
    if (conv_direct(g, phase, B)) snprintf(out, n, "direct-v%d", conv3d_direct_isa());
    else snprintf(out, n, "gemm");
}

// Valid output range [lo, hi) along one axis: the output indices o in [0, O) whose input
// index o*s + off lies in [0, n). Computed once per kernel offset, so the copy loops below
// never test bounds per element.
static void valid_range(int n, int s, int off, int O, int *lo, int *hi) {
    int l = off < 0 ? (-off + s - 1) / s : 0;
    int h = (n - 1 - off) < 0 ? 0 : (n - 1 - off) / s + 1;
    if (h > O) h = O;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

// Zeroes columns [0, lo) and [hi, OW) of `rows` rows of width OW. Looping columns outside
// keeps the stores strided, so the compiler does not turn each 1-element edge into a
// memset call (which cost more than the copy itself on 8x8 planes).
static void zero_edges(float *x, int rows, int OW, int lo, int hi) {
    for (int ow = 0; ow < lo; ow++)
        for (int r = 0; r < rows; r++) x[(size_t)r * OW + ow] = 0.0f;
    for (int ow = hi; ow < OW; ow++)
        for (int r = 0; r < rows; r++) x[(size_t)r * OW + ow] = 0.0f;
}

// With unit h/w strides and OW == W ("same" padding, the usual case) consecutive output
// rows read consecutive input rows at the same distance as they are written, so a whole
// (od) plane of one kernel offset is one long memcpy plus fixing the padded edge columns.
// That matters when OW is small (8x8 planes: per-row calls would dominate).
static int conv_rows_contiguous(const Conv3dGeom *g) { return g->sw == 1 && g->sh == 1 && g->OW == g->W; }

// col (K, T) with T = (r1-r0)*OW: col[(c,a,b,e), (row,ow)] = inp[c, od*sd-pd+a, oh*sh-ph+b,
// ow*sw-pw+e] (0 in the padding) for the output rows row = od*OH+oh in [r0, r1).
// inp is one sample (C,D,H,W).
static void vol2col(float *restrict col, const float *restrict inp, const Conv3dGeom *g, int r0, int r1) {
    const int OW = g->OW, OH = g->OH, D = g->D, H = g->H, W = g->W, sw = g->sw, sh = g->sh;
    const size_t T = (size_t)(r1 - r0) * OW, plane_n = (size_t)H * W;
    const int contiguous = conv_rows_contiguous(g);
    float *dst = col;
    for (int c = 0; c < g->C; c++)
        for (int a = 0; a < g->kd; a++)
            for (int b = 0; b < g->kh; b++)
                for (int e = 0; e < g->kw; e++, dst += T) {
                    int wlo, whi, hlo, hhi;
                    valid_range(W, sw, e - g->pw, OW, &wlo, &whi);
                    valid_range(H, sh, b - g->ph, OH, &hlo, &hhi);
                    const int off = e - g->pw;
                    // walk the chunk one od plane (segment of oh rows) at a time
                    for (int r = r0; r < r1;) {
                        const int od = r / OH, oh0 = r % OH, oh1 = DF_MIN(OH, oh0 + (r1 - r));
                        float *d = dst + (size_t)(r - r0) * OW;
                        r += oh1 - oh0;
                        const int id = od * g->sd - g->pd + a;
                        const int va = DF_MAX(oh0, hlo), vb = DF_MIN(oh1, hhi);
                        if (id < 0 || id >= D || va >= vb || wlo >= whi) {
                            memset(d, 0, (size_t)(oh1 - oh0) * OW * sizeof(float));
                            continue;
                        }
                        if (va > oh0) memset(d, 0, (size_t)(va - oh0) * OW * sizeof(float));
                        if (oh1 > vb) memset(d + (size_t)(vb - oh0) * OW, 0, (size_t)(oh1 - vb) * OW * sizeof(float));
                        const float *plane = inp + (size_t)(c * D + id) * plane_n;
                        float *dv = d + (size_t)(va - oh0) * OW;
                        const int ih0 = va * sh - g->ph + b;
                        if (contiguous) {
                            size_t n = (size_t)(vb - va - 1) * W + (size_t)(whi - wlo);
                            memcpy(dv + wlo, plane + (size_t)ih0 * W + off + wlo, n * sizeof(float));
                            zero_edges(dv, vb - va, OW, wlo, whi);  // the copy wrapped into these
                            continue;
                        }
                        for (int oh = va; oh < vb; oh++, dv += OW) {
                            const float *src = plane + (size_t)(ih0 + (oh - va) * sh) * W + off;
                            for (int ow = 0; ow < wlo; ow++) dv[ow] = 0.0f;
                            if (sw == 1) {
                                memcpy(dv + wlo, src + wlo, (size_t)(whi - wlo) * sizeof(float));
                            } else {
                                for (int ow = wlo; ow < whi; ow++) dv[ow] = src[(size_t)ow * sw];
                            }
                            for (int ow = whi; ow < OW; ow++) dv[ow] = 0.0f;
                        }
                    }
                }
}

// The adjoint of vol2col: dinp[c, id, ih, iw] += col[(c,a,b,e), (row,ow)] over every
// (row, ow) that read that input element. dinp is one sample (C,D,H,W). col is scratch
// and gets clobbered (its padded edge columns are zeroed for the contiguous fast path).
// Compiled for each vector width (base/multiarch.h; the same additions in the same order):
// backward-data through GEMM with AVX-512 adds, Zen 5, against the baseline's SSE ones in the
// same runs: BR-Net's conv2 59-61 ms against 69-73, conv3 25-27 against 27-28 (conv4 the same:
// its col2vol waits on reading dcol back, 37 % of the phase either way).
DF_INLINE void col2vol_body(float *restrict dinp, float *restrict col, const Conv3dGeom *g, int r0, int r1) {
    const int OW = g->OW, OH = g->OH, D = g->D, H = g->H, W = g->W, sw = g->sw, sh = g->sh;
    const size_t T = (size_t)(r1 - r0) * OW, plane_n = (size_t)H * W;
    const int contiguous = conv_rows_contiguous(g);
    float *srcrow = col;
    for (int c = 0; c < g->C; c++)
        for (int a = 0; a < g->kd; a++)
            for (int b = 0; b < g->kh; b++)
                for (int e = 0; e < g->kw; e++, srcrow += T) {
                    int wlo, whi, hlo, hhi;
                    valid_range(W, sw, e - g->pw, OW, &wlo, &whi);
                    valid_range(H, sh, b - g->ph, OH, &hlo, &hhi);
                    const int off = e - g->pw;
                    for (int r = r0; r < r1;) {
                        const int od = r / OH, oh0 = r % OH, oh1 = DF_MIN(OH, oh0 + (r1 - r));
                        float *s = srcrow + (size_t)(r - r0) * OW;
                        r += oh1 - oh0;
                        const int id = od * g->sd - g->pd + a;
                        const int va = DF_MAX(oh0, hlo), vb = DF_MIN(oh1, hhi);
                        if (id < 0 || id >= D || va >= vb || wlo >= whi) continue;
                        float *plane = dinp + (size_t)(c * D + id) * plane_n;
                        float *sv = s + (size_t)(va - oh0) * OW;
                        const int ih0 = va * sh - g->ph + b;
                        if (contiguous) {
                            // zero the columns that read padding, then one flat add: those
                            // zeros land on neighbouring rows' edge elements harmlessly
                            zero_edges(sv, vb - va, OW, wlo, whi);
                            size_t n = (size_t)(vb - va - 1) * W + (size_t)(whi - wlo);
                            float *restrict d = plane + (size_t)ih0 * W + off + wlo;
                            const float *restrict sp = sv + wlo;
                            for (size_t i = 0; i < n; i++) d[i] += sp[i];
                            continue;
                        }
                        for (int oh = va; oh < vb; oh++, sv += OW) {
                            float *restrict d = plane + (size_t)(ih0 + (oh - va) * sh) * W + off;
                            if (sw == 1) {
                                for (int ow = wlo; ow < whi; ow++) d[ow] += sv[ow];
                            } else {
                                for (int ow = wlo; ow < whi; ow++) d[(size_t)ow * sw] += sv[ow];
                            }
                        }
                    }
                }
}
DF_MULTIARCH_FN(col2vol, (float *restrict dinp, float *restrict col, const Conv3dGeom *g, int r0, int r1),
                (dinp, col, g, r0, r1))

// Sum of n floats with 8 independent partial sums (vectorisable, and more accurate than
// one running float sum over 10^5 elements).
static float sum_floats(const float *x, size_t n) {
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j];
    float s = 0.0f;
    for (; i < n; i++) s += x[i];
    return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// y[oc, n] = bias[oc] for n < T, rows ld apart
static void fill_bias(float *y, const float *bias, int OC, size_t T, size_t ld) {
    for (int oc = 0; oc < OC; oc++)
        for (size_t n = 0; n < T; n++) y[oc * ld + n] = bias[oc];
}

// Threads to use for `items` independent pieces of work: at most `threads` (workspace slices)
// and df_threads(), and 1 when there are fewer items than threads (then OpenBLAS threads the
// GEMMs instead, as a single sample's inference wants).
static int conv_threads(int threads, long items) {
    int t = DF_MIN(threads, df_threads());
    return t > 1 && items >= t ? t : 1;
}

// One sample's forward: out rows [r0, r1) of y from x, with the column block in col.
static void conv_forward_rows(float *y, const float *x, const float *weight, const float *bias,
                              const Conv3dGeom *g, float *col, int r0, int r1) {
    const size_t K = conv_K(g), N = conv_N(g);
    const int T = (r1 - r0) * g->OW;
    float *yc = y + (size_t)r0 * g->OW;
    vol2col(col, x, g, r0, r1);
    // bias first, per chunk, so sgemm (beta = 1) finds the block still in cache
    if (bias) fill_bias(yc, bias, g->OC, (size_t)T, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->OC, T, (int)K, 1.0f, weight, (int)K,
                col, T, bias ? 1.0f : 0.0f, yc, (int)N);
}

void conv3d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int B, const Conv3dGeom *g, float *workspace, int threads) {
    // inp is (B,C,D,H,W), out is (B,OC,OD,OH,OW); workspace is (threads, conv3d_workspace_floats)
    const int OC = g->OC;
    const size_t K = conv_K(g), N = conv_N(g), in_n = (size_t)g->C * g->D * g->H * g->W;
    if (conv_direct(g, CONV3D_FORWARD, B)) {
        conv3d_direct_forward(out, inp, weight, bias, B, g, workspace, conv3d_workspace_floats(g), threads);
        return;
    }
    if (conv_is_pointwise(g)) {
        for (int bi = 0; bi < B; bi++) {
            float *y = out + bi * (size_t)OC * N;
            if (bias) fill_bias(y, bias, OC, N, N);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)N, (int)K, 1.0f, weight, (int)K,
                        inp + bi * in_n, (int)N, bias ? 1.0f : 0.0f, y, (int)N);
        }
        return;
    }
    // The work items are (sample, row chunk) pairs: every item writes its own block of out.
    const int rows_total = g->OD * g->OH, chunk = conv_chunk_rows(g);
    const int chunks = (rows_total + chunk - 1) / chunk;
    const long items = (long)B * chunks;
    const size_t slice = conv3d_workspace_floats(g);
    const int nt = conv_threads(threads, items);
    const int blas = nt > 1 ? df_blas_serial_begin() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long it = 0; it < items; it++) {
        const int bi = (int)(it / chunks), r0 = (int)(it % chunks) * chunk;
        conv_forward_rows(out + bi * (size_t)OC * N, inp + bi * in_n, weight, bias, g,
                          workspace + (size_t)df_thread_id() * slice, r0, DF_MIN(r0 + chunk, rows_total));
    }
    if (nt > 1) df_blas_serial_end(blas);
}

// One sample's backward: (dwt non-NULL) dwt (K x OC) += col x dy^T, (dbias non-NULL) dbias +=
// row sums of dy, (dx non-NULL) dx += col2vol(W^T x dy), chunk by chunk with the column block
// in col.
static void conv_backward_sample(float *dx, float *dwt, float *dbias, const float *dy, const float *x,
                                 const float *weight, const Conv3dGeom *g, float *col) {
    const size_t K = conv_K(g), N = conv_N(g);
    const int OC = g->OC, rows_total = g->OD * g->OH, chunk = conv_chunk_rows(g);
    for (int r0 = 0; r0 < rows_total; r0 += chunk) {
        int r1 = DF_MIN(r0 + chunk, rows_total);
        int T = (r1 - r0) * g->OW;
        const float *dyc = dy + (size_t)r0 * g->OW;
        // per chunk: the sums pull the dout block into cache for the two sgemms
        if (dbias)
            for (int oc = 0; oc < OC; oc++) dbias[oc] += sum_floats(dyc + oc * N, (size_t)T);
        if (dwt) {
            vol2col(col, x, g, r0, r1);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, OC, T, 1.0f, col, T,
                        dyc, (int)N, 1.0f, dwt, OC);
        }
        if (dx) {
            // the column block is no longer needed: reuse it for dcol
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, T, OC, 1.0f, weight, (int)K,
                        dyc, (int)N, 0.0f, col, T);
            DF_PICK(col2vol)(dx, col, g, r0, r1);
        }
    }
}

void conv3d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int B, const Conv3dGeom *g, float *workspace,
                     int threads) {
    // dout is (B,OC,OD,OH,OW); inp, dinp are (B,C,D,H,W); workspace is (threads, slice) with
    // slice = [column block | dWt (K x OC) | dbias (OC)], one per thread
    const int OC = g->OC;
    const size_t K = conv_K(g), N = conv_N(g), in_n = (size_t)g->C * g->D * g->H * g->W;
    if (dweight && conv_direct(g, CONV3D_BWD_WEIGHTS, B)) {
        conv3d_direct_backward_weights(dweight, dbias, dout, inp, B, g, workspace, conv3d_workspace_floats(g), threads);
        dweight = dbias = NULL;
    }
    if (dinp && conv_direct(g, CONV3D_BWD_DATA, B)) {
        conv3d_direct_backward_data(dinp, dout, weight, B, g, workspace, conv3d_workspace_floats(g), threads);
        dinp = NULL;
    }
    if (!dinp && !dweight && !dbias) return;
    if (conv_is_pointwise(g)) {
        for (int bi = 0; bi < B; bi++) {
            const float *x = inp + bi * in_n, *dy = dout + bi * (size_t)OC * N;
            if (dbias)
                for (int oc = 0; oc < OC; oc++) dbias[oc] += sum_floats(dy + oc * N, N);
            if (dweight)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, (int)K, (int)N, 1.0f, dy, (int)N,
                            x, (int)N, 1.0f, dweight, (int)K);
            if (dinp)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)N, OC, 1.0f, weight, (int)K,
                            dy, (int)N, 1.0f, dinp + bi * in_n, (int)N);
        }
        return;
    }
    // dW is accumulated transposed, dWt (K x OC) = sum col x dout^T, and added into dweight
    // at the end: OpenBLAS runs this orientation (long side K as the M dimension) 10-30%
    // faster than dout x col^T on every BR-Net layer shape. Each thread sums its own samples'
    // share (whole samples, so the col2vol additions into dinp never overlap between threads).
    const size_t slice = conv3d_workspace_floats(g), col_n = conv_col_floats(g);
    const int nt = conv_threads(threads, B);
    const int blas = nt > 1 ? df_blas_serial_begin() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *col = workspace + (size_t)df_thread_id() * slice, *dwt = col + col_n, *db = dwt + K * OC;
        memset(dwt, 0, (K * OC + OC) * sizeof(float));
#pragma omp for schedule(static)
        for (int bi = 0; bi < B; bi++)
            conv_backward_sample(dinp ? dinp + bi * in_n : NULL, dweight ? dwt : NULL, dbias ? db : NULL, dout + bi * (size_t)OC * N,
                                 inp + bi * in_n, weight, g, col);
    }
    if (nt > 1) df_blas_serial_end(blas);
    for (int t = 0; t < nt; t++) {  // thread order: the same sums for the same thread count
        const float *dwt = workspace + (size_t)t * slice + col_n, *db = dwt + K * OC;
        if (dweight)
            for (int oc = 0; oc < OC; oc++)
                for (size_t k = 0; k < K; k++) dweight[oc * K + k] += dwt[k * OC + oc];
        if (dbias)
            for (int oc = 0; oc < OC; oc++) dbias[oc] += db[oc];
    }
}

// ---- naive reference -----------------------------------------------------------------------
// Direct loops over the definition, accumulating in double: slow, obviously right.

void conv3d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                          int B, const Conv3dGeom *g) {
    const int C = g->C, D = g->D, H = g->H, W = g->W;
    for (int bi = 0; bi < B; bi++)
        for (int oc = 0; oc < g->OC; oc++)
            for (int od = 0; od < g->OD; od++)
                for (int oh = 0; oh < g->OH; oh++)
                    for (int ow = 0; ow < g->OW; ow++) {
                        double s = bias ? bias[oc] : 0.0;
                        for (int c = 0; c < C; c++)
                            for (int a = 0; a < g->kd; a++)
                                for (int b = 0; b < g->kh; b++)
                                    for (int e = 0; e < g->kw; e++) {
                                        int id = od * g->sd - g->pd + a;
                                        int ih = oh * g->sh - g->ph + b;
                                        int iw = ow * g->sw - g->pw + e;
                                        if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                        double x = inp[(((size_t)bi * C + c) * D + id) * H * W + (size_t)ih * W + iw];
                                        double w = weight[(((size_t)oc * C + c) * g->kd + a) * g->kh * g->kw + b * g->kw + e];
                                        s += x * w;
                                    }
                        out[(((size_t)bi * g->OC + oc) * g->OD + od) * g->OH * g->OW + (size_t)oh * g->OW + ow] = (float)s;
                    }
}

void conv3d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int B, const Conv3dGeom *g) {
    const int C = g->C, D = g->D, H = g->H, W = g->W;
    const size_t wn = (size_t)g->OC * C * g->kd * g->kh * g->kw;
    const size_t xn = (size_t)B * C * D * H * W;
    double *dw = xcalloc(wn, sizeof(double));
    double *dx = dinp ? xcalloc(xn, sizeof(double)) : NULL;
    for (int bi = 0; bi < B; bi++)
        for (int oc = 0; oc < g->OC; oc++)
            for (int od = 0; od < g->OD; od++)
                for (int oh = 0; oh < g->OH; oh++)
                    for (int ow = 0; ow < g->OW; ow++) {
                        double gy = dout[(((size_t)bi * g->OC + oc) * g->OD + od) * g->OH * g->OW + (size_t)oh * g->OW + ow];
                        if (dbias) dbias[oc] += (float)gy;
                        for (int c = 0; c < C; c++)
                            for (int a = 0; a < g->kd; a++)
                                for (int b = 0; b < g->kh; b++)
                                    for (int e = 0; e < g->kw; e++) {
                                        int id = od * g->sd - g->pd + a;
                                        int ih = oh * g->sh - g->ph + b;
                                        int iw = ow * g->sw - g->pw + e;
                                        if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                        size_t xi = (((size_t)bi * C + c) * D + id) * H * W + (size_t)ih * W + iw;
                                        size_t wi = (((size_t)oc * C + c) * g->kd + a) * g->kh * g->kw + b * g->kw + e;
                                        dw[wi] += gy * inp[xi];
                                        if (dx) dx[xi] += gy * weight[wi];
                                    }
                    }
    for (size_t i = 0; i < wn; i++) dweight[i] += (float)dw[i];
    if (dx)
        for (size_t i = 0; i < xn; i++) dinp[i] += (float)dx[i];
    free(dw);
    free(dx);
}

// ---- layer table ---------------------------------------------------------------------------

typedef struct {
    Conv3dGeom g;
    int has_bias;
    InitKind init;
} Conv3dImpl;

static int conv_build(Layer *L, const Ini *ini, IniSection *sec, DfError *err) {
    char where[512];
    int oc, k[3], s[3], p[3], bias, init;
    if (!ini_entry(sec, "out")) {
        ini_where(ini, sec, "out", where, sizeof where);
        return df_err(err, "%s: [%s] missing required key 'out' (output channels)", where, sec->name);
    }
    if (ini_int(ini, sec, "out", 0, 1, 1 << 20, &oc, err)) return -1;
    static const int three[3] = { 3, 3, 3 }, one[3] = { 1, 1, 1 }, zero[3] = { 0, 0, 0 };
    if (layer_read_dhw(ini, sec, "kernel", three, 1, k, err) || layer_read_dhw(ini, sec, "stride", one, 1, s, err) ||
        layer_read_dhw(ini, sec, "pad", zero, 0, p, err))
        return -1;
    if (ini_bool(ini, sec, "bias", 1, &bias, err)) return -1;
    if (ini_choice(ini, sec, "init", "default", init_kind_names, &init, err)) return -1;
    Shape in = L->in_shape;
    Conv3dGeom g;
    if (conv3d_geom_init(&g, in.c, in.d, in.h, in.w, oc, k, s, p) != 0) {
        ini_where(ini, sec, ini_entry(sec, "kernel") ? "kernel" : NULL, where, sizeof where);
        return df_err(err, "%s: [%s] kernel %dx%dx%d with pad %d,%d,%d and stride %d,%d,%d does not fit the "
                      "input %dx%dx%dx%d (C x D x H x W): the output would be empty",
                      where, sec->name, k[0], k[1], k[2], p[0], p[1], p[2], s[0], s[1], s[2], in.c, in.d, in.h, in.w);
    }
    Conv3dImpl *impl = xcalloc(1, sizeof *impl);
    impl->g = g;
    impl->has_bias = bias;
    impl->init = (InitKind)init;
    L->impl = impl;
    L->out_shape = (Shape){ oc, g.OD, g.OH, g.OW };
    int wdims[5] = { oc, in.c, k[0], k[1], k[2] };
    layer_add_param(L, "weight", 5, wdims);
    if (bias) layer_add_param(L, "bias", 1, &oc);
    L->workspace_floats = conv3d_workspace_floats(&g);
    return 0;
}

static void conv_init(Layer *L, Rng *rng) {
    Conv3dImpl *impl = L->impl;
    const Conv3dGeom *g = &impl->g;
    int ksz = g->kd * g->kh * g->kw;
    int fan_in = g->C * ksz, fan_out = g->OC * ksz;
    init_weight(layer_param(L, 0), L->params_info[0].count, fan_in, fan_out, impl->init, rng);
    if (impl->has_bias) init_bias(layer_param(L, 1), L->params_info[1].count, fan_in, rng);
}

static void conv_fwd(Layer *L, const Batch *batch, int training) {
    const int B = batch->n;
    Conv3dImpl *impl = L->impl;
    DF_ASSERT(L->ctx->workspace_floats >= L->workspace_floats);
    conv3d_forward(L->out, L->in, layer_param(L, 0), layer_param(L, 1), B, &impl->g, L->ctx->workspace,
                   L->ctx->workspace_threads);
}

static void conv_bwd(Layer *L, const Batch *batch) {
    const int B = batch->n;
    Conv3dImpl *impl = L->impl;
    DF_ASSERT(L->ctx->workspace_floats >= L->workspace_floats);
    conv3d_backward(L->din, layer_grad(L, 0), layer_grad(L, 1), L->dout, L->in, layer_param(L, 0), B, &impl->g,
                    L->ctx->workspace, L->ctx->workspace_threads);
}

static void conv_destroy(Layer *L) { free(L->impl); L->impl = NULL; }

const LayerOps conv3d_ops = { "conv3d", conv_build, conv_init, conv_fwd, conv_bwd, conv_destroy };
