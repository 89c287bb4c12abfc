// mdn.h: Metadata Normalization (Lu et al., CVPR 2021; DESIGN.md section 3.1), with the
// regression statistics summed over the GLOBAL batch on all ranks.
// A design row x_i = [kept columns (labels)..., removed columns (confounders)..., 1] (see
// metadata.h); S marks the removed columns and the intercept. Features f_i (a row of d values:
// the whole per-sample feature map, flattened). Training:
//   G = sum over the global batch of x_i^T f_i            (k x d, one all-reduce)
//   beta = s K G, with K = (X^T X)^-1 of the training set and s = N / B (dataset kernel), or
//          K = pinv(X_B^T X_B + ridge I) of the global batch and s = 1 (batch kernel: the
//          pseudo-inverse, so a batch without some site or class is fitted on the levels it
//          has instead of stopping the run)
//   r_i = f_i - x_{i,S} beta_S
// Backward, with M = s K_{S,:} and H = sum over the global batch of x_{i,S}^T g_i (one
// all-reduce): dL/df_j = g_j - x_j M^T H. Evaluation subtracts x_{i,S} beta_run,S, where
// beta_run <- (1 - m) beta_run + m beta at every training step.
#ifndef DF_MDN_H
#define DF_MDN_H
#include "base/reduce.h"

// Kinv (k,k) = A^-1 for a symmetric positive definite A (k,k), by Cholesky (LAPACK dpotrf and
// dpotrs) in double. Returns
// -1 when A is not (numerically) positive definite; *bad is then the first column whose
// pivot vanished relative to its diagonal (it is a linear combination of earlier columns, or
// all zero).
int mdn_inverse_spd(double *Kinv, const double *A, int k, int *bad);

// Kinv (k,k) = the Moore-Penrose pseudo-inverse of a symmetric positive semi-definite A (k,k),
// from its eigen-decomposition (LAPACK dsyev): eigenvalues below MDN_PINV_RCOND times the
// largest count as zero. Returns the rank. For X^T X of a global batch that lacks a level
// (a dummy column of zeros) or has collinear columns, beta = Kinv X^T F is the minimum-norm
// least-squares fit: the missing level's coefficient is 0, the others those of the columns
// present.
#define MDN_PINV_RCOND 1e-10
int mdn_pinv_sym(double *Kinv, const double *A, int k);

// XtX (k,k) += X^T X for n design rows X (n,k).
void mdn_accumulate_xtx(double *XtX, const double *X, int n, int k);

// out (B,d) and beta (k,d) from inp (B,d) and the design rows X (B,k). K (k,k) is the kernel;
// n_train > 0 selects the dataset kernel (s = n_train / global batch), n_train = 0 the batch
// kernel (s = 1, K already computed from this global batch). Returns s (0 for an empty
// global batch, when out = inp and beta is 0).
double mdn_forward_train(float *out, double *beta, const float *inp, const double *X, const double *K,
                         const unsigned char *removed, int B, int k, int d, double n_train, Reducer *red);
// dinp (B,d) += dout - X M^T H (see above); scale is what mdn_forward_train returned.
void mdn_backward(float *dinp, const float *dout, const double *X, const double *K, const unsigned char *removed,
                  int B, int k, int d, double scale, Reducer *red);
// R-MDN (Shah et al., ICML 2025; DESIGN.md 3.8): recursive least squares with forgetting,
// one step per global batch. The reference's
//   P <- P / lambda;  K = P X^T (I + X P X^T)^-1;  P <- P - K X P + rho I;  beta += K (F - X beta)
// is, by Woodbury, with A = lambda P^-1 + X^T X (k x k, not B x B):
//   beta += A^-1 (X^T F - X^T X beta);  P = A^-1 + rho I
// so the global batch enters through XtX = X^T X (k,k) and XtF = X^T F (k,d) alone: sums
// that all-reduce. P (k,k) and beta (k,d) are updated in place. beta is an estimate, not a
// function the network differentiates (the reference updates it under no_grad): the layer's
// gradient is the identity. Returns 0, or -1 when P or A is not positive definite (P, beta
// unchanged).
int mdn_rls_step(double *P, double *beta, const double *XtX, const double *XtF, int k, int d, double lambda, double rho);
// PMDN (Vento et al., MICCAI 2022; DESIGN.md 3.8): beta (k,d) is a tensor of its own, moved by
// its own Adam to minimise the penalty P = mean over the n x d values of (F - X beta)^2 of the
// global batch (n samples), F detached; the network then trains on F - X_S beta_S, beta a
// constant to it. grad (k,d) = dP/dbeta = -2 / (n d) (X^T F - X^T X beta): like R-MDN, the
// batch enters through XtX and XtF alone, sums that all-reduce.
void mdn_penalty_grad(double *grad, const double *beta, const double *XtX, const double *XtF, double n, int k, int d);
// out (B,d) = inp - X_S beta_S (no reduction: per sample).
void mdn_forward_eval(float *out, const float *inp, const double *X, const double *beta,
                      const unsigned char *removed, int B, int k, int d);
#endif
