// conv3d_direct.c: direct 3D convolution for stride-1 layers with few input channels.
//
// vol2col + GEMM (nn/conv3d.c) runs near sgemm's rate when K = C*kd*kh*kw is large, but the
// first layer of an MRI network has C = 1: K = 27 against M = 16 output channels, a GEMM so
// thin that OpenBLAS reaches about a third of its square-matrix rate, after vol2col has written
// 27 copies of the input. Here the same sums are taken straight from the input:
//   forward   y[co,od,oh,ow] = bias[co] + sum_{ci,a,b,e} w[co,ci,a,b,e] * xpad[ci, od+a, oh+b, ow+e]
//   bwd-data  the forward of dy with the kernel flipped and transposed and pad k-1-p, added to dx
//   bwd-wt    dw[co,ci,a,b,e] += sum_{od,oh,ow} dy[co,od,oh,ow] * xpad[ci, od+a, oh+b, ow+e]
// One work item is one output plane (sample, od). It first copies the kd input planes it reads
// into the thread's workspace with the zero padding written out ("buf"), so the inner loops have
// no edge tests; then register tiles of outputs (forward) or of weight-gradient partial sums
// (bwd-wt) run over it.
//
// The tiles use GCC vector extensions: `vec` is 16 floats, one AVX-512 register, two AVX2 or
// four SSE registers. Auto-vectorising the same loops over float arrays kept the accumulators
// in memory (or shuffled them), so the vectors are spelled out; the arithmetic is still plain C.
// Each plane function is compiled three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA)
// and the build's baseline (x86-64-v2), with a tile shape that fits that level's registers, and
// picked at run time from the CPU's features. (target_clones("arch=skylake-avx512", ...) does
// not do: its resolver tests for an Intel model number, so AMD CPUs with AVX-512 never get it.)
#include "nn/conv3d_direct.h"
#include "base/common.h"
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
typedef float vec __attribute__((vector_size(VL * sizeof(float))));
typedef float vec_u __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));  // unaligned
#define LOADV(p) (*(const vec_u *)(p))
#define STOREV(p, v) (*(vec_u *)(p) = (v))
#define INLINE static inline __attribute__((always_inline))
// The tile loops must be unrolled completely so that each accumulator becomes a register.
#define UNROLL _Pragma("GCC unroll 16")

typedef struct {
    int CI, D, H, W;   // input, one sample
    int CO, OD, OH, OW;  // output
    int kd, kh, kw;
    int pd, ph, pw;    // zero padding; negative (the backward-data form of pad > k-1) crops
    int nv;            // vecs per output row: ceil(OW / VL)
    int RH, WP;        // rows per buffered input plane (OH + kh - 1), floats per buffered row
} Direct;

static Direct direct_geom(int CI, int D, int H, int W, int CO, int OD, int OH, int OW, const int k[3], const int p[3]) {
    Direct g = { CI, D, H, W, CO, OD, OH, OW, k[0], k[1], k[2], p[0], p[1], p[2], 0, 0, 0 };
    g.nv = (OW + VL - 1) / VL;
    g.RH = OH + k[1] - 1;
    g.WP = (g.nv + MAXQ - 1) / MAXQ * MAXQ * VL + k[2] - 1;  // a tile of MAXQ vecs may run past OW
    return g;
}

// The layer's forward, and its backward-data as a forward from dout to dinp.
static Direct direct_fwd(const Conv3dGeom *g) {
    const int k[3] = { g->kd, g->kh, g->kw }, p[3] = { g->pd, g->ph, g->pw };
    return direct_geom(g->C, g->D, g->H, g->W, g->OC, g->OD, g->OH, g->OW, k, p);
}
static Direct direct_bwd_data(const Conv3dGeom *g) {
    const int k[3] = { g->kd, g->kh, g->kw }, p[3] = { g->kd - 1 - g->pd, g->kh - 1 - g->ph, g->kw - 1 - g->pw };
    return direct_geom(g->OC, g->OD, g->OH, g->OW, g->C, g->D, g->H, g->W, k, p);
}

static size_t direct_K(const Direct *g) { return (size_t)g->CI * g->kd * g->kh * g->kw; }
static size_t direct_buf_floats(const Direct *g) { return (size_t)g->CI * g->kd * g->RH * g->WP; }
static size_t direct_tmp_floats(void) { return (size_t)MAXP * MAXQ * VL; }
// bwd-wt copies a plane of dout with each row zero-padded to nv vecs when OW is not a multiple
static size_t direct_dyc_floats(const Direct *g) {
    return g->OW % VL ? (size_t)g->CO * g->OH * g->nv * VL : 0;
}

