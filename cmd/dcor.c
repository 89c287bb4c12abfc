// dcor_cmd.c: `deconfound dcor`: distance correlation between two arrays stored in HDF5
// files (features of `deconfound eval`, a shard's metadata, anything numeric). Every rank
// reads the whole arrays (O(n*d) memory) and computes its share of the tiles (nn/dcor.c).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/progress.h"
#include "cmd/cli.h"
#include "cmd/commands.h"
#include "mpi/comm.h"
#include "nn/dcor.h"
#include "data/feature_file.h"
#include "base/rng.h"

static const char *dcor_help =
    "usage: deconfound dcor --x FILE:DATASET --y FILE:DATASET[:COLUMN] [--given FILE:DATASET[:COLUMN]]\n"
    "                       [--by FILE:DATASET[:COLUMN]] [--unbiased] [--permutations N] [--seed S]\n"
    "                       [--tile T] [--single] [--threads T] [--json] [--quiet]\n"
    "       deconfound dcor --random N,D [options]      (benchmark: random data, no files)\n"
    "\n"
    "Distance covariance and correlation between x and y (DESIGN.md 3.5): dCov^2 and dCor^2\n"
    "(biased V-statistics), their bias-corrected (U-centred) forms (R energy's dcovU and\n"
    "bcdcor), the partial distance correlation given a third variable (--given; R energy's\n"
    "pdcor), per-group values (--by, e.g. labels), and a permutation-test p-value.\n"
    "\n"
    "FILE:DATASET names a 1-D [N] or 2-D [N, D] numeric dataset of an HDF5 file; :COLUMN picks\n"
    "one column by 0-based index or by name from the dataset's `columns` attribute\n"
    "(feats.h5:meta:age). Rows are samples. A column the dataset's `kinds` attribute calls\n"
    "categorical (a shard's or eval's /meta: site, sex) is one-hot coded for --x, --y and\n"
    "--given, picked or inside a whole dataset (--given feats.h5:meta), as the training\n"
    "report codes it, so its codes' order means nothing.\n"
    "\n"
    "  --unbiased         the bias-corrected form is required (n < 4 is an error) and is the\n"
    "                     permutation-test statistic (default: the biased dCov^2)\n"
    "  --permutations N   permutation test of independence of x and y (p = (1 + #{T_k >= T}) / (1 + N);\n"
    "                     a replicate within 1e-9 of the observed dCor^2 counts as a tie, 1e-6 with --single)\n"
    "  --seed S           seed of the permutations (default 1)\n"
    "  --tile T           tile edge in samples (default 512); results do not depend on it\n"
    "  --single           Gram matrices in float (sgemm): about 2x faster, distances to ~1e-7\n"
    "  --threads T        OpenBLAS threads per rank (default: cores / ranks on the node)\n"
    "  --json             one JSON object: n, dcov2, dcor2, dcov2_u, dcor2_u, [pdcor2_u],\n"
    "                     [p_value, permutations], [groups: {value: {n, dcov2, ...}}], seconds\n"
    "  --random N,D       x: N samples of D standard normals, y = x0 + x1^2/2 + noise (benchmarks)\n"
    "  --quiet            no progress of the distance tiles and permutations (on a terminal an\n"
    "                     updating line, in a file a line every DECONFOUND_PROGRESS_EVERY seconds,\n"
    "                     default 30, but none with --json); the results stay\n"
    "\n"
    "Under mpirun the pairwise tiles (and permutations) are shared over the ranks; memory per\n"
    "rank is O(N*D + T^2), no N x N matrix is formed. Values that cannot be computed (the\n"
    "bias-corrected form with n < 4 in a group) print as NaN / JSON null. A constant variable\n"
    "has dCor 0 (as in R energy).\n";

typedef struct {
    double *x;
    int n, d;
    const char *spec;
} Arr;

