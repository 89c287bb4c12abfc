// synth_brain.c: the `synth brain` cohort (synth_brain.h): each subject's draws (label, age,
// sex, site, label-effect strength, pose, deformation), the site table, and the folder it
// writes -- BIDS-style T1w files, participants.tsv/.json, dataset_description.json, the
// manifest subjects.csv and label_region.nii.gz -- with the subjects split over MPI ranks.
#include "data/synth_brain.h"
#include "base/progress.h"
#include "mpi/comm.h"
#include "data/nifti.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Voxel sizes are 1, 1.2 or 1.5 model voxels (they divide the field of view, a multiple of
// 6); orientations cover flips (LAS, LPI) and the axis orders of sagittal (PIR, ASL) and
// coronal (RSP) acquisitions. Gains differ as scanners' raw units do; bias fields are the
// few-percent-per-centimetre shading of uncorrected T1 images; the texture outside the
// brain stands for ghosting and coil patterns.
const SiteStyle synth_brain_sites[SYNTH_BRAIN_MAX_SITES] = {
    { "RAS", { 1.0, 1.0, 1.0 }, 1.00, 0.020, { 0.10, 0.00, 0.05, -0.08 }, 0.01, { 1, -1 }, { 8, 0 } },
    { "LAS", { 1.2, 1.2, 1.2 }, 1.35, 0.030, { -0.06, 0.12, 0.00, 0.06 }, 0.04, { 1, -1 }, { 5, 0 } },
    { "LPI", { 1.5, 1.5, 1.5 }, 0.80, 0.025, { 0.00, -0.08, 0.15, -0.12 }, 0.07, { 0, 2 }, { 3, 4 } },
    { "PIR", { 1.0, 1.0, 1.2 }, 1.10, 0.035, { 0.08, 0.08, -0.05, 0.00 }, 0.05, { 2, -1 }, { 6, 0 } },
    { "ASL", { 1.0, 1.0, 1.5 }, 0.90, 0.015, { -0.10, 0.00, 0.10, 0.10 }, 0.03, { 0, 1 }, { 4, 4 } },
    { "RSP", { 1.2, 1.2, 1.5 }, 1.20, 0.028, { 0.05, -0.10, -0.08, -0.05 }, 0.06, { 2, 0 }, { 2, 7 } },
};

// ---- the subjects' draws -----------------------------------------------------------------

// Label of subject i: subjects (2p, 2p+1) have one label each, which is which from the pair's
// stream (as synth mri3d): balanced, independent of n.
static int pair_label(uint64_t seed, int i) {
    Rng r;
    rng_seed_stream(&r, seed, (uint64_t)(i / 2), 22);
    return (int)((rng_u64(&r) >> 63) ^ (uint64_t)(i & 1));
}

// P(site | y): a ramp, (K, K-1, ..., 1) / sum for y = 0 and reversed for y = 1 (K = 3: 1/2,
// 1/3, 1/6 -- mri3d's weak table); or, with site_rho >= 0, the label's own site (0 for y = 0,
// K-1 for y = 1) with probability site_rho, else one of the others uniformly.
static int draw_site(Rng *r, int y, const SynthBrainConfig *cfg) {
    int K = cfg->sites;
    double u = rng_uniform(r);
    if (K == 1) return 0;
    if (cfg->site_rho >= 0) {
        int own = y ? K - 1 : 0;
        return u < cfg->site_rho ? own : (own + 1 + (int)rng_below(r, (uint64_t)(K - 1))) % K;
    }
    double total = K * (K + 1) / 2.0, acc = 0;
    for (int k = 0; k < K; k++) {
        acc += (y ? k + 1 : K - k) / total;
        if (u < acc) return k;
    }
    return K - 1;
}

// Coefficient sd of the cosine of orders (ox, oy, oz): proportional to 1 / (ox + oy + oz),
// none for the constant (the pose's shift), scaled so that each displacement component has
// RMS `deform` mm over the field of view (a cosine of order > 0 has mean square 1/2).
static double dct_sd(int k, double deform) {
    double sum = 0;
    for (int j = 1; j < 27; j++) {
        int o[3] = { j / 9, j / 3 % 3, j % 3 };
        double ms = (o[0] ? 0.5 : 1) * (o[1] ? 0.5 : 1) * (o[2] ? 0.5 : 1), w = 1.0 / (o[0] + o[1] + o[2]);
        sum += w * w * ms;
    }
    int s = k / 9 + k / 3 % 3 + k % 3;
    return s == 0 ? 0 : deform / (s * sqrt(sum));
}

