// fused.c: BatchNorm3d -> ReLU -> MaxPool3d in one kernel (see fused.h).
#include "nn/fused.h"
#include "base/common.h"
#include "base/multiarch.h"
#include "base/threads.h"
#include "nn/activation.h"
#include "nn/batchnorm3d.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if DF_MULTIARCH
#include <immintrin.h>
#endif

static size_t plane_in(const Pool3dGeom *g) { return (size_t)g->D * g->H * g->W; }
static size_t plane_out(const Pool3dGeom *g) { return (size_t)g->OD * g->OH * g->OW; }

size_t bn_relu_maxpool_workspace_floats(const Pool3dGeom *g) { return plane_in(g); }

// The per-channel affine map y = (x - m[c]) a[c] + b[c] of either mode, computed exactly as
// batchnorm3d_forward_train / _eval compute theirs, so the fused output equals the unfused.
static void affine_of_mode(float *m, float *a, const float *mean, const float *rstd, const float *running_mean,
                           const float *running_var, const float *weight, int C, float eps, int training) {
    for (int c = 0; c < C; c++) {
        m[c] = training ? mean[c] : running_mean[c];
        a[c] = training ? rstd[c] * weight[c] : (float)(weight[c] / sqrt((double)running_var[c] + (double)eps));
    }
}

// y = relu((x - m) a + b) over one plane: batchnorm3d's affine map and relu_forward's select,
// the same operations, so the fused output equals the unfused bit for bit.
DF_INLINE void bn_relu_plane_body(float *restrict y, const float *restrict x, size_t S, float m, float a, float b) {
    for (size_t i = 0; i < S; i++) {
        float v = (x[i] - m) * a + b;
        y[i] = v > 0.0f ? v : 0.0f;
    }
}
DF_MULTIARCH_FN(bn_relu_plane, (float *restrict y, const float *restrict x, size_t S, float m, float a, float b),
                (y, x, S, m, a, b))

// One (sample, channel) plane of the fused forward with a 2x2x2, stride-2 pooling, straight from
// x (D,H,W) to out, am and xm (OD,OH,OW), 16 outputs at a time (x is followed by avail - S more
// floats of the input, the next planes, which it may prefetch): the four input rows a row of
// windows covers are loaded as 32 floats each, normalised and ReLU'd (bn_relu_plane's
// operations, lane by lane), and split into their even and odd columns: the windows' 8
// candidates in maxpool3d's (d,h,w) order. A later candidate wins only if larger, as in
// maxpool3d (whose NaN rule never fires here: the ReLU maps NaN to 0), so out and am are the
// unfused layers' bits, and xm, the input at the argmax, rides along with the winner. OW is a
// multiple of 16 (BR-Net's first two blocks: 32 and 16; AVX2 has a copy for multiples of 8,
// bn_relu_pool_plane_v3); the other way (normalise the plane into a scratch plane, pool it
// with maxpool3d's auto-vectorised loop, gather the input at the argmax) stays for other
// widths, other poolings and CPUs with neither. BR-Net's first block (16 x 16 x 32x64x64), Zen 5, one
// thread: the forward took 15.4-17.7 ms with it, 12.8-13.0 with this (statistics ~4 ms each).
// Intrinsics, not vector extensions: GCC 12 turned the chained compares and selects written
// with those into one scalar compare per lane.
#if DF_MULTIARCH
// A row of windows' 8 candidates in maxpool3d's (d,h,w) order, for both kernels below: ROW(r)
// loads the window row's input row r (0-3: plane, row) into its even (ye, xe) and odd (yo, xo)
// columns; the first candidate is the best so far (by, bx; bk already 0), TAKE(y, x, k) lets
// candidate k replace it.
#define POOL_CANDIDATES(ROW, TAKE)                                                            \
    do {                                                                                      \
        ROW(0);                                                                               \
        by = ye, bx = xe;                                                                     \
        TAKE(yo, xo, 1);                                                                      \
        ROW(1);                                                                               \
        TAKE(ye, xe, 2); TAKE(yo, xo, 3);                                                     \
        ROW(2);                                                                               \
        TAKE(ye, xe, 4); TAKE(yo, xo, 5);                                                     \
        ROW(3);                                                                               \
        TAKE(ye, xe, 6); TAKE(yo, xo, 7);                                                     \
    } while (0)

