// synth_brain_model.c: the template, tissue classes, label regions and ventricles of
// `synth brain` on the model grid, and the rendering of one subject into a site's grid
// (see synth_brain_model.h; the model is in docs/formats.md, "Synthetic brain cohort").
#include "data/synth_brain_model.h"
#include "data/nifti.h"
#include "data/synth.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- reading the template, mask and atlas ------------------------------------------------

// A volume read whole, and its world -> voxel map.
typedef struct {
    NiiVolume v;
    double inv[3][4];
} Src;

// 3x3 inverse of A's linear part and the matching translation; -1 when singular.
static int affine_inverse(const double A[4][4], double inv[3][4]) {
    double a = A[0][0], b = A[0][1], c = A[0][2], d = A[1][0], e = A[1][1], f = A[1][2], g = A[2][0], h = A[2][1], k = A[2][2];
    double det = a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g);
    if (!(fabs(det) > 1e-12)) return -1;
    double m[3][3] = { { (e * k - f * h) / det, (c * h - b * k) / det, (b * f - c * e) / det },
                       { (f * g - d * k) / det, (a * k - c * g) / det, (c * d - a * f) / det },
                       { (d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det } };
    for (int r = 0; r < 3; r++) {
        for (int q = 0; q < 3; q++) inv[r][q] = m[r][q];
        inv[r][3] = -(m[r][0] * A[0][3] + m[r][1] * A[1][3] + m[r][2] * A[2][3]);
    }
    return 0;
}

// One 3-D volume with its data; NaN and infinite voxels read as 0 (outside a brain, as
// some templates store it).
static int read_src(Src *s, const char *path, DfError *err) {
    if (nii_read(path, &s->v, 1, err)) return -1;
    int64_t vols = s->v.nvox / (s->v.dim[1] * s->v.dim[2] * s->v.dim[3]);
    if (vols != 1) {
        nii_free(&s->v);
        return df_err(err, "%s: holds %lld volumes; expected one 3-D volume", path, (long long)vols);
    }
    if (affine_inverse((const double(*)[4])s->v.affine, s->inv)) {
        nii_free(&s->v);
        return df_err(err, "%s: its voxel-to-world affine is singular", path);
    }
    for (int64_t i = 0; i < s->v.nvox; i++)
        if (!isfinite(s->v.data[i])) s->v.data[i] = 0;
    return 0;
}

static void to_voxel(const Src *s, const double p[3], double c[3]) {
    for (int r = 0; r < 3; r++) c[r] = s->inv[r][0] * p[0] + s->inv[r][1] * p[1] + s->inv[r][2] * p[2] + s->inv[r][3];
}

// Trilinear value at world point p; 0 outside the volume.
static float sample_linear(const Src *s, const double p[3]) {
    double c[3];
    to_voxel(s, p, c);
    int i0[3];
    double f[3];
    for (int a = 0; a < 3; a++) {
        int n = (int)s->v.dim[a + 1];
        if (c[a] < -0.5 || c[a] > n - 0.5) return 0;
        c[a] = c[a] < 0 ? 0 : c[a] > n - 1 ? n - 1 : c[a];
        i0[a] = (int)c[a] < n - 1 ? (int)c[a] : (n > 1 ? n - 2 : 0);
        f[a] = n > 1 ? c[a] - i0[a] : 0;
    }
    size_t nx = (size_t)s->v.dim[1], nxy = nx * (size_t)s->v.dim[2];
    int dx = s->v.dim[1] > 1, dy = s->v.dim[2] > 1, dz = s->v.dim[3] > 1;
    const float *b = s->v.data + (size_t)i0[2] * nxy + (size_t)i0[1] * nx + (size_t)i0[0];
    double x00 = b[0] + f[0] * (b[dx] - b[0]), x01 = b[dy * nx] + f[0] * (b[dy * nx + dx] - b[dy * nx]);
    const float *u = b + dz * nxy;
    double x10 = u[0] + f[0] * (u[dx] - u[0]), x11 = u[dy * nx] + f[0] * (u[dy * nx + dx] - u[dy * nx]);
    double y0 = x00 + f[1] * (x01 - x00), y1 = x10 + f[1] * (x11 - x10);
    return (float)(y0 + f[2] * (y1 - y0));
}