// Subject i's draws, all from stream (seed, i, 20), in a fixed order; its noise has stream 21.
// Label 1 has the label effect d ~ U(label_effect / 2, label_effect), label 0 none. Age follows
// mri3d: a ~ U(1,4) for label 0, U(3,6) for label 1, age = 20 + 12 (a - 1) years.
static void draw_subject(BrainSubject *s, const SynthBrainConfig *cfg, int i) {
    Rng r;
    rng_seed_stream(&r, cfg->seed, (uint64_t)i, 20);
    memset(s, 0, sizeof *s);
    s->label = pair_label(cfg->seed, i);
    int ye = cfg->effect_label >= 0 ? cfg->effect_label : s->label;
    double u = rng_uniform(&r), a = (s->label ? 3.0 : 1.0) + 3.0 * rng_uniform(&r);
    s->strength = ye ? cfg->label_effect * (1 + u) / 2 : 0;
    s->age = 20 + 12 * (a - 1);
    s->sex = (int)rng_below(&r, 2);
    s->site = draw_site(&r, s->label, cfg);
    // The pose and the size's spread scale with `deform` (3 mm: 2 degrees, 2 mm, 3%), so that
    // --deform 0 leaves the template's geometry but for the sex's head size (men's ~5% larger).
    double k = cfg->deform / 3;
    s->size = 1 + (s->sex ? 0.025 : -0.025) + 0.03 * k * rng_normal(&r);
    for (int w = 0; w < 3; w++) s->rot[w] = 2.0 * k * BRAIN_PI / 180 * rng_normal(&r);
    for (int w = 0; w < 3; w++) s->shift[w] = 2.0 * k * rng_normal(&r);
    for (int d = 0; d < 3; d++)
        for (int k = 0; k < 27; k++) s->dct[d][k] = dct_sd(k, cfg->deform) * rng_normal(&r);
}

// ---- files ----------------------------------------------------------------------------------

static void subject_id(char *buf, size_t n, int i) { snprintf(buf, n, "sub-%04d", i + 1); }

static int make_dir(const char *path, DfError *err) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return df_err(err, "%s: cannot create: %s", path, strerror(errno));
    return 0;
}

// DIR/sub-XXXX/anat/sub-XXXX_T1w.nii.gz: int16 (as scanners write T1 images), the site's
// voxel size and orientation in pixdim, sform and qform.
static int write_subject(const char *dir, const BrainModel *m, const SynthBrainConfig *cfg, const BrainSubject *s, int i,
                         DfError *err) {
    const SiteStyle *st = &synth_brain_sites[s->site];
    SiteGrid g;
    brain_site_grid(&g, m, st);
    float *x = df_alloc_floats((size_t)g.n[0] * g.n[1] * g.n[2]);
    Rng noise;
    rng_seed_stream(&noise, cfg->seed, (uint64_t)i, 21);
    brain_render(x, m, s, &g, st, cfg->age_effect, cfg->noise, &noise);
    char id[32], path[4200];
    subject_id(id, sizeof id, i);
    snprintf(path, sizeof path, "%s/%s", dir, id);
    int rc = make_dir(path, err);
    snprintf(path, sizeof path, "%s/%s/anat", dir, id);
    if (rc == 0) rc = make_dir(path, err);
    NiiWriteSpec sp = { .version = 1, .datatype = 4 /* DT_INT16 */, .affine = g.affine };
    int64_t dims[8] = { 3, g.n[0], g.n[1], g.n[2], 1, 1, 1, 1 };
    memcpy(sp.dims, dims, sizeof dims);
    for (int a = 0; a < 3; a++) sp.pixdim[a + 1] = g.vox[a];
    snprintf(path, sizeof path, "%s/%s/anat/%s_T1w.nii.gz", dir, id, id);
    if (rc == 0) rc = nii_write(path, &sp, x, err);
    free(x);
    return rc;
}

