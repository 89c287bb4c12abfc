// bgvariant.c: the Background Challenge's test-set variants (see bgvariant.h).
#include "data/bgvariant.h"
#include <stdlib.h>
#include <string.h>
#include "base/rng.h"
#include "data/paste.h"

const char *const bg_variant_names[BG_N_VARIANTS] = { "original", "mixed-same", "mixed-rand", "only-bg" };

int bg_partners(int *partner, const Cohort *c, BgVariant v, uint64_t seed, const char *path, DfError *err) {
    for (int i = 0; i < c->n; i++) partner[i] = i;
    if (v == BG_ORIGINAL || v == BG_ONLY_BG) return 0;
    if (c->n < 2) return df_err(err, "%s: %s needs at least 2 samples, the shard has %d", path, bg_variant_names[v], c->n);
    int classes = 0;
    for (int i = 0; i < c->n; i++) classes = DF_MAX(classes, c->labels[i] + 1);
    // the samples grouped by class, in order: class y's are members[start[y] .. start[y] + count[y])
    int *count = xcalloc((size_t)classes, sizeof(int)), *start = xcalloc((size_t)classes + 1, sizeof(int));
    int *rank_in_class = xmalloc(sizeof(int) * (size_t)c->n), *members = xmalloc(sizeof(int) * (size_t)c->n);
    for (int i = 0; i < c->n; i++) rank_in_class[i] = count[c->labels[i]]++;
    for (int y = 0; y < classes; y++) start[y + 1] = start[y] + count[y];
    for (int i = 0; i < c->n; i++) members[start[c->labels[i]] + rank_in_class[i]] = i;
    int rc = 0;
    for (int i = 0; i < c->n && rc == 0; i++) {
        Rng r;
        rng_seed_stream(&r, seed, (uint64_t)v, (uint64_t)i);
        if (v == BG_MIXED_RAND) {
            int j = (int)rng_below(&r, (uint64_t)c->n - 1);  // among the others: skip i
            partner[i] = j >= i ? j + 1 : j;
        } else {
            int y = c->labels[i];
            if (count[y] < 2) {
                char name[META_NAME_LEN];
                cohort_class_name(c, y, name);
                rc = df_err(err, "%s: mixed-same: class '%s' has a single sample (sample %d), no other to take a background from",
                            path, name, i);
                break;
            }
            int j = (int)rng_below(&r, (uint64_t)count[y] - 1);  // among the class's others
            partner[i] = members[start[y] + (j >= rank_in_class[i] ? j + 1 : j)];
        }
    }
    free(count);
    free(start);
    free(rank_in_class);
    free(members);
    return rc;
}

void bg_variant_images(float *images, const Cohort *c, BgVariant v, const int *partner, float fill) {
    size_t numel = shape_numel(c->shape), sp = shape_spatial(c->shape);
    float *bg = xmalloc(numel * sizeof(float));
    for (int i = 0; i < c->n; i++) {
        const float *x = c->images + (size_t)i * numel;
        const uint8_t *mask = c->masks + (size_t)i * sp;
        float *out = images + (size_t)i * numel;
        if (v == BG_ORIGINAL) memcpy(out, x, numel * sizeof(float));
        else if (v == BG_ONLY_BG) paste_blank_foreground(out, x, mask, fill, c->shape);
        else {  // the partner's background without its own object, under this foreground
            int j = partner[i];
            paste_background_only(bg, c->images + (size_t)j * numel, c->masks + (size_t)j * sp, c->shape);
            paste_foreground(out, x, mask, bg, c->shape);
        }
    }
    free(bg);
}
