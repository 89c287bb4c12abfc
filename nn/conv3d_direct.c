// conv3d_direct.c: direct 3D convolution for stride-1 layers with few input channels.
//
// vol2col + GEMM (nn/conv3d.c) runs near sgemm's rate when K = C*kd*kh*kw is large, but the
// first layer of an MRI network has C = 1: K = 27 against M = 16 output channels, a GEMM so
// thin that OpenBLAS reaches about a third of its square-matrix rate, after vol2col has written
// 27 copies of the input. Here the same sums are taken straight from the input:
//   forward   y[co,od,oh,ow] = bias[co] + sum_{ci,a,b,e} w[co,ci,a,b,e] * xpad[ci, od+a, oh+b, ow+e]
//   bwd-wt    dw[co,ci,a,b,e] += sum_{od,oh,ow} dy[co,od,oh,ow] * xpad[ci, od+a, oh+b, ow+e]
//             (and db[co] += sum dy[co,...], taken as one more tap whose input is all ones)
//   bwd-data  z[ci,a,b,e][od,oh,ow] = sum_co w[co,ci,a,b,e] * dy[co,od,oh,ow], then each z row is
//             added into dx shifted by (a,b,e) - p, clipped at the edges
// A forward or bwd-wt work item is one output plane (sample, od). It first copies the kd input
// planes it reads into the thread's workspace with the zero padding written out ("buf"), so the
// inner loops have no edge tests; then register tiles of outputs (forward) or of weight-gradient
// partial sums (bwd-wt) run over it. bwd-wt takes a block of planes per item instead, their
// input planes copied at once, where that fits (dw_block_planes): its tiles' partial sums are
// then stored once per block, not once per plane. Planes narrower than a vec are taken as one
// row by the forward (forward_flat). A bwd-data item is a sample's planes of dx (or a block of
// them when samples are too few to share out), so items write disjoint planes; plane id
// reads dy plane id + pd - a for each kernel depth a, a few of dy's channels at a time (bd_chunk).
// On planes narrower than a vec, bwd-data is instead the flat forward of dy with the kernel
// flipped (bd_flipped_geom). (That form was slower for the first layer: with few input
// channels it has one output channel and 16 input ones, whose padded copies no longer fit in
// L2.) On such planes, when the batch fills 16 lanes, bwd-wt puts 16 samples in a vec's lanes
// instead (dw_samples), and so do the forward and the flipped bwd-data (fws_forward).
//
// The tiles (nn/conv3d_direct_tiles.h) use GCC vector extensions. A `vec` is 16 floats of the
// workspace layout, the same on every CPU; the tiles hold it in one AVX-512 register, two AVX2
// or four SSE ones, each width a copy of the tiles of its own. Auto-vectorising the same loops
// over float arrays kept the accumulators in memory (or shuffled them), so the vectors are
// spelled out; the arithmetic is still plain C. Each plane function is compiled for
// x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the build's baseline (x86-64-v2), with a
// tile shape that fits that level's registers, and picked at run time from the CPU's
// features. (target_clones("arch=skylake-avx512", ...) does not do: its resolver tests for an
// Intel model number, so AMD CPUs with AVX-512 never get it.)
#include "nn/conv3d_direct.h"
#include "base/common.h"
#include "base/multiarch.h"
#include "base/threads.h"
#include <string.h>

// -std=c11 turns off FMA contraction; the tiles want a*b+c as one fused instruction where the
// CPU has it (twice the arithmetic rate, and one rounding instead of two).
#pragma GCC optimize("fp-contract=fast")

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define DIRECT_MULTIARCH 1
#endif

#define VL 16    // floats per vec
#define MAXP 16  // tile rows (output channels) at most
#define MAXQ 4   // forward tile width in vecs at most; buffered rows are padded to a multiple
#define MAXT 6   // bwd-wt tile width (kernel taps) at most
#define MAXKD 8  // kernel depth at most (bwd-data keeps a pointer per kernel plane)
#define BD_CHUNK 4  // dy's channels bwd-data sums at a time, where it chunks them (bd_chunk)
// bwd-data's padded copies of dy (bd_plane) put a channel's plane BD_CPAD floats past the end of
// the one before, so that the tiles' rows of successive channels do not all fall in the same
// cache sets (a channel of BR-Net's conv2 is 8 KB without it). conv2 on Zen 3, 1 thread, best of
// 5 runs alternated 5 times: 104-107 ms with 32 to 80 against 106-111 with 16 and 110-115 with 0.
#define BD_CPAD 48
#define INLINE static inline __attribute__((always_inline))
// The tile loops must be unrolled completely so that each accumulator becomes a register.
#define UNROLL _Pragma("GCC unroll 16")

typedef struct {
    int CI, D, H, W;   // input, one sample
    int CO, OD, OH, OW;  // output
    int kd, kh, kw;
    int pd, ph, pw;    // zero padding
    int nv;            // vecs per output row: ceil(OW / VL) (flat: per output plane)
    int RH, WP;        // rows per buffered input plane (OH + kh - 1), floats per buffered row
    int flat;          // forward only: the plane taken as one row (direct_forward_geom)
} Direct;

static Direct direct_geom(int CI, int D, int H, int W, int CO, int OD, int OH, int OW, const int k[3], const int p[3]) {
    Direct g = { CI, D, H, W, CO, OD, OH, OW, k[0], k[1], k[2], p[0], p[1], p[2], 0, 0, 0, 0 };
    g.nv = (OW + VL - 1) / VL;
    g.RH = OH + k[1] - 1;
    g.WP = (g.nv + MAXQ - 1) / MAXQ * MAXQ * VL + k[2] - 1;  // a tile of MAXQ vecs may run past OW
    return g;
}

static Direct direct_fwd(const Conv3dGeom *g) {
    const int k[3] = { g->kd, g->kh, g->kw }, p[3] = { g->pd, g->ph, g->pw };
    return direct_geom(g->C, g->D, g->H, g->W, g->OC, g->OD, g->OH, g->OW, k, p);
}

static size_t direct_K(const Direct *g) { return (size_t)g->CI * g->kd * g->kh * g->kw; }

