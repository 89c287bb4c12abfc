#!/usr/bin/python3
"""gen_debias_ref.py: reference numbers for the debiasing losses (tests/test_debias.c), from
PyTorch, written from the papers' and references' equations (../shared/DESIGN.md 3.2, 3.3),
independently of the C code.

Regenerate (needs PyTorch; CI only reads the committed files):

    /usr/bin/python3 tests/gen_debias_ref.py tests/ref

Deterministic (fixed seeds, float64, one thread). Files (the text format of gen_torch_ref.py):

  end.txt          EnD on fixed features: R_perp, R_par (every eligible pair: the clean
                   definition), their gradient wrt the features through the normalisation;
                   a second batch where one bias class has a single sample, and one where no
                   pair shares a label across bias classes (R_par = 0).
  mi.txt           the statistics network T(c, z) (3 hidden layers, leaky ReLU 0.2) on fixed
                   parameters, the Donsker-Varadhan bound with the permutation the C side
                   draws (its xoshiro256** generator, ported below), and the bound's gradient
                   wrt T's parameters and wrt z.
  mi_schedule.txt  the MI training schedule of the reference, step by step, on a tiny network
                   (linear 6->4 without bias, batchnorm, tanh = the bottleneck, linear 4->3): per epoch an
                   estimator-only pass over the batches, then per batch a cross-entropy step
                   (Adam with L2 weight decay), the MI step at the new parameters (each encoder
                   tensor's gradient of I scaled to min(|g_CE|, |g_I|) / |g_I|, Adam at lr *
                   lambda, no weight decay) and estimator steps (Adam, maximising I) on the
                   features of the MI step's forward; the first epoch is warm-up (no MI step;
                   the bound is still drawn and logged). Initial and final parameters, running
                   statistics, and each epoch's mean estimates.
  clad.txt         CLAD's InfoNCE term (DESIGN 3.4, the reference's cal_contrastive_loss and
                   Neg_Sample_Dictionary): queues initialised from a first batch's anchors of
                   other classes, pushed with a step's positives by background class (one
                   class receives more than the queue holds), then the mean over anchors of
                   -log(e^{s(a,p)/tau} / (e^{s(a,p)/tau} + sum_m e^{s(a,q_m)/tau})) with
                   torch's cosine_similarity, its rows, and its gradient wrt anchors and positives.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_torch_ref import DT, Writer, f32  # noqa: E402  (the reference files' one writer)

torch.set_num_threads(1)
M64 = (1 << 64) - 1


# ---- the C side's generator (base/rng.c), for the permutations of the bound ----------------

def splitmix64(x):
    x = (x + 0x9e3779b97f4a7c15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return x, z ^ (z >> 31)


class Rng:
    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x, v = splitmix64(x)
            self.s.append(v)

    @staticmethod
    def stream(seed, a, b):
        x, h = splitmix64(seed & M64)
        h ^= (a * 0xd1342543de82ef95) & M64
        x, h = splitmix64(h)
        h ^= (b * 0x9e3779b97f4a7c15) & M64
        return Rng(h)

    def u64(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        if n <= 1:
            return 0
        limit = M64 - M64 % n
        while True:
            x = self.u64()
            if x < limit:
                return x % n

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def mi_permutation(B, seed, draw):
    return Rng.stream(seed, 0x4D49, draw).permutation(B)


# ---- EnD --------------------------------------------------------------------------------------

def end_terms(f, c, y):
    """R_perp and R_par over every pair i < j (the clean definition)."""
    z = F.normalize(f, dim=1)
    g = torch.clamp(z @ z.t(), -1.0, 1.0)
    B = f.shape[0]
    perp = {}
    m_perp = 0
    par = torch.zeros((), dtype=DT)
    m_par = 0
    for i in range(B):
        for j in range(i + 1, B):
            if c[i] == c[j]:
                perp[c[i]] = perp.get(c[i], 0) + g[i, j]
                m_perp += 1
            elif y[i] == y[j]:
                par = par + (1 + g[i, j]) / 2
                m_par += 1
    r_perp = sum(torch.abs(v) for v in perp.values()) / m_perp if m_perp else torch.zeros((), dtype=DT)
    r_par = 1 - par / m_par if m_par else torch.zeros((), dtype=DT)
    return r_perp, r_par


def gen_end(outdir):
    w = Writer(os.path.join(outdir, "end.txt"), "EnD reference values (tests/gen_debias_ref.py)")
    gen = torch.Generator().manual_seed(7)
    cases = [
        ("a", 12, 5, [0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 2, 1], [0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1], 1.0, 1.0),
        # bias class 2 has one sample (no same-class pair of it)
        ("b", 9, 4, [0, 0, 1, 1, 1, 0, 2, 0, 1], [1, 0, 1, 0, 0, 1, 1, 0, 1], 0.7, 1.3),
        # every label's samples share one bias class: no entangle pair, R_par = 0
        ("c", 6, 3, [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], 1.0, 2.0),
    ]
    for name, B, d, c, y, alpha, beta in cases:
        f = f32(torch.randn(B, d, generator=gen, dtype=DT))
        f.requires_grad_(True)
        r_perp, r_par = end_terms(f, c, y)
        loss = alpha * r_perp + beta * r_par
        loss.backward()
        w.add(name + ".f", f, exact32=True)
        w.add(name + ".c", torch.tensor(c, dtype=DT), exact32=True)
        w.add(name + ".y", torch.tensor(y, dtype=DT), exact32=True)
        w.add(name + ".alpha", torch.tensor(alpha, dtype=DT))
        w.add(name + ".beta", torch.tensor(beta, dtype=DT))
        w.add(name + ".r_perp", r_perp)
        w.add(name + ".r_par", r_par)
        w.add(name + ".grad", f.grad)
    w.close()


# ---- MI -------------------------------------------------------------------------------------

class StatNet:
    """T(c, z): W1 [one-hot(c), z] + b1 -> leaky 0.2 -> W2 -> leaky -> W3 -> leaky -> W4 (-> 1)."""

    def __init__(self, n_bias, d, h, gen):
        self.n_bias = n_bias
        shapes = [(h, n_bias + d), (h,), (h, h), (h,), (h, h), (h,), (1, h), (1,)]
        self.p = [f32(0.4 * torch.randn(*s, generator=gen, dtype=DT)).requires_grad_(True) for s in shapes]

    def __call__(self, c, z):
        x = torch.cat([F.one_hot(torch.tensor(c), self.n_bias).to(DT), z], dim=1)
        W1, b1, W2, b2, W3, b3, W4, b4 = self.p
        h = F.leaky_relu(x @ W1.t() + b1, 0.2)
        h = F.leaky_relu(h @ W2.t() + b2, 0.2)
        h = F.leaky_relu(h @ W3.t() + b3, 0.2)
        return (h @ W4.t() + b4).reshape(-1)

    def flat(self):
        return torch.cat([q.detach().reshape(-1) for q in self.p])


def dv_bound(T, c, z, perm):
    tj = T(c, z)
    tm = T([c[k] for k in perm], z)
    return tj.mean() - (torch.logsumexp(tm, 0) - torch.log(torch.tensor(float(len(c)), dtype=DT)))


def gen_mi(outdir):
    w = Writer(os.path.join(outdir, "mi.txt"), "MI reference values (tests/gen_debias_ref.py)")
    gen = torch.Generator().manual_seed(11)
    B, d, h, nb, seed, draw = 10, 4, 5, 3, 1234, 7
    T = StatNet(nb, d, h, gen)
    c = [0, 1, 2, 2, 1, 0, 0, 1, 2, 1]
    z = f32(torch.randn(B, d, generator=gen, dtype=DT)).requires_grad_(True)
    perm = mi_permutation(B, seed, draw)
    I = dv_bound(T, c, z, perm)
    I.backward()
    w.add("B", torch.tensor(B, dtype=DT))
    w.add("d", torch.tensor(d, dtype=DT))
    w.add("h", torch.tensor(h, dtype=DT))
    w.add("n_bias", torch.tensor(nb, dtype=DT))
    w.add("seed", torch.tensor(seed, dtype=DT))
    w.add("draw", torch.tensor(draw, dtype=DT))
    w.add("params", T.flat(), exact32=True)
    w.add("c", torch.tensor(c, dtype=DT), exact32=True)
    w.add("z", z, exact32=True)
    w.add("perm", torch.tensor(perm, dtype=DT), exact32=True)
    w.add("tj", T(c, z).detach())
    w.add("I", I)
    w.add("grad_params", torch.cat([q.grad.reshape(-1) for q in T.p]))
    w.add("grad_z", z.grad)
    w.close()


# ---- MI's schedule on a tiny network ----------------------------------------------------------

def adam_step(params, grads, state, lr, wd=0.0, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam's update (L2 weight decay added to the gradient), on lists of tensors."""
    state["t"] = state.get("t", 0) + 1
    t = state["t"]
    for k, (p, g) in enumerate(zip(params, grads)):
        g = g + wd * p.detach() if wd else g
        m = state.setdefault(("m", k), torch.zeros_like(p))
        v = state.setdefault(("v", k), torch.zeros_like(p))
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v / (1 - b2 ** t)).sqrt().add_(eps)
        with torch.no_grad():
            p.sub_(lr / (1 - b1 ** t) * m / denom)


