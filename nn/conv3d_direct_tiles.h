// conv3d_direct_tiles.h: the register tiles of the direct convolution (nn/conv3d_direct.c),
// written once for any width of the CPU's vector registers. Internal to conv3d_direct.c, which
// includes it once per width, after defining
//   HW      floats per hardware vector: 16 (AVX-512), 8 (AVX2), 4 (SSE)
//   T_(n)   the name n with that width's suffix (fwd_plane_h16, ...)
//   BD_UNROLL  0, or the chunk of dy's channels whose loop the bwd-data tiles unroll (bd_plane)
// and which provides VL, MAXP, MAXQ, MAXT, MAXKD, FWS_QMAX, INLINE, UNROLL, Direct, direct_K,
// direct_zw, direct_dw_lanes, fill_planes, fwd_flat_store and lane_sum.
//
// The workspace layout is the same for every width: rows padded to whole vecs of VL = 16
// floats, bwd-wt's partial sums in VL lanes, VL samples in a vec's lanes (dw_samples, fws).
// A tile's P and Q count those 16-float vecs, each of which is VL / HW registers here. In the
// forward and bwd-data tiles every lane of a vec sees the same multiply-adds in the same order
// at every width and tile shape, so AVX-512 and AVX2 (both with FMA) should give the same bits
// there; bwd-wt's narrow widths sum in another order (dw_tile). Neither is relied
// on: the tests compare each width with the naive loops, to rounding. A
// 16-float GCC vector on AVX2 would be kept in memory: the AVX2 build of these tiles ran at
// 6-11 % of sgemm with it (Zen 3, 2026-12-03).
#define NP (VL / HW)  // registers per vec
typedef float T_(hvec) __attribute__((vector_size(HW * sizeof(float))));
typedef float T_(hvec_u) __attribute__((vector_size(HW * sizeof(float)), aligned(4), may_alias));
#define hvec T_(hvec)
#define LOADH(p) (*(const T_(hvec_u) *)(p))
#define STOREH(p, v) (*(T_(hvec_u) *)(p) = (v))

// ---- forward tile ---------------------------------------------------------------------------

// The outputs [co0, co0+P) x [ow0, ow0 + Q*VL) of one row into yt (rows ldy apart). xb is buf
// at this row and column ow0; wt is (K, CO) at column co0, bias (or NULL) at co0.
INLINE void T_(fwd_tile)(float *yt, size_t ldy, const float *bias, const float *xb, const float *wt,
                         const Direct *g, const int P, const int Q) {
    hvec acc[MAXP][MAXQ * NP];
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int q = 0; q < Q * NP; q++) acc[p][q] = (hvec){ 0 } + (bias ? bias[p] : 0.0f);
    const size_t plane = (size_t)g->RH * g->WP;
    const int CO = g->CO;
    const float *w = wt;
    for (int ca = 0; ca < g->CI * g->kd; ca++)
        for (int b = 0; b < g->kh; b++) {
            const float *xr = xb + ca * plane + (size_t)b * g->WP;
            for (int e = 0; e < g->kw; e++, w += CO) {
                hvec xv[MAXQ * NP];
                UNROLL for (int q = 0; q < Q * NP; q++) xv[q] = LOADH(xr + e + q * HW);
                UNROLL for (int p = 0; p < P; p++)
                    UNROLL for (int q = 0; q < Q * NP; q++) acc[p][q] += w[p] * xv[q];
            }
        }
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int q = 0; q < Q * NP; q++) STOREH(yt + p * ldy + q * HW, acc[p][q]);
}

// fwd_tile at vec v of a row whose channel co0 starts at yr (channels N apart). The row's end,
// where fewer than Q*VL outputs are left, goes through tmp (zero-padded) so no tile writes past.
INLINE void T_(fwd_tile_at)(float *yr, size_t N, const float *bias, const float *xb, const float *wt,
                            const Direct *g, int v, float *tmp, const int P, const int Q) {
    const int ow0 = v * VL, n = DF_MIN(Q * VL, g->OW - ow0), w = Q * VL;
    if (n == w) {
        T_(fwd_tile)(yr + ow0, N, bias, xb + ow0, wt, g, P, Q);
        return;
    }
    T_(fwd_tile)(tmp, (size_t)w, bias, xb + ow0, wt, g, P, Q);
    for (int p = 0; p < P; p++)
        for (int j = 0; j < n; j++) yr[p * N + ow0 + j] = tmp[p * w + j];
}

