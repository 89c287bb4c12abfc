// nifti.c: NIfTI-1/2 reading and writing (see nifti.h). The library reads the file; we look
// at the raw header first because the library's own failures come as stderr chatter and a
// NULL, and the user needs to know *what* is wrong with which file.
#include "data/nifti.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nifti2_io.h>

const char *nii_datatype_name(int dt) {
    switch (dt) {
    case DT_UINT8: return "uint8";
    case DT_INT8: return "int8";
    case DT_INT16: return "int16";
    case DT_UINT16: return "uint16";
    case DT_INT32: return "int32";
    case DT_UINT32: return "uint32";
    case DT_FLOAT32: return "float32";
    case DT_FLOAT64: return "float64";
    default: return NULL;
    }
}

static int host_big_endian(void) { const uint16_t one = 1; return *(const uint8_t *)&one == 0; }

static int32_t swap32(int32_t x) {
    uint32_t u = (uint32_t)x;
    return (int32_t)((u >> 24) | ((u >> 8) & 0xff00u) | ((u << 8) & 0xff0000u) | (u << 24));
}

// Parsed essentials of a raw header, in host order.
typedef struct {
    int version, swapped;
    int64_t dim[8];
    int datatype;
    double vox_offset, slope, inter;
    nifti_1_header n1;  // the whole header in host order (n1 or n2 by version)
    nifti_2_header n2;
} RawHeader;

static int read_raw_header(const char *path, RawHeader *h, DfError *err) {
    unsigned char buf[540];
    memset(buf, 0, sizeof buf);
    znzFile z = znzopen(path, "rb", 1);  // gzopen reads uncompressed files as they are
    if (znz_isnull(z)) return df_err(err, "%s: cannot open: %s", path, strerror(errno ? errno : EIO));
    size_t got = znzread(buf, 1, sizeof buf, z);
    znzclose(z);
    if (got < 348) return df_err(err, "%s: not a NIfTI file: only %zu bytes (a NIfTI-1 header alone is 348)", path, got);
    int32_t size;
    memcpy(&size, buf, 4);
    memset(h, 0, sizeof *h);
    if (size == 348 || swap32(size) == 348) h->version = 1;
    else if (size == 540 || swap32(size) == 540) h->version = 2;
    else
        return df_err(err, "%s: not a NIfTI file (header size field %d, expected 348 for NIfTI-1 or 540 for NIfTI-2)",
                      path, size);
    h->swapped = size != 348 && size != 540;
    if (h->version == 1) {
        nifti_1_header n1;
        memcpy(&n1, buf, sizeof n1);
        if (h->swapped) swap_nifti_header(&n1, 1);
        h->n1 = n1;
        if (memcmp(n1.magic, "n+1", 4) != 0 && memcmp(n1.magic, "ni1", 4) != 0)
            return df_err(err, "%s: not a NIfTI-1 file (magic is not \"n+1\" or \"ni1\"; ANALYZE 7.5 files are not supported)", path);
        for (int i = 0; i < 8; i++) h->dim[i] = n1.dim[i];
        h->datatype = n1.datatype;
        h->vox_offset = n1.vox_offset;
        h->slope = n1.scl_slope;
        h->inter = n1.scl_inter;
    } else {
        if (got < 540) return df_err(err, "%s: truncated NIfTI-2 header (%zu of 540 bytes)", path, got);
        nifti_2_header n2;
        memcpy(&n2, buf, sizeof n2);
        if (h->swapped) swap_nifti_header(&n2, 2);
        h->n2 = n2;
        if (memcmp(n2.magic, "n+2", 4) != 0 && memcmp(n2.magic, "ni2", 4) != 0)
            return df_err(err, "%s: not a NIfTI-2 file (magic is not \"n+2\" or \"ni2\")", path);
        for (int i = 0; i < 8; i++) h->dim[i] = n2.dim[i];
        h->datatype = n2.datatype;
        h->vox_offset = (double)n2.vox_offset;
        h->slope = n2.scl_slope;
        h->inter = n2.scl_inter;
    }
    return 0;
}

