#!/usr/bin/env bash
# bench/dcor_report.sh BUILD_DIR [NP]: peak memory and time of the training-time dCor report
# on 1 000 validation samples x 262 144 features (docs/performance.md, "2026-12-01: dCor
# report memory"). A one-epoch training of pipelines/quickstart.ini on 1 250 synthetic
# volumes of 32³ (val_fraction 0.8: 1 000 validation samples) whose report is on conv1
# (8 x 32³ = 262 144 features), on NP ranks (default 2), once with the report and once
# without; /usr/bin/time -v gives every rank's peak resident set and the wall time. The
# report's share is the difference of the two runs.
set -u
build=${1:?usage: bench/dcor_report.sh BUILD_DIR [NP]}
np=${2:-2}
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/dcor-report-bench.XXXXXX")
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))"
for tag in report none; do
    extra=()
    [ $tag = report ] && extra=(--set train.dcor_layer=conv1)
    OPENBLAS_NUM_THREADS=1 TIMEOUT_DIR="$out" TAG=$tag mpirun --oversubscribe --allow-run-as-root -np "$np" \
        -x OPENBLAS_NUM_THREADS -x TIMEOUT_DIR -x TAG \
        bash -c '/usr/bin/time -v -o "$TIMEOUT_DIR/time-$TAG.$OMPI_COMM_WORLD_RANK" "$@"' _ \
        "$build/deconfound" train "$top/pipelines/quickstart.ini" --set data.n=1250 --set data.val_fraction=0.8 \
        --set train.epochs=1 --set "train.out_dir=$out/run-$tag" "${extra[@]}" >"$out/log-$tag.txt" 2>&1 ||
        { echo "run $tag failed: $out/log-$tag.txt"; exit 1; }
    for f in "$out"/time-$tag.*; do
        echo "$tag rank ${f##*.}: peak $(awk '/Maximum resident/ { printf "%.0f MiB", $NF / 1024 }' "$f"), wall $(awk -F': ' '/Elapsed/ { print $2 }' "$f")"
    done
done
grep -A4 '^dCor' "$out/log-report.txt"
rm -rf "$out"