// The forward on planes narrower than a vec (BR-Net's conv4: 8 x 8). Rows of 8 would fill half
// of each vec, so the plane is taken as one row instead: padded input rows WP = OW + kw - 1
// apart with nothing between them, outputs at positions oh*WP + ow, of which the kw - 1 per row
// with ow >= OW are computed and dropped (16 of 80 for 8 x 8). Used when at least 3/4 of the
// computed positions are kept.
static int forward_flat(const Conv3dGeom *g) {
    const long wp = g->OW + g->kw - 1, npos = (long)g->OH * wp, vecs = (npos + VL - 1) / VL;
    return g->OW < VL && 4L * g->OH * g->OW >= 3 * vecs * VL;
}

int conv3d_direct_forward_flat(const Conv3dGeom *g) { return conv3d_direct_legal(g) && forward_flat(g); }

// bwd-data is the forward of dy with the kernel flipped (bd_by_forward), on this geometry: dy's
// channels in, x's out, padding k-1-p. It is taken that way when that forward is flat: on
// planes narrower than a vec (BR-Net's conv4, 64 -> 32 channels on 8 x 8), the Z rows of
// bd_plane would fill half of each vec, and GEMM ran at 56 % of sgemm, its inner dimension
// only dy's 32 channels (Zen 5, 2026-12-02). Needs p <= k - 1 on every axis.
static int bd_flipped_geom(const Conv3dGeom *g, Conv3dGeom *fg) {
    *fg = (Conv3dGeom){ .C = g->OC, .D = g->OD, .H = g->OH, .W = g->OW, .OC = g->C,
                        .kd = g->kd, .kh = g->kh, .kw = g->kw, .sd = 1, .sh = 1, .sw = 1,
                        .pd = g->kd - 1 - g->pd, .ph = g->kh - 1 - g->ph, .pw = g->kw - 1 - g->pw,
                        .OD = g->D, .OH = g->H, .OW = g->W };
    return conv3d_direct_legal(g) && fg->pd >= 0 && fg->ph >= 0 && fg->pw >= 0 && forward_flat(fg);
}

int conv3d_direct_backward_data_flat(const Conv3dGeom *g) {
    Conv3dGeom fg;
    return bd_flipped_geom(g, &fg);
}

static Direct direct_forward_geom(const Conv3dGeom *g) {
    Direct f = direct_fwd(g);
    if (forward_flat(g)) {
        f.flat = 1;
        f.WP = g->OW + g->kw - 1;
        f.nv = (g->OH * f.WP + VL - 1) / VL;
    }
    return f;
}
// The flat forward's buffer: its last tile reads up to VL + kw floats past the last plane
static size_t direct_flat_buf_floats(const Conv3dGeom *g) {
    if (!forward_flat(g)) return 0;
    const Direct f = direct_forward_geom(g);
    return ((size_t)f.CI * f.kd + 1) * f.RH * f.WP + VL + f.kw;
}
// bwd-wt on planes narrower than a vec (BR-Net's conv4: 64 -> 32 channels on 8 x 8), with the
// vec's 16 lanes over 16 samples instead of 16 positions: rows of 8 positions would fill half
// of each vec (dw_plane: 13 % of sgemm), and taking the plane as one row (forward_flat)
// computes 16 dropped positions of 80. The input and dy of a group of up to 16 samples are
// first copied with the sample innermost, the input padded:
//   xs[ci][dp][r][c][s] = x[s, ci, dp - pd, r - ph, c - pw] (0 outside x and past the group)
//   dys[co][od][oh][ow][s] = dy[s, co, od, oh, ow]
// so that, for every position, one vec of each holds all the samples:
//   dw[co, (ci,a,b,e)] += lanesum over (od,oh,ow) of dys[co][od][oh][ow] * xs[ci][od+a][oh+b][ow+e]
// A tile is 4 channels x the kw = 3 taps of two kernel rows (ci,a,b): 6 input loads
// through 2 pointers, e an immediate offset. (Flat planes, the first form tried, ran at
// 4.6 ms against GEMM's 3.8-4.0 on Zen 5: a fifth of its multiply-adds were on dropped
// positions.) Threads take kernel rows, so each weight's sum is one thread's, the same for
// any thread count. Needs kw = 3; used on planes narrower than a vec (forward_flat).
static int dw_samples(const Conv3dGeom *g) { return conv3d_direct_legal(g) && g->kw == 3 && forward_flat(g); }
// A batch of B samples fills at least 3/4 of the lanes of its groups of VL
static int sil_lanes_filled(int B) { return 4L * B >= 3L * ((B + VL - 1) / VL * VL); }
int conv3d_direct_dw_samples_in_lanes(const Conv3dGeom *g, int B) { return dw_samples(g) && sil_lanes_filled(B); }
// xs and dys of one group of VL samples
static size_t dws_x_floats(const Direct *f) { return (size_t)f->CI * (f->D + 2 * f->pd) * f->RH * f->WP * VL; }
static size_t dws_dy_floats(const Direct *f) { return (size_t)f->CO * f->OD * f->OH * f->OW * VL; }
static size_t dws_floats(const Conv3dGeom *g) {
    if (!dw_samples(g)) return 0;
    const Direct f = direct_forward_geom(g);  // rows WP = OW + kw - 1 apart
    return dws_x_floats(&f) + dws_dy_floats(&f);
}
// The forward on planes narrower than a vec (and bwd-data taken as one, bd_flipped_geom) with
// 16 samples in a vec's lanes, as dw_samples: the flat forward (fwd_plane_flat) computes 16
// dropped positions of 80 on 8 x 8 planes and broadcasts a weight per multiply-add; it ran at
// 60-64 % of sgemm on BR-Net's conv4 (Zen 5). With xs as dw_samples' (sample innermost, input
// padded) the outputs of a group of up to 16 samples are
//   ys[co][od][oh][ow][s] = bias[co] + sum_{ci,a,b,e} w[co,ci,a,b,e] * xs[ci][od+a][oh+b][ow+e][s]
// in tiles of P channels x Q consecutive positions of a row: per tap, Q input loads and P
// weight broadcasts for P x Q vec multiply-adds, nothing dropped when Q divides OW. Q divides
// FWS_QMAX, and the rows of ys are FWS_ROW(OW) positions wide, so that a row's last tile may
// run past OW (its extra positions read the next row of xs, or FWS_SLACK zeros after the last
// one, and are never copied out). The weights are copied per tile of P channels, (K, P) each,
// zero past CO, so that a tile reads P contiguous floats per tap. Used when a batch fills 3/4
// of the lanes (sil_lanes_filled); ys goes back to the (B, CO, ...) layout by channel.
#define FWS_QMAX 8
#define FWS_ROW(ow) (((ow) + FWS_QMAX - 1) / FWS_QMAX * FWS_QMAX)
#define FWS_SLACK ((size_t)FWS_QMAX * VL)
static size_t fws_ys_floats(const Direct *f) { return (size_t)f->CO * f->OD * f->OH * FWS_ROW(f->OW) * VL; }
// xs (with its slack), ys, then the weights of up to MAXP-channel tiles
static size_t fws_floats(const Conv3dGeom *g) {
    if (!forward_flat(g)) return 0;
    const Direct f = direct_forward_geom(g);
    return dws_x_floats(&f) + FWS_SLACK + fws_ys_floats(&f) + direct_K(&f) * (size_t)(f.CO + MAXP);
}