// The sanity checks of nii_read on a raw header; nvox out.
static int check_header(const char *path, const RawHeader *h, int64_t *nvox, DfError *err) {
    if (h->dim[0] < 1 || h->dim[0] > 7)
        return df_err(err, "%s: header dim[0] = %lld: the number of dimensions must be 1 to 7", path, (long long)h->dim[0]);
    int64_t n = 1;
    for (int i = 1; i <= h->dim[0]; i++) {
        if (h->dim[i] < 1)
            return df_err(err, "%s: header dim[%d] = %lld: every dimension must be >= 1", path, i, (long long)h->dim[i]);
        if (h->dim[i] > NII_MAX_VOXELS || n > NII_MAX_VOXELS / h->dim[i])
            return df_err(err, "%s: header dimensions give more than %lld voxels (dim[%d] = %lld): corrupt header?", path,
                          (long long)NII_MAX_VOXELS, i, (long long)h->dim[i]);
        n *= h->dim[i];
    }
    if (!nii_datatype_name(h->datatype)) {
        const char *name = nifti_datatype_is_valid(h->datatype, 1) ? nifti_datatype_to_string(h->datatype) : "unknown";
        return df_err(err, "%s: datatype %d (%s) is not supported (uint8, int8, int16, uint16, int32, uint32, float32, float64)",
                      path, h->datatype, name);
    }
    if (!isfinite(h->vox_offset) || h->vox_offset < 0 || h->vox_offset > 1e12)
        return df_err(err, "%s: header vox_offset = %g is not a valid data offset", path, h->vox_offset);
    // A single-file NIfTI's data follow the header and the 4 extension bytes. The library would
    // clamp a smaller offset to the header's size and read the extension flag as voxel 0.
    int single = h->version == 1 ? memcmp(h->n1.magic, "n+1", 4) == 0 : memcmp(h->n2.magic, "n+2", 4) == 0;
    int first = h->version == 1 ? 352 : 544;
    if (single && h->vox_offset < first)
        return df_err(err, "%s: header vox_offset = %g: the data of a single-file NIfTI-%d start at byte %d or later (after the "
                      "%d-byte header and 4 extension bytes)", path, h->vox_offset, h->version, first, first - 4);
    *nvox = n;
    return 0;
}

// Greedy axis codes: the voxel axis with the largest |direction| component claims that
// world axis first, so an oblique affine still gives three distinct letters.
static void axis_codes(const double A[4][4], char out[4]) {
    static const char pos[3] = { 'R', 'A', 'S' }, neg[3] = { 'L', 'P', 'I' };
    int used_vox[3] = { 0 }, used_world[3] = { 0 };
    out[0] = out[1] = out[2] = '?';
    out[3] = '\0';
    for (int round = 0; round < 3; round++) {
        int bv = -1, bw = -1;
        double best = -1;
        for (int v = 0; v < 3; v++)
            for (int w = 0; w < 3; w++)
                if (!used_vox[v] && !used_world[w] && fabs(A[w][v]) > best) { best = fabs(A[w][v]); bv = v; bw = w; }
        if (best <= 0) break;
        used_vox[bv] = used_world[bw] = 1;
        out[bv] = A[bw][bv] > 0 ? pos[bw] : neg[bw];
    }
}

const char *nii_affine_problem(const NiiVolume *v) {
    const double(*A)[4] = (const double(*)[4])v->affine;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            if (!isfinite(A[r][c])) return "is not finite";
    double len = 1;  // the product of the column lengths bounds |det| (Hadamard)
    for (int c = 0; c < 3; c++) len *= sqrt(A[0][c] * A[0][c] + A[1][c] * A[1][c] + A[2][c] * A[2][c]);
    double det = A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) - A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                 A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
    return fabs(det) > 1e-6 * len && len > 0 ? NULL : "is singular";
}

static void fill_from_nim(NiiVolume *v, const RawHeader *h, const nifti_image *nim) {
    v->version = h->version;
    v->big_endian = host_big_endian() ^ h->swapped;
    v->ndim = (int)h->dim[0];
    for (int i = 0; i < 8; i++) v->dim[i] = i == 0 ? h->dim[0] : (i <= h->dim[0] ? h->dim[i] : 1);
    for (int i = 0; i < 8; i++) v->pixdim[i] = nim->pixdim[i];
    v->datatype = h->datatype;
    // nibabel's rule: slope 0 or not finite means unscaled; a non-finite intercept is 0.
    v->slope = (h->slope == 0 || !isfinite(h->slope)) ? 1.0 : h->slope;
    v->inter = (h->slope == 0 || !isfinite(h->slope) || !isfinite(h->inter)) ? 0.0 : h->inter;
    if (nim->sform_code > 0) {
        for (int r = 0; r < 4; r++) for (int c = 0; c < 4; c++) v->affine[r][c] = nim->sto_xyz.m[r][c];
    } else if (nim->qform_code > 0) {
        for (int r = 0; r < 4; r++) for (int c = 0; c < 4; c++) v->affine[r][c] = nim->qto_xyz.m[r][c];
    } else {
        // nibabel's fallback ("base affine"): x flipped, centred on the volume.
        memset(v->affine, 0, sizeof v->affine);
        double d[3] = { -fabs(nim->dx ? nim->dx : 1), fabs(nim->dy ? nim->dy : 1), fabs(nim->dz ? nim->dz : 1) };
        for (int i = 0; i < 3; i++) {
            v->affine[i][i] = d[i];
            v->affine[i][3] = -d[i] * (double)(v->dim[i + 1] - 1) / 2.0;
        }
        v->affine[3][3] = 1;
    }
    axis_codes((const double(*)[4])v->affine, v->orient);
}

