// voxels.c: shards as a subjects x voxels matrix (see voxels.h).
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "data/nifti.h"
#include "data/voxels.h"

// ---- which voxels --------------------------------------------------------------------------

void voxels_all(VoxelSet *vs, Shape shape) {
    vs->positions = (long)shape_numel(shape);
    vs->m = vs->positions;
    vs->index = xmalloc(sizeof(long) * (size_t)vs->m);
    for (long j = 0; j < vs->m; j++) vs->index[j] = j;
}

int voxels_from_mask(VoxelSet *vs, const char *path, Shape shape, DfError *err) {
    memset(vs, 0, sizeof *vs);
    NiiVolume v;
    if (nii_read(path, &v, 1, err) != 0) return -1;
    if (v.dim[1] != shape.w || v.dim[2] != shape.h || v.dim[3] != shape.d || v.nvox != (int64_t)shape_spatial(shape)) {
        df_err(err, "%s: mask is %lldx%lldx%lld, the images are %dx%dx%d (x, y, z)", path, (long long)v.dim[1],
               (long long)v.dim[2], (long long)v.dim[3], shape.w, shape.h, shape.d);
        nii_free(&v);
        return -1;
    }
    long spatial = (long)shape_spatial(shape), in = 0;
    for (long p = 0; p < spatial; p++) in += v.data[p] != 0.0f;
    if (in == 0) {
        nii_free(&v);
        return df_err(err, "%s: the mask selects no voxel (every value is 0)", path);
    }
    vs->positions = (long)shape_numel(shape);
    vs->m = in * shape.c;
    vs->index = xmalloc(sizeof(long) * (size_t)vs->m);
    long j = 0;
    for (int c = 0; c < shape.c; c++)
        for (long p = 0; p < spatial; p++)
            if (v.data[p] != 0.0f) vs->index[j++] = (long)c * spatial + p;
    nii_free(&v);
    return 0;
}

void voxels_free(VoxelSet *vs) {
    free(vs->index);
    memset(vs, 0, sizeof *vs);
}

long voxels_start(const VoxelSet *vs, long j) {
    if (j <= 0) return 0;
    return j >= vs->m ? vs->positions : vs->index[j];
}

// ---- reading ------------------------------------------------------------------------------

// buf holding at least n floats (grown, never shrunk).
static float *span_buffer(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        free(*buf);
        *cap = n + n / 4;
        *buf = df_alloc_floats(*cap);
    }
    return *buf;
}

// The shards' headers appended into s->header, each shard's raw layout and descriptor.
static int open_shard(ShardRows *s, int i, DfError *err) {
    Cohort h;
    const char *path = s->paths[i];
    if (shard_read_header(path, &h, err) != 0) return -1;
    int rc = cohort_append(&s->header, s->paths[0], &h, path, err);
    long n = h.n;
    cohort_free(&h);
    if (rc != 0) return -1;
    s->first[i + 1] = s->first[i] + n;
    rc = shard_layout(path, &s->layout[i], err);
    if (rc < 0) return -1;
    if (rc == 1) return 0;  // not raw: read through HDF5
    s->fd[i] = open(path, O_RDONLY);
    if (s->fd[i] < 0) return df_err(err, "%s: cannot open: %s", path, strerror(errno));
    return 0;
}

int shard_rows_open(ShardRows *s, const char *list, DfError *err) {
    memset(s, 0, sizeof *s);
    s->sample_row = -1;
    int n;
    if (shard_list_source(list, &s->paths, &n, err)) return -1;
    s->first = xcalloc((size_t)n + 1, sizeof(long));
    s->layout = xcalloc((size_t)n, sizeof(ShardLayout));
    s->fd = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) s->fd[i] = -1;
    s->n_shards = n;
    for (int i = 0; i < n; i++)
        if (open_shard(s, i, err) != 0) {
            shard_rows_close(s);
            return -1;
        }
    s->n = s->first[n];
    s->shape = s->header.shape;
    return 0;
}

void shard_rows_close(ShardRows *s) {
    for (int i = 0; i < s->n_shards; i++) {
        free(s->paths[i]);
        shard_layout_free(&s->layout[i]);
        if (s->fd[i] >= 0) close(s->fd[i]);
    }
    free(s->paths);
    free(s->first);
    free(s->layout);
    free(s->fd);
    free(s->sample);
    free(s->span);
    cohort_free(&s->header);
    memset(s, 0, sizeof *s);
}