// Where `take`: candidate (y, x, k) replaces the best so far (by, bx, bk).
#define TAKE16(y, x, k)                                                \
    do {                                                               \
        const __mmask16 t_ = _mm512_cmp_ps_mask((y), by, _CMP_GT_OQ);  \
        by = _mm512_mask_mov_ps(by, t_, (y));                          \
        bx = _mm512_mask_mov_ps(bx, t_, (x));                          \
        bk = _mm512_mask_mov_epi32(bk, t_, _mm512_set1_epi32(k));      \
    } while (0)

DF_TARGET_V4 static void bn_relu_pool_plane_v4(float *restrict out, int32_t *restrict am, float *restrict xm,
                                               const float *restrict x, size_t avail, const Pool3dGeom *g,
                                               float m, float a, float b) {
    const int W = g->W, OW = g->OW, HW = g->H * g->W;
    const __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), zero = _mm512_setzero_ps();
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int od = 0; od < g->OD; od++)
        for (int oh = 0; oh < g->OH; oh++, out += OW, am += OW, xm += OW) {
            const int base = 2 * od * HW + 2 * oh * W;
            const float *row[4] = { x + base, x + base + W, x + base + HW, x + base + HW + W };
            // the rows two window rows on (past the plane's end: the next plane's first rows),
            // from memory (the convolution wrote them long before): bn1's forward 11.9-14.0 ->
            // 9.8-11.8 ms with the statistics (Zen 5)
            if ((size_t)base + HW + 6 * W <= avail)
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 2 * OW; c += 16) __builtin_prefetch(row[r] + 4 * W + c, 0, 0);
            for (int ow = 0; ow < OW; ow += 16) {
                __m512 by = zero, bx = zero, ye, yo, xe, xo;
                __m512i bk = _mm512_setzero_si512();
#define ROW16(r)                                                                                      \
    do {                                                                                              \
        const __m512 lo = _mm512_loadu_ps(row[r] + 2 * ow), hi = _mm512_loadu_ps(row[r] + 2 * ow + 16); \
        __m512 vl = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(lo, vm), va), vb);                      \
        __m512 vh = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(hi, vm), va), vb);                      \
        vl = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vl, zero, _CMP_GT_OQ), vl);                       \
        vh = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vh, zero, _CMP_GT_OQ), vh);                       \
        ye = _mm512_permutex2var_ps(vl, even, vh), yo = _mm512_permutex2var_ps(vl, odd, vh);         \
        xe = _mm512_permutex2var_ps(lo, even, hi), xo = _mm512_permutex2var_ps(lo, odd, hi);         \
    } while (0)
                POOL_CANDIDATES(ROW16, TAKE16);
#undef ROW16
                // candidate k lies (k>>2) planes, ((k>>1)&1) rows and (k&1) columns past its
                // window's first element, 2 ow + 2 lane (`even`) columns into the row
                __m512i off = _mm512_mullo_epi32(_mm512_srli_epi32(bk, 2), _mm512_set1_epi32(HW));
                off = _mm512_add_epi32(off, _mm512_mullo_epi32(_mm512_and_si512(_mm512_srli_epi32(bk, 1),
                                                                                _mm512_set1_epi32(1)),
                                                               _mm512_set1_epi32(W)));
                off = _mm512_add_epi32(off, _mm512_and_si512(bk, _mm512_set1_epi32(1)));
                off = _mm512_add_epi32(off, _mm512_add_epi32(even, _mm512_set1_epi32(base + 2 * ow)));
                _mm512_storeu_ps(out + ow, by);
                _mm512_storeu_ps(xm + ow, bx);
                _mm512_storeu_si512(am + ow, off);
            }
        }
}
#undef TAKE16