// Output plane od of one sample: y (CO,OD,OH,OW) from x (CI,D,H,W) and wt (K,CO), the weight
// transposed. Channels go PA at a time in tiles one vec wide, then PB at a time (PB < PA, 0:
// none) in tiles as wide, as many of each as leave the fewest channels (16 = 6 + 6 + 4, 32 =
// 4 x 6 + 2 x 4), the rest one at a time in tiles QB vecs wide (so that even CO = 1 keeps QB
// accumulators busy).
INLINE void T_(fwd_plane)(float *y, const float *x, const float *wt, const float *bias, const Direct *g, int od,
                          float *buf, float *tmp, const int PA, const int PB, const int QB) {
    fill_planes(buf, x, g, od, 1);
    const size_t N = (size_t)g->OD * g->OH * g->OW;
    int na = g->CO / PA;  // tiles of PA channels
    if (PB)
        for (int n = na, best = g->CO; n >= 0; n--) {
            const int left = (g->CO - n * PA) % PB;
            if (left < best) best = left, na = n;
        }
    for (int oh = 0; oh < g->OH; oh++) {
        float *yr = y + ((size_t)od * g->OH + oh) * g->OW;
        const float *xb = buf + (size_t)oh * g->WP;
        int co = 0;
        for (; co < na * PA; co += PA)
            for (int v = 0; v < g->nv; v++)
                T_(fwd_tile_at)(yr + co * N, N, bias ? bias + co : NULL, xb, wt + co, g, v, tmp, PA, 1);
        if (PB)
            for (; co + PB <= g->CO; co += PB)
                for (int v = 0; v < g->nv; v++)
                    T_(fwd_tile_at)(yr + co * N, N, bias ? bias + co : NULL, xb, wt + co, g, v, tmp, PB, 1);
        for (; co < g->CO; co++)
            for (int v = 0; v < g->nv; v += QB)
                T_(fwd_tile_at)(yr + co * N, N, bias ? bias + co : NULL, xb, wt + co, g, v, tmp, 1, QB);
    }
}

// Output plane od of one sample on a flat plane (direct_forward_geom): tiles of one vec of
// positions, PA channels at a time and the rest one at a time, stored through tmp without the
// positions past OW (fwd_flat_store); added to y instead when `add` (bwd-data taken as a
// forward, bd_by_forward).
INLINE void T_(fwd_plane_flat)(float *y, const float *x, const float *wt, const float *bias, const Direct *g, int od,
                               float *buf, float *tmp, int add, const int PA) {
    fill_planes(buf, x, g, od, 1);
    // the last tiles read up to VL + kw floats past the planes, into positions they drop: zeros
    // there, not whatever the workspace held (a denormal would cost a microcode assist)
    memset(buf + (size_t)g->CI * g->kd * g->RH * g->WP, 0, (size_t)(VL + g->kw) * sizeof(float));
    const size_t N = (size_t)g->OD * g->OH * g->OW;
    float *yp = y + (size_t)od * g->OH * g->OW;
    for (int v = 0; v < g->nv; v++) {
        const float *xb = buf + (size_t)v * VL;
        int co = 0;
        for (; co + PA <= g->CO; co += PA) {
            T_(fwd_tile)(tmp, VL, bias ? bias + co : NULL, xb, wt + co, g, PA, 1);
            fwd_flat_store(yp + co * N, N, tmp, PA, v, g, add);
        }
        for (; co < g->CO; co++) {
            T_(fwd_tile)(tmp, VL, bias ? bias + co : NULL, xb, wt + co, g, 1, 1);
            fwd_flat_store(yp + co * N, N, tmp, 1, v, g, add);
        }
    }
}

// ---- backward-weights tile --------------------------------------------------------------------