// nvox values of type dt at src into dst, scaled.
static void convert(float *dst, const void *src, int dt, int64_t n, double slope, double inter) {
#define CONV(T)                                                                       \
    do {                                                                              \
        const T *s = src;                                                             \
        for (int64_t i = 0; i < n; i++) dst[i] = (float)((double)s[i] * slope + inter); \
    } while (0)
    switch (dt) {
    case DT_UINT8: CONV(uint8_t); break;
    case DT_INT8: CONV(int8_t); break;
    case DT_INT16: CONV(int16_t); break;
    case DT_UINT16: CONV(uint16_t); break;
    case DT_INT32: CONV(int32_t); break;
    case DT_UINT32: CONV(uint32_t); break;
    case DT_FLOAT32: CONV(float); break;
    case DT_FLOAT64: CONV(double); break;
    default: DF_ASSERT(0);
    }
#undef CONV
}

// The n bytes at z's position, or NULL when the stream ends (or fails) first. The buffer grows
// as the data arrive, so a header claiming a huge volume costs no more memory than the stream
// really holds. A plain file's size was checked before; a gzip stream's length is known only
// by reading it (found by fuzzing: a 76-byte .nii.gz made the reader allocate 7.5 GB).
static void *read_growing(znzFile z, size_t n) {
    const size_t first = (size_t)64 << 20;
    size_t cap = n < first ? n : first, got = 0;
    unsigned char *buf = xmalloc(cap ? cap : 1);
    while (got < n) {
        if (got == cap) {
            cap = cap > n / 2 ? n : 2 * cap;
            buf = xrealloc(buf, cap);
        }
        // znzread returns (size_t)-1 when zlib reports an error: anything beyond the request is one.
        size_t r = znzread(buf + got, 1, cap - got, z);
        if (r == 0 || r > cap - got) { free(buf); return NULL; }
        got += r;
    }
    return buf;
}