// bn_relu_pool_plane_v4 on AVX2: 8 windows at a time, OW a multiple of 8. The two 8-float
// halves of a row of windows are split into even and odd columns within each 128-bit lane
// (_mm256_shuffle_ps), which leaves the windows in the order 0 1 4 5 2 3 6 7; the compares do
// not care, so the winners are put back in order once, at the end (_mm256_permute4x64_pd).
#define TAKE8(y, x, k)                                                                   \
    do {                                                                                 \
        const __m256 t_ = _mm256_cmp_ps((y), by, _CMP_GT_OQ);                            \
        by = _mm256_blendv_ps(by, (y), t_);                                              \
        bx = _mm256_blendv_ps(bx, (x), t_);                                              \
        bk = _mm256_blendv_ps(bk, _mm256_castsi256_ps(_mm256_set1_epi32(k)), t_);        \
    } while (0)
#define IN_ORDER(v) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xd8))

DF_TARGET_V3 static void bn_relu_pool_plane_v3(float *restrict out, int32_t *restrict am, float *restrict xm,
                                               const float *restrict x, size_t avail, const Pool3dGeom *g,
                                               float m, float a, float b) {
    const int W = g->W, OW = g->OW, HW = g->H * g->W;
    const __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), zero = _mm256_setzero_ps();
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (int od = 0; od < g->OD; od++)
        for (int oh = 0; oh < g->OH; oh++, out += OW, am += OW, xm += OW) {
            const int base = 2 * od * HW + 2 * oh * W;
            const float *row[4] = { x + base, x + base + W, x + base + HW, x + base + HW + W };
            if ((size_t)base + HW + 6 * W <= avail)  // as bn_relu_pool_plane_v4
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 2 * OW; c += 16) __builtin_prefetch(row[r] + 4 * W + c, 0, 0);
            for (int ow = 0; ow < OW; ow += 8) {
                __m256 by, bx, bk = _mm256_castsi256_ps(_mm256_setzero_si256()), ye, yo, xe, xo;
#define ROW8(r)                                                                                  \
    do {                                                                                         \
        const __m256 lo = _mm256_loadu_ps(row[r] + 2 * ow), hi = _mm256_loadu_ps(row[r] + 2 * ow + 8); \
        __m256 vl = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(lo, vm), va), vb);                 \
        __m256 vh = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(hi, vm), va), vb);                 \
        vl = _mm256_and_ps(vl, _mm256_cmp_ps(vl, zero, _CMP_GT_OQ));                             \
        vh = _mm256_and_ps(vh, _mm256_cmp_ps(vh, zero, _CMP_GT_OQ));                             \
        ye = _mm256_shuffle_ps(vl, vh, 0x88), yo = _mm256_shuffle_ps(vl, vh, 0xdd);              \
        xe = _mm256_shuffle_ps(lo, hi, 0x88), xo = _mm256_shuffle_ps(lo, hi, 0xdd);              \
    } while (0)
                POOL_CANDIDATES(ROW8, TAKE8);
#undef ROW8
                // as bn_relu_pool_plane_v4: candidate k's offset from its window's first element
                const __m256i k = _mm256_castps_si256(IN_ORDER(bk)), one = _mm256_set1_epi32(1);
                __m256i off = _mm256_mullo_epi32(_mm256_srli_epi32(k, 2), _mm256_set1_epi32(HW));
                off = _mm256_add_epi32(off, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(k, 1), one),
                                                               _mm256_set1_epi32(W)));
                off = _mm256_add_epi32(off, _mm256_and_si256(k, one));
                off = _mm256_add_epi32(off, _mm256_add_epi32(even, _mm256_set1_epi32(base + 2 * ow)));
                _mm256_storeu_ps(out + ow, IN_ORDER(by));
                _mm256_storeu_ps(xm + ow, IN_ORDER(bx));
                _mm256_storeu_si256((__m256i *)(am + ow), off);
            }
        }
}
#undef TAKE8
#undef IN_ORDER
#undef POOL_CANDIDATES
#endif