// label_region.nii.gz: the voxels of the model grid at least half inside the label regions.
static int write_region(const char *dir, const BrainModel *m, DfError *err) {
    float *x = df_alloc_floats(m->V);
    for (size_t v = 0; v < m->V; v++) x[v] = m->region[v] >= 0.5f;
    double aff[16] = { m->h, 0, 0, m->origin[0], 0, m->h, 0, m->origin[1], 0, 0, m->h, m->origin[2], 0, 0, 0, 1 };
    NiiWriteSpec sp = { .version = 1, .datatype = 2 /* DT_UINT8 */, .affine = aff };
    int64_t dims[8] = { 3, m->n[0], m->n[1], m->n[2], 1, 1, 1, 1 };
    memcpy(sp.dims, dims, sizeof dims);
    for (int a = 1; a <= 3; a++) sp.pixdim[a] = m->h;
    char path[4200];
    snprintf(path, sizeof path, "%s/label_region.nii.gz", dir);
    int rc = nii_write(path, &sp, x, err);
    free(x);
    return rc;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static int write_text(const char *dir, const char *name, char *text, size_t len, DfError *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = df_write_file_atomic(path, text, len, err);
    free(text);
    return rc;
}

static void site_text(char *buf, size_t n, int k, double h) {
    const SiteStyle *st = &synth_brain_sites[k];
    snprintf(buf, n, "%s, %gx%gx%g mm voxels, gain %g, noise %g%% of white matter, background texture %g%%", st->orient,
             st->vox[0] * h, st->vox[1] * h, st->vox[2] * h, st->gain, 100 * st->noise, 100 * st->tex_amp);
}

// participants.tsv (BIDS: tab-separated, one row per subject) and subjects.csv (the manifest
// pack reads, docs/formats.md "Manifest"): the same columns and values.
static int write_tables(const char *dir, const SynthBrainConfig *cfg, const BrainSubject *subj, DfError *err) {
    char *tsv = NULL, *csv = NULL;
    size_t nt = 0, nc = 0;
    FILE *t = open_memstream(&tsv, &nt), *c = open_memstream(&csv, &nc);
    fprintf(t, "participant_id\tlabel\tage\tsex\tsite\n");
    fprintf(c, "# synthetic brain cohort (deconfound synth brain, seed %llu): docs/formats.md\n", (unsigned long long)cfg->seed);
    fprintf(c, "path,label,subject,age,sex,site:categorical\n");
    for (int i = 0; i < cfg->n; i++) {
        const BrainSubject *s = &subj[i];
        char id[32];
        subject_id(id, sizeof id, i);
        fprintf(t, "%s\t%d\t%.1f\t%s\t%d\n", id, s->label, s->age, s->sex ? "M" : "F", s->site);
        fprintf(c, "%s/anat/%s_T1w.nii.gz,%d,%s,%.1f,%s,%d\n", id, id, s->label, id, s->age, s->sex ? "M" : "F", s->site);
    }
    fclose(t);
    fclose(c);
    if (write_text(dir, "participants.tsv", tsv, nt, err)) { free(csv); return -1; }
    return write_text(dir, "subjects.csv", csv, nc, err);
}

// participants.json (the columns' meaning, BIDS sidecar) and dataset_description.json.
static int write_json(const char *dir, const SynthBrainConfig *cfg, double h, DfError *err) {
    char *js = NULL, *dd = NULL;
    size_t nj = 0, nd = 0;
    FILE *f = open_memstream(&js, &nj);
    fprintf(f, "{\n  \"participant_id\": {\"Description\": \"subject label\"},\n"
               "  \"label\": {\"Description\": \"binary class; the label effect (tissue loss) lies in label_region.nii.gz\", "
               "\"Levels\": {\"0\": \"weaker effect\", \"1\": \"stronger effect\"}},\n"
               "  \"age\": {\"Description\": \"age at the scan\", \"Units\": \"years\"},\n"
               "  \"sex\": {\"Description\": \"sex (head size)\", \"Levels\": {\"F\": \"female\", \"M\": \"male\"}},\n"
               "  \"site\": {\"Description\": \"acquisition site\", \"Levels\": {");
    for (int k = 0; k < cfg->sites; k++) {
        char buf[256];
        site_text(buf, sizeof buf, k, h);
        fprintf(f, "%s\"%d\": ", k ? ", " : "", k);
        json_string(f, buf);
    }
    fprintf(f, "}}\n}\n");
    fclose(f);
    if (write_text(dir, "participants.json", js, nj, err)) return -1;
    f = open_memstream(&dd, &nd);
    char what[6000];
    snprintf(what, sizeof what, "template %s, brain mask %s, atlas %s, seed %llu, scale %g, %d sites", cfg->model.template_path,
             cfg->model.mask_path ? cfg->model.mask_path : "(none)", cfg->model.atlas_path ? cfg->model.atlas_path : "(none)",
             (unsigned long long)cfg->seed, cfg->model.scale, cfg->sites);
    fprintf(f, "{\n  \"Name\": \"deconfound synthetic brain cohort\",\n  \"BIDSVersion\": \"1.9.0\",\n  \"DatasetType\": \"raw\",\n"
               "  \"GeneratedBy\": [{\"Name\": \"deconfound synth brain\", \"Description\": ");
    json_string(f, what);
    fprintf(f, "}]\n}\n");
    fclose(f);
    return write_text(dir, "dataset_description.json", dd, nd, err);
}

// ---- the run ----------------------------------------------------------------------------------

// Rank 0 refuses an existing folder and creates the temporary one; every rank gets its name.
static int make_tmp(const char *out, char *tmp, size_t n, DfError *err) {
    int rc = 0;
    if (dist_rank() == 0) {
        struct stat st;
        if (stat(out, &st) == 0) rc = df_err(err, "%s: already exists; synth brain writes a new folder", out);
        else {
            char *t = df_temp_name(out);
            snprintf(tmp, n, "%s", t);
            free(t);
            if (mkdir(tmp, 0755) != 0) rc = df_err(err, "%s: cannot create: %s", out, strerror(errno));
        }
    }
    if (dist_agree(rc, err)) return -1;
    dist_bcast(tmp, n, 0);
    return 0;
}

static void print_summary(const SynthBrainConfig *cfg, const BrainModel *m, const BrainSubject *subj) {
    int per_site[SYNTH_BRAIN_MAX_SITES] = { 0 }, ones = 0;
    double region = 0;
    for (int i = 0; i < cfg->n; i++) { per_site[subj[i].site]++; ones += subj[i].label; }
    for (size_t v = 0; v < m->V; v++) region += m->region[v] >= 0.5f;
    printf("wrote %s: %d subjects (label 1: %d), model grid %dx%dx%d of %g mm, tissue means CSF %.0f GM %.0f WM %.0f, "
           "label region %.0f voxels; sites:", cfg->out, cfg->n, ones, m->n[0], m->n[1], m->n[2], m->h, m->mu[0], m->mu[1],
           m->mu[2], region);
    for (int k = 0; k < cfg->sites; k++) {
        const SiteStyle *st = &synth_brain_sites[k];
        printf(" %d %s %gx%gx%g mm (%d)%s", k, st->orient, st->vox[0] * m->h, st->vox[1] * m->h, st->vox[2] * m->h, per_site[k],
               k + 1 < cfg->sites ? "," : "\n");
    }
}

// This rank's subjects (i = rank, rank + P, ...), then rank 0's tables and region mask.
static int write_all(const char *tmp, const BrainModel *m, const SynthBrainConfig *cfg, const BrainSubject *subj, DfError *err) {
    int rank = dist_rank(), P = dist_size(), rc = 0, done = 0;
    progress_begin("synth brain", "subjects", 0, cfg->n);
    for (int i = rank; i < cfg->n && rc == 0; i += P) {
        rc = write_subject(tmp, m, cfg, &subj[i], i, err);
        progress_update(DF_MIN(cfg->n, ++done * P));
    }
    if (dist_agree(rc, err)) return -1;
    if (rank == 0) rc = write_tables(tmp, cfg, subj, err) || write_json(tmp, cfg, m->h, err) || write_region(tmp, m, err) ? -1 : 0;
    if (dist_agree(rc, err)) return -1;
    progress_end();
    return 0;
}

int synth_brain_run(const SynthBrainConfig *cfg, DfError *err) {
    DF_ASSERT(cfg->sites >= 1 && cfg->sites <= SYNTH_BRAIN_MAX_SITES && cfg->n >= 1);
    char tmp[4096] = "";
    BrainModel m;
    memset(&m, 0, sizeof m);
    BrainSubject *subj = xcalloc((size_t)cfg->n, sizeof *subj);
    for (int i = 0; i < cfg->n; i++) draw_subject(&subj[i], cfg, i);
    int rc = -1;
    if (make_tmp(cfg->out, tmp, sizeof tmp, err) || dist_agree(brain_model_build(&m, &cfg->model, err), err) ||
        write_all(tmp, &m, cfg, subj, err))
        goto done;
    rc = 0;
    if (dist_rank() == 0 && rename(tmp, cfg->out) != 0)
        rc = df_err(err, "%s: cannot rename %s into place: %s", cfg->out, tmp, strerror(errno));
    if (dist_agree(rc, err)) { rc = -1; goto done; }
    tmp[0] = '\0';
    if (dist_rank() == 0 && cfg->verbose) print_summary(cfg, &m, subj);
    rc = 0;
done:
    if (rc && dist_rank() == 0 && tmp[0]) df_remove_tree(tmp);
    brain_model_free(&m);
    free(subj);
    return rc;
}