class TinyNet:
    def __init__(self, gen):
        # no bias before the batchnorm: its gradient would be rounding noise, which Adam's
        # normalisation turns into steps of size lr -- different noise in float32 and float64
        self.enc_w = f32(0.5 * torch.randn(4, 6, generator=gen, dtype=DT)).requires_grad_(True)
        self.bn_w = f32(1 + 0.1 * torch.randn(4, generator=gen, dtype=DT)).requires_grad_(True)
        self.bn_b = f32(0.1 * torch.randn(4, generator=gen, dtype=DT)).requires_grad_(True)
        self.fc_w = f32(0.5 * torch.randn(3, 4, generator=gen, dtype=DT)).requires_grad_(True)
        self.fc_b = f32(0.1 * torch.randn(3, generator=gen, dtype=DT)).requires_grad_(True)
        self.rm = torch.zeros(4, dtype=DT)
        self.rv = torch.ones(4, dtype=DT)

    def params(self):
        return [self.enc_w, self.bn_w, self.bn_b, self.fc_w, self.fc_b]

    def encoder(self):
        return [self.enc_w, self.bn_w, self.bn_b]

    def forward(self, x, update_running=True):
        a = x @ self.enc_w.t()
        mean = a.mean(0)
        var = a.var(0, unbiased=False)
        if update_running:
            with torch.no_grad():
                n = a.shape[0]
                self.rm.mul_(0.9).add_(0.1 * mean.detach())
                self.rv.mul_(0.9).add_(0.1 * var.detach() * n / (n - 1))
        bn = (a - mean) / torch.sqrt(var + 1e-5) * self.bn_w + self.bn_b
        z = torch.tanh(bn)
        return z, z @ self.fc_w.t() + self.fc_b