// buf: the CI*kd padded input planes, then a plane of ones (bwd-wt's bias tap)
static size_t direct_buf_floats(const Direct *g) { return ((size_t)g->CI * g->kd + 1) * g->RH * g->WP; }
// bwd-wt over a block of nd output planes: every input plane they read (nd + kd - 1 per
// channel), then the plane of ones
static size_t direct_block_buf_floats(const Direct *g, int nd) {
    return ((size_t)g->CI * (nd + g->kd - 1) + 1) * g->RH * g->WP;
}
// The output planes a bwd-wt work item takes at most (when there are samples enough for the
// threads, conv3d_direct_backward_weights). The tiles run over all of them before they store
// their partial sums, not over one plane of OH x OW: conv3 of BR-Net (16 x 16 planes; 865 x 64
// partials that overflow L2) went from 69 % of sgemm to 94-99 % with whole samples, conv2 from
// 92 % to 100-105 % (docs/performance.md). But each group of taps reads the block's dy again,
// so the block's dy must stay in L2: as whole samples, conv1 (8 MB of dy per sample) ran at
// 87-90 % on Zen 4 but 59 % on Zen 5, against 69 % by single planes there. So a block holds
// as many planes as keep its dy within DW_BLOCK_DY floats (half the 1 MB L2 of Zen 4 and 5):
// conv3 a whole sample, conv2 4 planes, conv1 2. Rows must be whole vecs (no padded copy of
// dy), and the input buffer at most 1M floats (4 MB, the GEMM path's column block).
#define DW_BLOCK_DY (1u << 17)
static int dw_block_planes(const Direct *g) {
    if (g->OW % VL) return 1;
    const size_t per_plane = (size_t)g->CO * g->OH * g->OW;
    int nd = (int)DF_MAX((size_t)1, DF_MIN((size_t)g->OD, DW_BLOCK_DY / per_plane));
    while (nd > 1 && direct_block_buf_floats(g, nd) > (1u << 20)) nd--;
    return nd;
}

int conv3d_direct_dw_planes_per_item(const Conv3dGeom *g) {
    if (!conv3d_direct_legal(g)) return 0;
    const Direct f = direct_fwd(g);
    return dw_block_planes(&f);
}

static size_t direct_tmp_floats(void) { return (size_t)MAXP * MAXQ * VL; }
// bwd-wt copies a plane of dout with each row zero-padded to nv vecs when OW is not a multiple
static size_t direct_dyc_floats(const Direct *g) {
    return g->OW % VL ? (size_t)g->CO * g->OH * g->nv * VL : 0;
}
// bwd-data: 2 x CI*kw Z rows of ZW + 2 kw floats, ZW = nv rounded up to MAXQ vecs, and when OW is
// not a multiple of that, copies of kd planes of dout with rows ZW wide, channels BD_CPAD apart
static size_t direct_zw(const Direct *g) { return (size_t)(g->nv + MAXQ - 1) / MAXQ * MAXQ * VL; }
static size_t direct_z_floats(const Direct *g) {
    size_t zw = direct_zw(g), n = 2 * (size_t)g->CI * g->kw * (zw + 2 * g->kw);
    if (g->OW % (MAXQ * VL)) n += (size_t)g->kd * g->CO * (g->OH * zw + BD_CPAD);
    return n;
}

int conv3d_direct_legal(const Conv3dGeom *g) { return g->sd == 1 && g->sh == 1 && g->sw == 1 && g->kd <= MAXKD; }

// bwd-wt's partial sums (dW and dbias, OC x (K+1)) are kept in VL lanes each, summed once at the
// end of the layer, when that fits in 1M floats (4 MB, the GEMM path's column block; conv2 of
// BR-Net: 0.9 MB); wider layers (which run GEMM for bwd-wt unless told otherwise) sum each
// tile's lanes as it ends.
static size_t direct_dw_lanes(const Direct *g) {
    return (direct_K(g) + 1) * g->CO * VL <= (1u << 20) ? VL : 1;
}

// Slice layout: [buf | tmp | dyc | dW and dbias partials (OC x (K+1) x lanes) | wt (K x OC)],
// where bwd-data uses the start for its z rows (buf is not needed then).
typedef struct { size_t tmp, dyc, dw, wt, end; } DirectLayout;

static DirectLayout direct_layout(const Conv3dGeom *g) {
    Direct f = direct_fwd(g);
    size_t K = direct_K(&f), n = DF_MAX(direct_buf_floats(&f), direct_z_floats(&f));
    n = DF_MAX(n, direct_block_buf_floats(&f, dw_block_planes(&f)));
    n = DF_MAX(n, direct_flat_buf_floats(g));
    Conv3dGeom fg;
    if (bd_flipped_geom(g, &fg)) n = DF_MAX(n, direct_flat_buf_floats(&fg));
    DirectLayout l;
    l.tmp = n;
    l.dyc = l.tmp + direct_tmp_floats();
    l.dw = l.dyc + direct_dyc_floats(&f);
    l.wt = l.dw + (K + 1) * g->OC * direct_dw_lanes(&f);
    l.end = DF_MAX(DF_MAX(l.wt + K * g->OC, dws_floats(g)), fws_floats(g));
    if (bd_flipped_geom(g, &fg)) l.end = DF_MAX(l.end, fws_floats(&fg));
    return l;
}

