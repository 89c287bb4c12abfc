// bgvariant.h: test sets that separate foreground from background, as the Background
// Challenge does (Xiao et al., ICLR 2021) for ImageNet-9, here for any cohort with masks
// (3D volumes, video clips, images). Each variant keeps a sample's label, metadata and mask
// and changes what lies outside its foreground:
//   original     the sample as it is;
//   mixed-same   its foreground on the background of another sample of the same class;
//   mixed-rand   its foreground on the background of a random other sample (any class);
//   only-bg      its foreground blanked (set to a fill value), the background kept.
// BG-gap = accuracy(mixed-same) - accuracy(mixed-rand): how much a network's answer follows
// the background rather than the object. "The background of sample j" is j with its own
// object removed (paste_background_only, data/paste.h), taken at every voxel outside sample
// i's mask, so the foreground keeps its values bit for bit and no second object appears.
#ifndef DF_BGVARIANT_H
#define DF_BGVARIANT_H
#include "base/common.h"
#include "data/cohort.h"

typedef enum { BG_ORIGINAL, BG_MIXED_SAME, BG_MIXED_RAND, BG_ONLY_BG, BG_N_VARIANTS } BgVariant;
extern const char *const bg_variant_names[BG_N_VARIANTS];  // "original", "mixed-same", ...

// partner (n): for mixed-same and mixed-rand, the sample whose background sample i takes --
// drawn uniformly among the others of its class (mixed-same) or among all others
// (mixed-rand), from the stream (seed, variant, i), so the pairs depend on the seed alone;
// for original and only-bg, i itself. -1 with a message naming `path` and the class when
// mixed-same finds a class with a single sample, or the cohort has fewer than 2 samples.
int bg_partners(int *partner, const Cohort *c, BgVariant v, uint64_t seed, const char *path, DfError *err);

// images (n, C, D, H, W) = the variant of c's images (c must have masks), with partners
// from bg_partners and `fill` for only-bg.
void bg_variant_images(float *images, const Cohort *c, BgVariant v, const int *partner, float fill);
#endif
