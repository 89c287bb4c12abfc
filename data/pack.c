// pack.c: per-volume preprocessing and `deconfound pack` (see pack.h).
#include "data/pack.h"
#include "base/progress.h"
#include "mpi/comm.h"
#include "data/csv.h"
#include "data/shard.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The most voxels along one axis of a volume read (and of one resampled to --spacing); the
// messages say 4096.
#define PREP_MAX_AXIS 4096

const char *const pack_norm_names[] = { "none", "zscore", "minmax", NULL };
const char *const pack_fit_names[] = { "crop", "resize", NULL };
const char *const pack_4d_names[] = { "channels", "frames", NULL };

int manifest_settings_from_ini(ManifestSettings *m, const Ini *ini, IniSection *s, DfError *err) {
    static const char *const u8_names[] = { "scale", "raw", NULL };
    PrepConfig *p = &m->prep;
    memset(m, 0, sizeof *m);
    int n = 0, fit, norm, four, layout, raw;
    char where[640];
    if (ini_int_list(ini, s, "shape", p->shape, 3, &n, err)) return -1;
    ini_where_key(ini, s, "shape", where, sizeof where);
    if (n == 1) p->shape[1] = p->shape[2] = p->shape[0];
    else if (n != 0 && n != 3) return df_err(err, "%s needs 1 or 3 values (D,H,W)", where);
    for (int i = 0; n && i < 3; i++)
        if (p->shape[i] < 1 || p->shape[i] > 2048) return df_err(err, "%s values must be in [1, 2048]", where);
    if (ini_double(ini, s, "spacing", 0.0, 0.0, 100.0, &p->spacing, err) ||
        ini_choice(ini, s, "fit", "crop", pack_fit_names, &fit, err) ||
        ini_choice(ini, s, "normalize", "none", pack_norm_names, &norm, err) ||
        ini_choice(ini, s, "4d", "channels", pack_4d_names, &four, err) || ini_bool(ini, s, "reorient", 1, &p->reorient, err) ||
        ini_choice(ini, s, "clip_layout", "THWC", clip_layout_names, &layout, err) ||
        ini_choice(ini, s, "clip_uint8", "scale", u8_names, &raw, err))
        return -1;
    p->fit = (PackFit)fit;
    p->norm = (PackNorm)norm;
    p->four_d = (Pack4D)four;
    p->clip_layout = (ClipLayout)layout;
    p->clip_raw = raw;
    if (p->fit == PACK_FIT_RESIZE && n == 0) {
        ini_where_key(ini, s, "fit", where, sizeof where);
        return df_err(err, "%s = resize needs a shape D,H,W", where);
    }
    m->categorical = ini_str(s, "categorical", NULL);
    m->continuous = ini_str(s, "continuous", NULL);
    m->subjects = ini_str(s, "subjects", NULL);
    return 0;
}

int bids_query_from_ini(BidsQuery *q, const char *dir, const ManifestSettings *ms, const Ini *ini, IniSection *s, DfError *err) {
    memset(q, 0, sizeof *q);
    q->dir = dir;
    q->suffix = ini_str(s, "bids_suffix", "T1w");
    q->session = ini_str(s, "bids_session", NULL);
    q->label = ini_str(s, "label", NULL);
    q->confounders = ini_str(s, "confounders", NULL);
    q->categorical = ms->categorical;
    q->continuous = ms->continuous;
    q->subjects = ms->subjects;
    if (ini_bool(ini, s, "drop_missing", 0, &q->drop_missing, err)) return -1;
    char where[640];
    ini_where_key(ini, s, "label", where, sizeof where);
    if (!q->label || !q->label[0]) return df_err(err, "%s: a BIDS source needs the column holding the class", where);
    return 0;
}

// A grid of C channels of (D, H, W) voxels with its voxel size (mm) along D, H, W, and --
// for a NIfTI volume -- where its voxels are: A maps a voxel's (w, h, d) index (NIfTI's
// i, j, k) to world millimetres. Every geometric step composes its own index map into A, so
// the packed grid keeps an exact affine back to the scanner's space (saliency maps and other
// outputs go back to each subject's own image through it).
typedef struct {
    int C, D, H, W;
    double sd, sh, sw;
    float *x;  // (C, D, H, W); NULL when only the geometry is tracked
    int has_affine;
    double A[4][4];
} Grid;

// A <- A T: T maps the new grid's (w, h, d, 1) to the old grid's.
static void grid_compose(Grid *g, const double T[4][4]) {
    double out[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            out[r][c] = 0;
            for (int k = 0; k < 4; k++) out[r][c] += g->A[r][k] * T[k][c];
        }
    memcpy(g->A, out, sizeof out);
}

// The index map of a per-axis step new -> old: old = scale * new + shift on (w, h, d).
static void grid_compose_axes(Grid *g, const double scale[3], const double shift[3]) {
    double T[4][4] = { { scale[0], 0, 0, shift[0] }, { 0, scale[1], 0, shift[1] }, { 0, 0, scale[2], shift[2] }, { 0, 0, 0, 1 } };
    grid_compose(g, T);
}

// Reorientation to RAS+: for world axis w (x, y, z), the voxel axis perm[w] (0 = i, 1 = j,
// 2 = k) that points along it and whether it points the negative way. -1 (and the identity)
// unless orient names each world axis once: "RA?" (a singular affine) or "RRS" have no RAS+.
static int ras_perm(const char *orient, int perm[3], int flip[3]) {
    int seen[3] = { 0 };
    for (int a = 0; a < 3; a++) {
        char c = orient[a];
        int w = (c == 'R' || c == 'L') ? 0 : (c == 'A' || c == 'P') ? 1 : (c == 'S' || c == 'I') ? 2 : -1;
        if (w < 0 || seen[w]++) break;
        perm[w] = a;
        flip[w] = c == 'L' || c == 'P' || c == 'I';
    }
    if (seen[0] == 1 && seen[1] == 1 && seen[2] == 1) return 0;
    for (int w = 0; w < 3; w++) perm[w] = w, flip[w] = 0;
    return -1;
}