static int shard_of(const ShardRows *s, long r) {
    int i = 0;
    while (i + 1 < s->n_shards && r >= s->first[i + 1]) i++;
    return i;
}

// pread all of [buf, buf + bytes) at off, or an error naming the file.
static int pread_all(int fd, void *buf, size_t bytes, off_t off, const char *path, DfError *err) {
    char *p = buf;
    while (bytes > 0) {
        ssize_t got = pread(fd, p, bytes, off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return df_err(err, "%s: read failed at byte %lld: %s", path, (long long)off, got < 0 ? strerror(errno) : "file truncated");
        p += got;
        bytes -= (size_t)got;
        off += got;
    }
    return 0;
}

// Positions [a, b) of row r as floats into span (b - a floats).
static int read_span(ShardRows *s, long r, long a, long b, float *span, DfError *err) {
    int i = shard_of(s, r);
    long local = r - s->first[i];
    if (s->layout[i].image_off) {
        off_t off = (off_t)s->layout[i].image_off[local] + (off_t)a * (off_t)sizeof(float);
        return pread_all(s->fd[i], span, sizeof(float) * (size_t)(b - a), off, s->paths[i], err);
    }
    if (s->sample_row != r) {
        if (!s->sample) s->sample = df_alloc_floats(shape_numel(s->shape));
        s->sample_row = -1;
        if (shard_read_images(s->paths[i], (int)local, 1, s->sample, err) != 0) return -1;
        s->sample_row = r;
    }
    memcpy(span, s->sample + a, sizeof(float) * (size_t)(b - a));
    return 0;
}

int shard_rows_read(ShardRows *s, const VoxelSet *vs, long r, long j0, long j1, double *out, DfError *err) {
    if (j1 <= j0) return 0;
    long a = vs->index[j0], b = vs->index[j1 - 1] + 1;
    float *span = span_buffer(&s->span, &s->span_cap, (size_t)(b - a));
    int rc = read_span(s, r, a, b, span, err);
    if (rc == 0)
        for (long j = j0; j < j1; j++) out[j - j0] = span[vs->index[j] - a];
    return rc;
}


// ---- writing ------------------------------------------------------------------------------

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

int shard_out_init(ShardOut *o, const ShardRows *in, const char *dir, const char *tag, DfError *err) {
    memset(o, 0, sizeof *o);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return df_err(err, "%s: not a folder (create it first)", dir);
    if (access(dir, W_OK) != 0) return df_err(err, "%s: cannot write in the folder: %s", dir, strerror(errno));
    for (int i = 0; i < in->n_shards; i++)
        for (int k = 0; k < i; k++)
            if (strcmp(base_name(in->paths[i]), base_name(in->paths[k])) == 0)
                return df_err(err, "%s and %s: both would be written as %s/%s", in->paths[k], in->paths[i], dir,
                              base_name(in->paths[i]));
    o->n_shards = in->n_shards;
    o->final = xcalloc((size_t)o->n_shards, sizeof(char *));
    o->tmp = xcalloc((size_t)o->n_shards, sizeof(char *));
    o->first = xmalloc(sizeof(long) * ((size_t)o->n_shards + 1));
    o->fd = xmalloc(sizeof(int) * (size_t)o->n_shards);
    o->layout = xcalloc((size_t)o->n_shards, sizeof(ShardLayout));
    memcpy(o->first, in->first, sizeof(long) * ((size_t)o->n_shards + 1));
    for (int i = 0; i < o->n_shards; i++) {
        const char *b = base_name(in->paths[i]);
        size_t len = strlen(dir) + strlen(b) + strlen(tag) + 16;
        o->final[i] = xmalloc(len);
        o->tmp[i] = xmalloc(len);
        snprintf(o->final[i], len, "%s/%s", dir, b);
        snprintf(o->tmp[i], len, "%s/.%s.%s.tmp", dir, b, tag);
        o->fd[i] = -1;
    }
    for (int i = 0; i < o->n_shards; i++)
        for (int k = 0; k < in->n_shards; k++)
            if (df_same_file(o->final[i], in->paths[k]))  // however either is spelt: "./a.h5", a symlink
                return df_err(err, "%s: the output would overwrite an input, %s (choose another --out)", o->final[i],
                              in->paths[k]);
    return 0;
}

void shard_out_free(ShardOut *o) {
    for (int i = 0; i < o->n_shards; i++) {
        free(o->final[i]);
        free(o->tmp[i]);
        if (o->fd[i] >= 0) close(o->fd[i]);
        shard_layout_free(&o->layout[i]);
    }
    free(o->final);
    free(o->tmp);
    free(o->first);
    free(o->fd);
    free(o->layout);
    free(o->span);
    memset(o, 0, sizeof *o);
}

// Each input's own header (its level numbering, masks and subject ids) goes to its output.
int shard_out_create(const ShardOut *o, const ShardRows *in, const char *what, DfError *err) {
    for (int i = 0; i < o->n_shards; i++) {
        Cohort h;
        if (shard_read_header(in->paths[i], &h, err) != 0) return -1;
        int rc = 0;
        if (h.has_masks) {
            h.masks = xmalloc(shape_spatial(h.shape) * (size_t)h.n);
            rc = shard_read_masks(in->paths[i], 0, h.n, h.masks, err);
        }
        // A chain (ComBat, then regression) keeps the whole story.
        char *story = NULL;
        if (h.derived_by) {
            size_t len = strlen(what) + strlen(h.derived_by) + 32;
            story = xmalloc(len);
            snprintf(story, len, "%s; on images made by %s", what, h.derived_by);
        }
        if (rc == 0) rc = shard_create_unwritten(o->tmp[i], &h, story ? story : what, err);
        free(story);
        cohort_free(&h);
        if (rc != 0) return -1;
    }
    return 0;
}

int shard_out_open(ShardOut *o, DfError *err) {
    for (int i = 0; i < o->n_shards; i++) {
        int rc = shard_layout(o->tmp[i], &o->layout[i], err);
        if (rc < 0) return -1;
        if (rc == 1) return df_err(err, "%s: internal: the new shard's images are not raw-writable", o->tmp[i]);
        o->fd[i] = open(o->tmp[i], O_WRONLY);
        if (o->fd[i] < 0) return df_err(err, "%s: cannot open for writing: %s", o->tmp[i], strerror(errno));
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t bytes, off_t off, const char *path, DfError *err) {
    const char *p = buf;
    while (bytes > 0) {
        ssize_t put = pwrite(fd, p, bytes, off);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return df_err(err, "%s: write failed: %s", path, put < 0 ? strerror(errno) : "no progress");
        p += put;
        bytes -= (size_t)put;
        off += put;
    }
    return 0;
}

int shard_out_put(ShardOut *o, const VoxelSet *vs, long r, long j0, long j1, const double *vals, DfError *err) {
    if (j1 <= j0) return 0;
    int i = 0;
    while (i + 1 < o->n_shards && r >= o->first[i + 1]) i++;
    long a = voxels_start(vs, j0), b = voxels_start(vs, j1);
    float *span = span_buffer(&o->span, &o->span_cap, (size_t)(b - a));
    memset(span, 0, sizeof(float) * (size_t)(b - a));  // positions outside the mask
    for (long j = j0; j < j1; j++) span[vs->index[j] - a] = (float)vals[j - j0];
    off_t off = (off_t)o->layout[i].image_off[r - o->first[i]] + (off_t)a * (off_t)sizeof(float);
    return pwrite_all(o->fd[i], span, sizeof(float) * (size_t)(b - a), off, o->tmp[i], err);
}

int shard_out_close(ShardOut *o, DfError *err) {
    int rc = 0;
    for (int i = 0; i < o->n_shards; i++) {
        if (o->fd[i] < 0) continue;
        if (rc == 0 && fsync(o->fd[i]) != 0) rc = df_err(err, "%s: cannot sync: %s", o->tmp[i], strerror(errno));
        if (close(o->fd[i]) != 0 && rc == 0) rc = df_err(err, "%s: close failed: %s", o->tmp[i], strerror(errno));
        o->fd[i] = -1;
    }
    return rc;
}

int shard_out_commit(const ShardOut *o, DfError *err) {
    for (int i = 0; i < o->n_shards; i++)
        if (rename(o->tmp[i], o->final[i]) != 0)
            return df_err(err, "%s: cannot rename %s into place: %s", o->final[i], o->tmp[i], strerror(errno));
    return 0;
}

void shard_out_abandon(const ShardOut *o) {
    for (int i = 0; i < o->n_shards; i++) unlink(o->tmp[i]);
}