// The dense part of the input gradient over one plane: dx (+)= k (-mdy - (x - m) r mdyx). dx
// may be x (in place, not accumulating): each element is read before it is written. Written
// as 0 + ..., what adding to a cleared buffer gives: a channel no gradient reaches comes out
// as k (-0 - 0) = -0, which the 0 turns into the +0 the unfused layers' sum leaves, so both
// modes give the same bits.
DF_INLINE void dense_dx_plane_body(float *dx, const float *x, size_t S, float k, float mdy, float m, float r, float mdyx,
                                   int accumulate) {
    if (accumulate)
        for (size_t i = 0; i < S; i++) dx[i] += k * (-mdy - (x[i] - m) * r * mdyx);
    else
        for (size_t i = 0; i < S; i++) dx[i] = 0.0f + k * (-mdy - (x[i] - m) * r * mdyx);
}
DF_MULTIARCH_FN(dense_dx_plane, (float *dx, const float *x, size_t S, float k, float mdy, float m, float r, float mdyx,
                                 int accumulate), (dx, x, S, k, mdy, m, r, mdyx, accumulate))

void bn_relu_maxpool_forward(float *out, int32_t *argmax, float *inmax, float *mean, float *rstd,
                             float *running_mean, float *running_var, const float *inp, const float *weight,
                             const float *bias, int B, const Pool3dGeom *g, float eps, float momentum, int training,
                             Reducer *red, float *workspace, int threads) {
    // inp is (B,C,S), out, argmax and inmax are (B,C,P); S = D*H*W, P = OD*OH*OW
    const int C = g->C;
    const size_t S = plane_in(g), P = plane_out(g);
    if (training) batchnorm3d_stats_train(mean, rstd, running_mean, running_var, inp, B, C, S, eps, momentum, red);
    float *m = xmalloc(2 * (size_t)C * sizeof(float)), *a = m + C;
    affine_of_mode(m, a, mean, rstd, running_mean, running_var, weight, C, eps, training);
    const int nt = DF_MAX(1, DF_MIN(threads, df_threads()));
    void (*relu_plane)(float *, const float *, size_t, float, float, float) = DF_PICK(bn_relu_plane);
    void (*pool_plane)(float *, int32_t *, float *, const float *, size_t, const Pool3dGeom *, float, float, float) =
        NULL;
#if DF_MULTIARCH
    if (maxpool3d_is_k2s2(g) && g->OW % 16 == 0 && df_isa_level() >= 4) pool_plane = bn_relu_pool_plane_v4;
    else if (maxpool3d_is_k2s2(g) && g->OW % 8 == 0 && df_isa_level() >= 3) pool_plane = bn_relu_pool_plane_v3;
#endif
    // a plane per work item: pool_plane, or normalise + ReLU into the thread's scratch plane (in
    // cache) and pool that
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long pl = 0; pl < (long)B * C; pl++) {
        const int c = (int)(pl % C);
        float *y = workspace + (size_t)df_thread_id() * S;
        const float *x = inp + (size_t)pl * S;
        int32_t *am = argmax + (size_t)pl * P;
        float *xm = inmax + (size_t)pl * P;
        if (pool_plane) {
            pool_plane(out + (size_t)pl * P, am, xm, x, ((size_t)B * C - pl) * S, g, m[c], a[c], bias[c]);
            continue;
        }
        relu_plane(y, x, S, m[c], a[c], bias[c]);
        maxpool3d_forward_plane(out + (size_t)pl * P, am, y, g);
        for (size_t p = 0; p < P; p++) xm[p] = x[am[p]];  // x's plane is still in cache
    }
    free(m);
}

// s[0] += sum g, s[1] += sum g xhat over one plane's P pooled outputs, g = dy where the ReLU
// passed the argmax element, whose input is xm: in 16 float lanes per block of 1024 (as
// batchnorm3d.c's sums), block totals in double. xm and dy come from memory (the forward wrote
// them long before), a 64 KB plane at a time a megabyte apart (a channel's samples): prefetched
// 4 KB ahead, BR-Net's first block took 1.2-1.5 ms for these sums against 2.5-2.9 (Zen 5).
DF_INLINE void sparse_sums_plane_body(double s[2], const float *restrict xm, const float *restrict dy, size_t P,
                                      float m, float a, float b, float r) {
    for (size_t p0 = 0; p0 < P; p0 += 1024) {
        const size_t end = DF_MIN(P, p0 + 1024);
        float a1[16] = { 0 }, a2[16] = { 0 };
        size_t p = p0;
        for (; p + 16 <= end; p += 16) {
            if (p + 1024 < P) {  // within the plane (the next channel's is not read next)
                __builtin_prefetch(xm + p + 1024, 0, 0);
                __builtin_prefetch(dy + p + 1024, 0, 0);
            }
            for (int j = 0; j < 16; j++) {
                const float xi = xm[p + j];
                const float g = (xi - m) * a + b > 0.0f ? dy[p + j] : 0.0f;  // ReLU passed
                a1[j] += g;
                a2[j] += g * ((xi - m) * r);
            }
        }
        double t1 = 0.0, t2 = 0.0;
        for (; p < end; p++) {
            const float xi = xm[p];
            const float g = (xi - m) * a + b > 0.0f ? dy[p] : 0.0f;
            t1 += g;
            t2 += (double)g * (double)((xi - m) * r);
        }
        for (int j = 0; j < 16; j++) { t1 += a1[j]; t2 += a2[j]; }
        s[0] += t1;
        s[1] += t2;
    }
}
DF_MULTIARCH_FN(sparse_sums_plane, (double s[2], const float *restrict xm, const float *restrict dy, size_t P,
                                    float m, float a, float b, float r),
                (s, xm, dy, P, m, a, b, r))

