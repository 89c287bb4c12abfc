#!/usr/bin/env bash
# Progress lines (base/progress.h) of train, pack, eval, dcor, residualize and harmonize:
# on a pseudo-terminal (util-linux `script`), run directly and under mpirun, an updating line
# ("\r...NN% ... ETA h:mm:ss\033[K") that is gone from the screen when the results print; into
# a file, plain lines (at every update with DECONFOUND_PROGRESS_EVERY=0, by time or
# [train] log_every otherwise) and a line at the end, with no carriage return or escape;
# --quiet: none of them, the results still there; under mpirun -np 2 into a file (where
# every rank's stdout is still Open MPI's pseudo-terminal), rank 0's lines only.
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$top_srcdir/pipelines/quickstart.ini"
MPIRUN="$MPIEXEC $MPI_FLAGS"
small=(--set data.n=96 --set data.shape=8,8,8 --set train.epochs=2)

# Progress lines of a log: running ones ("... 12.3 units/s ETA 0:00:01") and the end line
# ("what: N/N units in 0:00:01 (rate units/s)").
progress_lines() { grep -aE ' [^ ]+ [a-z-]+/s ETA [-0-9]|^[a-z ]+: [0-9.kMGT]+/[0-9.kMGT]+ [a-z-]+ in [0-9]+:[0-9]{2}:[0-9]{2} \(' "$1"; }
# What a terminal shows of a typescript: per line, the text after the last carriage return
# (each redraw is "\r<text>\033[K" and the clear "\r\033[K"), without script's own lines.
render() { sed 's/\r*$//; s/.*\r//; s/\x1b\[K//g' "$1" | grep -av '^Script \(started\|done\)' | grep -av '^$'; }

# ---- inputs: NIfTI volumes, shards, a trained checkpoint --------------------------------------
"$DF" synth mri3d --nifti --out "$WORK/nii" --n 14 --shape 12,12,12 --seed 4 >/dev/null &&
"$DF" synth mri3d --out "$WORK/d" --n 64 --shape 8,8,8 --seed 5 >/dev/null
check "inputs written" [ $? = 0 ] || finish
shard="$WORK/d/shard-00000.h5"
"$DF" train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/model" --quiet >"$WORK/model.log" 2>&1
check "a model trained" [ -s "$WORK/model/checkpoint.h5" ] || { cat "$WORK/model.log"; finish; }
"$DF" eval "$cfg" --checkpoint "$WORK/model/checkpoint.h5" --data "$shard" --features fc --out "$WORK/feats.h5" --quiet \
    >"$WORK/feats.log" 2>&1
check "features written" [ -s "$WORK/feats.h5" ] || { cat "$WORK/feats.log"; finish; }

# cmd_for NAME: CMD=(one of the six commands), writing into a new name under $WORK.
cmd_for() {
    local out
    out=$(mktemp -u "$WORK/out-$1.XXXXXX")
    case $1 in
        train) CMD=("$DF" train "$cfg" "${small[@]}" --set "train.out_dir=$out") ;;
        pack) CMD=("$DF" pack --manifest "$WORK/nii/subjects.csv" --out "$out" --shard-size 4) ;;
        eval) CMD=("$DF" eval "$cfg" --checkpoint "$WORK/model/checkpoint.h5" --data "$shard" --features fc --out "$out.h5") ;;
        dcor) CMD=("$DF" dcor --x "$WORK/feats.h5:features/fc" --y "$WORK/feats.h5:meta:age" --permutations 20) ;;
        residualize) mkdir -p "$out"; CMD=("$DF" residualize --train "$shard" --remove age,site --keep label --out "$out") ;;
        harmonize) mkdir -p "$out"; CMD=("$DF" harmonize --train "$shard" --site site --keep age --out "$out") ;;
    esac
}
# The line each prints as its result.
declare -A result=([train]='^final:' [pack]='^wrote .*14 samples' [eval]='^wrote .*features/fc' [dcor]='dCor\^2 *\(biased\)'
                   [residualize]='^residualize: wrote' [harmonize]='^harmonize: wrote')
commands="train pack eval dcor residualize harmonize"

# ---- 1. on a terminal -------------------------------------------------------------------------
if command -v script >/dev/null; then
    for how in direct mpirun; do
        for name in train pack; do
            launch=""
            [ $how = mpirun ] && launch="$MPIRUN -np 2"
            ts="$WORK/tty-$how-$name"
            cmd_for $name
            script -qc "$launch $(printf '%q ' "${CMD[@]}")" "$ts" >/dev/null 2>&1
            check "terminal, $how, $name: an updating line with a percentage and an ETA" \
                grep -aqE $'\r[^\r]* [0-9]+% [^\r]*/s ETA [0-9]+:[0-9]{2}:[0-9]{2}\x1b\\[K' "$ts" || cat -A "$ts" | head -n 20
            render "$ts" >"$ts.screen"
            check "terminal, $how, $name: the result line is intact" grep -qE "${result[$name]}" "$ts.screen" || cat "$ts.screen"
            check "terminal, $how, $name: no progress left on the screen" bash -c "! grep -q 'ETA' '$ts.screen'" || cat "$ts.screen"
        done
    done
    # The screen of a pack on a terminal is the output of one into a file with --quiet.
    render "$WORK/tty-direct-pack" | sed 's/^wrote [^:]*:/wrote:/' >"$WORK/tty-pack.screen"
    cmd_for pack
    "${CMD[@]}" --quiet | sed 's/^wrote [^:]*:/wrote:/' >"$WORK/quiet-pack.txt"
    check "terminal: the screen holds pack's results exactly" diff "$WORK/quiet-pack.txt" "$WORK/tty-pack.screen"