// Step 1 (layout) from a header; x filled when v->data is present.
static int layout(const PrepConfig *cfg, const char *path, const NiiVolume *v, Grid *g, DfError *err) {
    int64_t extra = 1;  // dims 5..7 must be singleton
    for (int i = 5; i <= 7; i++) extra *= v->dim[i];
    if (extra != 1) return df_err(err, "%s: %d-dimensional image (dims 5-7 = %lld x %lld x %lld): only 3D and 4D are supported", path,
                                  v->ndim, (long long)v->dim[5], (long long)v->dim[6], (long long)v->dim[7]);
    int64_t nx = v->dim[1], ny = v->dim[2], nz = v->dim[3], nt = v->dim[4];
    if (nx > PREP_MAX_AXIS || ny > PREP_MAX_AXIS || nz > PREP_MAX_AXIS) return df_err(err, "%s: %lldx%lldx%lld voxels per volume: too large", path, (long long)nx, (long long)ny, (long long)nz);
    memset(g, 0, sizeof *g);
    if (cfg->four_d == PACK_4D_FRAMES) {
        if (nz > 4) return df_err(err, "%s: as a clip (4d = frames) dim[3] holds the colour planes (1 to 4), not %lld", path, (long long)nz);
        g->C = (int)nz; g->D = (int)nt; g->H = (int)ny; g->W = (int)nx;
        g->sd = 1.0; g->sh = v->pixdim[2]; g->sw = v->pixdim[1];
        if (v->data) {
            size_t plane = (size_t)nx * (size_t)ny;
            g->x = df_alloc_floats((size_t)v->nvox);
            for (int64_t t = 0; t < nt; t++)
                for (int64_t c = 0; c < nz; c++)
                    memcpy(g->x + ((size_t)c * (size_t)nt + (size_t)t) * plane, v->data + ((size_t)t * (size_t)nz + (size_t)c) * plane,
                           plane * sizeof(float));
        }
    } else {
        if (nt > 64) return df_err(err, "%s: %lld volumes in the 4th dimension: at most 64 channels (use 4d = frames for clips)", path, (long long)nt);
        g->C = (int)nt; g->D = (int)nz; g->H = (int)ny; g->W = (int)nx;
        g->sd = v->pixdim[3]; g->sh = v->pixdim[2]; g->sw = v->pixdim[1];
        // Every geometric step composes into the affine, and the packed grid's affine is what
        // takes outputs back to the subject (export): without an invertible one there is no way
        // back, nor a way to RAS+.
        const char *bad = nii_affine_problem(v);
        if (bad) return df_err(err, "%s: its voxel-to-world affine (sform, else qform) %s", path, bad);
        int perm[3], flip[3];
        if (cfg->reorient && ras_perm(v->orient, perm, flip))
            return df_err(err, "%s: its orientation cannot be told from its affine (axis codes %s); --no-reorient "
                          "(reorient = false) keeps the stored axes", path, v->orient);
        g->has_affine = 1;
        memcpy(g->A, v->affine, sizeof g->A);
        if (v->data) {
            g->x = df_alloc_floats((size_t)v->nvox);
            memcpy(g->x, v->data, sizeof(float) * (size_t)v->nvox);
        }
    }
    if (!(g->sd > 0)) g->sd = 1;
    if (!(g->sh > 0)) g->sh = 1;
    if (!(g->sw > 0)) g->sw = 1;
    return 0;
}

// Step 2: permute/flip the spatial axes to RAS+.
static void reorient(Grid *g, const char *orient) {
    int perm[3], flip[3];
    if (ras_perm(orient, perm, flip)) return;  // refused by layout(): never reached
    int n[3] = { g->W, g->H, g->D };          // voxel axes i, j, k
    double sp[3] = { g->sw, g->sh, g->sd };
    int W2 = n[perm[0]], H2 = n[perm[1]], D2 = n[perm[2]];
    int identity = perm[0] == 0 && perm[1] == 1 && perm[2] == 2 && !flip[0] && !flip[1] && !flip[2];
    if (g->x && !identity) {
        size_t V = (size_t)g->D * g->H * g->W;
        float *out = df_alloc_floats((size_t)g->C * V);
        for (int c = 0; c < g->C; c++) {
            const float *src = g->x + (size_t)c * V;
            float *dst = out + (size_t)c * V;
            int idx[3];
            for (int z = 0; z < D2; z++)
                for (int y = 0; y < H2; y++)
                    for (int x = 0; x < W2; x++) {
                        int w[3] = { x, y, z }, m[3] = { W2, H2, D2 };
                        for (int a = 0; a < 3; a++) idx[perm[a]] = flip[a] ? m[a] - 1 - w[a] : w[a];
                        dst[((size_t)z * H2 + y) * W2 + x] = src[((size_t)idx[2] * g->H + idx[1]) * g->W + idx[0]];
                    }
        }
        free(g->x);
        g->x = out;
    }
    if (g->has_affine) {  // old index perm[a] = new a, or its mirror m[a] - 1 - new a
        double T[4][4] = { { 0 } };
        int m[3] = { W2, H2, D2 };
        for (int a = 0; a < 3; a++) {
            T[perm[a]][a] = flip[a] ? -1.0 : 1.0;
            T[perm[a]][3] = flip[a] ? m[a] - 1 : 0;
        }
        T[3][3] = 1;
        grid_compose(g, T);
    }
    g->W = W2; g->H = H2; g->D = D2;
    g->sw = sp[perm[0]]; g->sh = sp[perm[1]]; g->sd = sp[perm[2]];
}

// Source coordinate of output voxel o on an axis resampled from n to m voxels, centres
// aligned, clamped to [0, n-1].
static inline void src_coord(int o, int n, int m, int *i0, int *i1, float *f) {
    double s = ((double)o + 0.5) * (double)n / (double)m - 0.5;
    if (s < 0) s = 0;
    if (s > n - 1) s = n - 1;
    *i0 = (int)s;
    *i1 = *i0 + 1 < n ? *i0 + 1 : *i0;
    *f = (float)(s - *i0);
}