size_t conv3d_direct_workspace_floats(const Conv3dGeom *g) {
    return conv3d_direct_legal(g) ? direct_layout(g).end : 0;
}

// ---- the padded input planes -----------------------------------------------------------------

// dst[r][t] = x[ci, id, r-ph, t-pw], 0 outside x (a plane of RH x WP). x is one sample (CI,D,H,W).
static void fill_plane(float *dst, const float *x, const Direct *g, int ci, int id) {
    const int WP = g->WP, t0 = DF_MAX(0, g->pw), t1 = DF_MAX(t0, DF_MIN(WP, g->W + g->pw));
    const size_t plane = (size_t)g->RH * WP;
    if (id < 0 || id >= g->D) { memset(dst, 0, plane * sizeof(float)); return; }
    const float *src = x + ((size_t)ci * g->D + id) * g->H * g->W;
    for (int r = 0; r < g->RH; r++) {
        float *d = dst + (size_t)r * WP;
        const int ih = r - g->ph;
        if (ih < 0 || ih >= g->H) { memset(d, 0, WP * sizeof(float)); continue; }
        for (int t = 0; t < t0; t++) d[t] = 0.0f;
        memcpy(d + t0, src + (size_t)ih * g->W + (t0 - g->pw), (size_t)(t1 - t0) * sizeof(float));
        for (int t = t1; t < WP; t++) d[t] = 0.0f;
    }
}

// buf[ci][p] = the nd + kd - 1 input planes that output planes [od, od+nd) read, padding
// included: (CI, nd + kd - 1, RH, WP).
static void fill_planes(float *buf, const float *x, const Direct *g, int od, int nd) {
    const size_t plane = (size_t)g->RH * g->WP;
    const int DP = nd + g->kd - 1;
    for (int ci = 0; ci < g->CI; ci++)
        for (int p = 0; p < DP; p++) fill_plane(buf + ((size_t)ci * DP + p) * plane, x, g, ci, od + p - g->pd);
}

// ---- the tiles, once per vector width ---------------------------------------------------------

// A flat plane's tile of np channels x one vec of positions v (direct_forward_geom), from tmp
// (VL floats per channel) into y's plane at yp (channels N apart), without the positions past
// OW; added to y instead when `add` (bwd-data taken as a forward, bd_by_forward).
INLINE void fwd_flat_store(float *yp, size_t N, const float *tmp, int np, int v, const Direct *g, int add) {
    for (int p = 0; p < np; p++) {
        int pos = v * VL, oh = pos / g->WP, ow = pos % g->WP;
        for (int j = 0; j < VL && oh < g->OH; j++) {
            if (ow < g->OW) {
                float *o = yp + p * N + (size_t)oh * g->OW + ow;
                *o = add ? *o + tmp[p * VL + j] : tmp[p * VL + j];
            }
            if (++ow == g->WP) ow = 0, oh++;
        }
    }
}

// The sum of n floats (a vec's lanes), in order.
INLINE float lane_sum(const float *d, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += d[i];
    return s;
}

#define DT_CAT2(a, b) a##b
#define DT_CAT(a, b) DT_CAT2(a, b)
#define HW 16
#define T_(name) DT_CAT(name, _h16)
#define BD_UNROLL 0
#include "nn/conv3d_direct_tiles.h"
#undef BD_UNROLL
#undef HW
#undef T_
#define HW 8
#define T_(name) DT_CAT(name, _h8)
#define BD_UNROLL BD_CHUNK  // see bd_plane_v3
#include "nn/conv3d_direct_tiles.h"
#undef BD_UNROLL
#undef HW
#undef T_
#define HW 4
#define T_(name) DT_CAT(name, _h4)
#define BD_UNROLL 0
#include "nn/conv3d_direct_tiles.h"
#undef BD_UNROLL
#undef HW
#undef T_


// ---- one compiled copy per instruction-set level ----------------------------------------------

// Tile shapes: accumulators + loaded operands within the register file (32 zmm, 16 ymm, 16 xmm;
// a vec is 1, 2 or 4 of them). Forward (PA x 1 vec, then 1 x QB), bwd-wt (P channels x T taps).
#define FWD_ARGS float *y, const float *x, const float *wt, const float *bias, const Direct *g, int od, float *buf, float *tmp
#define FLAT_ARGS FWD_ARGS, int add
#define DW_ARGS \
    float *dw, int with_bias, const float *dy, const float *x, const Direct *g, int od, int nd, float *buf, float *dyc
#define BD_ARGS \
    float *dx, const float *dy, const float *wz, const Direct *g, int id, int c0, int cn, float *ws, int reuse
#define DWS_ARGS float *dweight, const float *xs, const float *dys, const Direct *f, int q0, int q1
#define FWS_ARGS float *ys, const float *xs, const float *wp, const float *bias, const Direct *f, int r0, int r1
typedef void FwdPlaneFn(FWD_ARGS);
typedef void FlatPlaneFn(FLAT_ARGS);
typedef void DwPlaneFn(DW_ARGS);
typedef void BdPlaneFn(BD_ARGS);
typedef void DwsRowsFn(DWS_ARGS);
typedef void FwsRowsFn(FWS_ARGS);

