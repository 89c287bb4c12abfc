// end.h: EnD, "Entangling and Disentangling deep representations for bias correction"
// (Tartaglione, Barbano, Grangetto, CVPR 2021), as a loss term on a bottleneck layer
// (../shared/DESIGN.md 3.2). Over every pair i < j of the GLOBAL batch, with z_i = f_i /
// max(||f_i||, 1e-12) (f_i the layer's output for sample i, flattened), g_ij = clamp(z_i . z_j,
// -1, 1), bias classes c and labels y:
//   R_perp = (1 / M_perp) sum_k | sum_{i<j, c_i = c_j = k} g_ij |     M_perp: pairs with c_i = c_j
//   R_par  = 1 - (1 / M_par) sum_{i<j, y_i = y_j, c_i != c_j} (1 + g_ij) / 2
// and loss = main + alpha R_perp + beta R_par. A term with no pairs is 0 (as the reference).
// R_par uses every eligible pair: the reference's masks (a lower triangle per pair of bias
// classes) count only the pairs whose bias class comes first in its loop order -- about half
// of them, and not the same half for every class -- an indexing quirk not carried over.
//
// Each rank gathers the global batch's features (exactly, reduce_gather_f32) and computes the
// pair sums in double in global order, so every rank, at any rank count, gets the same value
// bit for bit and the exact gradient for its own samples.
#ifndef DF_END_H
#define DF_END_H
#include "nn/bias.h"

typedef struct {
    double r_perp, r_par;
    long m_perp, m_par;                 // pairs counted
    double class_sum[BIAS_MAX_CLASSES]; // sum of g_ij over the pairs of each bias class (its sign drives the gradient)
} EndTerms;

// z (B, d) = rows of f scaled to unit length (rows of norm below 1e-12 are divided by 1e-12, as
// torch's F.normalize); norm (B) = their lengths.
void end_normalize(double *z, double *norm, const float *f, int B, int d);
// The two terms of a batch of B unit rows z with bias classes c (< BIAS_MAX_CLASSES) and labels y.
EndTerms end_forward(const double *z, const int *c, const int *y, int B, int d);
// dz (rows lo..hi-1 of the batch, (hi - lo, d)) += alpha dR_perp/dz_i + beta dR_par/dz_i.
void end_backward(double *dz, const double *z, const int *c, const int *y, int B, int d, int lo, int hi, double alpha, double beta,
                  const EndTerms *v);
// df (n, d) += the gradient through the normalisation: (dz - z (z . dz)) / norm, for n rows.
void end_normalize_backward(float *df, const double *dz, const double *z, const double *norm, int n, int d);
#endif