void prep_resample(float *out, const float *in, int C, int D, int H, int W, int D2, int H2, int W2) {
    size_t V = (size_t)D * H * W, V2 = (size_t)D2 * H2 * W2;
    int *x0 = xmalloc(sizeof(int) * (size_t)W2), *x1 = xmalloc(sizeof(int) * (size_t)W2);
    float *fx = xmalloc(sizeof(float) * (size_t)W2);
    for (int x = 0; x < W2; x++) src_coord(x, W, W2, &x0[x], &x1[x], &fx[x]);
    for (int c = 0; c < C; c++) {
        const float *s = in + (size_t)c * V;
        float *o = out + (size_t)c * V2;
        for (int z = 0; z < D2; z++) {
            int z0, z1; float fz;
            src_coord(z, D, D2, &z0, &z1, &fz);
            for (int y = 0; y < H2; y++) {
                int y0, y1; float fy;
                src_coord(y, H, H2, &y0, &y1, &fy);
                const float *r00 = s + ((size_t)z0 * H + y0) * W, *r01 = s + ((size_t)z0 * H + y1) * W;
                const float *r10 = s + ((size_t)z1 * H + y0) * W, *r11 = s + ((size_t)z1 * H + y1) * W;
                float *orow = o + ((size_t)z * H2 + y) * W2;
                for (int x = 0; x < W2; x++) {
                    float a = r00[x0[x]] + fx[x] * (r00[x1[x]] - r00[x0[x]]);
                    float b = r01[x0[x]] + fx[x] * (r01[x1[x]] - r01[x0[x]]);
                    float cc = r10[x0[x]] + fx[x] * (r10[x1[x]] - r10[x0[x]]);
                    float d = r11[x0[x]] + fx[x] * (r11[x1[x]] - r11[x0[x]]);
                    float ab = a + fy * (b - a), cd = cc + fy * (d - cc);
                    orow[x] = ab + fz * (cd - ab);
                }
            }
        }
    }
    free(x0); free(x1); free(fx);
}

static void resample_to(Grid *g, int D2, int H2, int W2) {
    if (D2 == g->D && H2 == g->H && W2 == g->W) return;
    if (g->x) {
        float *out = df_alloc_floats((size_t)g->C * D2 * H2 * W2);
        prep_resample(out, g->x, g->C, g->D, g->H, g->W, D2, H2, W2);
        free(g->x);
        g->x = out;
    }
    g->sd *= (double)g->D / D2; g->sh *= (double)g->H / H2; g->sw *= (double)g->W / W2;
    if (g->has_affine) {  // src_coord: old = (new + 0.5) n / m - 0.5 (inside the grid)
        double r[3] = { (double)g->W / W2, (double)g->H / H2, (double)g->D / D2 }, t[3];
        for (int a = 0; a < 3; a++) t[a] = 0.5 * r[a] - 0.5;
        grid_compose_axes(g, r, t);
    }
    g->D = D2; g->H = H2; g->W = W2;
}

// Centred crop / zero pad to (D2, H2, W2).
static void crop_pad(Grid *g, int D2, int H2, int W2) {
    if (D2 == g->D && H2 == g->H && W2 == g->W) return;
    int od = (g->D - D2) / 2, oh = (g->H - H2) / 2, ow = (g->W - W2) / 2;  // C division: towards 0
    if (g->D < D2) od = -((D2 - g->D) / 2);
    if (g->H < H2) oh = -((H2 - g->H) / 2);
    if (g->W < W2) ow = -((W2 - g->W) / 2);
    if (g->has_affine) {  // old = new + offset
        double one[3] = { 1, 1, 1 }, t[3] = { ow, oh, od };
        grid_compose_axes(g, one, t);
    }
    if (g->x) {
        float *out = df_alloc_floats((size_t)g->C * D2 * H2 * W2);  // zero-filled: the padding
        for (int c = 0; c < g->C; c++)
            for (int z = 0; z < D2; z++) {
                int sz = z + od;
                if (sz < 0 || sz >= g->D) continue;
                for (int y = 0; y < H2; y++) {
                    int sy = y + oh;
                    if (sy < 0 || sy >= g->H) continue;
                    for (int x = 0; x < W2; x++) {
                        int sx = x + ow;
                        if (sx < 0 || sx >= g->W) continue;
                        out[(((size_t)c * D2 + z) * H2 + y) * W2 + x] = g->x[(((size_t)c * g->D + sz) * g->H + sy) * g->W + sx];
                    }
                }
            }
        free(g->x);
        g->x = out;
    }
    g->D = D2; g->H = H2; g->W = W2;
}

// The grid of step 3, from the header's voxel sizes: refused before anything is allocated
// when an axis is not finite, rounds to no voxel, or exceeds what a source may have
// (PREP_MAX_AXIS), or the whole exceeds NII_MAX_VOXELS values (8 GiB of floats, the largest
// volume nii_read accepts; also what keeps every index within an int per axis).
static int spacing_grid(const PrepConfig *cfg, const Grid *g, const char *path, int out[3], DfError *err) {
    double n[3] = { g->D * g->sd / cfg->spacing, g->H * g->sh / cfg->spacing, g->W * g->sw / cfg->spacing };
    if (cfg->four_d == PACK_4D_FRAMES) n[0] = g->D;  // frames are not resampled in time
    const char *why = NULL;
    double total = g->C;
    for (int a = 0; a < 3; a++) {
        double r = round(n[a]);
        if (!isfinite(n[a])) why = "not a finite size";
        else if (r < 1) why = "less than one voxel along an axis";
        else if (r > PREP_MAX_AXIS) why = "more than 4096 voxels along an axis";
        if (why) break;
        out[a] = (int)r;
        total *= r;
    }
    if (!why && total > (double)NII_MAX_VOXELS) why = "more than 2^31 values";
    if (!why) return 0;
    return df_err(err, "%s: resampling its %dx%dx%d voxels (D,H,W) of %gx%gx%g mm to spacing %g mm gives %.4gx%.4gx%.4g: %s "
                  "(a wrong voxel size pixdim in the header, or spacing?)", path, g->D, g->H, g->W, g->sd, g->sh, g->sw,
                  cfg->spacing, n[0], n[1], n[2], why);
}