static void fwd_plane_v2(FWD_ARGS) { fwd_plane_h4(y, x, wt, bias, g, od, buf, tmp, 2, 0, 2); }
static void fwd_flat_v2(FLAT_ARGS) { fwd_plane_flat_h4(y, x, wt, bias, g, od, buf, tmp, add, 2); }
static void dw_plane_v2(DW_ARGS) { dw_plane_h4(dw, with_bias, dy, x, g, od, nd, buf, dyc, 1, 2, 1, 2); }
static void bd_plane_v2(BD_ARGS) { bd_plane_h4(dx, dy, wz, g, id, c0, cn, ws, reuse, 2, 1, 1); }
static void dws_rows_v2(DWS_ARGS) { dws_rows_h4(dweight, xs, dys, f, q0, q1, 1); }
// fws tiles: P channels x Q positions (P x Q accumulators, P broadcast weights, one input vec)
static void fws_rows_v2(FWS_ARGS) { fws_rows_h4(ys, xs, wp, bias, f, r0, r1, 1, 2); }
#ifdef DIRECT_MULTIARCH
#define TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#define TARGET_V4 __attribute__((target("arch=x86-64-v4")))
// AVX2: 16 ymm registers, a vec is two of them. Forward: 6 channels x 1 vec (12 accumulators,
// the vec of input, a broadcast weight), then 4 at a time.
TARGET_V3 static void fwd_plane_v3(FWD_ARGS) { fwd_plane_h8(y, x, wt, bias, g, od, buf, tmp, 6, 4, 4); }
TARGET_V3 static void fwd_flat_v3(FLAT_ARGS) { fwd_plane_flat_h8(y, x, wt, bias, g, od, buf, tmp, add, 6); }
// 3 channels x 4 taps, a row's registers one after the other into the same 12 accumulators
// (dw_tile), 3 registers of dy and one of input
TARGET_V3 static void dw_plane_v3(DW_ARGS) { dw_plane_h8(dw, with_bias, dy, x, g, od, nd, buf, dyc, 3, 4, 3, 4); }
// 3 taps x 2 rows of dx x 1 vec (12 accumulators, 2 registers of dy, a broadcast weight); the
// loop over a chunk's BD_CHUNK channels unrolled (BD_UNROLL): conv1 of BR-Net on Zen 3, 1
// thread, minima of 11 runs alternated 6 times (64-byte aligned tensors): 31.8-35.3 ms against
// 35.2-39.7 with the loop and chunks of 2; on one sample, which stays in cache, 1.8-1.9 ms
// against 2.1-2.2 (in the runs where neither fell into a slow mode of 2.6-4.2 ms). Unrolled
// chunks of 2, 8 or 16 took 33, 47 and 40 ms
TARGET_V3 static void bd_plane_v3(BD_ARGS) { bd_plane_h8(dx, dy, wz, g, id, c0, cn, ws, reuse, 3, 1, 2); }
// Rows of at most two vecs (OW <= 32, conv2 of BR-Net): 3 taps x 2 vecs of one row (12
// accumulators, 4 registers of dy per 12 multiply-adds): conv2 on Zen 3, 1 thread, medians of
// 7 runs, alternated twice: 120-134 ms against 144-161 with 3 x 1 x 2 rows, 134-147 with
// 6 x 1 x 1, and GEMM's 183-190
TARGET_V3 static void bd_plane_v3_narrow(BD_ARGS) { bd_plane_h8(dx, dy, wz, g, id, c0, cn, ws, reuse, 3, 2, 1); }
TARGET_V3 static void dws_rows_v3(DWS_ARGS) { dws_rows_h8(dweight, xs, dys, f, q0, q1, 1); }
TARGET_V3 static void fws_rows_v3(FWS_ARGS) { fws_rows_h8(ys, xs, wp, bias, f, r0, r1, 2, 2); }
TARGET_V4 static void fwd_plane_v4(FWD_ARGS) { fwd_plane_h16(y, x, wt, bias, g, od, buf, tmp, 16, 0, 4); }
TARGET_V4 static void fwd_flat_v4(FLAT_ARGS) { fwd_plane_flat_h16(y, x, wt, bias, g, od, buf, tmp, add, 16); }
// Fewer than 16 output channels (a small network's first layer): tiles of 8, or every
// channel would take the one-channel remainder path, which shares no input loads.
TARGET_V4 static void fwd_plane_v4_8(FWD_ARGS) { fwd_plane_h16(y, x, wt, bias, g, od, buf, tmp, 8, 0, 4); }
// Single planes get a copy of their own: with one copy for both, whole-sample blocks (conv3)
// ran 8-10 % slower on Zen 5 than when the two forms were separate paths (same loops; the
// register allocation of the shared copy differed).
TARGET_V4 static void dw_plane_v4(DW_ARGS) {
    if (nd == 1) dw_plane_h16(dw, with_bias, dy, x, g, od, 1, buf, dyc, 4, 6, 4, 4);
    else dw_plane_h16(dw, with_bias, dy, x, g, od, nd, buf, dyc, 4, 6, 4, 4);
}
TARGET_V4 static void bd_plane_v4(BD_ARGS) { bd_plane_h16(dx, dy, wz, g, id, c0, cn, ws, reuse, 3, 4, 2); }
// 4 x 6 accumulators, 4 vecs of dy and one of the input: 29 of the 32 registers.
TARGET_V4 static void dws_rows_v4(DWS_ARGS) { dws_rows_h16(dweight, xs, dys, f, q0, q1, 4); }
// 4 x 4 accumulators, 4 weights and one input vec. On conv4 (Zen 5) 3 x 8, a whole row of
// 8 x 8 planes, ran at 72-76 % of sgemm (GCC kept accumulators on the stack), 2 x 8 at 60 %,
// 5 x 4 at 82-93 %, 4 x 4 at 90-92 %.
TARGET_V4 static void fws_rows_v4(FWS_ARGS) { fws_rows_h16(ys, xs, wp, bias, f, r0, r1, 4, 4); }
// Rows of at most two vecs (OW <= 32): a 4-vec tile would compute half zeros, so the tile
// is two vecs wide and twice as many taps tall.
TARGET_V4 static void bd_plane_v4_narrow(BD_ARGS) { bd_plane_h16(dx, dy, wz, g, id, c0, cn, ws, reuse, 6, 2, 2); }
#endif

void conv3d_direct_set_isa(int isa_max) { df_isa_set_max(isa_max); }

int conv3d_direct_isa(void) { return df_isa_level(); }

static FwdPlaneFn *fwd_plane_fn(const Direct *g) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return g->CO < 16 && g->CO >= 8 ? fwd_plane_v4_8 : fwd_plane_v4;
    case 3: return fwd_plane_v3;
    }
#endif
    return fwd_plane_v2;
}

static FlatPlaneFn *fwd_flat_fn(void) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return fwd_flat_v4;
    case 3: return fwd_flat_v3;
    }
