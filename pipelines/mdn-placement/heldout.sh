#!/usr/bin/env bash
# heldout.sh -- the finished runs of run.sh measured on a large held-out cohort (issue 14).
# The study's per-class dCor^2 comes from 96 validation volumes per class, whose spread under
# independence is about 0.015 (README.md); this script draws a fresh cohort from the same
# generator (the runs' own [data] settings, another seed), runs every finished run's final
# checkpoint over it with `deconfound eval` and reports per-class dCor^2 of the fc1 features
# (after the ReLU) with age and with site (one-hot, as the training report codes it).
#
#   pipelines/mdn-placement/heldout.sh [--n N] [--seed S] [--variants "a b"]
#
# --n: volumes of the held-out cohort (default 2000); --seed: its generator seed (default 8;
# the runs trained on seed 7's); --variants: which variants (default: every variant with a
# finished run in OUT_DIR). Environment: DECONFOUND (the binary), OUT_DIR (run.sh's; default
# runs/mdn-placement), RANKS (MPI ranks for eval; default: the cores).
# Writes OUT_DIR/heldout_by_seed.csv (variant,seed,n,dcor2_age_class0,dcor2_age_class1,
# dcor2_site_class0,dcor2_site_class1) and OUT_DIR/heldout.csv (the means over the seeds,
# with the largest of the four per run averaged as dcor2_max, and the seeds counted).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/mdn-placement}
RANKS=${RANKS:-$(nproc)}
n=2000 seed=8 variants=""
while [ $# -gt 0 ]; do
    case $1 in
        --n) n=$2; shift ;;
        --seed) seed=$2; shift ;;
        --variants) variants=$2; shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_counts "--n, --seed" "$n" "$seed"
[ -d "$OUT_DIR" ] || study_fail "$OUT_DIR: no such folder (run run.sh first, or set OUT_DIR)"
flags=$(study_mpirun_flags)

# The finished runs: OUT_DIR/<variant>-s<seed>/ with a checkpoint and config.ini.
runs=()
for d in "$OUT_DIR"/*-s[0-9]*/; do
    d=${d%/}
    v=$(basename "$d" | sed 's/-s[0-9]*$//')
    [ -s "$d/checkpoint.h5" ] && [ -s "$d/config.ini" ] || continue
    if [ -n "$variants" ]; then case " $variants " in *" $v "*) ;; *) continue ;; esac; fi
    runs+=("$d")
done
[ ${#runs[@]} -gt 0 ] || study_fail "$OUT_DIR: no finished run${variants:+ of $variants}"

# One cohort per data shape (every run of the study has the same [data]).
setting() { sed -n "/^\[data\]/,/^\[/s/^$2 *= *\([^ ;]*\).*/\1/p" "$1/config.ini" | head -1; }
shape=$(setting "${runs[0]}" shape)
cohort="$OUT_DIR/heldout-data-n$n-seed$seed"
if [ ! -s "$cohort/shard-00000.h5" ]; then
    rm -rf "$cohort.tmp"
    "$DF" synth "$(setting "${runs[0]}" source | sed 's/^synth://')" --out "$cohort.tmp" --n "$n" --seed "$seed" \
        --shape "$shape" >/dev/null
    mv "$cohort.tmp" "$cohort"
fi

# Per-class dCor^2 ("c0 c1") of fc1_relu with a metadata column of FEATS.
by_class() {
    "$DF" dcor --x "$1:features/fc1_relu" --y "$1:meta:$2" --by "$1:labels" --unbiased --json --quiet |
        grep -o '"[01]": {"n": [0-9]*, [^}]*"dcor2_u": [-0-9.e+]*' | sed 's/.*"dcor2_u": //' | paste -sd' '
}
echo "heldout: ${#runs[@]} runs on $n volumes (seed $seed, shape $shape); $RANKS ranks; $(study_cpu)"
{
    echo "variant,seed,n,dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1"
    for d in "${runs[@]}"; do
        b=$(basename "$d")
        # shellcheck disable=SC2086
        mpirun $flags -np "$RANKS" "$DF" eval "$d/config.ini" --checkpoint "$d/checkpoint.h5" --data "$cohort" \
            --features fc1_relu --out "$d/heldout.h5" --quiet >"$d/heldout.log" 2>&1 ||
            { echo "heldout.sh: eval of $d failed; the end of $d/heldout.log:" >&2; tail -3 "$d/heldout.log" >&2; exit 1; }
        read -r a0 a1 <<<"$(by_class "$d/heldout.h5" age)"
        read -r s0 s1 <<<"$(by_class "$d/heldout.h5" site)"
        rm -f "$d/heldout.h5"
        printf '%s,%s,%s,%.4f,%.4f,%.4f,%.4f\n' "${b%-s*}" "${b##*-s}" "$n" "$a0" "$a1" "$s0" "$s1"
    done
} | study_publish "$OUT_DIR/heldout_by_seed.csv"
awk -F, 'NR == 1 { print "variant,n,dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1,dcor2_max,seeds"; next }
         { k = $1 "," $3; if (!(k in c)) order[++K] = k; c[k]++; m = $4
           for (i = 4; i <= 7; i++) { s[k, i] += $i; if ($i > m) m = $i }
           mx[k] += m }
         END { for (j = 1; j <= K; j++) { k = order[j]; printf "%s", k
                   for (i = 4; i <= 7; i++) printf ",%.4f", s[k, i] / c[k]
                   printf ",%.4f,%d\n", mx[k] / c[k], c[k] } }' "$OUT_DIR/heldout_by_seed.csv" |
    study_publish "$OUT_DIR/heldout.csv"
column -t -s, "$OUT_DIR/heldout.csv"
