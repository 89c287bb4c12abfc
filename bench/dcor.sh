#!/usr/bin/env bash
# bench/dcor.sh BUILD_DIR [--big] [--no-r]: time and peak memory of `deconfound dcor` on
# random data (x: N x D normals, y 1-D), at 1 and 2 ranks, double and single precision,
# against the flop limit (4 N^2 D flops: two passes of 2 N^2 D each, at the measured sgemm
# rate per rank) and against R energy's bcdcor at N = 10000 (when Rscript has energy).
# --big adds N = 200000, D = 512 (minutes); --reps R runs every configuration R times and
# reports the median time (default 3; the machine is shared). Results: docs/dcor.md.
set -u
B=${1:?usage: bench/dcor.sh BUILD_DIR [--big] [--no-r] [--reps R]}; shift
DF="$B/deconfound"
big=0; runr=1; reps=3; prev=
for a in "$@"; do
    [ "$prev" = --reps ] && reps=$a
    case $a in --big) big=1 ;; --no-r) runr=0 ;; esac
    prev=$a
done
MPI="mpirun --oversubscribe -q"; [ "$(id -u)" = 0 ] && MPI="$MPI --allow-run-as-root"
export OPENBLAS_NUM_THREADS=1
for ct in Haswell SkylakeX; do
    rate=$(OPENBLAS_CORETYPE=$ct "$DF" bench sgemm --threads 1 --json | sed 's/.*"gflops": \([0-9.]*\).*/\1/')
    eval "rate_$ct=$rate"
    echo "sgemm 2048^3, 1 thread, OPENBLAS_CORETYPE=$ct: $rate GFLOP/s"
done
printf '%-8s %-5s %-5s %-6s %-9s %9s %10s %12s %12s\n' N D ranks prec coretype "median s" "peak MB" "x limit" dcor2_u
run() {  # run N D RANKS PREC CORETYPE
    local n=$1 d=$2 np=$3 prec=$4 ct=$5 extra=""
    [ "$prec" = single ] && extra=--single
    rm -f /tmp/dcor-peak.$$
    local times="" k
    for k in $(seq "$reps"); do
        # every rank appends its own peak resident set (small appends do not interleave)
        OPENBLAS_CORETYPE=$ct $MPI -np "$np" -x OPENBLAS_CORETYPE -x OPENBLAS_NUM_THREADS \
            /usr/bin/time -a -o /tmp/dcor-peak.$$ -f 'PEAK %M' "$DF" dcor --random "$n,$d" $extra --json >/tmp/dcor-bench.$$
        times="$times $(sed -n 's/.*"seconds": \([0-9.e-]*\).*/\1/p' /tmp/dcor-bench.$$)"
    done
    local s=$(echo $times | tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    local u=$(sed -n 's/.*"dcor2_u": \([0-9.e-]*\).*/\1/p' /tmp/dcor-bench.$$)
    local kb=$(awk '/^PEAK/ { if ($2 > m) m = $2 } END { print m }' /tmp/dcor-peak.$$)
    rm -f /tmp/dcor-peak.$$
    local rate; eval "rate=\$rate_$ct"
    awk -v n="$n" -v d="$d" -v np="$np" -v s="$s" -v r="$rate" -v kb="$kb" -v u="$u" -v p="$prec" -v ct="$ct" 'BEGIN {
        lim = 4 * n * n * d / (r * 1e9 * np)
        printf "%-8d %-5d %-5d %-6s %-9s %9.3f %10.0f %12.2f %12.6f\n", n, d, np, p, ct, s, kb / 1024, s / lim, u }'
    rm -f /tmp/dcor-bench.$$
}
for n in 10000 50000; do
    for d in 64 512; do
        for np in 1 2; do
            for prec in double single; do
                for ct in Haswell SkylakeX; do run $n $d $np $prec $ct; done
            done
        done
    done
done
if [ $big = 1 ]; then
    run 200000 512 2 single SkylakeX
    run 200000 512 2 double SkylakeX
fi
if [ $runr = 1 ] && Rscript -e 'library(energy)' >/dev/null 2>&1; then
    echo "R energy $(Rscript -e 'cat(as.character(packageVersion("energy")))') at N = 10000, D = 64 (bcdcor, then dcor; $reps runs):"
    for k in $(seq "$reps"); do /usr/bin/time -f '  %e s elapsed, peak %M KB' Rscript -e 'suppressMessages(library(energy)); set.seed(1)
        x <- matrix(rnorm(10000 * 64), 10000); y <- x[, 1] + x[, 2]^2 / 2 + rnorm(10000)
        t <- system.time(v <- bcdcor(x, y))[["elapsed"]]; cat(sprintf("  bcdcor %.4f in %.1f s\n", v, t))
        t <- system.time(v <- dcor(x, y))[["elapsed"]]; cat(sprintf("  dcor^2 %.4f in %.1f s\n", v^2, t))'; done
fi
