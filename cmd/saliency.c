// saliency.c: `deconfound saliency`: a trained network's saliency map for every sample (or the
// chosen subjects), written as NIfTI in each subject's own image space, and their mean on the
// packed grid (run/saliency.h computes the maps).
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/export.h"
#include "data/export.h"
#include "data/pack.h"
#include "data/shard.h"
#include "mpi/comm.h"
#include "run/infer.h"
#include "run/saliency.h"

static const char *saliency_help =
    "usage: deconfound saliency CONFIG.ini --checkpoint CKPT.h5 --data SHARDS --out DIR\n"
    "                           [--method grad|gradxinput|smoothgrad] [--subject ID ...]\n"
    "                           [--target pred|label|K] [--samples N] [--noise F] [--seed S]\n"
    "                           [--region MASK.nii] [--batch N] [--threads N] [--set s.k=v ...] [--quiet]\n"
    "\n"
    "For every sample of the shards (or those of the subjects named), the gradient of one\n"
    "output logit with respect to the input image, in eval mode: --method grad (|gradient|,\n"
    "the default), gradxinput (|gradient x image|) or smoothgrad (|gradient| averaged over\n"
    "--samples noisy copies, noise sd --noise x the image's value range; defaults 16, 0.15).\n"
    "--target: the predicted class (default), the labelled one, or class K.\n"
    "\n"
    "DIR gets one NIfTI per sample, <subject>_saliency-<method>.nii.gz (_2, _3 ... for a\n"
    "subject's further samples), in the sample's SOURCE image space: the dimensions, affine and\n"
    "orientation of the NIfTI file `pack` read it from (recorded in the shard), so it overlays\n"
    "on the subject's scan in any viewer. Samples of shards without that record (synthetic\n"
    "data) are written on the shard's own grid. DIR/mean_saliency-<method>.nii.gz is the mean\n"
    "map over the samples written, on the packed grid (the common space every sample was\n"
    "brought to; a template space when the images were registered to one). Samples are split\n"
    "over the ranks; DIR is written whole or not at all.\n"
    "\n"
    "--region MASK.nii (any grid; placed by its affine) also prints how much of the mean map\n"
    "lies inside the mask, against the mask's share of the volume: where the network looks. It\n"
    "needs shards packed from NIfTI files (their grid's place in space).\n";

typedef struct {
    const char *config, *checkpoint, *data, *out, *region;
    const char **sets, **subjects;
    int n_sets, n_subjects, batch, threads, quiet;
    SaliencyConfig sc;
} SaliencyArgs;

static int parse_args(SaliencyArgs *a, int argc, char **argv) {
    const char *cmd = "saliency", *v;
    memset(a, 0, sizeof *a);
    a->sets = xcalloc((size_t)argc, sizeof(char *));
    a->subjects = xcalloc((size_t)argc, sizeof(char *));
    a->batch = 8;
    a->sc = (SaliencyConfig){ SAL_GRAD, SAL_TARGET_PRED, 16, 0.15, 1 };
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(saliency_help, stdout); return 1; }
        else if (cli_opt(argc, argv, &i, "--checkpoint", &v, cmd)) a->checkpoint = v;
        else if (cli_opt(argc, argv, &i, "--data", &v, cmd)) a->data = v;
        else if (cli_opt(argc, argv, &i, "--out", &v, cmd)) a->out = v;
        else if (cli_opt(argc, argv, &i, "--set", &v, cmd)) a->sets[a->n_sets++] = v;
        else if (cli_opt(argc, argv, &i, "--subject", &v, cmd)) a->subjects[a->n_subjects++] = v;
        else if (cli_opt(argc, argv, &i, "--region", &v, cmd)) a->region = v;
        else if (cli_opt(argc, argv, &i, "--batch", &v, cmd)) a->batch = (int)cli_long(cmd, "--batch", v, 1, 4096);
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) a->threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_opt(argc, argv, &i, "--samples", &v, cmd)) a->sc.samples = (int)cli_long(cmd, "--samples", v, 1, 10000);
        else if (cli_opt(argc, argv, &i, "--seed", &v, cmd)) a->sc.seed = (uint64_t)cli_long(cmd, "--seed", v, 0, INT64_MAX >> 1);
        else if (cli_opt(argc, argv, &i, "--noise", &v, cmd)) {
            char *end;
            a->sc.noise = strtod(v, &end);
            if (*end || !(a->sc.noise >= 0 && a->sc.noise <= 10)) cli_usage_error(cmd, "--noise %s: expected a number in [0, 10]", v);
        } else if (cli_opt(argc, argv, &i, "--method", &v, cmd)) {
            int m = 0;
            while (saliency_method_names[m] && strcmp(saliency_method_names[m], v) != 0) m++;
            if (!saliency_method_names[m]) cli_usage_error(cmd, "--method %s: expected grad, gradxinput or smoothgrad", v);
            a->sc.method = (SaliencyMethod)m;
        } else if (cli_opt(argc, argv, &i, "--target", &v, cmd)) {
            if (!strcmp(v, "pred")) a->sc.target = SAL_TARGET_PRED;
            else if (!strcmp(v, "label")) a->sc.target = SAL_TARGET_LABEL;
            else a->sc.target = (int)cli_long(cmd, "--target", v, 0, 1 << 20);
        } else if (cli_flag(argv, i, "--quiet")) a->quiet = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!a->config) a->config = argv[i];
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!a->config) cli_usage_error(cmd, "missing CONFIG.ini");
    if (!a->checkpoint) cli_usage_error(cmd, "missing --checkpoint CKPT.h5");
    if (!a->data) cli_usage_error(cmd, "missing --data SHARDS");
    if (!a->out) cli_usage_error(cmd, "missing --out DIR");
    return 0;
}