// Steps 2-4 on a grid; orient NULL for an HDF5 clip (no orientation, no millimetres: cannot
// fail).
static int geometry(const PrepConfig *cfg, Grid *g, const char *orient, const char *path, DfError *err) {
    if (orient && cfg->reorient && cfg->four_d != PACK_4D_FRAMES) reorient(g, orient);
    if (orient && cfg->spacing > 0) {
        int n[3];
        if (spacing_grid(cfg, g, path, n, err)) return -1;
        resample_to(g, n[0], n[1], n[2]);
    }
    if (cfg->shape[0] > 0) {
        if (cfg->fit == PACK_FIT_RESIZE) resample_to(g, cfg->shape[0], cfg->shape[1], cfg->shape[2]);
        else crop_pad(g, cfg->shape[0], cfg->shape[1], cfg->shape[2]);
    }
    return 0;
}

// Step 1 for an HDF5 clip: the grid (C, D = T, H, W), pixels of unit size.
static int clip_grid(const PrepConfig *cfg, const char *path, int with_data, Grid *g, DfError *err) {
    H5Clip clip;
    if (h5clip_read(path, cfg->clip_layout, cfg->clip_raw, with_data, &clip, err)) return -1;
    memset(g, 0, sizeof *g);
    g->C = clip.C; g->D = clip.T; g->H = clip.H; g->W = clip.W;
    g->sd = g->sh = g->sw = 1.0;
    g->x = clip.data;  // ownership moves to the grid
    return 0;
}

int prep_shape(const PrepConfig *cfg, const char *path, Shape *out, DfError *err) {
    if (h5clip_is_ref(path)) {
        Grid g;
        if (clip_grid(cfg, path, 0, &g, err)) return -1;
        geometry(cfg, &g, NULL, path, err);
        *out = (Shape){ g.C, g.D, g.H, g.W };
        return 0;
    }
    NiiVolume v;
    if (nii_read(path, &v, 0, err)) return -1;
    Grid g;
    int rc = layout(cfg, path, &v, &g, err);
    if (rc == 0) rc = geometry(cfg, &g, v.orient, path, err);
    if (rc == 0) *out = (Shape){ g.C, g.D, g.H, g.W };
    nii_free(&v);
    return rc;
}

int prep_geometry(const PrepConfig *cfg, const char *path, PrepGeometry *geo, DfError *err) {
    memset(geo, 0, sizeof *geo);
    if (h5clip_is_ref(path)) return 0;
    NiiVolume v;
    if (nii_read(path, &v, 0, err)) return -1;
    Grid g;
    int rc = layout(cfg, path, &v, &g, err);
    if (rc == 0 && g.has_affine && (rc = geometry(cfg, &g, v.orient, path, err)) == 0) {
        geo->has = 1;
        memcpy(geo->affine, g.A, sizeof geo->affine);
        memcpy(geo->source_affine, v.affine, sizeof geo->source_affine);
        for (int a = 0; a < 3; a++) geo->source_dims[a] = (int)v.dim[1 + a];
    }
    nii_free(&v);
    return rc;
}

// The inverse of an affine 4x4 (last row 0 0 0 1): -1 when its 3x3 part is singular.
static int affine_inverse(double inv[16], const double A[16]) {
    double a = A[0], b = A[1], c = A[2], d = A[4], e = A[5], f = A[6], g = A[8], h = A[9], k = A[10];
    double det = a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g);
    if (!(fabs(det) > 1e-12)) return -1;
    double m[9] = { (e * k - f * h) / det, (c * h - b * k) / det, (b * f - c * e) / det,
                    (f * g - d * k) / det, (a * k - c * g) / det, (c * d - a * f) / det,
                    (d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det };
    for (int r = 0; r < 3; r++) {
        for (int col = 0; col < 3; col++) inv[r * 4 + col] = m[r * 3 + col];
        inv[r * 4 + 3] = -(m[r * 3] * A[3] + m[r * 3 + 1] * A[7] + m[r * 3 + 2] * A[11]);
    }
    inv[12] = inv[13] = inv[14] = 0, inv[15] = 1;
    return 0;
}

// Trilinear sample of map (D, H, W) at (w, h, d); 0 beyond half a voxel outside the grid.
static float sample_at(const float *map, int D, int H, int W, double w, double h, double d) {
    if (w < -0.5 || h < -0.5 || d < -0.5 || w > W - 0.5 || h > H - 0.5 || d > D - 0.5) return 0.0f;
    double p[3] = { fmin(fmax(d, 0), D - 1), fmin(fmax(h, 0), H - 1), fmin(fmax(w, 0), W - 1) };
    int n[3] = { D, H, W }, lo[3], hi[3];
    double f[3];
    for (int a = 0; a < 3; a++) {
        lo[a] = (int)floor(p[a]);
        hi[a] = lo[a] + 1 < n[a] ? lo[a] + 1 : lo[a];
        f[a] = p[a] - lo[a];
    }
    double acc = 0;
    for (int corner = 0; corner < 8; corner++) {
        double wgt = 1;
        int idx[3];
        for (int a = 0; a < 3; a++) {
            int bit = (corner >> a) & 1;
            idx[a] = bit ? hi[a] : lo[a];
            wgt *= bit ? f[a] : 1 - f[a];
        }
        acc += wgt * map[((size_t)idx[0] * H + idx[1]) * W + idx[2]];
    }
    return (float)acc;
}