// dw[p][t] (rows ldw apart) += the sum over one plane of dy channel p times tap t of the input,
// for p < np, t < nt (the tile computes P x T; rows and taps past np, nt repeat the last one
// and are dropped), in VL lanes each when lanes is VL (see direct_dw_lanes: summing the lanes
// per tile took 15 % of conv2's time, whose tiles are only 64 vecs of dy), else as one float.
// dyp[p]: channel p's plane of dy, rows ldd apart, zero past OW. xoff[t]: tap t's offset in buf.
// Over nd planes (a block, dw_block_planes): plane d of dy is dyd floats after plane 0, and
// tap t's input xd[t] after its plane 0 input.
// Where a vec is NP > 1 registers (AVX2, SSE), a row's registers are walked one after the other
// into the same P x T accumulators of one register each, so that only P x T are live (on AVX2
// 3 x 4: 7 registers loaded per 12 multiply-adds; holding a whole vec allowed only 2 x 3) and
// every cache line of dy and the input is read once. Lanes j*HW + l are summed into lane l; the
// partial sums' lanes HW..VL-1 stay zero (all VL are summed at the end of the layer), so these
// widths sum in another order than AVX-512 does. A pass per register of the vec, which kept
// AVX-512's order, read each line twice: conv1 of BR-Net on Zen 3, 1 thread, minima of 11 runs
// alternated 4 times (64-byte aligned tensors), 26.1-30.3 ms against 37.3-42.7; conv2 92-104 ms
// against 142-168 (and GEMM's 127-166, so AVX2 runs conv2's bwd-wt here too).
INLINE void T_(dw_tile)(float *dw, size_t ldw, size_t lanes, int np, int nt, const float *const *dyp, size_t ldd,
                        int nd, size_t dyd, const float *buf, const size_t *xoff, const size_t *xd, const Direct *g,
                        const int P, const int T) {
    hvec acc[MAXP][MAXT];
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int t = 0; t < T; t++) acc[p][t] = (hvec){ 0 };
    for (int pl = 0; pl < nd; pl++) {
        size_t xo[MAXT];
        UNROLL for (int t = 0; t < T; t++) xo[t] = xoff[t] + pl * xd[t];
        for (int oh = 0; oh < g->OH; oh++) {
            const float *xr = buf + (size_t)oh * g->WP;
            const size_t dr = pl * dyd + (size_t)oh * ldd;
            for (int r = 0; r < g->nv * NP; r++) {  // the row's registers
                hvec d[MAXP];
                UNROLL for (int p = 0; p < P; p++) d[p] = LOADH(dyp[p] + dr + r * HW);
                UNROLL for (int t = 0; t < T; t++) {
                    const hvec xv = LOADH(xr + xo[t] + r * HW);
                    UNROLL for (int p = 0; p < P; p++) acc[p][t] += d[p] * xv;
                }
            }
        }
    }
    for (int p = 0; p < np && p < P; p++)
        for (int t = 0; t < nt && t < T; t++) {
            float *d = dw + (p * ldw + t) * lanes;
            if (lanes == VL) STOREH(d, LOADH(d) + acc[p][t]);
            else *d += lane_sum((const float *)&acc[p][t], HW);
        }
}

// dw rows [0, CO) x taps [k0, k0+nt) += the sums over nd consecutive output planes (buf holds
// the nd + kd - 1 input planes per channel they read, dw_block_planes), in P x T tiles (see
// dw_tile). dy0: channel 0 of the first plane, channels cstride and planes dyd apart. Tap k < K
// reads the input at offset ((ci*DP + a)*RH + b)*WP + e of buf, DP = nd + kd - 1, and a plane
// further per output plane; tap K (the bias) the plane of ones after them, always.
INLINE void T_(dw_taps)(float *dw, size_t ldw, size_t lanes, size_t k0, int nt, const float *dy0, size_t cstride,
                        size_t ldd, int nd, size_t dyd, const float *buf, const Direct *g, const int P, const int T) {
    const size_t plane = (size_t)g->RH * g->WP, K = direct_K(g), DP = (size_t)nd + g->kd - 1;
    size_t xoff[MAXT], xd[MAXT];
    for (int t = 0; t < T; t++) {  // tap k = ((ci*kd + a)*kh + b)*kw + e
        const size_t k = k0 + DF_MIN(t, nt - 1), e = k % g->kw, b = k / g->kw % g->kh, ca = k / g->kw / g->kh;
        const size_t ci = ca / g->kd, a = ca % g->kd;
        xoff[t] = k == K ? (size_t)g->CI * DP * plane : (ci * DP + a) * plane + b * g->WP + e;
        xd[t] = k == K ? 0 : plane;
    }
    for (int co0 = 0; co0 < g->CO; co0 += P) {
        const int np = DF_MIN(P, g->CO - co0);
        const float *dyp[MAXP];
        for (int p = 0; p < P; p++) dyp[p] = dy0 + (co0 + DF_MIN(p, np - 1)) * cstride;
        T_(dw_tile)(dw + (co0 * ldw + k0) * lanes, ldw, lanes, np, nt, dyp, ldd, nd, dyd, buf, xoff, xd, g, P, T);
    }
}