// What is known of each sample: its file name, whether it is wanted, and where it came from.
typedef struct {
    char name[200];
    int selected, has_geo;
    double affine[16], source_affine[16];
    int dims[3];
} SampleInfo;

// Every rank reads the shards' headers (small): names, selection and geometry of all samples.
static SampleInfo *sample_info(const InferSetup *in, const SaliencyArgs *a) {
    const Dataset *ds = &in->ds;
    int n = ds->cohort.n;
    SampleInfo *info = xcalloc((size_t)(n ? n : 1), sizeof *info);
    char **ids = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    for (int f = 0; f < ds->n_files; f++) {
        Cohort c;
        DfError err;
        if (shard_read_header(ds->files[f].path, &c, &err)) df_die_collective(DF_EXIT_INPUT, "saliency: %s", err.msg);
        for (int i = 0; i < ds->files[f].n; i++) {
            SampleInfo *s = &info[ds->files[f].first + i];
            const char *subject = c.subjects ? c.subjects[i] : NULL;
            char fallback[32];
            snprintf(fallback, sizeof fallback, "sample-%05d", ds->files[f].first + i);
            ids[ds->files[f].first + i] = xstrdup(subject ? subject : fallback);
            s->selected = a->n_subjects == 0;
            for (int k = 0; k < a->n_subjects && subject; k++) s->selected |= strcmp(a->subjects[k], subject) == 0;
            if ((s->has_geo = c.affine != NULL)) {
                memcpy(s->affine, c.affine + (size_t)i * 16, sizeof s->affine);
                memcpy(s->source_affine, c.source_affine + (size_t)i * 16, sizeof s->source_affine);
                for (int d = 0; d < 3; d++) s->dims[d] = c.source_dims[(size_t)i * 3 + d];
            }
        }
        cohort_free(&c);
    }
    char (*names)[200] = xcalloc((size_t)(n ? n : 1), sizeof *names);  // as `export` names files
    export_sample_names(names, ids, n, 0);
    for (int i = 0; i < n; i++) snprintf(info[i].name, sizeof info[i].name, "%s", names[i]), free(ids[i]);
    free(names);
    free(ids);
    for (int k = 0; k < a->n_subjects; k++) {  // every subject asked for must exist
        int found = 0;
        for (int i = 0; i < n && !found; i++) found = ds->cohort.subjects && strcmp(ds->cohort.subjects[i], a->subjects[k]) == 0;
        if (!found) df_die_collective(DF_EXIT_INPUT, "saliency: --subject %s: %s has no sample of that subject", a->subjects[k], a->data);
    }
    return info;
}

typedef struct {
    const SaliencyArgs *a;
    const SampleInfo *info;
    const char *dir;       // the temporary output folder
    Shape shape;           // the packed sample's (C, D, H, W)
    float *maps;           // (batch, D, H, W)
    double *sum;           // (D, H, W): the written maps summed, for the mean
    double count;
    long n, global_batch;  // for the progress
} SalVisit;

static void write_sample(SalVisit *v, long idx, const float *map) {
    const SampleInfo *s = &v->info[idx];
    Shape sh = v->shape;
    sh.c = 1;
    char path[1200];
    DfError err;
    snprintf(path, sizeof path, "%s/%s_saliency-%s.nii.gz", v->dir, s->name, saliency_method_names[v->a->sc.method]);
    if (export_grid(path, map, sh, s->has_geo ? s->affine : NULL, s->has_geo ? s->source_affine : NULL, s->dims, &err))
        df_die(DF_EXIT_INPUT, "saliency: %s", err.msg);  // a full disk or a read-only folder: exit 2
    size_t V = shape_spatial(sh);
    for (size_t i = 0; i < V; i++) v->sum[i] += map[i];
    v->count += 1;
}