int prep_to_source(float *out, const float *map, int D, int H, int W, const double affine[16], const double source_affine[16],
                   const int dims[3]) {
    double inv[16], T[16];  // T: source voxel -> packed voxel = inv(affine) source_affine
    if (affine_inverse(inv, affine)) return -1;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            T[r * 4 + c] = 0;
            for (int k = 0; k < 4; k++) T[r * 4 + c] += inv[r * 4 + k] * source_affine[k * 4 + c];
        }
    for (int k = 0; k < dims[2]; k++)
        for (int j = 0; j < dims[1]; j++)
            for (int i = 0; i < dims[0]; i++) {
                double q[3];
                for (int r = 0; r < 3; r++) q[r] = T[r * 4] * i + T[r * 4 + 1] * j + T[r * 4 + 2] * k + T[r * 4 + 3];
                out[((size_t)k * dims[1] + j) * dims[0] + i] = sample_at(map, D, H, W, q[0], q[1], q[2]);
            }
    return 0;
}

int prep_mask_on_grid(uint8_t *out, const char *mask_path, int D, int H, int W, const double affine[16], DfError *err) {
    NiiVolume m;
    if (nii_read(mask_path, &m, 1, err)) return -1;
    int mx = (int)m.dim[1], my = (int)m.dim[2], mz = (int)m.dim[3], dims[3] = { W, H, D };
    if (m.nvox != (int64_t)mx * my * mz) {
        nii_free(&m);
        return df_err(err, "%s: a mask must be one 3D volume", mask_path);
    }
    for (int64_t i = 0; i < m.nvox; i++) m.data[i] = m.data[i] > 0 ? 1.0f : 0.0f;
    double maff[16];
    for (int r = 0; r < 4; r++) for (int c = 0; c < 4; c++) maff[r * 4 + c] = m.affine[r][c];
    float *on = xmalloc(sizeof(float) * (size_t)D * H * W);
    int rc = prep_to_source(on, m.data, mz, my, mx, maff, affine, dims);  // the packed grid is the "source" here
    nii_free(&m);
    if (rc) { free(on); return df_err(err, "%s: its affine is singular", mask_path); }
    for (size_t v = 0; v < (size_t)D * H * W; v++) out[v] = on[v] >= 0.5f;
    free(on);
    return 0;
}

static void normalise(const PrepConfig *cfg, Grid *g, const uint8_t *mask) {
    if (cfg->norm == PACK_NORM_NONE) return;
    size_t V = (size_t)g->D * g->H * g->W;
    for (int c = 0; c < g->C; c++) {
        float *x = g->x + (size_t)c * V;
        double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
        size_t n = 0;
        for (size_t i = 0; i < V; i++) {
            if (mask && !mask[i]) continue;
            s += x[i]; s2 += (double)x[i] * x[i]; n++;
            lo = fmin(lo, x[i]); hi = fmax(hi, x[i]);
        }
        if (n == 0) continue;  // empty mask: leave as is
        double a, b;  // x -> (x - a) * b
        if (cfg->norm == PACK_NORM_ZSCORE) {
            double mean = s / n, var = s2 / n - mean * mean;
            a = mean;
            b = var > 1e-20 ? 1.0 / sqrt(var) : 1.0;
        } else {
            a = lo;
            b = hi > lo ? 1.0 / (hi - lo) : 1.0;
        }
        for (size_t i = 0; i < V; i++) x[i] = (float)(((double)x[i] - a) * b);
    }
}

// A clip's mask (h5clip_read_mask, in the clip's layout): the same frames and size as the clip
// g (before geometry), taken through the same geometry, then foreground where >= 0.5.
static int clip_mask_load(const PrepConfig *cfg, const char *path, const Grid *g, const char *mask_path, uint8_t **mout,
                          DfError *err) {
    H5Clip m;
    if (h5clip_read_mask(mask_path, cfg->clip_layout, 1, &m, err)) return -1;
    if (m.T != g->D || m.H != g->H || m.W != g->W) {
        df_err(err, "%s: mask is %d frames of %dx%d but the clip %s is %d frames of %dx%d", mask_path, m.T, m.H, m.W, path, g->D,
               g->H, g->W);
        h5clip_free(&m);
        return -1;
    }
    Grid mg = { .C = 1, .D = m.T, .H = m.H, .W = m.W, .sd = 1.0, .sh = 1.0, .sw = 1.0, .x = m.data };
    geometry(cfg, &mg, NULL, mask_path, err);
    size_t V = (size_t)mg.D * mg.H * mg.W;
    uint8_t *mask = xmalloc(V);
    for (size_t i = 0; i < V; i++) mask[i] = mg.x[i] >= 0.5f;
    free(mg.x);
    *mout = mask;
    return 0;
}

// A NIfTI mask belongs to its image's grid: the same voxels (dims 1-3, one volume) and, when
// the image has a place in world space (has_affine), at the same places. The two affines may
// differ by rounding (float32 srows, a qform's quaternion): where they put a voxel may differ
// by at most 1/100 of the image's smallest voxel (the difference of two affines is affine, so
// it is largest at a corner of the grid). v, mv: headers.
static int nifti_mask_fits(const NiiVolume *v, const char *path, int has_affine, const NiiVolume *mv, const char *mask_path,
                           DfError *err) {
    int64_t n[3] = { v->dim[1], v->dim[2], v->dim[3] };
    if (mv->dim[1] != n[0] || mv->dim[2] != n[1] || mv->dim[3] != n[2] || mv->nvox != n[0] * n[1] * n[2])
        return df_err(err, "%s: mask is %lldx%lldx%lld (%lld voxels) but %s is %lldx%lldx%lld", mask_path, (long long)mv->dim[1],
                      (long long)mv->dim[2], (long long)mv->dim[3], (long long)mv->nvox, path, (long long)n[0], (long long)n[1],
                      (long long)n[2]);
    if (!has_affine) return 0;
    const char *bad = nii_affine_problem(mv);
    if (bad) return df_err(err, "%s: its voxel-to-world affine (sform, else qform) %s", mask_path, bad);
    double gap = 0, vox = INFINITY;
    for (int c = 0; c < 3; c++)
        vox = fmin(vox, sqrt(v->affine[0][c] * v->affine[0][c] + v->affine[1][c] * v->affine[1][c] + v->affine[2][c] * v->affine[2][c]));
    for (int corner = 0; corner < 8; corner++) {
        double p[3], d2 = 0;
        for (int a = 0; a < 3; a++) p[a] = (corner >> a) & 1 ? (double)(n[a] - 1) : 0.0;
        for (int r = 0; r < 3; r++) {
            double d = v->affine[r][3] - mv->affine[r][3];
            for (int c = 0; c < 3; c++) d += (v->affine[r][c] - mv->affine[r][c]) * p[c];
            d2 += d * d;
        }
        gap = fmax(gap, sqrt(d2));
    }
    if (gap <= 0.01 * vox) return 0;
    return df_err(err, "%s: mask is not on the grid of %s: their affines place a voxel %.3g mm apart (more than 1/100 of its "
                  "%.3g mm voxel)", mask_path, path, gap, vox);
}

