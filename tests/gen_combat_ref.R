#!/usr/bin/env Rscript
# gen_combat_ref.R: reference values for tests/test_combat.c from Bioconductor sva's ComBat
# (Debian r-bioc-sva, 3.46.0). Run once from the source tree:  Rscript tests/gen_combat_ref.R
# It writes tests/ref/combat.txt in the reference text format (tests/testutil.h, tu_ref_load):
# a header `name ndim d0 d1 ...`, then the numbers in row-major (C) order. Per case N:
#   caseN.meta       1 4   n, v, S, prior (0 parametric, 1 non-parametric, 2 no empirical Bayes)
#   caseN.y          n v   the data, subjects x voxels (sva wants voxels x subjects: transposed)
#   caseN.site       n     0-based site, numbered in the order of levels(factor(batch))
#   caseN.cov        n kc  covariates without intercept (absent when there are none)
#   caseN.out        n v   sva::ComBat's output, transposed back (case4: the hand-made no-EB fit)
#   caseN.gamma_star S v   the site location after shrinkage \ from the hand implementation below,
#   caseN.delta_star S v   the site scale after shrinkage    / whose output equals sva's (checked)
#   caseN.iterations S     parametric: it.sol's iteration count per site (from a counting copy of
#                          it.sol whose result is identical() to sva:::it.sol's)
#   caseN.priors     4 S   gamma.bar, t2, a.prior, b.prior
# Data: per-voxel means, site-specific additive shifts and multiplicative scales, age and sex
# effects, sites of different sizes and age ranges; quantised to 1/256 (as image intensities
# are), so y is exact in binary and short in the file.
suppressMessages(library(sva))
stopifnot(packageVersion("sva") == "3.46.0")
out_path <- "tests/ref/combat.txt"

# ---- data ------------------------------------------------------------------------------------
# sizes: subjects per site; returns y (n x v), batch (labels), age, sex -- subjects shuffled so
# that the sites interleave.
simulate <- function(sizes, v, seed) {
  set.seed(seed)
  S <- length(sizes)
  n <- sum(sizes)
  batch <- rep(paste0("site", LETTERS[seq_len(S)]), sizes)
  age_lo <- seq(20, 50, length.out = S)                     # sites recruit different ages
  age <- round(unlist(lapply(seq_len(S), function(s) runif(sizes[s], age_lo[s], age_lo[s] + 30))) * 4) / 4
  sex <- rbinom(n, 1, 0.5)
  mu <- rnorm(v, 100, 15)                                    # per-voxel mean
  b_age <- rnorm(v, -0.3, 0.1)                               # atrophy with age
  b_sex <- rnorm(v, 2, 1)
  shift <- matrix(rnorm(S * v, rep(rnorm(S, 0, 4), v), 2), S, v)     # additive site effects
  scale <- matrix(exp(rnorm(S * v, rep(rnorm(S, 0, 0.3), v), 0.1)), S, v)  # multiplicative
  s_idx <- as.integer(factor(batch))
  y <- matrix(0, n, v)
  for (i in seq_len(n)) {
    y[i, ] <- mu + b_age * (age[i] - 50) + b_sex * sex[i] + shift[s_idx[i], ] + scale[s_idx[i], ] * rnorm(v, 0, 5)
  }
  y <- round(y * 256) / 256
  perm <- sample(n)
  list(y = y[perm, , drop = FALSE], batch = batch[perm], age = age[perm], sex = sex[perm])
}

# ---- ComBat by hand, following sva 3.46's ComBat step by step -----------------------------------
# star: "it.sol" (parametric), "int.eprior" (non-parametric) or "none" (gamma.star = gamma.hat,
# delta.star = delta.hat: no empirical Bayes). Returns the output (voxels x subjects) and the
# estimates. Checked against sva::ComBat for the parametric and non-parametric cases below, so
# everything except the star step is sva's; "none" then differs from sva only in that step.
it_sol_counting <- function(sdat, g.hat, d.hat, g.bar, t2, a, b, conv = 1e-04) {
  # sva:::it.sol, plus the iteration count (the loop body is sva's, unchanged)
  n <- rowSums(!is.na(sdat))
  g.old <- g.hat
  d.old <- d.hat
  change <- 1
  count <- 0
  while (change > conv) {
    g.new <- sva:::postmean(g.hat, g.bar, n, d.old, t2)
    sum2 <- rowSums((sdat - g.new %*% t(rep(1, ncol(sdat))))^2, na.rm = TRUE)
    d.new <- sva:::postvar(sum2, n, a, b)
    change <- max(abs(g.new - g.old)/g.old, abs(d.new - d.old)/d.old)
    g.old <- g.new
    d.old <- d.new
    count <- count + 1
  }
  list(adjust = rbind(g.new, d.new), count = count)
}