int conv3d_direct_legal(const Conv3dGeom *g) { return g->sd == 1 && g->sh == 1 && g->sw == 1; }

// Slice layout: [buf | tmp | dyc | dW partial (OC x K) | dbias partial (OC) | wt (K x OC)]
// where buf is sized for the larger of the forward and backward-data geometries.
typedef struct { size_t tmp, dyc, dw, db, wt, end; } DirectLayout;

static DirectLayout direct_layout(const Conv3dGeom *g) {
    Direct f = direct_fwd(g), d = direct_bwd_data(g);
    size_t K = direct_K(&f), n = DF_MAX(direct_buf_floats(&f), direct_buf_floats(&d));
    DirectLayout l;
    l.tmp = n;
    l.dyc = l.tmp + direct_tmp_floats();
    l.dw = l.dyc + direct_dyc_floats(&f);
    l.db = l.dw + K * g->OC;
    l.wt = l.db + g->OC;
    l.end = l.wt + K * g->OC;
    return l;
}

size_t conv3d_direct_workspace_floats(const Conv3dGeom *g) {
    return conv3d_direct_legal(g) ? direct_layout(g).end : 0;
}

// ---- the padded input planes -----------------------------------------------------------------

// buf[ci][a][r][t] = x[ci, od-pd+a, r-ph, t-pw], 0 outside x: the kd input planes that output
// plane od reads, padding included. x is one sample (CI,D,H,W); buf is (CI*kd, RH, WP).
static void fill_planes(float *buf, const float *x, const Direct *g, int od) {
    const int WP = g->WP, t0 = DF_MAX(0, g->pw), t1 = DF_MAX(t0, DF_MIN(WP, g->W + g->pw));
    const size_t plane = (size_t)g->RH * WP;
    for (int ca = 0; ca < g->CI * g->kd; ca++) {
        const int ci = ca / g->kd, id = od - g->pd + ca % g->kd;
        float *dst = buf + ca * plane;
        if (id < 0 || id >= g->D) { memset(dst, 0, plane * sizeof(float)); continue; }
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
}

// ---- forward tile ---------------------------------------------------------------------------

// The outputs [co0, co0+P) x [ow0, ow0 + Q*VL) of one row: yt (rows ldy apart) holds the start
// values when `accumulate` (else they are bias, or 0), and gets the sums. xb is buf at this row
// and column ow0; wt is (K, CO) at column co0, bias (or NULL) at co0.
INLINE void fwd_tile(float *yt, size_t ldy, const float *bias, int accumulate, const float *xb, const float *wt,
                     const Direct *g, const int P, const int Q) {
    vec acc[MAXP][MAXQ];
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int q = 0; q < Q; q++)
            if (accumulate) acc[p][q] = LOADV(yt + p * ldy + q * VL);
            else acc[p][q] = (vec){ 0 } + (bias ? bias[p] : 0.0f);
    const size_t plane = (size_t)g->RH * g->WP;
    const int CO = g->CO;
    const float *w = wt;
    for (int ca = 0; ca < g->CI * g->kd; ca++)
        for (int b = 0; b < g->kh; b++) {
            const float *xr = xb + ca * plane + (size_t)b * g->WP;
            for (int e = 0; e < g->kw; e++, w += CO) {
                vec xv[MAXQ];
                UNROLL for (int q = 0; q < Q; q++) xv[q] = LOADV(xr + e + q * VL);
                UNROLL for (int p = 0; p < P; p++)
                    UNROLL for (int q = 0; q < Q; q++) acc[p][q] += w[p] * xv[q];
            }
        }
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int q = 0; q < Q; q++) STOREV(yt + p * ldy + q * VL, acc[p][q]);
}

// fwd_tile at vec v of a row whose channel co0 starts at yr (channels N apart). The row's end,
// where fewer than Q*VL outputs are left, goes through tmp (zero-padded) so no tile writes past.
INLINE void fwd_tile_at(float *yr, size_t N, const float *bias, int accumulate, const float *xb, const float *wt,
                        const Direct *g, int v, float *tmp, const int P, const int Q) {
    const int ow0 = v * VL, n = DF_MIN(Q * VL, g->OW - ow0), w = Q * VL;
    if (n == w) {
        fwd_tile(yr + ow0, N, bias, accumulate, xb + ow0, wt, g, P, Q);
        return;
    }
    for (int p = 0; p < P; p++)
        for (int j = 0; j < w; j++) tmp[p * w + j] = accumulate && j < n ? yr[p * N + ow0 + j] : 0.0f;
    fwd_tile(tmp, (size_t)w, bias, accumulate, xb + ow0, wt, g, P, Q);
    for (int p = 0; p < P; p++)
        for (int j = 0; j < n; j++) yr[p * N + ow0 + j] = tmp[p * w + j];
}