def gen_mi_schedule(outdir):
    w = Writer(os.path.join(outdir, "mi_schedule.txt"), "MI schedule reference (tests/gen_debias_ref.py)")
    gen = torch.Generator().manual_seed(19)
    B, nb, h, seed = 8, 2, 5, 99
    lr, wd, lam, est_lr, est_steps, epochs, warmup = 0.01, 0.01, 0.5, 0.005, 2, 3, 1
    net = TinyNet(gen)
    T = StatNet(nb, 4, h, gen)
    batches = []
    for _ in range(2):
        x = f32(torch.randn(B, 6, generator=gen, dtype=DT))
        y = torch.randint(0, 3, (B,), generator=gen)
        c = torch.randint(0, nb, (B,), generator=gen).tolist()
        c[0], c[1] = 0, 1  # both bias classes in every batch
        batches.append((x, y, c))
    for k, q in enumerate(net.params()):
        w.add("init.%d" % k, q, exact32=True)
    w.add("init.T", T.flat(), exact32=True)
    for k, (x, y, c) in enumerate(batches):
        w.add("x%d" % k, x, exact32=True)
        w.add("y%d" % k, y.to(DT), exact32=True)
        w.add("c%d" % k, torch.tensor(c, dtype=DT), exact32=True)
    for name, v in [("B", B), ("h", h), ("seed", seed), ("lr", lr), ("weight_decay", wd), ("lambda", lam),
                    ("estimator_lr", est_lr), ("estimator_steps", est_steps), ("epochs", epochs), ("warmup", warmup)]:
        w.add(name, torch.tensor(float(v), dtype=DT))
    main_state, alt_state, t_state = {}, {}, {}
    draw = [0]

    def bound(z, c):
        perm = mi_permutation(B, seed, draw[0])
        draw[0] += 1
        return dv_bound(T, c, z, perm)

    def fit(z, c):
        I = bound(z.detach(), c)
        g = torch.autograd.grad(-I, T.p)
        adam_step(T.p, g, t_state, est_lr)
        return I.item()

    for epoch in range(epochs):
        mis, fits = [], []
        for x, y, c in batches:  # the estimator-only pass: batch statistics, running ones kept
            z, _ = net.forward(x, update_running=False)
            fits.append(fit(z, c))
        for x, y, c in batches:
            z, logits = net.forward(x)  # the cross-entropy step
            g = torch.autograd.grad(F.cross_entropy(logits, y), net.params())
            adam_step(net.params(), g, main_state, lr, wd)
            if epoch < warmup:  # the bound is drawn and logged; the estimator fits on these features
                with torch.no_grad():
                    mis.append(bound(z, c).item())
            else:  # the MI step at the new parameters
                z, logits = net.forward(x)
                gu = torch.autograd.grad(F.cross_entropy(logits, y), net.encoder(), retain_graph=True)
                I = bound(z, c)
                gm = torch.autograd.grad(I, net.encoder())
                capped = [m * (min(u.norm(), m.norm()) / m.norm()) for u, m in zip(gu, gm)]
                adam_step(net.encoder(), capped, alt_state, lr * lam)
                mis.append(I.item())
            for _ in range(est_steps):
                fits.append(fit(z, c))
        w.add("epoch%d.mi" % epoch, torch.tensor(sum(mis) / len(mis), dtype=DT))
        w.add("epoch%d.mi_estimator" % epoch, torch.tensor(sum(fits) / len(fits), dtype=DT))
    for k, q in enumerate(net.params()):
        w.add("final.%d" % k, q)
    w.add("final.running_mean", net.rm)
    w.add("final.running_var", net.rv)
    w.add("final.T", T.flat())
    w.add("draws", torch.tensor(float(draw[0]), dtype=DT))
    w.close()