// dw (CO, K+1, lanes) += the weight gradient of output planes [od, od+nd) of one sample in
// columns [0, K), and (with_bias) its bias gradient in column K (nd > 1: dw_block_planes).
// dy is the sample's (CO,OD,OH,OW), x its (CI,D,H,W).
// The bias is one more tap, of ones: summing dy in a pass of its own read the plane from memory
// with nothing to overlap, and took 15 % of BR-Net's first layer. Taps go T at a time in tiles
// of P channels; the last taps, when fewer than T and at most T2, in tiles of P2 x T2 (the
// first layer's 27 + 1 taps are 4 x 6 + 4, where a fifth 6-tap tile would compute zeros).
INLINE void T_(dw_plane)(float *dw, int with_bias, const float *dy, const float *x, const Direct *g, int od, int nd,
                         float *buf, float *dyc, const int P, const int T, const int P2, const int T2) {
    const size_t K = direct_K(g), N = (size_t)g->OD * g->OH * g->OW, plane = (size_t)g->RH * g->WP;
    const size_t ldw = K + 1, lanes = direct_dw_lanes(g);
    const int DP = nd + g->kd - 1;
    fill_planes(buf, x, g, od, nd);
    if (with_bias) {
        float *ones = buf + (size_t)g->CI * DP * plane;
        for (size_t i = 0; i < plane; i++) ones[i] = 1.0f;
    }
    const float *dy0 = dy + (size_t)od * g->OH * g->OW;
    size_t ldd = g->OW, cstride = N;
    if (g->OW % VL) {  // rows padded with zeros to whole vecs (one plane: blocks want whole vecs)
        DF_ASSERT(nd == 1);
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
    const size_t dyd = (size_t)g->OH * g->OW;
    const size_t nk = K + (with_bias != 0), rest = nk % T, kmain = rest && rest <= (size_t)T2 ? nk - rest : nk;
    for (size_t k0 = 0; k0 < kmain; k0 += T)
        T_(dw_taps)(dw, ldw, lanes, k0, (int)DF_MIN((size_t)T, nk - k0), dy0, cstride, ldd, nd, dyd, buf, g, P, T);
    if (kmain < nk) T_(dw_taps)(dw, ldw, lanes, kmain, (int)rest, dy0, cstride, ldd, nd, dyd, buf, g, P2, T2);
}

// ---- backward-weights tile with samples in the lanes (dw_samples) -------------------------------

// dw0[p][e] += the lane sums over all positions of dys channel p times tap e of kernel row x0,
// and dw1[p][e] (dw1 non-NULL) those of row x1, for p < np, e < 3 (rows ldw apart). dy:
// channel 0 of the tile in dys (channels dyc apart); x0, x1: the rows' first input vec in xs
// (the row pointer of output position (0,0,0)).
INLINE void T_(dws_tile)(float *dw0, float *dw1, size_t ldw, int np, const float *dy, size_t dyc, const float *x0,
                         const float *x1, const Direct *f, const int P) {
    hvec acc[MAXP][6][NP];
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int t = 0; t < 6; t++)
            UNROLL for (int j = 0; j < NP; j++) acc[p][t][j] = (hvec){ 0 };
    const float *dp[MAXP];
    UNROLL for (int p = 0; p < P; p++) dp[p] = dy + DF_MIN(p, np - 1) * dyc;
    for (int od = 0; od < f->OD; od++)
        for (int oh = 0; oh < f->OH; oh++) {
            const size_t xo = ((size_t)od * f->RH + oh) * f->WP * VL, dofs = ((size_t)od * f->OH + oh) * f->OW * VL;
            const float *xa = x0 + xo, *xb = x1 + xo;
            for (int ow = 0; ow < f->OW; ow++)
                UNROLL for (int j = 0; j < NP; j++) {
                    hvec d[MAXP];
                    UNROLL for (int p = 0; p < P; p++) d[p] = LOADH(dp[p] + dofs + ow * VL + j * HW);
                    UNROLL for (int e = 0; e < 3; e++) {
                        const hvec xv = LOADH(xa + (ow + e) * VL + j * HW);
                        UNROLL for (int p = 0; p < P; p++) acc[p][e][j] += d[p] * xv;
                    }
                    UNROLL for (int e = 0; e < 3; e++) {
                        const hvec xv = LOADH(xb + (ow + e) * VL + j * HW);
                        UNROLL for (int p = 0; p < P; p++) acc[p][3 + e][j] += d[p] * xv;
                    }
                }
        }
    float sum[MAXP][6];  // all lane sums first: independent chains the core can overlap
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int t = 0; t < 6; t++) sum[p][t] = lane_sum((const float *)acc[p][t], VL);
    for (int p = 0; p < np; p++)
        for (int e = 0; e < 3; e++) {
            dw0[p * ldw + e] += sum[p][e];
            if (dw1) dw1[p * ldw + e] += sum[p][3 + e];
        }
}