// A NIfTI mask through the image's steps 2-4 (v: the image's header), foreground where >= 0.5.
static int nifti_mask_load(const PrepConfig *cfg, const NiiVolume *v, const char *path, int has_affine, const char *mask_path,
                           uint8_t **mout, DfError *err) {
    NiiVolume mv;
    if (nii_read(mask_path, &mv, 1, err)) return -1;
    PrepConfig mc = *cfg;
    mc.four_d = PACK_4D_CHANNELS;
    Grid mg = { .x = NULL };
    if (nifti_mask_fits(v, path, has_affine, &mv, mask_path, err) || layout(&mc, mask_path, &mv, &mg, err)) {
        nii_free(&mv);
        return -1;
    }
    for (size_t i = 0; i < (size_t)mv.nvox; i++) mg.x[i] = mg.x[i] > 0 ? 1.0f : 0.0f;
    int rc = geometry(&mc, &mg, mv.orient, mask_path, err);
    nii_free(&mv);
    if (rc) { free(mg.x); return -1; }
    size_t V = (size_t)mg.D * mg.H * mg.W;
    uint8_t *mask = xmalloc(V);
    for (size_t i = 0; i < V; i++) mask[i] = mg.x[i] >= 0.5f;
    free(mg.x);
    *mout = mask;
    return 0;
}

int prep_load(const PrepConfig *cfg, const char *path, const char *mask_path, float **xout, uint8_t **mout, Shape *shape,
              DfError *err) {
    *xout = NULL;
    *mout = NULL;
    if (h5clip_is_ref(path)) {
        Grid g;
        if (clip_grid(cfg, path, 1, &g, err)) return -1;
        if (mask_path && clip_mask_load(cfg, path, &g, mask_path, mout, err)) { free(g.x); return -1; }
        geometry(cfg, &g, NULL, path, err);
        normalise(cfg, &g, NULL);  // over the whole clip: a clip's mask marks the actor, not where the data are
        *xout = g.x;
        *shape = (Shape){ g.C, g.D, g.H, g.W };
        return 0;
    }
    NiiVolume v;
    if (nii_read(path, &v, 1, err)) return -1;
    for (int64_t i = 0; i < v.nvox; i++)
        if (!isfinite(v.data[i])) {
            nii_free(&v);
            return df_err(err, "%s: voxel %lld is NaN or infinite", path, (long long)i);
        }
    Grid g;
    if (layout(cfg, path, &v, &g, err)) { nii_free(&v); return -1; }
    free(v.data);  // the grid has a copy; the header stays for the mask
    v.data = NULL;
    uint8_t *mask = NULL;
    if (geometry(cfg, &g, v.orient, path, err) || (mask_path && nifti_mask_load(cfg, &v, path, g.has_affine, mask_path, &mask, err))) {
        nii_free(&v);
        free(g.x);
        return -1;
    }
    nii_free(&v);
    normalise(cfg, &g, mask);
    *xout = g.x;
    *mout = mask;
    *shape = (Shape){ g.C, g.D, g.H, g.W };
    return 0;
}

// ---- pack ----------------------------------------------------------------------------------

static char **dup_strings(char **s, int n) {
    if (!s || n == 0) return NULL;
    char **o = xmalloc(sizeof(char *) * (size_t)n);
    for (int i = 0; i < n; i++) o[i] = xstrdup(s[i]);
    return o;
}

// "MANIFEST:LINE: <err>" for row i.
static int at_row(const PackConfig *cfg, const Manifest *m, int i, DfError *err) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return df_err(err, "%s:%d: %s", m->origin, m->line[i], msg);
}

// A clip's mask, by its header: readable as a mask and of the clip's frames and size.
static int clip_mask_check(const PrepConfig *cfg, const char *path, const char *mask_path, DfError *err) {
    H5Clip c, m;
    if (h5clip_read(path, cfg->clip_layout, cfg->clip_raw, 0, &c, err) || h5clip_read_mask(mask_path, cfg->clip_layout, 0, &m, err))
        return -1;
    if (m.T != c.T || m.H != c.H || m.W != c.W)
        return df_err(err, "%s: mask is %d frames of %dx%d but the clip %s is %d frames of %dx%d", mask_path, m.T, m.H, m.W, path,
                      c.T, c.H, c.W);
    return 0;
}

// A NIfTI mask on its image's grid (nifti_mask_fits), from the headers.
static int nifti_mask_check(const PrepConfig *cfg, const char *path, const char *mask_path, DfError *err) {
    NiiVolume v, mv;
    if (nii_read(path, &v, 0, err)) return -1;
    int rc = nii_read(mask_path, &mv, 0, err);
    if (rc == 0) rc = nifti_mask_fits(&v, path, cfg->four_d != PACK_4D_FRAMES, &mv, mask_path, err);
    nii_free(&mv);  // cleared by a failed nii_read: freeing it again is harmless
    nii_free(&v);
    return rc;
}