// Nearest voxel's value at p; 0 outside.
static float sample_nearest(const Src *s, const double p[3]) {
    double c[3];
    to_voxel(s, p, c);
    long i[3];
    for (int a = 0; a < 3; a++) {
        i[a] = lround(c[a]);
        if (i[a] < 0 || i[a] >= s->v.dim[a + 1]) return 0;
    }
    return s->v.data[((size_t)i[2] * (size_t)s->v.dim[2] + (size_t)i[1]) * (size_t)s->v.dim[1] + (size_t)i[0]];
}

// ---- the model grid -----------------------------------------------------------------------

// The field of view: the template's world bounding box, each extent rounded to a multiple of
// 6 h (voxels of 1, 1.2 and 1.5 h then tile it exactly: pack --spacing gives every site the
// same grid). At scale 1 the grid is shifted (< half a voxel) onto the template's voxel
// centres, so that an unscaled template is copied, not interpolated.
static int set_grid(BrainModel *m, const Src *t, double scale, const char *path, DfError *err) {
    const double(*A)[4] = (const double(*)[4])t->v.affine;
    double tvox = INFINITY, lo[3] = { INFINITY, INFINITY, INFINITY }, hi[3] = { -INFINITY, -INFINITY, -INFINITY };
    for (int a = 0; a < 3; a++) tvox = fmin(tvox, sqrt(A[0][a] * A[0][a] + A[1][a] * A[1][a] + A[2][a] * A[2][a]));
    for (int corner = 0; corner < 8; corner++) {
        double c[3];
        for (int a = 0; a < 3; a++) c[a] = (corner >> a & 1) ? t->v.dim[a + 1] - 0.5 : -0.5;
        for (int r = 0; r < 3; r++) {
            double w = A[r][0] * c[0] + A[r][1] * c[1] + A[r][2] * c[2] + A[r][3];
            lo[r] = fmin(lo[r], w);
            hi[r] = fmax(hi[r], w);
        }
    }
    m->h = tvox / scale;
    double step = 6 * m->h;
    m->V = 1;
    for (int w = 0; w < 3; w++) {
        long k = DF_MAX(1, lround((hi[w] - lo[w]) / step));
        m->n[w] = (int)(6 * k);
        m->fov[w] = (double)k * step;
        m->origin[w] = (lo[w] + hi[w]) / 2 - m->h * (m->n[w] - 1) / 2;
        m->V *= (size_t)m->n[w];
    }
    if (m->V > ((size_t)1 << 28))
        return df_err(err, "%s: a model grid of %dx%dx%d voxels of %g mm is too large; use a smaller --scale", path, m->n[0],
                      m->n[1], m->n[2], m->h);
    if (scale >= 1 - 1e-9) {
        double c[3];
        to_voxel(t, m->origin, c);
        double d[3] = { round(c[0]) - c[0], round(c[1]) - c[1], round(c[2]) - c[2] };
        for (int r = 0; r < 3; r++) m->origin[r] += A[r][0] * d[0] + A[r][1] * d[1] + A[r][2] * d[2];
    }
    for (int w = 0; w < 3; w++) m->centre[w] = m->origin[w] + m->h * (m->n[w] - 1) / 2;
    return 0;
}

// The label regions at world point p: an atlas value in the list (hit[] marks the values
// seen), or without an atlas two spheres of 12 mm at AAL's hippocampus centroids.
static int in_region(const Src *atlas, const BrainModelSpec *spec, const double p[3], int *hit) {
    if (!atlas) {
        static const double c[2][3] = { { -26.0, -20.7, -10.1 }, { 28.2, -19.8, -10.3 } };
        for (int s = 0; s < 2; s++) {
            double dx = p[0] - c[s][0], dy = p[1] - c[s][1], dz = p[2] - c[s][2];
            if (dx * dx + dy * dy + dz * dz <= 144.0) return 1;
        }
        return 0;
    }
    long id = lround(sample_nearest(atlas, p));
    for (int r = 0; r < spec->n_regions; r++)
        if (id == spec->regions[r]) { hit[r] = 1; return 1; }
    return 0;
}