combat_hand <- function(dat, batch, mod, star) {
  batch <- as.factor(batch)
  zero <- Reduce(union, lapply(levels(batch), function(l) which(apply(dat[, batch == l], 1, var) == 0)))
  keep <- setdiff(seq_len(nrow(dat)), zero)
  dat.orig <- dat
  dat <- dat[keep, , drop = FALSE]
  batchmod <- model.matrix(~-1 + batch)
  n.batch <- nlevels(batch)
  batches <- lapply(levels(batch), function(l) which(batch == l))
  n.batches <- sapply(batches, length)
  n.array <- sum(n.batches)
  design <- cbind(batchmod, mod)
  check <- apply(design, 2, function(x) all(x == 1))        # drops mod's intercept
  design <- as.matrix(design[, !check])
  B.hat <- solve(crossprod(design), tcrossprod(t(design), as.matrix(dat)))
  grand.mean <- crossprod(n.batches/n.array, B.hat[1:n.batch, ])
  var.pooled <- ((dat - t(design %*% B.hat))^2) %*% rep(1/n.array, n.array)
  stand.mean <- t(grand.mean) %*% t(rep(1, n.array))
  tmp <- design
  tmp[, c(1:n.batch)] <- 0
  stand.mean <- stand.mean + t(tmp %*% B.hat)
  s.data <- (dat - stand.mean)/(sqrt(var.pooled) %*% t(rep(1, n.array)))
  batch.design <- design[, 1:n.batch]
  gamma.hat <- solve(crossprod(batch.design), tcrossprod(t(batch.design), as.matrix(s.data)))
  delta.hat <- NULL
  for (i in batches) delta.hat <- rbind(delta.hat, genefilter::rowVars(s.data[, i], na.rm = TRUE))
  gamma.bar <- rowMeans(gamma.hat)
  t2 <- genefilter::rowVars(gamma.hat)
  a.prior <- apply(delta.hat, 1, sva:::aprior)
  b.prior <- apply(delta.hat, 1, sva:::bprior)
  gamma.star <- delta.star <- matrix(NA, nrow = n.batch, ncol = nrow(s.data))
  count <- rep(0, n.batch)
  for (i in 1:n.batch) {
    if (star == "it.sol") {
      r <- it_sol_counting(s.data[, batches[[i]]], gamma.hat[i, ], delta.hat[i, ], gamma.bar[i], t2[i], a.prior[i], b.prior[i])
      stopifnot(identical(unname(r$adjust), unname(sva:::it.sol(s.data[, batches[[i]]], gamma.hat[i, ], delta.hat[i, ],
                                                                gamma.bar[i], t2[i], a.prior[i], b.prior[i]))))
      temp <- r$adjust
      count[i] <- r$count
    } else if (star == "int.eprior") {
      temp <- sva:::int.eprior(as.matrix(s.data[, batches[[i]]]), gamma.hat[i, ], delta.hat[i, ])
    } else {
      temp <- rbind(gamma.hat[i, ], delta.hat[i, ])
    }
    gamma.star[i, ] <- temp[1, ]
    delta.star[i, ] <- temp[2, ]
  }
  bayesdata <- s.data
  j <- 1
  for (i in batches) {
    bayesdata[, i] <- (bayesdata[, i] - t(batch.design[i, ] %*% gamma.star))/(sqrt(delta.star[j, ]) %*% t(rep(1, n.batches[j])))
    j <- j + 1
  }
  bayesdata <- (bayesdata * (sqrt(var.pooled) %*% t(rep(1, n.array)))) + stand.mean
  dat.orig[keep, ] <- bayesdata
  # estimates over all voxels: a passed-through voxel gets gamma.star 0, delta.star 1
  gs <- matrix(0, n.batch, nrow(dat.orig)); ds <- matrix(1, n.batch, nrow(dat.orig))
  gs[, keep] <- gamma.star; ds[, keep] <- delta.star
  list(out = dat.orig, gamma.star = gs, delta.star = ds, count = count,
       priors = rbind(gamma.bar, t2, a.prior, b.prior))
}