// Every header, on every rank: cheap, and it finds bad files before anything is written,
// identically on every rank. *shape: what every sample comes out as.
static int check_headers(const PackConfig *cfg, const Manifest *m, Shape *shape, DfError *err) {
    for (int i = 0; i < m->n; i++) {
        Shape s;
        if (prep_shape(&cfg->prep, m->paths[i], &s, err)) return at_row(cfg, m, i, err);
        if (m->masks && h5clip_is_ref(m->paths[i]) != h5clip_is_ref(m->masks[i]))
            return df_err(err, "%s:%d: mask %s: %s", m->origin, m->line[i], m->masks[i],
                          h5clip_is_ref(m->paths[i]) ? "an HDF5 clip's mask is an HDF5 array too (FILE.h5:DATASET)"
                                                     : "a NIfTI volume's mask is a NIfTI file too");
        if (m->masks && h5clip_is_ref(m->paths[i])) {
            if (clip_mask_check(&cfg->prep, m->paths[i], m->masks[i], err)) return at_row(cfg, m, i, err);
        } else if (m->masks) {
            Shape ms;
            PrepConfig mc = cfg->prep;
            mc.four_d = PACK_4D_CHANNELS;
            if (prep_shape(&mc, m->masks[i], &ms, err)) return at_row(cfg, m, i, err);
            if (ms.c != 1 || ms.d != s.d || ms.h != s.h || ms.w != s.w)
                return df_err(err, "%s:%d: mask %s comes out (%d,%d,%d,%d), the image (1,%d,%d,%d)", m->origin, m->line[i],
                              m->masks[i], ms.c, ms.d, ms.h, ms.w, s.d, s.h, s.w);
            if (nifti_mask_check(&cfg->prep, m->paths[i], m->masks[i], err)) return at_row(cfg, m, i, err);
        }
        if (i == 0) *shape = s;
        else if (s.c != shape->c || s.d != shape->d || s.h != shape->h || s.w != shape->w)
            return df_err(err, "%s:%d: %s comes out with shape (C,D,H,W) = (%d,%d,%d,%d) but %s with (%d,%d,%d,%d); %s",
                          m->origin, m->line[i], m->paths[i], s.c, s.d, s.h, s.w, m->paths[0], shape->c, shape->d, shape->h,
                          shape->w, s.c != shape->c ? "every volume needs the same number of channels" : "give --shape D,H,W (and/or --spacing)");
    }
    return 0;
}

// The output directory must not exist; rank 0 creates a temporary one (renamed at the end).
static int make_out_dir(const PackConfig *cfg, char *tmp, size_t n, DfError *err) {
    int rc = 0;
    if (dist_rank() == 0) {
        struct stat st;
        if (stat(cfg->out, &st) == 0) rc = df_err(err, "%s: already exists; pack writes a new directory", cfg->out);
        else {
            char *t = df_temp_name(cfg->out);
            snprintf(tmp, n, "%s", t);
            free(t);
            if (mkdir(tmp, 0755) != 0) rc = df_err(err, "%s: cannot create: %s", cfg->out, strerror(errno));
        }
    }
    if (dist_agree(rc, err)) return -1;
    dist_bcast(tmp, n, 0);
    return 0;
}

// Rank 0's cohort for rows [a, b): everything but the images and masks.
static void shard_cohort(Cohort *c, const PackConfig *cfg, const Manifest *m, int a, int b, Shape shape) {
    cohort_alloc(c, b - a, shape, m->k);
    if (cfg->bids) c->source = bids_describe(cfg->bids);
    if (m->masks) cohort_alloc_masks(c);
    c->subjects = xcalloc((size_t)(b - a), sizeof(char *));
    for (int j = 0; j < m->k; j++) {
        c->columns[j] = xstrdup(m->columns[j]);
        c->kinds[j] = m->kinds[j];
        c->n_levels[j] = m->n_levels[j];
        c->levels[j] = dup_strings(m->levels[j], m->n_levels[j]);
    }
    c->n_label_names = m->n_label_names;
    c->label_names = dup_strings(m->label_names, m->n_label_names);
    for (int i = a; i < b; i++) {
        c->labels[i - a] = m->labels[i];
        c->subjects[i - a] = xstrdup(m->subjects[i]);
        memcpy(c->meta + (size_t)(i - a) * m->k, m->meta + (size_t)i * m->k, sizeof(double) * (size_t)m->k);
    }
}

// The images (and masks) of rows [a, b) into rank 0's c: in rounds of P rows, rank r loads row
// q + r and rank 0 gathers them in row order. Collective.
static int load_rows(const PackConfig *cfg, const Manifest *m, Cohort *c, int a, int b, Shape shape, DfError *err) {
    int P = dist_size(), rank = dist_rank(), with_masks = m->masks != NULL;
    size_t per = shape_numel(shape), V = shape_spatial(shape), stride = per + (with_masks ? V : 0);  // a sample (+ its mask)
    float *mine = df_alloc_floats(stride), *round_buf = rank == 0 ? df_alloc_floats((size_t)P * stride) : NULL;
    int rc = 0;
    for (int q = a; q < b && rc == 0; q += P) {
        int row = q + rank, have = row < b;
        if (have) {
            float *x = NULL;
            uint8_t *mk = NULL;
            Shape got;
            rc = prep_load(&cfg->prep, m->paths[row], with_masks ? m->masks[row] : NULL, &x, &mk, &got, err);
            if (rc) at_row(cfg, m, row, err);
            else {
                DF_ASSERT(got.c == shape.c && got.d == shape.d && got.h == shape.h && got.w == shape.w);
                memcpy(mine, x, per * sizeof(float));
                for (size_t v = 0; v < V && mk; v++) mine[per + v] = mk[v];
            }
            free(x);
            free(mk);
        }
        if ((rc = dist_agree(rc, err))) break;
        progress_update(DF_MIN(q + P, b));
        dist_gather_f32(round_buf, mine, have ? stride : 0);
        for (int r = 0; rank == 0 && r < P && q + r < b; r++) {
            const float *src = round_buf + (size_t)r * stride;
            memcpy(c->images + (size_t)(q + r - a) * per, src, per * sizeof(float));
            for (size_t v = 0; with_masks && v < V; v++) c->masks[(size_t)(q + r - a) * V + v] = (uint8_t)(src[per + v] != 0);
        }
    }
    free(mine);
    free(round_buf);
    return rc;
}