#endif
    return fwd_flat_v2;
}

static BdPlaneFn *bd_plane_fn(const Direct *g) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return g->nv <= 2 ? bd_plane_v4_narrow : bd_plane_v4;
    case 3: return g->nv <= 2 ? bd_plane_v3_narrow : bd_plane_v3;
    }
#endif
    return bd_plane_v2;
}

static DwPlaneFn *dw_plane_fn(void) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return dw_plane_v4;
    case 3: return dw_plane_v3;
    }
#endif
    return dw_plane_v2;
}

static DwsRowsFn *dws_rows_fn(void) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return dws_rows_v4;
    case 3: return dws_rows_v3;
    }
#endif
    return dws_rows_v2;
}

static FwsRowsFn *fws_rows_fn(void) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return fws_rows_v4;
    case 3: return fws_rows_v3;
    }
#endif
    return fws_rows_v2;
}

// The channels of fws_rows_fn()'s tiles (the layout of their weights)
static int fws_tile_channels(void) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return 4;
    case 3: return 2;
    }
#endif
    return 1;
}

// ---- the layer's three phases, threaded over output planes -------------------------------------

// bwd-data sums dy's channels BD_CHUNK at a time, each chunk through all planes of a sample
// before the next, when its rows are read in place (OW a whole number of MAXQ-vec tiles). A
// plane of dx reads kd planes of dy in every channel; summing all CO channels at once keeps
// CO x kd rows in flight, a power-of-two stride apart. For BR-Net's first layer (16 channels,
// 32 x 64 x 64) that is 48 streams, and one channel's rows share their L2 sets with all the
// others' (a 512 KB stride); our reading is that a dy plane left the cache before the next two
// planes of dx read it again, so the tiles waited on memory (55-60 % of sgemm; the same tiles
// on a volume that stays cached ran at sgemm's rate). With 4 channels a plane of dy stays
// cached for the 3 planes of dx that read it, at the price of adding each chunk's Z rows into
// dx: 24-29 ms against 30-42 ms in the same runs (docs/performance.md); 2 or 8 were slower.
// Rows copied for padding (bd_plane) would be copied per plane and chunk, so those layers keep
// all channels at once. Of the kd planes of dy a plane of dx reads, one comes from memory, the
// others were read by the plane before: bd_plane prefetches that one into L2 while the plane
// before runs, row pair by row pair. conv1 on Zen 5, 1 thread: 14.0-14.3 ms against 15.2-16.1
// (58-59 % of sgemm to 64-65 %). Prefetching 2 planes ahead did no better; the rows 1 or 2
// row pairs ahead of the tiles, or dx's next plane as well, gained nothing; with the prefetch,
// 2, 8 or 16 channels at a time stayed slower than 4. The AVX2 tiles unroll their loop over a
// chunk's 4 channels (bd_plane_v3); with the loop, 2 channels at a time were faster on Zen 3.
static int bd_chunk(const Direct *g) {
    return g->OW % (MAXQ * VL) == 0 && g->CO > BD_CHUNK ? BD_CHUNK : g->CO;
}

// As conv_threads in nn/conv3d.c: at most `threads` workspace slices and df_threads().
static int direct_threads(int threads, long items) {
    int t = DF_MIN(threads, df_threads());
    return t > 1 && items >= t ? t : 1;
}

static void fws_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                        const Conv3dGeom *g, float *workspace, int threads, int add);

// The forward's work items, one per (sample, output plane): out (B,OC,OD,OH,OW) from inp
// (B,C,D,H,W) and wt (K, OC), added into out when `add` (flat planes only). Each thread's slice
// has its buffer at 0 and its tile scratch at tmp.
static void forward_items(float *out, const float *inp, const float *wt, const float *bias, int B, const Conv3dGeom *g,
                          float *workspace, size_t slice, size_t tmp, int threads, int add) {
    const Direct f = direct_forward_geom(g);
    const size_t in_n = (size_t)g->C * g->D * g->H * g->W, out_n = (size_t)g->OC * g->OD * g->OH * g->OW;
    const long items = (long)B * g->OD;
    const int nt = direct_threads(threads, items);
    FwdPlaneFn *plane_fn = f.flat ? NULL : fwd_plane_fn(&f);
    FlatPlaneFn *flat_fn = f.flat ? fwd_flat_fn() : NULL;
    DF_ASSERT(!add || f.flat);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long it = 0; it < items; it++) {
        const int bi = (int)(it / g->OD), od = (int)(it % g->OD);
        float *ws = workspace + (size_t)df_thread_id() * slice;
        if (flat_fn) flat_fn(out + bi * out_n, inp + bi * in_n, wt, bias, &f, od, ws, ws + tmp, add);
        else plane_fn(out + bi * out_n, inp + bi * in_n, wt, bias, &f, od, ws, ws + tmp);
    }
}

void conv3d_direct_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                           const Conv3dGeom *g, float *workspace, size_t slice, int threads) {
    // wt (K, OC) = weight (OC, K) transposed: a tile broadcasts its P channels' weights of one
    // tap from one row
    if (forward_flat(g) && sil_lanes_filled(B)) {
        DF_ASSERT(fws_floats(g) <= slice);  // direct_layout
        fws_forward(out, inp, weight, bias, B, g, workspace, threads, 0);
        return;
    }
    const DirectLayout l = direct_layout(g);
    const size_t K = (size_t)g->C * g->kd * g->kh * g->kw;
    float *wt = workspace + l.wt;
    for (int co = 0; co < g->OC; co++)
        for (size_t k = 0; k < K; k++) wt[k * g->OC + co] = weight[co * K + k];
    forward_items(out, inp, wt, bias, B, g, workspace, slice, l.tmp, threads, 0);
}