// The brain's intensities at the template's own resolution (fill_grid's points), so that the
// tissue means do not depend on --scale's partial volumes.
enum { HIST_BINS = 1024 };
typedef struct { double lo, w, count[HIST_BINS]; } Hist;

static void hist_init(Hist *h, const Src *t) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < t->v.nvox; i++) { lo = fminf(lo, t->v.data[i]); hi = fmaxf(hi, t->v.data[i]); }
    memset(h, 0, sizeof *h);
    h->lo = lo;
    h->w = hi > lo ? (hi - lo) / HIST_BINS : 1;
}

// Each model voxel averages m^3 points spread over it (m = ceil(1 / scale)): an area-weighted
// downsampling, so that a quarter-scale template keeps its partial volumes rather than
// aliasing. brain and region become fractions of the voxel.
static void fill_grid(BrainModel *m, const Src *t, const Src *mask, const Src *atlas, const BrainModelSpec *spec, int *hit,
                      Hist *hist) {
    int sub = DF_MAX(1, (int)ceil(1.0 / spec->scale - 1e-9));
    double inv = 1.0 / ((double)sub * sub * sub);
    size_t v = 0;
    for (int z = 0; z < m->n[2]; z++)
        for (int y = 0; y < m->n[1]; y++)
            for (int x = 0; x < m->n[0]; x++, v++) {
                double acc = 0, br = 0, rg = 0;
                int idx[3] = { x, y, z };
                for (int s = 0; s < sub * sub * sub; s++) {
                    int o[3] = { s % sub, s / sub % sub, s / (sub * sub) };
                    double p[3];
                    for (int w = 0; w < 3; w++) p[w] = m->origin[w] + m->h * (idx[w] + (o[w] + 0.5) / sub - 0.5);
                    float tv = sample_linear(t, p);
                    int in = mask ? sample_nearest(mask, p) != 0 : sample_nearest(t, p) > 0;
                    acc += tv;
                    br += in;
                    if (in) hist->count[DF_MAX(0, DF_MIN(HIST_BINS - 1, (int)((tv - hist->lo) / hist->w)))] += 1;
                    rg += in_region(atlas, spec, p, hit);
                }
                m->t[v] = (float)(acc * inv);
                m->brain[v] = (float)(br * inv);
                m->region[v] = (float)(rg * inv);
            }
}

// ---- tissue classes and ventricles --------------------------------------------------------

// Piecewise-linear memberships between the class means: CSF is 1 up to mu_csf and falls to
// 0 at mu_gm; GM rises from mu_csf to 1 at mu_gm and falls to 0 at mu_wm.
static double p_csf(const double mu[3], double t) { return t <= mu[0] ? 1 : t >= mu[1] ? 0 : (mu[1] - t) / (mu[1] - mu[0]); }
static double p_gm(const double mu[3], double t) {
    if (t <= mu[0] || t >= mu[2]) return 0;
    return t <= mu[1] ? (t - mu[0]) / (mu[1] - mu[0]) : (mu[2] - t) / (mu[2] - mu[1]);
}