static void sal_visit(void *arg, const Net *net, const Batch *b) {
    SalVisit *v = arg;
    int any = 0;
    for (int i = 0; i < b->n; i++) any |= v->info[b->first_sample + i].selected;
    if (any) {
        saliency_batch(v->maps, (Net *)net, b, &v->a->sc);
        for (int i = 0; i < b->n; i++)
            if (v->info[b->first_sample + i].selected) write_sample(v, b->first_sample + i, v->maps + (size_t)i * shape_spatial(v->shape));
    }
    progress_update((double)DF_MIN(v->n, (b->step + 1) * v->global_batch));
}

// --region: the mean map's mass inside the mask (`in`, on the packed grid), against the mask's
// share of the volume.
static void report_region(const char *mask, const float *mean, Shape sh, const uint8_t *in) {
    size_t V = shape_spatial(sh);
    double inside = 0, total = 0, voxels = 0;
    for (size_t v = 0; v < V; v++) {
        total += mean[v];
        if (in[v]) inside += mean[v], voxels += 1;
    }
    printf("region %s: %.1f %% of the mean saliency in %.1f %% of the volume (%.2f times its share)\n", mask,
           total > 0 ? 100 * inside / total : 0.0, 100 * voxels / (double)V,
           voxels > 0 && total > 0 ? (inside / total) / (voxels / (double)V) : 0.0);
}

int cmd_saliency(int argc, char **argv) {
    SaliencyArgs a;
    if (parse_args(&a, argc, argv)) { free(a.sets); free(a.subjects); return 0; }
    progress_enable(dist_rank() == 0 && !a.quiet);
    dist_set_blas_threads(a.threads ? a.threads : 1);
    InferSetup in;
    DfError err;
    if (infer_setup(&in, a.config, a.sets, a.n_sets, a.checkpoint, a.data, SPLIT_ALL, a.batch, &err))
        df_die_collective(DF_EXIT_INPUT, "saliency: %s", err.msg);
    SampleInfo *info = sample_info(&in, &a);
    Shape sh = in.net.in_shape;
    size_t V = shape_spatial(sh);
    const double *grid = NULL;  // the packed grid's place: any written sample's (they share it)
    for (long i = 0; i < in.ds.cohort.n && !grid; i++) if (info[i].selected && info[i].has_geo) grid = info[i].affine;
    uint8_t *region = NULL;  // --region on the packed grid (rank 0's, which reports it)
    if (a.region) {  // the mask and the data's place in space, before any map is computed or written
        // every rank read the same headers: they all see the same grid, or none
        if (!grid)
            df_die_collective(DF_EXIT_INPUT, "saliency: --region: %s was not packed from NIfTI files: its grid has no place in space",
                              a.data);
        int rc = 0;
        if (dist_rank() == 0) {
            region = xmalloc(V);
            rc = prep_mask_on_grid(region, a.region, sh.d, sh.h, sh.w, grid, &err);
        }
        dist_bcast(&rc, sizeof rc, 0);
        if (rc) df_die_collective(DF_EXIT_INPUT, "saliency: --region: %s", err.msg);
    }
    char tmp[1200];
    output_folder_begin(a.out, "saliency", tmp);
    net_enable_input_grad(&in.net);
    SalVisit v = { &a, info, tmp, sh, df_alloc_floats((size_t)a.batch * V), xcalloc(V, sizeof(double)), 0,
                   in.ds.cohort.n, (long)a.batch * dist_size() };
    progress_begin("saliency", "samples", 0, (double)v.n);
    if (infer_run(&in.net, in.loader, sal_visit, &v, &err)) {  // agreed by every rank (loader.h): no map is being written
        output_folder_abandon(tmp);
        df_die_collective(loader_failed(in.loader), "saliency: %s", err.msg);
    }
    progress_end();
    dist_allreduce_sum_f64(v.sum, V);
    dist_allreduce_sum_f64(&v.count, 1);
    if (dist_rank() == 0) {
        float *mean = xmalloc(sizeof(float) * V);
        for (size_t i = 0; i < V; i++) mean[i] = (float)(v.count > 0 ? v.sum[i] / v.count : 0.0);
        char path[1300];
        Shape one = sh;
        one.c = 1;
        snprintf(path, sizeof path, "%s/mean_saliency-%s.nii.gz", tmp, saliency_method_names[a.sc.method]);
        if (export_grid(path, mean, one, grid, NULL, NULL, &err)) df_die(DF_EXIT_INPUT, "saliency: %s", err.msg);
        if (a.region) report_region(a.region, mean, sh, region);
        free(mean);
    }
    output_folder_commit(tmp, a.out, "saliency");
    if (dist_rank() == 0)
        printf("saliency: wrote %.0f maps (%s, target %s) and their mean into %s\n", v.count, saliency_method_names[a.sc.method],
               a.sc.target == SAL_TARGET_PRED ? "the predicted class" : a.sc.target == SAL_TARGET_LABEL ? "the label" : "a fixed class",
               a.out);
    free(v.maps);
    free(v.sum);
    free(region);
    free(info);
    infer_setup_free(&in);
    free(a.sets);
    free(a.subjects);
    return 0;
}