// Output plane od of one sample: y (CO,OD,OH,OW) from x (CI,D,H,W) and wt (K,CO), the weight
// transposed. Channels go PA at a time in tiles one vec wide, the rest (< PA) one at a time in
// tiles QB vecs wide (so that even CO = 1 keeps QB accumulators busy).
INLINE void fwd_plane(float *y, const float *x, const float *wt, const float *bias, int accumulate, const Direct *g,
                      int od, float *buf, float *tmp, const int PA, const int QB) {
    fill_planes(buf, x, g, od);
    const size_t N = (size_t)g->OD * g->OH * g->OW;
    for (int oh = 0; oh < g->OH; oh++) {
        float *yr = y + ((size_t)od * g->OH + oh) * g->OW;
        const float *xb = buf + (size_t)oh * g->WP;
        int co = 0;
        for (; co + PA <= g->CO; co += PA)
            for (int v = 0; v < g->nv; v++)
                fwd_tile_at(yr + co * N, N, bias ? bias + co : NULL, accumulate, xb, wt + co, g, v, tmp, PA, 1);
        for (; co < g->CO; co++)
            for (int v = 0; v < g->nv; v += QB)
                fwd_tile_at(yr + co * N, N, bias ? bias + co : NULL, accumulate, xb, wt + co, g, v, tmp, 1, QB);
    }
}

// ---- backward-weights tile --------------------------------------------------------------------

INLINE float vec_sum(const vec *v) {
    float s = 0.0f;
    for (int i = 0; i < VL; i++) s += (*v)[i];
    return s;
}

// dw[p][t] (rows K apart) += the sum over one plane of dy channel p times tap t of the input,
// for p < np, t < nt (the tile computes P x T; rows and taps past np, nt repeat the last one
// and are dropped). dyp[p]: channel p's plane of dy, rows ldd apart, zero past OW. xoff[t]:
// tap t's offset in buf.
INLINE void dw_tile(float *dw, size_t K, int np, int nt, const float *const *dyp, size_t ldd, const float *buf,
                    const size_t *xoff, const Direct *g, const int P, const int T) {
    vec acc[MAXP][MAXT];
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int t = 0; t < T; t++) acc[p][t] = (vec){ 0 };
    for (int oh = 0; oh < g->OH; oh++) {
        const float *xr = buf + (size_t)oh * g->WP;
        const size_t dr = (size_t)oh * ldd;
        for (int v = 0; v < g->nv; v++) {
            vec d[MAXP];
            UNROLL for (int p = 0; p < P; p++) d[p] = LOADV(dyp[p] + dr + v * VL);
            UNROLL for (int t = 0; t < T; t++) {
                const vec xv = LOADV(xr + xoff[t] + v * VL);
                UNROLL for (int p = 0; p < P; p++) acc[p][t] += d[p] * xv;
            }
        }
    }
    for (int p = 0; p < np && p < P; p++)
        for (int t = 0; t < nt && t < T; t++) dw[p * K + t] += vec_sum(&acc[p][t]);
}

// Sum of one channel's plane of dy (rows ldd apart, whole vecs, zero past OW), in VL lanes.
INLINE float plane_sum(const float *d, size_t ldd, const Direct *g) {
    vec acc = { 0 };
    for (int oh = 0; oh < g->OH; oh++)
        for (int v = 0; v < g->nv; v++) acc += LOADV(d + oh * ldd + v * VL);
    return vec_sum(&acc);
}