# ---- CLAD -----------------------------------------------------------------------------------

def clad_queues(a0, y0, n_classes, length):
    """The reference's first fill: queue k = the first `length` anchors whose label is not k."""
    return [a0[[i for i in range(len(y0)) if y0[i] != k][:length]].clone() for k in range(n_classes)]


def clad_push(queues, p, bg):
    """The reference's update: append the positives of background k to queue k, keep the last."""
    for k in range(len(queues)):
        idx = [i for i in range(len(bg)) if bg[i] == k]
        if idx:
            L = queues[k].shape[0]
            queues[k] = torch.cat([queues[k], p[idx].detach()])[len(idx):]
            assert queues[k].shape[0] == L
    return queues


def gen_clad(outdir):
    w = Writer(os.path.join(outdir, "clad.txt"), "CLAD reference values (tests/gen_debias_ref.py)")
    gen = torch.Generator().manual_seed(11)
    B, d, K, L, tau = 8, 5, 3, 4, 0.2
    y0 = [0, 1, 2, 0, 1, 2, 1, 0]
    y = [1, 2, 1, 2, 1, 2, 0, 0]
    bg = [0, 0, 0, 0, 0, 1, 2, 1]  # the class of each positive's background: never its own
    a0 = f32(torch.randn(B, d, generator=gen, dtype=DT))
    a = f32(torch.randn(B, d, generator=gen, dtype=DT)).requires_grad_(True)
    p = f32(torch.randn(B, d, generator=gen, dtype=DT)).requires_grad_(True)
    queues = clad_push(clad_queues(a0, y0, K, L), p, bg)
    pos = F.cosine_similarity(a, p)
    num = torch.exp(pos / tau)
    den = num.clone()
    for m in range(L):
        neg = torch.stack([queues[y[i]][m] for i in range(B)])
        den = den + torch.exp(F.cosine_similarity(a, neg) / tau)
    rows = -torch.log(num / den)
    loss = rows.mean()
    loss.backward()
    for name, v in (("a0", a0), ("y0", y0), ("a", a), ("p", p), ("y", y), ("bg", bg)):
        w.add(name, torch.as_tensor(v, dtype=DT), exact32=True)
    w.add("tau", torch.tensor(tau, dtype=DT))
    w.add("queues", torch.stack(queues), exact32=True)
    w.add("rows", rows)
    w.add("loss", loss)
    w.add("grad_a", a.grad)
    w.add("grad_p", p.grad)
    w.close()