int nii_read(const char *path, NiiVolume *v, int with_data, DfError *err) {
    memset(v, 0, sizeof *v);
    struct stat st;
    if (stat(path, &st) != 0) return df_err(err, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return df_err(err, "%s: is a directory, not a NIfTI file", path);
    RawHeader h;
    int64_t nvox = 0;
    errno = 0;
    if (read_raw_header(path, &h, err) != 0) return -1;
    if (check_header(path, &h, &nvox, err) != 0) return -1;
    nifti_set_debug_level(0);  // our messages, not the library's
    // The image is built from the header we read, not by nifti_image_read(path): the
    // library's file search prefers "x.nii" over the "x.nii.gz" it was asked for when both
    // exist, which would silently read the wrong file.
    nifti_image *nim = h.version == 1 ? nifti_convert_n1hdr2nim(h.n1, path) : nifti_convert_n2hdr2nim(h.n2, path);
    if (!nim) return df_err(err, "%s: the NIfTI library cannot read this header (corrupt file?)", path);
    if (h.swapped) nim->byteorder = 3 - nifti_short_order();  // LSB_FIRST = 1, MSB_FIRST = 2
    // The conversion also searches for the image file (same preference); a single-file
    // NIfTI ("n+1", "n+2") holds its data in this very file.
    int single = h.version == 1 ? memcmp(h.n1.magic, "n+1", 4) == 0 : memcmp(h.n2.magic, "n+2", 4) == 0;
    if (single) {
        free(nim->iname);
        nim->iname = nifti_strdup(path);
    }
    int rc = -1;
    if (!nim->iname) { df_err(err, "%s: cannot find the image data file", path); goto done; }
    if (nim->nvox != nvox || nim->datatype != h.datatype) {
        df_err(err, "%s: inconsistent header (library reads %lld voxels of type %d)", path, (long long)nim->nvox, nim->datatype);
        goto done;
    }
    // Truncation of an uncompressed file is visible from its size alone.
    if (nim->iname && !nifti_is_gzfile(nim->iname)) {
        struct stat ist;
        if (stat(nim->iname, &ist) != 0) {
            df_err(err, "%s: cannot open its image data %s: %s", path, nim->iname, strerror(errno));
            goto done;
        }
        int64_t need = nim->iname_offset + nvox * nim->nbyper;
        if ((int64_t)ist.st_size < need) {
            df_err(err, "%s: truncated: the header describes %lld bytes of voxel data from offset %lld, but the file has %lld bytes",
                   nim->iname, (long long)(nvox * nim->nbyper), (long long)nim->iname_offset, (long long)ist.st_size);
            goto done;
        }
    }
    fill_from_nim(v, &h, nim);
    v->nvox = nvox;
    if (!isfinite(v->slope) || !isfinite(v->inter)) { df_err(err, "%s: scl_slope/scl_inter are not finite", path); goto done; }
    if (with_data) {
        // The voxels are read here with znzlib (gzip or plain) rather than by
        // nifti_image_load, which re-searches for the file and, like nifti_image_read,
        // reads "x.nii" when asked for "x.nii.gz" if both exist.
        size_t bytes = (size_t)nvox * (size_t)nim->nbyper;
        void *raw = NULL;
        znzFile z = znzopen(nim->iname, "rb", 1);
        if (!znz_isnull(z) && znzseek(z, (znz_off_t)nim->iname_offset, SEEK_SET) >= 0) raw = read_growing(z, bytes);
        if (!znz_isnull(z)) znzclose(z);
        if (!raw) {
            df_err(err, "%s: voxel data truncated or corrupt (could not read %zu bytes%s)", path, bytes,
                   nifti_is_gzfile(nim->iname) ? " from the compressed stream" : "");
            goto done;
        }
        if (h.swapped && nim->nbyper > 1) nifti_swap_Nbytes(nvox, nim->nbyper, raw);
        v->data = df_alloc_floats((size_t)nvox);
        convert(v->data, raw, nim->datatype, nvox, v->slope, v->inter);
        free(raw);
    }
    rc = 0;
done:
    nifti_image_free(nim);
    if (rc != 0) nii_free(v);
    return rc;
}

void nii_free(NiiVolume *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

// ---- writing -----------------------------------------------------------------------------

static int64_t clamp_round(double x, double lo, double hi) {
    if (!(x >= lo)) x = lo;  // also NaN -> lo
    if (x > hi) x = hi;
    return (int64_t)llround(x);
}

// The on-disk values of n floats, host order.
static void *encode(const float *data, int64_t n, int dt, double slope, double inter, int *nbyper) {
    int nb, ss;
    nifti_datatype_sizes(dt, &nb, &ss);
    *nbyper = nb;
    unsigned char *out = xmalloc((size_t)n * (size_t)nb);
    double s = slope == 0 ? 1 : slope;
    for (int64_t i = 0; i < n; i++) {
        double x = ((double)data[i] - inter) / s;
        switch (dt) {
        case DT_UINT8: ((uint8_t *)out)[i] = (uint8_t)clamp_round(x, 0, 255); break;
        case DT_INT8: ((int8_t *)out)[i] = (int8_t)clamp_round(x, -128, 127); break;
        case DT_INT16: ((int16_t *)out)[i] = (int16_t)clamp_round(x, -32768, 32767); break;
        case DT_UINT16: ((uint16_t *)out)[i] = (uint16_t)clamp_round(x, 0, 65535); break;
        case DT_INT32: ((int32_t *)out)[i] = (int32_t)clamp_round(x, -2147483648.0, 2147483647.0); break;
        case DT_UINT32: ((uint32_t *)out)[i] = (uint32_t)clamp_round(x, 0, 4294967295.0); break;
        case DT_FLOAT32: ((float *)out)[i] = (float)x; break;
        case DT_FLOAT64: ((double *)out)[i] = x; break;
        default: DF_ASSERT(0);
        }
    }
    return out;
}

// The affine goes into the sform and, as a quaternion, into the qform too: readers that take
// the qform (or check that both agree, as FSL does) then see the same voxel-to-world map.
// A qform holds rotations only, so a sheared affine gets the library's nearest one.
// Without pixdim, the voxel sizes are the affine's column lengths.
static void set_transforms(nifti_image *nim, const NiiWriteSpec *sp) {
    nifti_dmat44 m;
    for (int r = 0; r < 4; r++) for (int c = 0; c < 4; c++) m.m[r][c] = sp->affine[r * 4 + c];
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_xyz = m;
    double dx, dy, dz;
    nifti_dmat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x, &nim->qoffset_y,
                            &nim->qoffset_z, &dx, &dy, &dz, &nim->qfac);
    const double d[3] = { dx, dy, dz };
    for (int i = 0; i < 3; i++)
        if (!(sp->pixdim[i + 1] > 0)) nim->pixdim[i + 1] = d[i];
    nim->dx = nim->pixdim[1]; nim->dy = nim->pixdim[2]; nim->dz = nim->pixdim[3];
}

int nii_write(const char *path, const NiiWriteSpec *sp, const float *data, DfError *err) {
    if (!nii_datatype_name(sp->datatype)) return df_err(err, "%s: cannot write datatype %d", path, sp->datatype);
    if (sp->version != 1 && sp->version != 2) return df_err(err, "%s: NIfTI version %d", path, sp->version);
    nifti_set_debug_level(0);
    nifti_image *nim = nifti_make_new_nim(sp->dims, sp->datatype, 0);
    if (!nim) return df_err(err, "%s: cannot make a NIfTI image of those dimensions", path);
    for (int i = 1; i <= 7; i++) nim->pixdim[i] = sp->pixdim[i] > 0 ? sp->pixdim[i] : 1.0;
    nim->dx = nim->pixdim[1]; nim->dy = nim->pixdim[2]; nim->dz = nim->pixdim[3];
    nim->dt = nim->pixdim[4]; nim->du = nim->pixdim[5]; nim->dv = nim->pixdim[6]; nim->dw = nim->pixdim[7];
    nim->scl_slope = sp->slope;
    nim->scl_inter = sp->inter;
    nim->nifti_type = sp->version == 1 ? NIFTI_FTYPE_NIFTI1_1 : NIFTI_FTYPE_NIFTI2_1;
    nim->iname_offset = sp->version == 1 ? 352 : 544;
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->quatern_b = nim->quatern_c = nim->quatern_d = 0;
    nim->qfac = 1;
    nim->xyz_units = NIFTI_UNITS_MM;
    if (sp->affine) set_transforms(nim, sp);
    unsigned char hdr[544];
    memset(hdr, 0, sizeof hdr);  // includes the 4-byte "no extensions" flag after the header
    int hsize;
    if (sp->version == 1) {
        nifti_1_header h1;
        if (nifti_convert_nim2n1hdr(nim, &h1) != 0) { nifti_image_free(nim); return df_err(err, "%s: header conversion failed", path); }
        if (sp->big_endian != host_big_endian()) swap_nifti_header(&h1, 1);
        memcpy(hdr, &h1, sizeof h1);
        hsize = 352;
    } else {
        nifti_2_header h2;
        if (nifti_convert_nim2n2hdr(nim, &h2) != 0) { nifti_image_free(nim); return df_err(err, "%s: header conversion failed", path); }
        if (sp->big_endian != host_big_endian()) swap_nifti_header(&h2, 2);
        memcpy(hdr, &h2, sizeof h2);
        hsize = 544;
    }
    int64_t n = nim->nvox;
    nifti_image_free(nim);
    int nb;
    void *raw = encode(data, n, sp->datatype, sp->slope, sp->inter, &nb);
    if (sp->big_endian != host_big_endian() && nb > 1) nifti_swap_Nbytes(n, nb, raw);
    char *tmp = df_temp_name(path);
    size_t len = strlen(path);
    int gz = len > 3 && strcmp(path + len - 3, ".gz") == 0;
    int rc = 0;
    znzFile z = znzopen(tmp, "wb", gz);
    if (znz_isnull(z)) rc = df_err(err, "%s: cannot create: %s", path, strerror(errno ? errno : EIO));
    else {
        errno = 0;  // zlib and stdio leave the reason of a failure there (df_write_reason)
        if (znzwrite(hdr, 1, (size_t)hsize, z) != (size_t)hsize || znzwrite(raw, (size_t)nb, (size_t)n, z) != (size_t)n)
            rc = df_err(err, "%s: write failed%s", path, df_write_reason(tmp));
        errno = 0;
        if (znzclose(z) != 0 && rc == 0) rc = df_err(err, "%s: write failed%s", path, df_write_reason(tmp));
        if (rc == 0 && rename(tmp, path) != 0) rc = df_err(err, "%s: cannot rename into place: %s", path, strerror(errno));
        if (rc != 0) unlink(tmp);
    }
    free(tmp);
    free(raw);
    return rc;
}