// dweight (CO x K) += the tiles of kernel-row pairs [q0, q1) (pair q: rows 2q, 2q+1; rows
// r = (ci*kd + a)*kh + b) over one group's xs and dys.
INLINE void T_(dws_rows)(float *dweight, const float *xs, const float *dys, const Direct *f, int q0, int q1,
                         const int P) {
    const size_t K = direct_K(f), plane = (size_t)f->RH * f->WP * VL, dyc = (size_t)f->OD * f->OH * f->OW * VL;
    const int DP = f->D + 2 * f->pd, rows = f->CI * f->kd * f->kh;
    for (int q = q0; q < q1; q++) {
        const int r = 2 * q, r1 = DF_MIN(r + 1, rows - 1);
        const float *x0 = xs + ((size_t)(r / (f->kd * f->kh)) * DP + r / f->kh % f->kd) * plane + (size_t)(r % f->kh) * f->WP * VL;
        const float *x1 = xs + ((size_t)(r1 / (f->kd * f->kh)) * DP + r1 / f->kh % f->kd) * plane + (size_t)(r1 % f->kh) * f->WP * VL;
        for (int co0 = 0; co0 < f->CO; co0 += P)
            T_(dws_tile)(dweight + co0 * K + (size_t)r * 3, r1 != r ? dweight + co0 * K + (size_t)r1 * 3 : NULL, K,
                         DF_MIN(P, f->CO - co0), dys + co0 * dyc, dyc, x0, x1, f, P);
    }
}

// ---- forward with samples in the lanes (fws) ------------------------------------------------------

// ys row (od, oh) at position ow0, channels [co0, co0 + np) of P: xr is xs at the same (od, oh,
// ow0) of channel 0 (output position (od,oh,ow) reads xs from (od,oh,ow) of its padded plane on),
// wp the tile's weights (K, P), yt ys at (co0, od, oh, ow0), channels ldy apart.
INLINE void T_(fws_tile)(float *yt, size_t ldy, int np, const float *bias, const float *xr, const float *wp,
                         const Direct *f, const int P, const int Q) {
    hvec acc[MAXP][FWS_QMAX * NP];
    UNROLL for (int p = 0; p < P; p++) {
        const float b0 = bias ? bias[DF_MIN(p, np - 1)] : 0.0f;
        UNROLL for (int q = 0; q < Q * NP; q++) acc[p][q] = (hvec){ 0 } + b0;
    }
    const size_t plane = (size_t)f->RH * f->WP * VL, chan = (size_t)(f->D + 2 * f->pd) * plane;
    for (int ci = 0; ci < f->CI; ci++)
        for (int a = 0; a < f->kd; a++)
            for (int b = 0; b < f->kh; b++) {
                const float *x = xr + ci * chan + a * plane + (size_t)b * f->WP * VL;
                for (int e = 0; e < f->kw; e++, wp += P, x += VL) {
                    hvec w[MAXP];
                    UNROLL for (int p = 0; p < P; p++) w[p] = (hvec){ 0 } + wp[p];
                    UNROLL for (int q = 0; q < Q * NP; q++) {  // position q / NP, lanes (q % NP) * HW on
                        const hvec xv = LOADH(x + q * HW);
                        UNROLL for (int p = 0; p < P; p++) acc[p][q] += w[p] * xv;
                    }
                }
            }
    for (int p = 0; p < np; p++)
        UNROLL for (int q = 0; q < Q * NP; q++) STOREH(yt + p * ldy + q * HW, acc[p][q]);
}

// ys rows [r0, r1) (row r: od = r / OH, oh = r % OH) of one group, every channel, from xs and
// the tiles' weights wp ((CO + P - 1) / P tiles of (K, P)).
INLINE void T_(fws_rows)(float *ys, const float *xs, const float *wp, const float *bias, const Direct *f, int r0,
                         int r1, const int P, const int Q) {
    const size_t K = direct_K(f), OWQ = FWS_ROW(f->OW), ldy = (size_t)f->OD * f->OH * OWQ * VL;
    for (int r = r0; r < r1; r++) {
        const int od = r / f->OH, oh = r % f->OH;
        const float *xr = xs + ((size_t)od * f->RH + oh) * f->WP * VL;
        float *yr = ys + (size_t)r * OWQ * VL;
        for (int co0 = 0; co0 < f->CO; co0 += P)
            for (int ow0 = 0; ow0 < f->OW; ow0 += Q)
                T_(fws_tile)(yr + co0 * ldy + ow0 * VL, ldy, DF_MIN(P, f->CO - co0), bias ? bias + co0 : NULL,
                             xr + ow0 * VL, wp + (size_t)co0 * K, f, P, Q);
    }
}

// ---- backward-data tile ------------------------------------------------------------------------