// bwd-data as the forward of dy (the flipped geometry, bd_flipped_geom) with the kernel flipped
// on its three axes and its channels swapped, added into dx:
//   dx[c,id,ih,iw] += sum_{oc,a,b,e} w[oc, c, kd-1-a, kh-1-b, kw-1-e] * dypad[oc, id+a, ih+b, iw+e]
static void bd_by_forward(float *dinp, const float *dout, const float *weight, int B, const Conv3dGeom *g,
                          const Conv3dGeom *fg, float *workspace, size_t slice, int threads) {
    // wt (K', C): row (oc, a, b, e) holds weight[oc, :, kd-1-a, kh-1-b, kw-1-e]; flipping all
    // three axes reverses the taps' flat index t
    if (sil_lanes_filled(B)) {
        DF_ASSERT(fws_floats(fg) <= slice);  // direct_layout
        fws_forward(dinp, dout, weight, NULL, B, fg, workspace, threads, 1);
        return;
    }
    const DirectLayout l = direct_layout(g);
    const size_t taps = (size_t)g->kd * g->kh * g->kw;
    float *wt = workspace + l.wt;
    for (int oc = 0; oc < g->OC; oc++)
        for (int c = 0; c < g->C; c++)
            for (size_t t = 0; t < taps; t++)
                wt[(oc * taps + t) * g->C + c] = weight[((size_t)oc * g->C + c) * taps + taps - 1 - t];
    forward_items(dinp, dout, wt, NULL, B, fg, workspace, slice, l.tmp, threads, 1);
}

void conv3d_direct_backward_data(float *dinp, const float *dout, const float *weight, int B, const Conv3dGeom *g,
                                 float *workspace, size_t slice, int threads) {
    Conv3dGeom fg;
    if (bd_flipped_geom(g, &fg)) {
        bd_by_forward(dinp, dout, weight, B, g, &fg, workspace, slice, threads);
        return;
    }
    // wz[a][b][oc][(c,e)] = weight[oc, c, a, b, e]: a tile broadcasts P taps (c,e) of one channel
    const Direct f = direct_fwd(g);
    const DirectLayout l = direct_layout(g);
    const int C = g->C, OC = g->OC, kd = g->kd, kh = g->kh, kw = g->kw, TE = C * kw;
    const size_t in_n = (size_t)C * g->D * g->H * g->W, out_n = (size_t)OC * g->OD * g->OH * g->OW;
    float *wz = workspace + l.wt;
    for (int oc = 0; oc < OC; oc++)
        for (int c = 0; c < C; c++)
            for (int a = 0; a < kd; a++)
                for (int b = 0; b < kh; b++)
                    for (int e = 0; e < kw; e++)
                        wz[(((size_t)a * kh + b) * OC + oc) * TE + c * kw + e] =
                            weight[((((size_t)oc * C + c) * kd + a) * kh + b) * kw + e];
    // Work items: a sample's planes, or blocks of them when there are too few samples to give
    // the threads even shares (at least 4 items per thread)
    const int tmax = DF_MIN(threads, df_threads());
    const int CB = bd_chunk(&f), nblk = tmax > 1 ? DF_MAX(1, DF_MIN(g->D, (4 * tmax + B - 1) / B)) : 1;
    const long items = (long)B * nblk;
    const int nt = direct_threads(threads, items);
    BdPlaneFn *plane_fn = bd_plane_fn(&f);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long it = 0; it < items; it++) {
        const int bi = (int)(it / nblk), blk = (int)(it % nblk);
        const int d0 = (int)((long)g->D * blk / nblk), d1 = (int)((long)g->D * (blk + 1) / nblk);
        // id > d0: this thread's last call was plane id - 1 of this sample, whose copies of dy
        // (padded rows only) plane id can take over
        for (int c0 = 0; c0 < OC; c0 += CB)
            for (int id = d0; id < d1; id++)
                plane_fn(dinp + bi * in_n, dout + bi * out_n, wz, &f, id, c0, DF_MIN(CB, OC - c0),
                         workspace + (size_t)df_thread_id() * slice, id > d0);
    }
}

// xs (dw_samples) of samples [s0, s0 + n), n <= VL, from x (B,CI,D,H,W): channel c, zeroed first.
static void sil_fill_x(float *xs, const float *x, const Direct *f, int s0, int n, int c) {
    const size_t in_n = (size_t)f->CI * f->D * f->H * f->W;
    const size_t xc = (size_t)(f->D + 2 * f->pd) * f->RH * f->WP * VL;
    float *dst = xs + c * xc;
    memset(dst, 0, xc * sizeof(float));
    for (int s = 0; s < n; s++) {
        const float *src = x + (s0 + s) * in_n + (size_t)c * f->D * f->H * f->W;
        for (int id = 0; id < f->D; id++)
            for (int ih = 0; ih < f->H; ih++)
                for (int iw = 0; iw < f->W; iw++)
                    dst[(((size_t)(id + f->pd) * f->RH + ih + f->ph) * f->WP + iw + f->pw) * VL + s] =
                        src[((size_t)id * f->H + ih) * f->W + iw];
    }
}

// xs and dys (dw_samples) of samples [s0, s0 + n), n <= VL, from x (B,CI,D,H,W) and dy
// (B,CO,OD,OH,OW); the channels shared out over the threads.
static void dws_fill(float *xs, float *dys, const float *x, const float *dy, const Direct *f, int s0, int n, int nt) {
    const size_t out_n = (size_t)f->CO * f->OD * f->OH * f->OW, dc = (size_t)f->OD * f->OH * f->OW * VL;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int c = 0; c < f->CI + f->CO; c++) {
        if (c < f->CI) {
            sil_fill_x(xs, x, f, s0, n, c);
        } else {
            const int co = c - f->CI;
            float *dst = dys + co * dc;
            if (n < VL) memset(dst, 0, dc * sizeof(float));
            for (int s = 0; s < n; s++) {
                const float *src = dy + (s0 + s) * out_n + co * (dc / VL);
                for (size_t j = 0; j < dc / VL; j++) dst[j * VL + s] = src[j];
            }
        }
    }
}