static void free_strings_n(char **s, int n) {
    for (int i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

// Rank 0: where rows [a, b) came from (data/cohort.h, Cohort.sources ...), from their
// headers; nothing when the rows are clips (they have no world space).
static int record_geometry(const PackConfig *cfg, const Manifest *m, Cohort *c, int a, int b, DfError *err) {
    const PrepConfig *p = &cfg->prep;  // the steps, as words: what the images went through
    char steps[256];
    snprintf(steps, sizeof steps, "reorient=%d spacing=%g shape=%d,%d,%d fit=%s normalize=%s 4d=%s", p->reorient, p->spacing,
             p->shape[0], p->shape[1], p->shape[2], pack_fit_names[p->fit], pack_norm_names[p->norm], pack_4d_names[p->four_d]);
    c->preprocessing = xstrdup(steps);
    PrepGeometry geo;
    for (int i = a; i < b; i++) {
        if (prep_geometry(&cfg->prep, m->paths[i], &geo, err)) return at_row(cfg, m, i, err);
        if (!geo.has) {  // a clip has no world space: no geometry for this shard
            free_strings_n(c->sources, c->n), free(c->source_dims), free(c->source_affine), free(c->affine);
            c->sources = NULL, c->source_dims = NULL, c->source_affine = NULL, c->affine = NULL;
            return 0;
        }
        if (!c->affine) {
            size_t n = (size_t)c->n;
            c->sources = xcalloc(n, sizeof(char *));
            c->source_dims = xmalloc(n * 3 * sizeof(int32_t));
            c->source_affine = xmalloc(n * 16 * sizeof(double));
            c->affine = xmalloc(n * 16 * sizeof(double));
        }
        size_t r = (size_t)(i - a);
        c->sources[r] = xstrdup(m->paths[i]);
        for (int k = 0; k < 3; k++) c->source_dims[r * 3 + k] = geo.source_dims[k];
        memcpy(c->source_affine + r * 16, geo.source_affine, sizeof geo.source_affine);
        memcpy(c->affine + r * 16, geo.affine, sizeof geo.affine);
    }
    return 0;
}

static void print_summary(const PackConfig *cfg, const Manifest *m, const BidsReport *r, Shape shape, int nshards) {
    printf("wrote %s: %d samples of shape (C,D,H,W) = (%d,%d,%d,%d) in %d shard%s; labels", cfg->out, m->n, shape.c, shape.d,
           shape.h, shape.w, nshards, nshards == 1 ? "" : "s");
    int maxlab = 0;
    for (int i = 0; i < m->n; i++) maxlab = DF_MAX(maxlab, m->labels[i]);
    for (int y = 0; y <= maxlab && y < 64; y++) {
        int cnt = 0;
        for (int i = 0; i < m->n; i++) cnt += m->labels[i] == y;
        printf(" %d: %d", y, cnt);
    }
    printf("; columns");
    for (int j = 0; j < m->k; j++) printf(" %s (%s)", m->columns[j], m->kinds[j] == META_CATEGORICAL ? "categorical" : "continuous");
    if (m->k == 0) printf(" none");
    for (int i = 0; i < r->n_units; i++) printf("; %s", r->units[i]);
    printf("%s\n", m->masks ? "; masks" : "");
}

// The rows: the manifest CSV (and its subject list), or the BIDS dataset.
static int read_rows(const PackConfig *cfg, Manifest *m, BidsReport *r, DfError *err) {
    memset(r, 0, sizeof *r);
    if (cfg->bids) return bids_read(m, cfg->bids, r, err);
    int rc = manifest_read(m, cfg->manifest, cfg->categorical, cfg->continuous, err);
    if (rc == 0 && cfg->subjects && (rc = manifest_select_subjects(m, cfg->subjects, err)) != 0) manifest_free(m);
    return rc;
}

int pack_run(const PackConfig *cfg, DfError *err) {
    int rank = dist_rank();
    Manifest m;
    BidsReport report;
    memset(&m, 0, sizeof m);
    int rc = read_rows(cfg, &m, &report, err);
    if (dist_agree(rc, err)) { manifest_free(&m); bids_report_free(&report); return -1; }
    for (int i = 0; rank == 0 && cfg->verbose && i < report.n_dropped; i++) printf("%s\n", report.dropped[i]);
    char tmp[4096] = "";
    Shape shape = { 0, 0, 0, 0 };
    if (dist_agree(check_headers(cfg, &m, &shape, err), err) || make_out_dir(cfg, tmp, sizeof tmp, err)) goto fail;
    int nshards = (m.n + cfg->shard_size - 1) / cfg->shard_size;
    progress_begin("pack", "volumes", 0, m.n);
    for (int s = 0; s < nshards; s++) {
        int a = s * cfg->shard_size, b = DF_MIN(m.n, a + cfg->shard_size);
        Cohort c;
        memset(&c, 0, sizeof c);
        if (rank == 0) shard_cohort(&c, cfg, &m, a, b, shape);
        rc = load_rows(cfg, &m, &c, a, b, shape, err);
        if (rc == 0 && rank == 0) rc = record_geometry(cfg, &m, &c, a, b, err);
        if (rc == 0 && rank == 0) {
            char path[4200];
            snprintf(path, sizeof path, "%s/shard-%05d.h5", tmp, s);
            rc = shard_write(path, &c, err);
            if (rc) df_err_rename(err, tmp, cfg->out);  // the user knows the directory they named, not ours
        }
        if (rank == 0) cohort_free(&c);
        if (dist_agree(rc, err)) goto fail;
    }
    rc = 0;
    if (rank == 0 && rename(tmp, cfg->out) != 0)
        rc = df_err(err, "%s: cannot rename the finished temporary directory into place: %s", cfg->out, strerror(errno));
    if (dist_agree(rc, err)) goto fail;
    progress_end();
    if (rank == 0 && cfg->verbose) print_summary(cfg, &m, &report, shape, nshards);
    manifest_free(&m);
    bids_report_free(&report);
    return 0;
fail:
    if (rank == 0 && tmp[0]) df_remove_tree(tmp);
    manifest_free(&m);
    bids_report_free(&report);
    return -1;
}
