// mdn_util.h: what the MDN tests share (tests/test_mdn*.c): an independent least-squares
// reference in double, metadata rows and schemas of age (continuous) and site (levels 0, 2, 5),
// design rows, and giving the layer fixture (testutil.h) a batch's metadata.
#ifndef DF_MDN_UTIL_H
#define DF_MDN_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include "testutil.h"
#include "base/rng.h"
#include "data/cohort.h"
#include "nn/metadata.h"

// beta (k,d) = (X^T X + ridge I)^-1 X^T F by Gauss-Jordan elimination with partial pivoting on
// the normal equations. X (n,k) double, F (n,d) float.
void ols_ref(double *beta, const double *X, const float *F, int n, int k, int d, double ridge);
// out (n,d) = F - X_S beta_S in double.
void residual_ref(double *out, const float *F, const double *X, const double *beta, const unsigned char *removed, int n, int k,
                  int d);
// Worst |got - want| / (atol + rtol |want|), printing the worst entry when > 1.
double ratio_d(const char *what, const float *got, const double *want, size_t n, double atol, double rtol);
double ratio_dd(const char *what, const double *got, const double *want, size_t n, double atol, double rtol);

extern const char *const AS_NAMES[];  // { "age", "site" }
extern const MetaKind AS_KINDS[];     // continuous, categorical
// A cohort of metadata only (no images): what meta_schema_build reads.
void cohort_of(Cohort *c, int n, int k, const char *const *names, const MetaKind *kinds, double *meta, int32_t *labels);
// n rows of [age, site] with site cycling through {0, 2, 5} (every site present when n >= 3)
// and labels random 0/1.
void random_rows(double *meta, int32_t *labels, int n, Rng *rng);
// The schema of age (continuous) and site (levels 0, 2, 5), binary label.
void age_site_schema(MetaSchema *s);
// The schema of one categorical column b (levels 0, 1) and three classes.
void b_three_class_schema(MetaSchema *s);
// Design rows (n,k) of raw rows.
void design_rows(double *X, const MetaDesign *d, const MetaSchema *s, const double *meta, const int32_t *labels, int n);
// n random rows (random_rows) and their design rows X (n,k).
void random_design(double *X, double *meta, int32_t *labels, int n, const MetaDesign *d, const MetaSchema *s, Rng *rng);
// K (k,k) = (X^T X)^-1 of n design rows X (n,k), asserting X^T X is invertible.
void kernel_of(double *K, const double *X, int n, int k);
// The design an [mdn] layer with these keep / remove lists builds.
MetaDesign mdn_design(const MetaSchema *s, const char *keep, const char *remove);
// A network with two [mdn] layers removing age and site: after a conv (dataset kernel) and
// after a linear layer (batch kernel, ridge 0.1), for inputs (1, 4, 4, 3).
extern const char *NET_INI;
// A batch of n samples on one rank with these images, metadata rows (age, site) and labels.
Batch mdn_batch(float *images, int n, double *meta, int32_t *labels);
// The fixture's batch brings these metadata rows (schema columns each) and labels.
void mdn_fx_meta(TuLayer *t, double *meta, int32_t *labels);
#endif