// acc[r] += w_r (CO, TE) at row co, columns [0,P), times dy's row dr of channel co, for the
// dx rows r that use it (use0, use1: constants, so the unused half costs nothing).
INLINE void T_(bd_row)(hvec acc[2][MAXP][MAXQ * NP], const float *dr, const float *w0, const float *w1, int co,
                       int TE, const int use0, const int use1, const int P, const int Q) {
    hvec d[MAXQ * NP];
    UNROLL for (int q = 0; q < Q * NP; q++) d[q] = LOADH(dr + q * HW);
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int q = 0; q < Q * NP; q++) {
            if (use0) acc[0][p][q] += w0[co * TE + p] * d[q];
            if (use1) acc[1][p][q] += w1[co * TE + p] * d[q];
        }
}

// bd_row for CO channels: dy rows cstride apart, w_r (CO, TE). CN > 0: CO is the constant CN,
// and the loop is unrolled (BD_UNROLL, see bd_plane).
INLINE void T_(bd_rows)(hvec acc[2][MAXP][MAXQ * NP], const float *dr, size_t cstride, const float *w0,
                        const float *w1, int CO, int TE, const int use0, const int use1, const int P, const int Q,
                        const int CN) {
#if BD_UNROLL
    if (CN) {
        UNROLL for (int co = 0; co < CN; co++, dr += cstride) T_(bd_row)(acc, dr, w0, w1, co, TE, use0, use1, P, Q);
        return;
    }
#endif
    for (int co = 0; co < CO; co++, dr += cstride) T_(bd_row)(acc, dr, w0, w1, co, TE, use0, use1, P, Q);
}

// For rows ih .. ih+R-1 (R = 1 or 2) of dx plane id, Z rows [t0, t0+P) at vecs [v, v+Q), over
// dy's channels [c0, c0+cn):
//   Z[(c,e)][ow] = sum_{a,b,co} w[co,c,a,b,e] * dy[co, id+pd-a, ih+ph-b, ow]
// (then dx[c, id, ih, ow-pw+e] += Z[(c,e)][ow]). Two rows share their dy rows: dy row
// ih+ph-u feeds row ih through tap b = u and row ih+1 through b = u+1, so each vec loaded
// serves twice as many multiply-adds. dyp[a]: dy plane id+pd-a at channel 0 (NULL outside dy),
// channels cstride and rows ldr apart, readable for Q vecs at v. wz is (kd, kh, CO, TE) at
// column t0, TE = CI*kw. Z rows ZR apart, the second dx row's ZS after the first's.
INLINE void T_(bd_tile)(float *z, size_t ZR, size_t ZS, const float *const *dyp, size_t cstride, size_t ldr,
                        const float *wz, int TE, int ih, int v, const Direct *g, int c0, int cn, const int P,
                        const int Q, const int R, const int CN) {
    hvec acc[2][MAXP][MAXQ * NP];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int p = 0; p < P; p++)
            UNROLL for (int q = 0; q < Q * NP; q++) acc[r][p][q] = (hvec){ 0 };
    const int CO = g->CO, kh = g->kh;
    for (int a = 0; a < g->kd; a++) {
        if (!dyp[a]) continue;
        const float *wa = wz + (size_t)a * kh * CO * TE;
#if BD_UNROLL
        // The unrolled tiles (CN, bd_plane: kh == 3) unroll the loop over dy's rows too, in the
        // same order: conv1 on Zen 3, batch 16, 1 thread, 6 runs alternated, quiet minutes:
        // 30.6-31.3 ms against 31.8-32.6 (another 5 alternated, busier: 31.6-48.7 against
        // 32.0-46.2); one sample (in cache) 1.75-1.78 against 1.84-1.86
        if (R == 2 && CN) {
            UNROLL for (int u = -1; u < 3; u++) {
                const int oh = ih + g->ph - u;
                if (oh < 0 || oh >= g->OH) continue;
                const float *dr = dyp[a] + c0 * cstride + (size_t)oh * ldr + v * VL;
                const float *w0 = wa + ((size_t)u * CO + c0) * TE, *w1 = wa + ((size_t)(u + 1) * CO + c0) * TE;
                if (u == 2) T_(bd_rows)(acc, dr, cstride, w0, NULL, cn, TE, 1, 0, P, Q, CN);
                else if (u < 0) T_(bd_rows)(acc, dr, cstride, NULL, w1, cn, TE, 0, 1, P, Q, CN);
                else T_(bd_rows)(acc, dr, cstride, w0, w1, cn, TE, 1, 1, P, Q, CN);
            }
            continue;
        }
#endif
        for (int u = R == 2 ? -1 : 0; u < kh; u++) {
            const int oh = ih + g->ph - u;
            if (oh < 0 || oh >= g->OH) continue;
            const float *dr = dyp[a] + c0 * cstride + (size_t)oh * ldr + v * VL;
            const float *w0 = wa + ((size_t)u * CO + c0) * TE, *w1 = wa + ((size_t)(u + 1) * CO + c0) * TE;
            if (R == 1 || u == kh - 1) T_(bd_rows)(acc, dr, cstride, w0, NULL, cn, TE, 1, 0, P, Q, CN);
            else if (u < 0) T_(bd_rows)(acc, dr, cstride, NULL, w1, cn, TE, 0, 1, P, Q, CN);
            else T_(bd_rows)(acc, dr, cstride, w0, w1, cn, TE, 1, 1, P, Q, CN);
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int p = 0; p < P; p++)
            UNROLL for (int q = 0; q < Q * NP; q++) STOREH(z + r * ZS + p * ZR + q * HW, acc[r][p][q]);
}