// The gradient reaching BatchNorm's output at input element i of a plane: the pooled outputs
// whose argmax is i, where ReLU passed (y_i > 0). Non-zero only at argmax positions, so the
// statistics the BatchNorm backward needs are sums over the P pooled outputs, not S inputs,
// and they read the input there from inmax: gathering it from the input's planes read every
// cache line of them (a BR-Net first block's 134 MB) and took as long as the dense pass.
void bn_relu_maxpool_backward(float *dinp, float *dweight, float *dbias, const float *dout, const int32_t *argmax,
                              const float *inmax, const float *inp, const float *mean, const float *rstd,
                              const float *running_mean, const float *running_var, const float *weight,
                              const float *bias, int B, const Pool3dGeom *g, float eps, int training, Reducer *red,
                              int accumulate, int threads) {
    DF_ASSERT(!(dinp && dinp == inp && accumulate));  // in place, the gradient replaces the input
    const int C = g->C;
    const size_t S = plane_in(g), P = plane_out(g);
    float *m = xmalloc(3 * (size_t)C * sizeof(float)), *a = m + C, *r = m + 2 * C;
    affine_of_mode(m, a, mean, rstd, running_mean, running_var, weight, C, eps, training);
    // xhat's scale: rstd of the mode (batchnorm3d_backward_eval's r in eval mode)
    for (int c = 0; c < C; c++) r[c] = training ? rstd[c] : (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
    double *buf = xcalloc(2 * (size_t)C + 1, sizeof(double));  // [sum g (C), sum g xhat (C), count]
    // a channel per thread, samples in order: the same sums for any thread count
    void (*sums)(double *, const float *, const float *, size_t, float, float, float, float) =
        DF_PICK(sparse_sums_plane);
#pragma omp parallel for num_threads(df_threads()) schedule(static) if (C > 1 && (size_t)B * P >= 8192)
    for (int c = 0; c < C; c++) {
        double sc[2] = { 0.0, 0.0 };
        for (int b = 0; b < B; b++) {
            const size_t pl = (size_t)b * C + c;
            sums(sc, inmax + pl * P, dout + pl * P, P, m[c], a[c], bias[c], r[c]);
        }
        buf[c] = sc[0];
        buf[C + c] = sc[1];
    }
    for (int c = 0; c < C; c++) {  // this rank's share, as batchnorm3d_backward
        dbias[c] += (float)buf[c];
        dweight[c] += (float)buf[C + c];
    }
    if (dinp) {
        double n = 0.0;
        if (training) {
            buf[2 * C] = (double)B * (double)S;
            reduce_sum_f64(red, buf, 2 * (size_t)C + 1);
            n = buf[2 * C];
        }
        // dx = k (g - mean(g) - xhat mean(g xhat)) in training, k g in eval; k = w rstd. Per
        // plane: the dense part streams over every element, then the sparse k g is added at
        // the argmax positions while the plane is still in cache.
        void (*dense)(float *, const float *, size_t, float, float, float, float, float, int) = DF_PICK(dense_dx_plane);
        const int nt = DF_MAX(1, DF_MIN(threads, df_threads()));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && (size_t)B * C * S >= 65536)
        for (long pl = 0; pl < (long)B * C; pl++) {
            const int c = (int)(pl % C);
            const float mc = m[c], ac = a[c], bc = bias[c], rc = r[c], k = weight[c] * rc;
            const float *x = inp + (size_t)pl * S, *dy = dout + (size_t)pl * P, *xm = inmax + (size_t)pl * P;
            float *dx = dinp + (size_t)pl * S;
            const int32_t *am = argmax + (size_t)pl * P;
            if (training && n > 0.0)
                dense(dx, x, S, k, (float)(buf[c] / n), mc, rc, (float)(buf[C + c] / n), accumulate);
            else if (!accumulate)
                memset(dx, 0, S * sizeof(float));
            // where the ReLU passed; argmax, inmax and dout come from memory: prefetched 1 KB
            // ahead, bn1's backward took 8.1 ms against 8.4-9.0 (Zen 5, one thread). Done 16
            // windows at a time with AVX-512 (masked adds on the input rows under them, inside
            // the dense pass), it was no faster without the prefetch and within the noise
            // with it (docs/performance.md), so the plain loop stays.
            for (size_t p0 = 0; p0 < P; p0 += 16) {
                if (p0 + 256 < ((size_t)B * C - pl) * P) {  // into the next plane too, read next
                    __builtin_prefetch(am + p0 + 256, 0, 0);
                    __builtin_prefetch(xm + p0 + 256, 0, 0);
                    __builtin_prefetch(dy + p0 + 256, 0, 0);
                }
                for (size_t p = p0; p < DF_MIN(P, p0 + 16); p++)
                    dx[am[p]] += (xm[p] - mc) * ac + bc > 0.0f ? k * dy[p] : 0.0f;
            }
        }
    }
    free(buf);
    free(m);
}