// Reads a variable; each categorical column (the picked one, or any of a whole dataset)
// becomes its one-hot columns unless `codes` (--by).
static void read_arr(Arr *a, const char *opt, const char *spec, int codes) {
    DfError err;
    int *categorical, any = 0;
    a->spec = spec;
    if (features_read_spec_kind(spec, &a->x, &a->n, &a->d, &categorical, &err))
        df_die_collective(DF_EXIT_INPUT, "dcor: %s %s", opt, err.msg);
    // Here, where the file, the dataset and the column are known (dcor_compute would name a
    // row of its own matrix: the one-hot or picked column's index there).
    for (size_t k = 0; k < (size_t)a->n * a->d; k++)
        if (!isfinite(a->x[k])) {
            char column[48] = "";
            if (a->d > 1) snprintf(column, sizeof column, ", column %zu", k % (size_t)a->d);
            df_die_collective(DF_EXIT_INPUT, "dcor: %s %s: sample %zu%s is %g; values must be finite", opt, spec,
                              k / (size_t)a->d, column, a->x[k]);
        }
    for (int j = 0; j < a->d; j++) any |= categorical[j];
    if (any && !codes) {
        double *v = a->x;
        a->x = dcor_one_hot_columns(v, a->n, a->d, categorical, &a->d);
        free(v);
    }
    free(categorical);
}

static void random_arrays(Arr *x, Arr *y, const char *spec, uint64_t seed) {
    long n, d;
    char *comma = strchr(spec, ',');
    if (!comma) cli_usage_error("dcor", "--random expects N,D (e.g. 10000,64), got '%s'", spec);
    char *ns = xstrdup(spec);
    ns[comma - spec] = 0;
    if (df_parse_long(ns, &n) || df_parse_long(comma + 1, &d) || n < 2 || n > 100000000 || d < 1 || d > 100000)
        cli_usage_error("dcor", "--random expects N,D with N >= 2 and D >= 1, got '%s'", spec);
    free(ns);
    x->x = xmalloc((size_t)n * d * sizeof(double));
    y->x = xmalloc((size_t)n * sizeof(double));
    x->n = y->n = (int)n;
    x->d = (int)d;
    y->d = 1;
    x->spec = "random";
    y->spec = "x0 + x1^2/2 + noise";
    Rng r;
    rng_seed_stream(&r, seed, 11, 0);
    for (long i = 0; i < n; i++) {
        double *row = x->x + (size_t)i * d;
        for (long k = 0; k < d; k++) row[k] = rng_normal(&r);
        y->x[i] = row[0] + (d > 1 ? 0.5 * row[1] * row[1] : 0) + rng_normal(&r);
    }
}

static void json_num(const char *key, double v, int comma) {
    if (isfinite(v)) printf("\"%s\": %.17g%s", key, v, comma ? ", " : "");
    else printf("\"%s\": null%s", key, comma ? ", " : "");
}

static void json_result(const DcorResult *r, int given, int perms) {
    printf("\"n\": %d, ", r->n);
    json_num("dcov2", r->dcov2, 1);
    json_num("dcor2", r->dcor2, 1);
    json_num("dcov2_u", r->dcov2_u, 1);
    json_num("dcor2_u", r->dcor2_u, given || perms);
    if (given) json_num("pdcor2_u", r->pdcor2_u, perms);
    if (perms) json_num("p_value", r->p_value, 0);
}

static void table_result(const DcorResult *r, const char *given, int perms) {
    printf("  n                          %d\n", r->n);
    printf("  dCov^2   (biased)          %.10g\n", r->dcov2);
    printf("  dCor^2   (biased)          %.10g\n", r->dcor2);
    printf("  dCov^2_u (bias-corrected)  %.10g\n", r->dcov2_u);
    printf("  dCor^2_u (bias-corrected)  %.10g\n", r->dcor2_u);
    if (given) printf("  pdCor^2_u given %-10s %.10g\n", given, r->pdcor2_u);
    if (perms) printf("  p-value (%d permutations) %.6g\n", perms, r->p_value);
}

