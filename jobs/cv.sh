#!/bin/bash
# cv.sh: k-fold cross-validation on a Slurm cluster: the folds as one job array
# (jobs/cv.sbatch, one fold per task, each surviving preemption), then a comparison job that
# starts once every fold has succeeded (--dependency=afterok; jobs/compare.sbatch).
#   jobs/cv.sh CONFIG.ini K [--set section.key=value ...]
# Prints the two job ids and the folder: OUT_DIR (default runs/<config name>-cv<K>-<date>-<time>)
# gets fold-0 .. fold-(K-1), then compare.md, compare.csv and plot.png. sbatch options for
# the fold jobs go in SBATCH_FOLD_OPTS (e.g. "--ntasks-per-node=4 --time=04:00:00").
# Without Slurm, `deconfound cv CONFIG.ini --folds K` does the same in one job.
set -eu
[ $# -ge 2 ] || { echo "usage: jobs/cv.sh CONFIG.ini K [--set s.k=v ...]" >&2; exit 2; }
config=$1 folds=$2; shift 2
case $folds in ''|*[!0-9]*) echo "cv.sh: K must be a whole number >= 2, not '$folds'" >&2; exit 2 ;; esac
[ "$folds" -ge 2 ] || { echo "cv.sh: K must be >= 2, not $folds" >&2; exit 2; }
[ -f "$config" ] || { echo "cv.sh: $config: no such file" >&2; exit 2; }
jobs=${JOBS_DIR:-$(cd "$(dirname "$0")" && pwd)}
name=$(basename "$config" .ini)
export OUT_DIR=${OUT_DIR:-runs/$name-cv$folds-$(date +%Y%m%d-%H%M%S)}
export JOBS_DIR=$jobs
mkdir -p "$OUT_DIR"
# shellcheck disable=SC2086  # SBATCH_FOLD_OPTS is a list of options
array=$(sbatch --parsable --array=0-$((folds - 1)) ${SBATCH_FOLD_OPTS:-} "$jobs/cv.sbatch" "$config" "$folds" "$@")
array=${array%%;*}
compare=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes "$jobs/compare.sbatch" "$OUT_DIR")
compare=${compare%%;*}
echo "folds: array job $array -> $OUT_DIR/fold-0 .. fold-$((folds - 1))"
echo "comparison: job $compare, once every fold has succeeded -> $OUT_DIR/compare.md, compare.csv, plot.png"
