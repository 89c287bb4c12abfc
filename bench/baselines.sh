#!/usr/bin/env bash
# bench/baselines.sh BUILD_DIR [--sizes "1000 4000"] [--ranks "1 2"] [--reps R] [--data DIR]:
# time and peak memory of `deconfound residualize` (remove age and site, keep the label) and
# `deconfound harmonize` (ComBat on the site, keep label and age) on the synthetic mri3d
# cohort at N subjects x 64^3 voxels, on 1 and 2 ranks (the cores split between them), beside
#   - the time to read the shard (cat to /dev/null, page cache as warm as for the runs), and
#   - the QR's flops at the machine's dgemm rate (`deconfound bench dgemm`, all cores):
#     residualize's target is 3x (read + flops / dgemm rate) (issue 15).
# The cohorts are written once into DIR (default ${TMPDIR:-/tmp}/df-bench-baselines; 1 GB per
# 1000 subjects) and kept for the next run. Each configuration runs R times (default 3) and
# the median is reported. Results: docs/baselines.md.
set -u
B=${1:?usage: bench/baselines.sh BUILD_DIR [--sizes "1000 4000"] [--ranks "1 2"] [--reps R] [--data DIR]}; shift
DF="$B/deconfound"
sizes="1000 4000" ranks="1 2" reps=3 data=${TMPDIR:-/tmp}/df-bench-baselines
while [ $# -gt 0 ]; do
    case $1 in
        --sizes) sizes=$2; shift ;;
        --ranks) ranks=$2; shift ;;
        --reps) reps=$2; shift ;;
        --data) data=$2; shift ;;
        *) echo "bench/baselines.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
MPI="mpirun --oversubscribe -q"; [ "$(id -u)" = 0 ] && MPI="$MPI --allow-run-as-root"
cores=$(nproc)
cpu="$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1) (family $(sed -n 's/^cpu family[^:]*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model[^:]*: //p' /proc/cpuinfo | grep -v '[A-Za-z]' | head -1))"
rate=$("$DF" bench dgemm --threads "$cores" --json | sed 's/.*"gflops": \([0-9.]*\).*/\1/')
core=$("$DF" bench dgemm --threads 1 --size 256 --json | sed 's/.*"blas_core": "\([^"]*\)".*/\1/')
echo "CPU: $cpu, $cores cores; OpenBLAS core $core; dgemm 2048^3 on $cores threads: $rate GFLOP/s"
mkdir -p "$data"

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# field LOG NAME: a number from the "done in" line ("read 0.31" -> 0.31; "done in" -> the total).
field() {
    if [ "$2" = "done in" ]; then sed -n 's/.*done in \([0-9.]*\) s.*/\1/p' "$1" | head -1
    else sed -n "s/.*done in.*$2 \([0-9.]*\).*/\1/p" "$1" | head -1; fi
}

printf '%-6s %-5s %-12s %9s %8s %8s %8s %9s %8s %10s %10s\n' N ranks command "median s" "read s" "work s" "write s" \
    "GFLOP/s" "peak MB" "cat s" "x target"
for n in $sizes; do
    shard=$data/n$n/shard-00000.h5
    if [ ! -s "$shard" ]; then
        rm -rf "$data/n$n"
        "$DF" synth mri3d --out "$data/n$n" --n "$n" --shape 64 --seed 1 >/dev/null || exit 1
    fi
    cat "$shard" >/dev/null
    cat_s=$( { /usr/bin/time -f %e cat "$shard" >/dev/null; } 2>&1 | tail -1)
    for np in $ranks; do
        th=$((cores / np)); [ $th -lt 1 ] && th=1
        for cmd in residualize harmonize; do
            times="" log=$data/log.$$
            for r in $(seq "$reps"); do
                out=$data/out-$n-$np-$cmd
                rm -rf "$out" && mkdir -p "$out"
                if [ $cmd = residualize ]; then
                    $MPI -np "$np" "$DF" residualize --train "$shard" --remove age,site --keep label --out "$out" --threads $th >"$log" 2>&1
                else
                    $MPI -np "$np" "$DF" harmonize --train "$shard" --site site --keep label,age --out "$out" --threads $th >"$log" 2>&1
                fi || { echo "$cmd failed:"; tail -3 "$log"; exit 1; }
                times="$times $(field "$log" "done in")"
                cp "$log" "$log.$r"
            done
            rm -rf "$out"
            s=$(echo "$times" | median)
            # the figures of the run whose time is the median
            for r in $(seq "$reps"); do [ "$(field "$log.$r" "done in")" = "$s" ] && cp "$log.$r" "$log" && break; done
            rd=$(field "$log" read); wr=$(field "$log" write)
            work=$(sed -n 's/.*(read [0-9.]*, \(solve\|fit and adjust\) \([0-9.]*\).*/\2/p' "$log")
            gf=$(sed -n 's/.* at \([0-9.]*\) GFLOP\/s in the solve.*/\1/p' "$log")
            gflop=$(sed -n 's/.*; \([0-9.]*\) GFLOP at .*/\1/p' "$log")
            peak=$(sed -n 's/.*peak memory \([0-9]*\) MB.*/\1/p' "$log")
            target=-
            [ $cmd = residualize ] && target=$(awk -v s="$s" -v c="$cat_s" -v g="$gflop" -v r="$rate" \
                'BEGIN { printf "%.2f", s / (3 * (c + g / r)) }')
            printf '%-6s %-5s %-12s %9.2f %8s %8s %8s %9s %8s %10s %10s\n' "$n" "$np" "$cmd" "$s" "$rd" "$work" "$wr" \
                "${gf:--}" "$peak" "$cat_s" "$target"
            rm -f "$log" "$log".*
        done
    done
done
