#!/usr/bin/python3
"""gen_mdn_ref.py: reference numbers from PyTorch for MDN (tests/test_mdn.c).

Regenerate (needs PyTorch; CI does not, it only reads the committed files):

    /usr/bin/python3 tests/gen_mdn_ref.py tests/ref

Independent of the C code: the design matrix is built here from the raw metadata (label kept
as one 0/1 column since it is binary; age as it is; site dummy-coded with levels {0, 2, 5},
level 0 dropped; intercept last), and MDN's training forward is the global-batch formula of
DESIGN.md section 3.1 written in torch float64:

    K = (X_train^T X_train)^-1            (dataset kernel, s = N / B), or
    K = (X_b^T X_b + ridge I)^-1          (batch kernel, s = 1)
    beta = s K X_b^T F,   out = F - X_{b,S} beta_S

and autograd gives dL/dF for L = sum(out * R). The metadata row is
[label, age, site=2, site=5, 1]; S = {age, site=2, site=5, intercept}.

Files (format of gen_torch_ref.py: `name ndim d0 d1 ...` then the values; '#' comments):
  mdn_dataset.txt  dataset kernel: train_meta (N,2: age, site), train_labels (N),
                   batch_meta (B,2), batch_labels (B), X (B,k), K (k,k), F (B,d), R (B,d),
                   beta (k,d), out (B,d), dF (B,d), n_train, scale
  mdn_batch.txt    batch kernel with ridge: the same keys (train_* absent), plus ridge
Inputs are float32-exact values; every number is written with %.17g (exact in double).
"""
import os
import sys

import torch

torch.set_num_threads(1)
DT = torch.float64
SITES = [0.0, 2.0, 5.0]


class Writer:
    def __init__(self, path, comment):
        self.path = path
        self.lines = ["# " + c for c in comment.strip().splitlines()]

    def add(self, name, t, exact32=False):
        t = torch.as_tensor(t, dtype=DT).detach()
        if t.dim() == 0:
            t = t.reshape(1)
        # %.17g always: the C side reads metadata into double, where "%.9g" of a float32
        # value is not the same number (it only round-trips through float32)
        fmt = "%.17g"
        vals = t.reshape(-1).tolist()
        self.lines.append("%s %d %s" % (name, t.dim(), " ".join(str(d) for d in t.shape)))
        for i in range(0, len(vals), 8):
            self.lines.append(" ".join(fmt % v for v in vals[i:i + 8]))

    def close(self):
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def f32(t):
    return t.to(torch.float32).to(DT)


def random_meta(g, n):
    """(n,2) [age, site] and (n) binary labels; ages float32-exact, every site present."""
    age = f32(20.0 + 60.0 * torch.rand(n, generator=g, dtype=DT))
    site = torch.tensor([SITES[i % 3] for i in range(n)], dtype=DT)
    site = site[torch.randperm(n, generator=g)]
    labels = torch.tensor([i % 2 for i in range(n)], dtype=DT)[torch.randperm(n, generator=g)]
    return torch.stack([age, site], 1), labels


def design(meta, labels):
    """[label, age, site=2, site=5, 1]"""
    n = meta.shape[0]
    cols = [labels, meta[:, 0], (meta[:, 1] == 2.0).to(DT), (meta[:, 1] == 5.0).to(DT), torch.ones(n, dtype=DT)]
    return torch.stack(cols, 1)


S = torch.tensor([0, 1, 1, 1, 1], dtype=torch.bool)


def mdn_forward(F, X, K, s):
    beta = s * K @ X.t() @ F
    out = F - X[:, S] @ beta[S, :]
    return out, beta


def case(outdir, name, batch_kernel, seed):
    g = torch.Generator().manual_seed(seed)
    N, B, d = 24, 7, 5
    w = Writer(os.path.join(outdir, name), __doc__.split("\n")[0] + "\n" + name + " (generated; do not edit)")
    bmeta, blabels = random_meta(g, B)
    X = design(bmeta, blabels)
    if batch_kernel:
        ridge = 0.5
        K = torch.linalg.inv(X.t() @ X + ridge * torch.eye(5, dtype=DT))
        s = 1.0
    else:
        tmeta, tlabels = random_meta(g, N)
        Xt = design(tmeta, tlabels)
        K = torch.linalg.inv(Xt.t() @ Xt)
        s = N / B
        w.add("train_meta", tmeta, True)
        w.add("train_labels", tlabels, True)
        w.add("n_train", torch.tensor(float(N), dtype=DT), True)
    # features with a confounder effect, so the residuals differ clearly from F
    F = f32(torch.randn(B, d, generator=g, dtype=DT) + 0.05 * bmeta[:, :1] + 0.5 * X[:, 2:3])
    R = f32(torch.randn(B, d, generator=g, dtype=DT))
    Fv = F.clone().requires_grad_(True)
    out, beta = mdn_forward(Fv, X, K, s)
    (out * R).sum().backward()
    w.add("batch_meta", bmeta, True)
    w.add("batch_labels", blabels, True)
    if batch_kernel:
        w.add("ridge", torch.tensor(ridge, dtype=DT), True)
    w.add("scale", torch.tensor(s, dtype=DT))
    w.add("X", X, True)
    w.add("K", K)
    w.add("F", F, True)
    w.add("R", R, True)
    w.add("beta", beta)
    w.add("out", out)
    w.add("dF", Fv.grad)
    w.close()


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/ref"
    case(outdir, "mdn_dataset.txt", False, 6)
    case(outdir, "mdn_batch.txt", True, 7)


if __name__ == "__main__":
    main()