// ---- references: the unfused layers, one after another ------------------------------------

void bn_relu_maxpool_forward_ref(float *out, int32_t *argmax, float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *inp, const float *weight, const float *bias,
                                 int B, const Pool3dGeom *g, float eps, float momentum, int training, Reducer *red) {
    const int C = g->C;
    const size_t S = plane_in(g), n = (size_t)B * C * S;
    float *y = df_alloc_floats(n), *r = df_alloc_floats(n);
    if (training)
        batchnorm3d_forward_train(y, mean, rstd, running_mean, running_var, inp, weight, bias, B, C, S, eps, momentum, red);
    else
        batchnorm3d_forward_eval(y, inp, weight, bias, running_mean, running_var, B, C, S, eps);
    relu_forward(r, y, n);
    maxpool3d_forward(out, argmax, r, B, g);
    free(y);
    free(r);
}

void bn_relu_maxpool_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const int32_t *argmax, const float *inp, const float *mean, const float *rstd,
                                  const float *running_mean, const float *running_var, const float *weight,
                                  const float *bias, int B, const Pool3dGeom *g, float eps, int training,
                                  Reducer *red) {
    const int C = g->C;
    const size_t S = plane_in(g), n = (size_t)B * C * S;
    // BatchNorm's output again (ReLU's backward needs its input), then the three backwards
    float *y = df_alloc_floats(n), *dr = xcalloc(n, sizeof(float)), *dy = xcalloc(n, sizeof(float));
    float *m = xmalloc(2 * (size_t)C * sizeof(float)), *a = m + C;
    affine_of_mode(m, a, mean, rstd, running_mean, running_var, weight, C, eps, training);
    for (size_t pl = 0; pl < (size_t)B * C; pl++)
        for (size_t i = 0; i < S; i++) y[pl * S + i] = (inp[pl * S + i] - m[pl % C]) * a[pl % C] + bias[pl % C];
    maxpool3d_backward(dr, dout, argmax, B, g);
    relu_backward(dy, dr, y, n);
    if (training)
        batchnorm3d_backward(dinp, dweight, dbias, dy, inp, mean, rstd, weight, B, C, S, red);
    else
        batchnorm3d_backward_eval(dinp, dweight, dbias, dy, inp, running_mean, running_var, weight, B, C, S, eps);
    free(y);
    free(dr);
    free(dy);
    free(m);
}