// The class means: grey and white matter from 3-means of the brain's intensities (started at
// 20/50/80% of their range); CSF as their 2nd percentile -- the 3-means' darkest class is
// mostly partial volumes, since a brain mask holds little pure CSF. A T1 template gives
// CSF < GM < WM.
static int tissue_means(const Hist *h, double mu[3], const char *path, DfError *err) {
    double total = 0, acc = 0;
    int first = -1, last = -1;
    for (int b = 0; b < HIST_BINS; b++)
        if (h->count[b] > 0) { total += h->count[b]; last = b; if (first < 0) first = b; }
    if (first < 0 || last == first) return df_err(err, "%s: no brain voxels with varying intensity inside the template", path);
    for (int c = 0; c < 3; c++) mu[c] = h->lo + h->w * (first + (last + 1 - first) * (0.2 + 0.3 * c));
    for (int it = 0; it < 100; it++) {
        double s[3] = { 0 }, n[3] = { 0 };
        for (int b = first; b <= last; b++) {
            double x = h->lo + (b + 0.5) * h->w;
            int c = fabs(x - mu[0]) <= fabs(x - mu[1]) ? 0 : fabs(x - mu[1]) <= fabs(x - mu[2]) ? 1 : 2;
            s[c] += h->count[b] * x;
            n[c] += h->count[b];
        }
        for (int c = 0; c < 3; c++)
            if (n[c] > 0) mu[c] = s[c] / n[c];
    }
    int b = first;
    for (; b < last && acc + h->count[b] < 0.02 * total; b++) acc += h->count[b];
    mu[0] = h->lo + (b + 0.5) * h->w;
    if (!(mu[0] < mu[1] && mu[1] < mu[2] && mu[2] > 0))
        return df_err(err, "%s: cannot tell CSF, grey and white matter apart in the brain's intensities (a T1-weighted template?)",
                      path);
    return 0;
}

// Scales the template so that white matter is 1000, and the grey matter that ageing thins.
static int tissue_classes(BrainModel *m, const Hist *h, const char *path, DfError *err) {
    double mu[3] = { 0, 0, 0 };
    if (tissue_means(h, mu, path, err)) return -1;
    double k = 1000.0 / mu[2];
    for (int c = 0; c < 3; c++) m->mu[c] = mu[c] * k;
    for (size_t v = 0; v < m->V; v++) {
        m->t[v] = (float)(m->t[v] * k);
        m->gm[v] = (float)fmax(0.0, p_gm(m->mu, m->t[v]) * (m->t[v] - m->mu[0]) * m->brain[v]);
    }
    return 0;
}

// The ventricles: the CSF-weighted centroid of a central ellipsoid of the brain (radii 30%
// of the brain's half-extents around its bounding box centre); their extent is that ellipsoid.
static void find_ventricles(BrainModel *m) {
    double lo[3] = { INFINITY, INFINITY, INFINITY }, hi[3] = { -INFINITY, -INFINITY, -INFINITY };
    size_t v = 0;
    for (int z = 0; z < m->n[2]; z++)
        for (int y = 0; y < m->n[1]; y++)
            for (int x = 0; x < m->n[0]; x++, v++)
                if (m->brain[v] >= 0.5f) {
                    int idx[3] = { x, y, z };
                    for (int w = 0; w < 3; w++) {
                        lo[w] = fmin(lo[w], m->origin[w] + m->h * idx[w]);
                        hi[w] = fmax(hi[w], m->origin[w] + m->h * idx[w]);
                    }
                }
    double cb[3], s[3] = { 0 }, sw = 0;
    for (int w = 0; w < 3; w++) {
        cb[w] = (lo[w] + hi[w]) / 2;
        m->vent_radius[w] = fmax(m->h, 0.3 * (hi[w] - lo[w]) / 2);
    }
    v = 0;
    for (int z = 0; z < m->n[2]; z++)
        for (int y = 0; y < m->n[1]; y++)
            for (int x = 0; x < m->n[0]; x++, v++) {
                double p[3] = { m->origin[0] + m->h * x, m->origin[1] + m->h * y, m->origin[2] + m->h * z }, r2 = 0;
                for (int w = 0; w < 3; w++) r2 += (p[w] - cb[w]) * (p[w] - cb[w]) / (m->vent_radius[w] * m->vent_radius[w]);
                if (r2 > 1) continue;
                double wt = p_csf(m->mu, m->t[v]) * m->brain[v];
                for (int w = 0; w < 3; w++) s[w] += wt * p[w];
                sw += wt;
            }
    for (int w = 0; w < 3; w++) m->vent_centre[w] = sw > 0 ? s[w] / sw : cb[w];
}