else
    skip "util-linux script not installed: the terminal line"
fi

# ---- 2., 3., 4. into a file: plain lines at every update, none with --quiet ---------------------
for name in $commands; do
    log="$WORK/file-$name.log"
    cmd_for $name
    DECONFOUND_PROGRESS_EVERY=0 "${CMD[@]}" >"$log" 2>&1
    check "file, $name: exit 0" [ $? = 0 ] || tail -n 5 "$log"
    n=$(progress_lines "$log" | wc -l)
    check "file, $name: progress lines ($n)" [ "$n" -ge 2 ] || cat "$log"
    check "file, $name: the result line" grep -qE "${result[$name]}" "$log"
    check "file, $name: no carriage return or escape" bash -c "! grep -q \$'[\r\x1b]' '$log'" || cat -A "$log" | head
    qlog="$WORK/quiet-$name.log"
    cmd_for $name
    DECONFOUND_PROGRESS_EVERY=0 "${CMD[@]}" --quiet >"$qlog" 2>&1
    check "--quiet, $name: exit 0" [ $? = 0 ] || tail -n 5 "$qlog"
    check "--quiet, $name: no progress line" [ -z "$(progress_lines "$qlog")" ] || progress_lines "$qlog"
    check "--quiet, $name: the result line" grep -qE "${result[$name]}" "$qlog" || cat "$qlog"
done
check "file: training's lines keep their format" \
    grep -qE '^epoch 1/2 step 1/5 loss [0-9.]+ lr [0-9.e-]+ [0-9.]+k? samples/s ETA [0-9]+:[0-9]{2}:[0-9]{2}$' "$WORK/file-train.log"
check "file: training's end line" grep -qE '^train: 144/144 samples in [0-9]+:[0-9]{2}:[0-9]{2} \(' "$WORK/file-train.log"
# By time (30 s by default) a short run prints the end line only, plus every [train] log_every
# steps (and each epoch's last) when set.
cmd_for train
"${CMD[@]}" --set train.log_every=0 >"$WORK/every0.log" 2>&1
check "log_every = 0 (the default), 30 s: no step line" bash -c "! grep -q '^epoch .* step' '$WORK/every0.log'"
check "log_every = 0: the end line" grep -q '^train: 144/144 samples in' "$WORK/every0.log"
cmd_for train
"${CMD[@]}" --set train.log_every=2 >"$WORK/every2.log" 2>&1
steps=$(sed -n 's/^epoch 1\/2 step \([0-9]*\)\/5 .*/\1/p' "$WORK/every2.log" | tr '\n' ' ')
check "log_every = 2: steps 2, 4 and the epoch's last ($steps)" [ "$steps" = "2 4 5 " ]
cmd_for pack
DECONFOUND_PROGRESS_EVERY=soon "${CMD[@]}" >"$WORK/badenv.log" 2>&1
check "DECONFOUND_PROGRESS_EVERY=soon: a warning, and the work done" \
    bash -c "grep -q 'DECONFOUND_PROGRESS_EVERY=soon: expected seconds' '$WORK/badenv.log' && grep -q '^wrote' '$WORK/badenv.log'"

# ---- 5. under mpirun into a file: one rank reports ------------------------------------------------
for name in train pack harmonize; do
    log="$WORK/mpi-$name.log"
    cmd_for $name
    DECONFOUND_PROGRESS_EVERY=0 $MPIRUN -np 2 "${CMD[@]}" >"$log" 2>&1
    check "mpirun -np 2 into a file, $name: exit 0" [ $? = 0 ] || tail -n 5 "$log"
    check "mpirun -np 2 into a file, $name: plain lines (no carriage return or escape)" \
        bash -c "! grep -q \$'[\r\x1b]' '$log' && grep -q ETA '$log'" || cat -A "$log" | head
    # each position reported once: the lines without their rate and ETA are all different
    dups=$(progress_lines "$log" | grep ' ETA ' | sed 's/ [^ ]* [a-z-]*\/s ETA .*//' | sort | uniq -d)
    check "mpirun -np 2 into a file, $name: one rank reports (no line twice)" [ -z "$dups" ] || echo "$dups"
    check "mpirun -np 2 into a file, $name: one end line" [ "$(progress_lines "$log" | grep -c ' in [0-9]*:')" = 1 ]
done
finish