// dw (CO, K) += the weight gradient of output plane od of one sample, and (db non-NULL) db (CO)
// += its bias gradient. dy is the sample's (CO,OD,OH,OW), x its (CI,D,H,W).
INLINE void dw_plane(float *dw, float *db, const float *dy, const float *x, const Direct *g, int od, float *buf,
                     float *dyc, const int P, const int T) {
    fill_planes(buf, x, g, od);
    const size_t K = direct_K(g), N = (size_t)g->OD * g->OH * g->OW, plane = (size_t)g->RH * g->WP;
    const float *dy0 = dy + (size_t)od * g->OH * g->OW;
    size_t ldd = g->OW, cstride = N;
    if (g->OW % VL) {  // rows padded with zeros to whole vecs
        ldd = (size_t)g->nv * VL;
        cstride = g->OH * ldd;
        for (int co = 0; co < g->CO; co++)
            for (int oh = 0; oh < g->OH; oh++) {
                float *d = dyc + co * cstride + oh * ldd;
                memcpy(d, dy0 + co * N + (size_t)oh * g->OW, (size_t)g->OW * sizeof(float));
                for (size_t j = g->OW; j < ldd; j++) d[j] = 0.0f;
            }
        dy0 = dyc;
    }
    if (db)
        for (int co = 0; co < g->CO; co++) db[co] += plane_sum(dy0 + co * cstride, ldd, g);
    for (size_t k0 = 0; k0 < K; k0 += T) {
        const int nt = (int)DF_MIN((size_t)T, K - k0);
        size_t xoff[MAXT];
        for (int t = 0; t < T; t++) {  // tap k = ((ci*kd + a)*kh + b)*kw + e
            const size_t k = k0 + DF_MIN(t, nt - 1), e = k % g->kw, b = k / g->kw % g->kh, ca = k / g->kw / g->kh;
            xoff[t] = ca * plane + b * g->WP + e;
        }
        for (int co0 = 0; co0 < g->CO; co0 += P) {
            const int np = DF_MIN(P, g->CO - co0);
            const float *dyp[MAXP];
            for (int p = 0; p < P; p++) dyp[p] = dy0 + (co0 + DF_MIN(p, np - 1)) * cstride;
            dw_tile(dw + co0 * K + k0, K, np, nt, dyp, ldd, buf, xoff, g, P, T);
        }
    }
}

// ---- one compiled copy per instruction-set level ----------------------------------------------

// Tile shapes: accumulators + loaded operands within the register file (32 zmm, 16 ymm, 16 xmm;
// a vec is 1, 2 or 4 of them). Forward (PA x 1 vec, then 1 x QB), bwd-wt (P channels x T taps).
#define FWD_ARGS float *y, const float *x, const float *wt, const float *bias, int accumulate, const Direct *g, int od, \
                 float *buf, float *tmp
#define DW_ARGS float *dw, float *db, const float *dy, const float *x, const Direct *g, int od, float *buf, float *dyc
typedef void FwdPlaneFn(FWD_ARGS);
typedef void DwPlaneFn(DW_ARGS);

static void fwd_plane_v2(FWD_ARGS) { fwd_plane(y, x, wt, bias, accumulate, g, od, buf, tmp, 2, 2); }
static void dw_plane_v2(DW_ARGS) { dw_plane(dw, db, dy, x, g, od, buf, dyc, 1, 2); }
#ifdef DIRECT_MULTIARCH
__attribute__((target("arch=x86-64-v3"))) static void fwd_plane_v3(FWD_ARGS) {
    fwd_plane(y, x, wt, bias, accumulate, g, od, buf, tmp, 6, 4);
}
__attribute__((target("arch=x86-64-v3"))) static void dw_plane_v3(DW_ARGS) { dw_plane(dw, db, dy, x, g, od, buf, dyc, 2, 2); }
__attribute__((target("arch=x86-64-v4"))) static void fwd_plane_v4(FWD_ARGS) {
    fwd_plane(y, x, wt, bias, accumulate, g, od, buf, tmp, 16, 4);
}
__attribute__((target("arch=x86-64-v4"))) static void dw_plane_v4(DW_ARGS) { dw_plane(dw, db, dy, x, g, od, buf, dyc, 4, 6); }
#endif

static int direct_isa_cap;

void conv3d_direct_set_isa(int isa_max) { direct_isa_cap = isa_max; }

int conv3d_direct_isa(void) {
    int isa = 2;
#ifdef DIRECT_MULTIARCH
    isa = __builtin_cpu_supports("x86-64-v4") ? 4 : __builtin_cpu_supports("x86-64-v3") ? 3 : 2;
#endif
    return direct_isa_cap >= 2 ? DF_MIN(isa, direct_isa_cap) : isa;
}