int cmd_dcor(int argc, char **argv) {
    const char *cmd = "dcor", *v, *sx = NULL, *sy = NULL, *sz = NULL, *sby = NULL, *rnd = NULL;
    DcorOptions o = dcor_options_default();
    int json = 0, threads = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { if (dist_rank() == 0) fputs(dcor_help, stdout); return 0; }
        else if (cli_opt(argc, argv, &i, "--x", &v, cmd)) sx = v;
        else if (cli_opt(argc, argv, &i, "--y", &v, cmd)) sy = v;
        else if (cli_opt(argc, argv, &i, "--given", &v, cmd)) sz = v;
        else if (cli_opt(argc, argv, &i, "--by", &v, cmd)) sby = v;
        else if (cli_opt(argc, argv, &i, "--random", &v, cmd)) rnd = v;
        else if (cli_opt(argc, argv, &i, "--permutations", &v, cmd)) o.permutations = (int)cli_long(cmd, "--permutations", v, 0, 100000000);
        else if (cli_opt(argc, argv, &i, "--seed", &v, cmd)) o.seed = (uint64_t)cli_long(cmd, "--seed", v, 0, 0x7fffffffffffffffL);
        else if (cli_opt(argc, argv, &i, "--tile", &v, cmd)) o.tile = (int)cli_long(cmd, "--tile", v, 1, 16384);
        else if (cli_opt(argc, argv, &i, "--threads", &v, cmd)) threads = (int)cli_long(cmd, "--threads", v, 1, 1024);
        else if (cli_flag(argv, i, "--unbiased")) o.unbiased = 1;
        else if (cli_flag(argv, i, "--single")) o.single = 1;
        else if (cli_flag(argv, i, "--json")) json = 1;
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else if (argv[i][0] == '-') cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (rnd && (sx || sy)) cli_usage_error(cmd, "--random replaces --x and --y; give one or the other");
    if (!rnd && !sx) cli_usage_error(cmd, "missing --x FILE:DATASET");
    if (!rnd && !sy) cli_usage_error(cmd, "missing --y FILE:DATASET[:COLUMN]");

    Arr x, y, z = { 0 }, by = { 0 };
    if (rnd) random_arrays(&x, &y, rnd, o.seed);
    else { read_arr(&x, "--x", sx, 0); read_arr(&y, "--y", sy, 0); }
    if (sz) read_arr(&z, "--given", sz, 0);
    if (sby) read_arr(&by, "--by", sby, 1);
    const Arr *others[3] = { &y, sz ? &z : NULL, sby ? &by : NULL };
    const char *names[3] = { "--y", "--given", "--by" };
    for (int k = 0; k < 3; k++)
        if (others[k] && others[k]->n != x.n)
            df_die_collective(DF_EXIT_INPUT, "dcor: %s %s has %d samples but --x %s has %d", names[k], others[k]->spec,
                              others[k]->n, x.spec, x.n);
    if (sby && by.d != 1)
        df_die_collective(DF_EXIT_INPUT, "dcor: --by %s has %d columns; pick one with :COLUMN", sby, by.d);

    dist_set_blas_threads(threads);
    o.rank = dist_rank();
    o.nranks = dist_size();
    o.red = dist_reducer();
    o.progress = 1;  // drawn by rank 0 only
    progress_enable(dist_rank() == 0 && !quiet);
    if (json && !progress_on_terminal()) progress_enable(0);  // stdout is the JSON object alone
    DcorVar vx = { x.x, x.n, x.d }, vy = { y.x, y.n, y.d }, vz = { z.x, z.n, z.d };
    DcorResult res;
    DcorGroups *g = sby ? xcalloc(1, sizeof(DcorGroups)) : NULL;
    DfError err;
    double t0 = df_now();
    if (dcor_compute(&res, &vx, &vy, sz ? &vz : NULL, &o, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    if (g && dcor_by_group(g, &vx, &vy, sz ? &vz : NULL, by.x, &o, &err)) df_die_collective(DF_EXIT_INPUT, "%s", err.msg);
    double secs = df_now() - t0;

    if (dist_rank() == 0) {
        if (json) {
            printf("{");
            json_result(&res, sz != NULL, o.permutations);
            if (o.permutations) printf(", \"permutations\": %d", o.permutations);
            if (g) {
                printf(", \"groups\": {");
                for (int k = 0; k < g->n_groups; k++) {
                    printf("%s\"%.17g\": {", k ? ", " : "", g->value[k]);
                    json_result(&g->r[k], sz != NULL, o.permutations);
                    printf("}");
                }
                printf("}");
            }
            printf(", \"d_x\": %d, \"d_y\": %d, \"seconds\": %.6g}\n", x.d, y.d, secs);
        } else {
            printf("x: %s (%d x %d)   y: %s (%d x %d)%s%s\n", x.spec, x.n, x.d, y.spec, y.n, y.d, sz ? "   given: " : "", sz ? sz : "");
            table_result(&res, sz ? "z" : NULL, o.permutations);
            if (g)
                for (int k = 0; k < g->n_groups; k++) {
                    printf("group %s = %g:\n", sby, g->value[k]);
                    table_result(&g->r[k], sz ? "z" : NULL, o.permutations);
                }
            printf("  time                       %.3f s (%d rank%s)\n", secs, o.nranks, o.nranks == 1 ? "" : "s");
        }
    }
    free(g);
    free(x.x); free(y.x); free(z.x); free(by.x);
    return 0;
}