# ---- writing -----------------------------------------------------------------------------------
con <- file(out_path, "w")
cat("# generated by tests/gen_combat_ref.R with R", paste(R.version$major, R.version$minor, sep = "."),
    "and Bioconductor sva", as.character(packageVersion("sva")), "(sva::ComBat)\n", file = con)
put <- function(name, x, dims = dim(x)) {
  if (is.null(dims)) dims <- length(x)
  cat(name, length(dims), dims, "\n", file = con)
  x <- if (length(dims) == 2) as.vector(t(x)) else as.vector(x)  # row-major
  txt <- formatC(x, digits = 17, format = "g")
  txt <- sub("^ +", "", txt)
  per <- if (length(dims) == 2) dims[2] else 10
  for (k in seq(1, length(txt), by = per)) cat(paste(txt[k:min(length(txt), k + per - 1)], collapse = " "), "\n", sep = "", file = con)
}
quiet <- function(expr) { r <- NULL; capture.output(r <- suppressMessages(expr)); r }

emit <- function(id, d, with_cov, prior, note) {
  star <- c("it.sol", "int.eprior", "none")[prior + 1]
  mod <- if (with_cov) model.matrix(~age + sex, data.frame(age = d$age, sex = d$sex)) else NULL
  dat <- t(d$y)                                              # voxels x subjects for sva
  hand <- quiet(combat_hand(dat, d$batch, mod, star))
  if (prior < 2) {
    ref <- quiet(ComBat(dat, d$batch, mod = mod, par.prior = prior == 0))
    diff <- max(abs(ref - hand$out) / abs(ref))
    # the hand implementation is sva's arithmetic step for step: agreement to rounding
    stopifnot(diff < 1e-13)
    cat(sprintf("%s: hand implementation vs sva::ComBat, max relative difference %.3g\n", id, diff))
  } else {
    ref <- hand$out
  }
  S <- nlevels(factor(d$batch))
  cat("#", id, ":", note, "\n", file = con)
  put(paste0(id, ".meta"), c(nrow(d$y), ncol(d$y), S, prior), dims = c(1, 4))
  put(paste0(id, ".y"), d$y)
  put(paste0(id, ".site"), as.integer(factor(d$batch)) - 1L)
  if (with_cov) put(paste0(id, ".cov"), cbind(d$age, d$sex))
  put(paste0(id, ".out"), t(ref))
  put(paste0(id, ".gamma_star"), hand$gamma.star)
  put(paste0(id, ".delta_star"), hand$delta.star)
  if (prior == 0) put(paste0(id, ".iterations"), hand$count)
  put(paste0(id, ".priors"), hand$priors)
  cat(id, "iterations:", hand$count, "\n")
}

emit("case1", simulate(c(15, 15, 15), 20, 101), FALSE, 0, "3 balanced sites, no covariates, parametric")
emit("case2", simulate(c(25, 10, 6, 3), 20, 102), TRUE, 0, "4 unbalanced sites (one of 3 subjects), age + sex, parametric")
emit("case3", simulate(c(20, 12, 8), 18, 103), TRUE, 1, "3 unbalanced sites, age + sex, non-parametric")
# case4: no empirical Bayes. sva has no such option: computed by combat_hand above with
# gamma.star = gamma.hat, delta.star = delta.hat. combat_hand with it.sol reproduces
# sva::ComBat's parametric output on case2 (and on cases 1, 3 and 5: stopifnot in emit), so only
# the star step differs from sva's own.
emit("case4", simulate(c(25, 10, 6, 3), 20, 104), TRUE, 2, "as case2's kind of data, no empirical Bayes (by hand)")
d5 <- simulate(c(12, 12, 12), 16, 105)
d5$y[d5$batch == "siteB", 7] <- 97.5                         # voxel 6 (0-based) constant in site 1
emit("case5", d5, FALSE, 0, "as case1, voxel 6 constant within site 1: sva passes it through unchanged")
close(con)
cat("wrote", out_path, file.info(out_path)$size, "bytes\n")