#if BD_UNROLL
// bd_add_row for kw = 3 with the loop over taps written out (same order, so the same sums). perf
// (timer sampling) put about 5 % of conv1's backward-data on that 3-trip loop around one add.
// conv1 of BR-Net on Zen 3, 1 thread, best of 61 runs (one sample, in cache) alternated 8 times:
// 1.72-1.75 ms against 1.78-1.85; batch 16, 6 times: 30.3-31.3 against 30.9-31.7; conv2
// (bd_plane_v3_narrow) 112.4-114.9 against 114.3-121.9. Only the width that unrolls its tiles
// (BD_UNROLL): compiled into the AVX-512 width too, its bd_plane spilled twice as many registers
// to the stack.
INLINE void T_(bd_add_row_kw3)(float *dx, const float *z, size_t ZR, const Direct *g, int id, int ih) {
    const size_t plane = (size_t)g->H * g->W;
    for (int c = 0; c < g->CI; c++) {
        float *restrict dr = dx + ((size_t)c * g->D + id) * plane + (size_t)ih * g->W;
        const float *zc = z + (size_t)c * 3 * ZR + 3 + g->pw;  // margins of kw floats
        int iw = 0;
        for (; iw + HW <= g->W; iw += HW) {
            hvec acc = LOADH(dr + iw);
            acc += LOADH(zc + iw);
            acc += LOADH(zc + (ZR - 1) + iw);
            acc += LOADH(zc + 2 * (ZR - 1) + iw);
            STOREH(dr + iw, acc);
        }
        for (; iw < g->W; iw++) dr[iw] = ((dr[iw] + zc[iw]) + zc[ZR - 1 + iw]) + zc[2 * (ZR - 1) + iw];
    }
}
#endif

// dx[c, id, ih, iw] += sum_e Z[(c,e)][iw + pw - e] for each channel c, Z rows ZR apart from z
// (Z is 0 past the row's ends): one pass over the dx row, adding the kw taps in order e = 0, 1,
// ... (the rounding of a pass per tap, which read and wrote dx kw times).
INLINE void T_(bd_add_row)(float *dx, const float *z, size_t ZR, const Direct *g, int id, int ih) {
#if BD_UNROLL
    if (g->kw == 3) {
        T_(bd_add_row_kw3)(dx, z, ZR, g, id, ih);
        return;
    }
#endif
    const size_t plane = (size_t)g->H * g->W;
    for (int c = 0; c < g->CI; c++) {
        float *restrict dr = dx + ((size_t)c * g->D + id) * plane + (size_t)ih * g->W;
        const float *zc = z + (size_t)c * g->kw * ZR + g->kw + g->pw;  // margins of kw floats
        int iw = 0;
        for (; iw + HW <= g->W; iw += HW) {
            hvec acc = LOADH(dr + iw);
            for (int e = 0; e < g->kw; e++) acc += LOADH(zc + e * (ZR - 1) + iw);
            STOREH(dr + iw, acc);
        }
        for (; iw < g->W; iw++) {
            float acc = dr[iw];
            for (int e = 0; e < g->kw; e++) acc += zc[e * (ZR - 1) + iw];
            dr[iw] = acc;
        }
    }
}