static int check_model(const BrainModel *m, const BrainModelSpec *spec, const int *hit, DfError *err) {
    double brain = 0, region = 0;
    for (size_t v = 0; v < m->V; v++) { brain += m->brain[v]; region += m->region[v]; }
    const char *mpath = spec->mask_path ? spec->mask_path : spec->template_path;
    if (brain < 1) return df_err(err, "%s: no brain voxels (nonzero) inside the template's field of view", mpath);
    for (int r = 0; spec->atlas_path && r < spec->n_regions; r++)
        if (!hit[r])
            return df_err(err, "%s: region %d: no voxel of the atlas has this value inside the template", spec->atlas_path,
                          spec->regions[r]);
    if (region <= 0)
        return df_err(err, "%s: the label regions have no voxel inside the template",
                      spec->atlas_path ? spec->atlas_path : spec->template_path);
    return 0;
}

int brain_model_build(BrainModel *m, const BrainModelSpec *spec, DfError *err) {
    memset(m, 0, sizeof *m);
    Src t, mask, atlas;
    memset(&t, 0, sizeof t); memset(&mask, 0, sizeof mask); memset(&atlas, 0, sizeof atlas);
    int hit[BRAIN_MAX_REGIONS] = { 0 }, rc = -1;
    Hist *hist = xmalloc(sizeof *hist);
    if (read_src(&t, spec->template_path, err) || (spec->mask_path && read_src(&mask, spec->mask_path, err)) ||
        (spec->atlas_path && read_src(&atlas, spec->atlas_path, err)) || set_grid(m, &t, spec->scale, spec->template_path, err))
        goto done;
    m->t = df_alloc_floats(m->V); m->brain = df_alloc_floats(m->V);
    m->region = df_alloc_floats(m->V); m->gm = df_alloc_floats(m->V);
    hist_init(hist, &t);
    fill_grid(m, &t, spec->mask_path ? &mask : NULL, spec->atlas_path ? &atlas : NULL, spec, hit, hist);
    if (check_model(m, spec, hit, err) || tissue_classes(m, hist, spec->mask_path ? spec->mask_path : spec->template_path, err))
        goto done;
    find_ventricles(m);
    rc = 0;
done:
    nii_free(&t.v); nii_free(&mask.v); nii_free(&atlas.v);
    free(hist);
    if (rc) brain_model_free(m);
    return rc;
}

void brain_model_free(BrainModel *m) {
    free(m->t); free(m->brain); free(m->region); free(m->gm);
    memset(m, 0, sizeof *m);
}

// ---- a site's grid --------------------------------------------------------------------------

void brain_site_grid(SiteGrid *g, const BrainModel *m, const SiteStyle *st) {
    memset(g, 0, sizeof *g);
    double t[3] = { m->centre[0], m->centre[1], m->centre[2] };
    for (int a = 0; a < 3; a++) {
        static const char codes[] = "RLAPSI";  // R/L: x, A/P: y, S/I: z; the first of each pair positive
        const char *p = strchr(codes, st->orient[a]);
        DF_ASSERT(p && *p);
        int k = (int)(p - codes);
        g->axis[a] = k / 2;
        g->sign[a] = k % 2 ? -1 : 1;
        g->vox[a] = st->vox[a] * m->h;
        g->n[a] = DF_MAX(1, (int)lround(m->fov[g->axis[a]] / g->vox[a]));
        g->affine[g->axis[a] * 4 + a] = g->sign[a] * g->vox[a];
        t[g->axis[a]] -= g->sign[a] * g->vox[a] * (g->n[a] - 1) / 2.0;
    }
    for (int r = 0; r < 3; r++) g->affine[r * 4 + 3] = t[r];
    g->affine[15] = 1;
}

// ---- rendering ------------------------------------------------------------------------------

// The subject's anatomy on the model grid: ageing takes the fraction f of each voxel's
// grey-matter contrast (gm), and the label effect the fraction d = strength of the label
// regions' contrast to CSF (tissue replaced by CSF: atrophy).
static void anatomy(float *I, const BrainModel *m, const BrainSubject *s, double f) {
    for (size_t v = 0; v < m->V; v++) {
        double x = m->t[v] - f * m->gm[v];
        x -= s->strength * m->region[v] * (x - m->mu[0]);
        I[v] = (float)fmax(0.0, x);
    }
}