def info_nce(a, p, y, queues, tau):
    """The rows of CLAD's term: positive p_i against the queue of anchor i's class."""
    num = torch.exp(F.cosine_similarity(a, p) / tau)
    den = num.clone()
    for m in range(queues[0].shape[0]):
        neg = torch.stack([queues[y[i]][m] for i in range(a.shape[0])])
        den = den + torch.exp(F.cosine_similarity(a, neg) / tau)
    return -torch.log(num / den)


def gen_clad_steps(outdir):
    """Training steps with CLAD on TinyNet: the anchors' forward, then the positives' through
    the same network (both update BatchNorm's running statistics, in that order), the queues
    filled from the first batch's anchors and pushed with the step's positives before the
    loss; loss = CE + lambda * mean InfoNCE; Adam."""
    w = Writer(os.path.join(outdir, "clad_steps.txt"), "CLAD training-step reference (tests/gen_debias_ref.py)")
    gen = torch.Generator().manual_seed(23)
    B, K, L, tau, lam, lr, wd, epochs = 8, 3, 4, 0.2, 0.7, 0.01, 0.01, 2
    net = TinyNet(gen)
    batches = []
    for _ in range(2):
        x = f32(torch.randn(B, 6, generator=gen, dtype=DT))
        xp = f32(torch.randn(B, 6, generator=gen, dtype=DT))
        y = torch.randint(0, K, (B,), generator=gen)
        if not batches:  # the first fill needs L anchors outside each class (the reference tops up at random)
            y = torch.tensor([0, 1, 2, 0, 1, 2, 1, 0])
        bg = [(int(y[i]) + 1 + int(torch.randint(0, K - 1, (1,), generator=gen))) % K for i in range(B)]
        batches.append((x, xp, y, bg))
    for k, q in enumerate(net.params()):
        w.add("init.%d" % k, q, exact32=True)
    for k, (x, xp, y, bg) in enumerate(batches):
        w.add("x%d" % k, x, exact32=True)
        w.add("xp%d" % k, xp, exact32=True)
        w.add("y%d" % k, y.to(DT), exact32=True)
        w.add("bg%d" % k, torch.tensor(bg, dtype=DT), exact32=True)
    for name, v in [("B", B), ("K", K), ("queue", L), ("tau", tau), ("lambda", lam), ("lr", lr), ("weight_decay", wd),
                    ("epochs", epochs)]:
        w.add(name, torch.tensor(float(v), dtype=DT))
    state, queues = {}, None
    for epoch in range(epochs):
        values, coss = [], []
        for x, xp, y, bg in batches:
            z, logits = net.forward(x)
            zp, _ = net.forward(xp)
            if queues is None:
                queues = clad_queues(z.detach(), y.tolist(), K, L)
            queues = clad_push(queues, zp, bg)
            rows = info_nce(z, zp, y.tolist(), queues, tau)
            loss = F.cross_entropy(logits, y) + lam * rows.mean()
            g = torch.autograd.grad(loss, net.params())
            adam_step(net.params(), g, state, lr, wd)
            values.append(lam * rows.mean().item())
            coss.append(F.cosine_similarity(z, zp).mean().item())
        w.add("epoch%d.value" % epoch, torch.tensor(sum(values) / len(values), dtype=DT))
        w.add("epoch%d.pos_cos" % epoch, torch.tensor(sum(coss) / len(coss), dtype=DT))
    for k, q in enumerate(net.params()):
        w.add("final.%d" % k, q)
    w.add("final.running_mean", net.rm)
    w.add("final.running_var", net.rv)
    w.add("final.queues", torch.stack(queues))
    w.close()


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/ref"
    gen_end(outdir)
    gen_mi(outdir)
    gen_mi_schedule(outdir)
    gen_clad(outdir)
    gen_clad_steps(outdir)


if __name__ == "__main__":
    main()