// Plane id of one sample's dx (CI,D,H,W) += the part of its gradient that flows through dy's
// (CO,OD,OH,OW) channels [c0, c0+cn), through wz (see bd_tile and bd_chunk). ws holds the TE
// Z rows, each with kw zeros either side (so the shifted adds need no clipping), then, when OW
// is not a whole number of MAXQ-vec tiles, zero-padded copies of the kd dy planes, dy plane od
// in slot od mod kd. With `reuse` (this workspace's last call was plane id - 1 of the same
// sample) only the plane that plane id - 1 did not read is copied, into the slot of the one no
// longer read: conv2 of BR-Net on Zen 3, 1 thread, 110-114 ms against 112-113 (and 104-107
// with BD_CPAD as well), where each plane of dy was copied kd times. Taps (c,e)
// go PA at a time, the rest one at a time. A width that defines BD_UNROLL (the AVX2 tiles,
// bd_plane_v3) unrolls the tile's loop over a chunk's channels (bd_chunk), too short a loop to
// pay for its counter and branch, where a chunk of that many channels has all its taps in one
// tile (TE == PA: one input channel and kw = 3, the first layer). GCC 12 is touchy here, and
// each of these alternatives had it move the accumulators between registers (conv1 41-77 ms on
// Zen 3 against 32): a constant trip count without the unroll pragma; the choice made per row
// of dy inside the tile; the remainder tiles unrolled as well. Only the AVX2 width: even as
// dead code, the unrolled loop changed the register allocation of the other widths' tiles,
// which are left as they were measured.
INLINE void T_(bd_plane)(float *dx, const float *dy, const float *wz, const Direct *g, int id, int c0, int cn,
                         float *ws, int reuse, const int PA, const int Q, const int R) {
    const int TE = g->CI * g->kw, CO = g->CO, M = g->kw;
    const size_t ZW = direct_zw(g), ZR = ZW + 2 * M, N = (size_t)g->OD * g->OH * g->OW;
    const int padded = g->OW % (MAXQ * VL) != 0;
    float *z = ws, *dyc = ws + 2 * TE * ZR;
    const float *dyp[MAXKD];
    size_t cstride = N, ldr = g->OW;
    if (padded) cstride = (size_t)g->OH * ZW + BD_CPAD, ldr = ZW;
    for (int a = 0; a < g->kd; a++) {
        const int od = id + g->pd - a;
        dyp[a] = NULL;
        if (od < 0 || od >= g->OD) continue;
        const float *src = dy + (size_t)od * g->OH * g->OW;
        if (!padded) { dyp[a] = src; continue; }
        float *d = dyc + (size_t)(od % g->kd) * CO * cstride;
        dyp[a] = d;
        if (reuse && a > 0) continue;
        for (int co = 0; co < CO; co++)
            for (int oh = 0; oh < g->OH; oh++) {
                float *r = d + co * cstride + oh * ZW;
                memcpy(r, src + co * N + (size_t)oh * g->OW, (size_t)g->OW * sizeof(float));
                memset(r + g->OW, 0, (ZW - g->OW) * sizeof(float));
            }
    }
    const size_t ZS = TE * ZR;
    memset(z, 0, 2 * ZS * sizeof(float));  // the margins, and any vecs past the tiles
    const int pfod = id + g->pd + 1;
    const float *pf = !padded && pfod < g->OD ? dy + (size_t)c0 * N + (size_t)pfod * g->OH * g->OW : NULL;
    for (int ih = 0; ih < g->H; ih += R) {
        const int rows = DF_MIN(R, g->H - ih);
        if (pf)  // this pair's rows of the dy plane dx's next plane reads first (see bd_chunk)
            for (int co = 0; co < cn; co++)
                for (int r = ih; r < DF_MIN(ih + rows, g->OH); r++)
                    for (int w = 0; w < g->OW; w += VL) __builtin_prefetch(pf + co * N + (size_t)r * g->OW + w, 0, 2);
        for (int v = 0; v < g->nv; v += Q) {
            float *zv = z + M + v * VL;
            int t = 0;
#define BD_TILE(P, RT, CN) \
    T_(bd_tile)(zv + t * ZR, ZR, ZS, dyp, cstride, ldr, wz + t, TE, ih, v, g, c0, cn, P, Q, RT, CN)
#if BD_UNROLL
            if (cn == BD_UNROLL && rows == 2 && TE == PA && g->kh == 3) {
                BD_TILE(PA, 2, BD_UNROLL);
            } else
#endif
            if (rows == 2) {
                for (; t + PA <= TE; t += PA) BD_TILE(PA, 2, 0);
                for (; t < TE; t++) BD_TILE(1, 2, 0);
            } else {
                for (; t + PA <= TE; t += PA) BD_TILE(PA, 1, 0);
                for (; t < TE; t++) BD_TILE(1, 1, 0);
            }
#undef BD_TILE
        }
        for (int r = 0; r < rows; r++) T_(bd_add_row)(dx, z + r * ZS, ZR, g, id, ih + r);
    }
}

#undef NP
#undef hvec
#undef LOADH
#undef STOREH