// Per voxel axis of a site's grid, per index along it: the cosines of the displacement's
// basis (orders 0-2 over the field of view), the bias field's factor and the texture's.
typedef struct { double *dct, *bias, *tex; } AxisTables;

static void axis_tables(AxisTables *t, const BrainModel *m, const SiteGrid *g, const SiteStyle *st, int a) {
    int n = g->n[a], w = g->axis[a];
    t->dct = xmalloc(sizeof(double) * 3 * (size_t)n);
    t->bias = xmalloc(sizeof(double) * (size_t)n);
    t->tex = xmalloc(sizeof(double) * (size_t)n);
    for (int x = 0; x < n; x++) {
        double xi = 2 * g->sign[a] * g->vox[a] * (x - (n - 1) / 2.0) / m->fov[w];  // [-1, 1] across the field of view
        for (int o = 0; o < 3; o++) t->dct[x * 3 + o] = cos(BRAIN_PI * o * (xi + 1) / 2);
        t->bias[x] = exp(st->bias[w] * xi + st->bias[3] * (xi * xi - 1.0 / 3));
        t->tex[x] = 1;
        for (int k = 0; k < 2; k++)
            if (st->tex_axis[k] == w) t->tex[x] *= 0.5 + 0.5 * cos(BRAIN_PI * st->tex_cycles[k] * xi);
    }
}

static void free_tables(AxisTables *t) { free(t->dct); free(t->bias); free(t->tex); }

// The pose as a map from the scanner to the template: q = c + R (p - c) / size + shift,
// with R = Rz Ry Rx. Returns the 3x3 part.
static void pose_matrix(double M[3][3], const BrainSubject *s) {
    double cx = cos(s->rot[0]), sx = sin(s->rot[0]), cy = cos(s->rot[1]), sy = sin(s->rot[1]);
    double cz = cos(s->rot[2]), sz = sin(s->rot[2]);
    double R[3][3] = { { cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx },
                       { sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx },
                       { -sy, cy * sx, cy * cx } };
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) M[r][c] = R[r][c] / s->size;
}

// Ageing widens the ventricles: q moves towards their centre by the fraction e k(r), k a
// smooth bump (1 - r^2/4)^2 of the distance r in ventricle radii (0 beyond 2 radii). The map
// r -> r (1 - e k(r)) stays increasing for e < 1, so nothing folds.
static inline void widen_ventricles(double q[3], const BrainModel *m, double e) {
    double d[3], r2 = 0;
    for (int w = 0; w < 3; w++) {
        d[w] = q[w] - m->vent_centre[w];
        r2 += d[w] * d[w] / (m->vent_radius[w] * m->vent_radius[w]);
    }
    double s = r2 / 4;
    if (s >= 1) return;
    double k = 1 - e * (1 - s) * (1 - s);
    for (int w = 0; w < 3; w++) q[w] = m->vent_centre[w] + d[w] * k;
}

// Trilinear anatomy and brain fraction at world point q; 0 outside the field of view.
static inline void sample_model(const BrainModel *m, const float *I, const double q[3], float *val, float *brain) {
    int i0[3];
    float f[3];
    for (int w = 0; w < 3; w++) {
        double c = (q[w] - m->origin[w]) / m->h;
        if (c < -0.5 || c > m->n[w] - 0.5) { *val = *brain = 0; return; }
        c = c < 0 ? 0 : c > m->n[w] - 1 ? m->n[w] - 1 : c;
        i0[w] = DF_MIN((int)c, m->n[w] - 2);
        f[w] = (float)(c - i0[w]);
    }
    size_t nx = (size_t)m->n[0], nxy = nx * (size_t)m->n[1], o = (size_t)i0[2] * nxy + (size_t)i0[1] * nx + (size_t)i0[0];
    const float *arr[2] = { I + o, m->brain + o };
    float out[2];
    for (int k = 0; k < 2; k++) {
        const float *b = arr[k], *u = b + nxy;
        float x00 = b[0] + f[0] * (b[1] - b[0]), x01 = b[nx] + f[0] * (b[nx + 1] - b[nx]);
        float x10 = u[0] + f[0] * (u[1] - u[0]), x11 = u[nx] + f[0] * (u[nx + 1] - u[nx]);
        float y0 = x00 + f[1] * (x01 - x00), y1 = x10 + f[1] * (x11 - x10);
        out[k] = y0 + f[2] * (y1 - y0);
    }
    *val = out[0];
    *brain = out[1];
}