// The forward with samples in the lanes (fws_rows) of out (B,CO,OD,OH,OW) from inp (B,CI,D,H,W)
// and weight (CO, K); with `add`, bwd-data as that forward (bd_by_forward): g the flipped
// geometry, weight the layer's, out added into. g is flat
// (forward_flat). Per group of VL samples: xs filled by channel, the rows of ys shared out
// over the threads, then ys copied (added) out by channel.
static void fws_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                        const Conv3dGeom *g, float *workspace, int threads, int add) {
    const Direct f = direct_forward_geom(g);
    const size_t K = direct_K(&f), xsn = dws_x_floats(&f), N = (size_t)g->OD * g->OH * g->OW;
    const size_t out_n = (size_t)g->OC * N, OWQ = FWS_ROW(g->OW);
    float *xs = workspace, *ys = xs + xsn + FWS_SLACK, *wp = ys + fws_ys_floats(&f);
    const int P = fws_tile_channels(), rows = g->OD * g->OH;
    FwsRowsFn *rows_fn = fws_rows_fn();
    // wp[t][k][p] = weight[t*P + p, k], 0 past CO; bwd-data: the layer's weight (C', OC', taps)
    // with its kernel flipped, output channel c and tap k = (oc, t) taking weight[oc, c, taps-1-t]
    const size_t taps = (size_t)g->kd * g->kh * g->kw;
    for (int co0 = 0; co0 < g->OC; co0 += P)
        for (size_t k = 0; k < K; k++)
            for (int p = 0, co = co0; p < P; p++, co++)
                wp[(size_t)co0 * K + k * P + p] =
                    co >= g->OC ? 0.0f
                    : add ? weight[((k / taps) * g->OC + co) * taps + taps - 1 - k % taps] : weight[co * K + k];
    const int nt = direct_threads(threads, rows);
    memset(xs + xsn, 0, FWS_SLACK * sizeof(float));  // read past the last row, by tiles it drops
    for (int s0 = 0; s0 < B; s0 += VL) {
        const int n = DF_MIN(VL, B - s0);
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
#pragma omp for schedule(static)
            for (int c = 0; c < g->C; c++) sil_fill_x(xs, inp, &f, s0, n, c);
            const int t = df_thread_id(), tn = nt > 1 ? nt : 1;
            rows_fn(ys, xs, wp, bias, &f, (int)((long)rows * t / tn), (int)((long)rows * (t + 1) / tn));
#pragma omp barrier
#pragma omp for schedule(static)
            for (int co = 0; co < g->OC; co++)
                for (int s = 0; s < n; s++) {
                    float *o = out + (s0 + s) * out_n + co * N;
                    const float *y = ys + (size_t)co * rows * OWQ * VL + s;
                    for (int r = 0; r < rows; r++)
                        for (int ow = 0; ow < g->OW; ow++, o++) {
                            const float v = y[((size_t)r * OWQ + ow) * VL];
                            *o = add ? *o + v : v;
                        }
                }
        }
    }
}

// bwd-wt with samples in the lanes (dw_samples): groups of VL samples, each copied into xs and dys
// at the start of the workspace (all threads' slices are one array), then the kernel-row pairs
// shared out over the threads. The bias gradient is dout's sums, taken apart.
static void dw_by_samples(float *dweight, float *dbias, const float *dout, const float *inp, int B, const Conv3dGeom *g,
                          float *workspace, int threads) {
    const Direct f = direct_forward_geom(g);  // rows WP = OW + kw - 1 apart
    const size_t N = (size_t)g->OD * g->OH * g->OW, out_n = (size_t)g->OC * N;
    const int pairs = (g->C * g->kd * g->kh + 1) / 2;
    const int nt = direct_threads(threads, pairs);
    float *xs = workspace, *dys = workspace + dws_x_floats(&f);
    DwsRowsFn *rows_fn = dws_rows_fn();
    for (int s0 = 0; s0 < B; s0 += VL) {
        dws_fill(xs, dys, inp, dout, &f, s0, DF_MIN(VL, B - s0), nt);
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            const int t = df_thread_id(), n = nt > 1 ? nt : 1;
            rows_fn(dweight, xs, dys, &f, (int)((long)pairs * t / n), (int)((long)pairs * (t + 1) / n));
        }
    }
    if (dbias)
        for (int bi = 0; bi < B; bi++)
            for (int oc = 0; oc < g->OC; oc++) dbias[oc] += lane_sum(dout + bi * out_n + oc * N, N);
}

void conv3d_direct_backward_weights(float *dweight, float *dbias, const float *dout, const float *inp, int B,
                                    const Conv3dGeom *g, float *workspace, size_t slice, int threads) {
    if (dw_samples(g)) {
        DF_ASSERT(dws_floats(g) <= slice);  // direct_layout
        dw_by_samples(dweight, dbias, dout, inp, B, g, workspace, threads);
        return;
    }
    const Direct f = direct_fwd(g);
    const DirectLayout l = direct_layout(g);
    const size_t K = direct_K(&f), in_n = (size_t)g->C * g->D * g->H * g->W, lanes = direct_dw_lanes(&f);
    const size_t out_n = (size_t)g->OC * g->OD * g->OH * g->OW;
    // blocks of planes when each thread gets two samples or more (else single planes: a small
    // last batch on several threads still shares the work out)
    const int tmax = DF_MIN(threads, df_threads());
    const int nb = tmax <= 1 || B >= 2 * tmax ? dw_block_planes(&f) : 1, per_item = (g->OD + nb - 1) / nb;
    const long items = (long)B * per_item;
    const int nt = direct_threads(threads, items);
    DwPlaneFn *plane_fn = dw_plane_fn();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *ws = workspace + (size_t)df_thread_id() * slice;
        memset(ws + l.dw, 0, (K + 1) * g->OC * lanes * sizeof(float));
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const int bi = (int)(it / per_item), od = (int)(it % per_item) * nb, nd = DF_MIN(nb, g->OD - od);
            plane_fn(ws + l.dw, dbias != NULL, dout + bi * out_n, inp + bi * in_n, &f, od, nd, ws, ws + l.dyc);
        }
    }
    for (int t = 0; t < nt; t++) {  // thread order: the same sums for the same thread count
        const float *dw = workspace + (size_t)t * slice + l.dw;  // (OC, K+1, lanes): weights, bias
        for (int oc = 0; oc < g->OC; oc++) {
            for (size_t k = 0; k < K; k++)
                dweight[oc * K + k] += lane_sum(dw + (oc * (K + 1) + k) * lanes, lanes);
            if (dbias) dbias[oc] += lane_sum(dw + (oc * (K + 1) + K) * lanes, lanes);
        }
    }
}