static FwdPlaneFn *fwd_plane_fn(void) {
#ifdef DIRECT_MULTIARCH
    switch (conv3d_direct_isa()) {
    case 4: return fwd_plane_v4;
    case 3: return fwd_plane_v3;
    }
#endif
    return fwd_plane_v2;
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

// ---- the layer's three phases, threaded over output planes -------------------------------------

// As conv_threads in nn/conv3d.c: at most `threads` workspace slices and df_threads().
static int direct_threads(int threads, long items) {
    int t = DF_MIN(threads, df_threads());
    return t > 1 && items >= t ? t : 1;
}

// Every (sample, plane) of `out` from `inp` with wt (K, CO); items write disjoint planes.
static void direct_run(float *out, const float *inp, const float *wt, const float *bias, int accumulate, int B,
                       const Direct *g, float *workspace, size_t slice, const DirectLayout *l, int threads) {
    const size_t in_n = (size_t)g->CI * g->D * g->H * g->W, out_n = (size_t)g->CO * g->OD * g->OH * g->OW;
    const long items = (long)B * g->OD;
    const int nt = direct_threads(threads, items);
    FwdPlaneFn *plane_fn = fwd_plane_fn();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long it = 0; it < items; it++) {
        const int bi = (int)(it / g->OD), od = (int)(it % g->OD);
        float *ws = workspace + (size_t)df_thread_id() * slice;
        plane_fn(out + bi * out_n, inp + bi * in_n, wt, bias, accumulate, g, od, ws, ws + l->tmp);
    }
}

void conv3d_direct_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                           const Conv3dGeom *g, float *workspace, size_t slice, int threads) {
    // wt (K, OC) = weight (OC, K) transposed: a tile broadcasts its P channels' weights of one
    // tap from one row
    const Direct f = direct_fwd(g);
    const DirectLayout l = direct_layout(g);
    const size_t K = direct_K(&f);
    float *wt = workspace + l.wt;
    for (int co = 0; co < g->OC; co++)
        for (size_t k = 0; k < K; k++) wt[k * g->OC + co] = weight[co * K + k];
    direct_run(out, inp, wt, bias, 0, B, &f, workspace, slice, &l, threads);
}

void conv3d_direct_backward_data(float *dinp, const float *dout, const float *weight, int B, const Conv3dGeom *g,
                                 float *workspace, size_t slice, int threads) {
    // wt[(oc,a,b,e), c] = weight[oc, c, kd-1-a, kh-1-b, kw-1-e]: the transposed convolution
    // (input oc, output c) with the kernel flipped
    const Direct d = direct_bwd_data(g);
    const DirectLayout l = direct_layout(g);
    const int kv = g->kd * g->kh * g->kw, C = g->C;
    float *wt = workspace + l.wt;
    for (int oc = 0; oc < g->OC; oc++)
        for (int c = 0; c < C; c++)
            for (int j = 0; j < kv; j++) wt[((size_t)oc * kv + j) * C + c] = weight[((size_t)oc * C + c) * kv + (kv - 1 - j)];
    direct_run(dinp, dout, wt, NULL, 1, B, &d, workspace, slice, &l, threads);
}

void conv3d_direct_backward_weights(float *dweight, float *dbias, const float *dout, const float *inp, int B,
                                    const Conv3dGeom *g, float *workspace, size_t slice, int threads) {
    const Direct f = direct_fwd(g);
    const DirectLayout l = direct_layout(g);
    const size_t K = direct_K(&f), in_n = (size_t)g->C * g->D * g->H * g->W;
    const size_t out_n = (size_t)g->OC * g->OD * g->OH * g->OW;
    const long items = (long)B * g->OD;
    const int nt = direct_threads(threads, items);
    DwPlaneFn *plane_fn = dw_plane_fn();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *ws = workspace + (size_t)df_thread_id() * slice;
        memset(ws + l.dw, 0, (K * g->OC + g->OC) * sizeof(float));
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const int bi = (int)(it / g->OD), od = (int)(it % g->OD);
            plane_fn(ws + l.dw, dbias ? ws + l.db : NULL, dout + bi * out_n, inp + bi * in_n, &f, od, ws, ws + l.dyc);
        }
    }
    for (int t = 0; t < nt; t++) {  // thread order: the same sums for the same thread count
        const float *dw = workspace + (size_t)t * slice + l.dw, *db = workspace + (size_t)t * slice + l.db;
        for (size_t i = 0; i < K * g->OC; i++) dweight[i] += dw[i];
        if (dbias)
            for (int oc = 0; oc < g->OC; oc++) dbias[oc] += db[oc];
    }
}