// Displacement coefficients along voxel axis 0 for the row (j, k): the cosines of the two
// fixed axes folded in, so that a voxel needs 3 products per component.
static void row_coefficients(double coef[3][3], const BrainSubject *s, const SiteGrid *g, const double *cj, const double *ck) {
    for (int d = 0; d < 3; d++)
        for (int o = 0; o < 3; o++) {
            double acc = 0;
            for (int o1 = 0; o1 < 3; o1++)
                for (int o2 = 0; o2 < 3; o2++) {
                    int ord[3];
                    ord[g->axis[0]] = o; ord[g->axis[1]] = o1; ord[g->axis[2]] = o2;
                    acc += s->dct[d][ord[0] * 9 + ord[1] * 3 + ord[2]] * cj[o1] * ck[o2];
                }
            coef[d][o] = acc;
        }
}

void brain_render(float *out, const BrainModel *m, const BrainSubject *s, const SiteGrid *g, const SiteStyle *st,
                  double age_effect, double noise_scale, Rng *noise) {
    double ta = fmin(1.0, fmax(0.0, (s->age - 20.0) / 60.0));
    float *I = df_alloc_floats(m->V);
    anatomy(I, m, s, 0.2 * age_effect * ta);
    double e = 0.3 * age_effect * ta;
    AxisTables tab[3];
    for (int a = 0; a < 3; a++) axis_tables(&tab[a], m, g, st, a);
    // Voxel (i, j, k) -> scanner point p = affine (i, j, k) -> template point q0 + Q (i, j, k).
    double M[3][3], Q[3][3], q0[3];
    pose_matrix(M, s);
    for (int r = 0; r < 3; r++) {
        q0[r] = m->centre[r] + s->shift[r];
        for (int c = 0; c < 3; c++) {
            Q[r][c] = 0;
            for (int k = 0; k < 3; k++) Q[r][c] += M[r][k] * g->affine[k * 4 + c];
            q0[r] += M[r][c] * (g->affine[c * 4 + 3] - m->centre[c]);
        }
    }
    float gain = (float)st->gain, sigma = (float)(st->noise * noise_scale * 1000 * st->gain);
    float tex = (float)(st->tex_amp * 1000 * st->gain);
    size_t v = 0;
    for (int k = 0; k < g->n[2]; k++)
        for (int j = 0; j < g->n[1]; j++) {
            double coef[3][3], base[3];
            row_coefficients(coef, s, g, tab[1].dct + 3 * j, tab[2].dct + 3 * k);
            for (int r = 0; r < 3; r++) base[r] = q0[r] + Q[r][1] * j + Q[r][2] * k;
            float bjk = (float)(tab[1].bias[j] * tab[2].bias[k]), tjk = (float)(tab[1].tex[j] * tab[2].tex[k]);
            for (int i = 0; i < g->n[0]; i++, v++) {
                const double *ci = tab[0].dct + 3 * i;
                double q[3];
                for (int r = 0; r < 3; r++)
                    q[r] = base[r] + Q[r][0] * i + coef[r][0] * ci[0] + coef[r][1] * ci[1] + coef[r][2] * ci[2];
                if (e > 0) widen_ventricles(q, m, e);
                float val, brain;
                sample_model(m, I, q, &val, &brain);
                float x = gain * (float)tab[0].bias[i] * bjk * val + (1 - brain) * tex * (float)tab[0].tex[i] * tjk;
                // Magnitude images: Rician noise, |signal + complex Gaussian noise|.
                float re = x + sigma * rng_normal_fast(noise), im = sigma * rng_normal_fast(noise);
                out[v] = sqrtf(re * re + im * im);
            }
        }
    for (int a = 0; a < 3; a++) free_tables(&tab[a]);
    free(I);
}
