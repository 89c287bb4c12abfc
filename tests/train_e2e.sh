#!/usr/bin/env bash
# End to end on the built-in synthetic cohort: synth writes the same bytes for the same
# seed; training drives the loss down and validation accuracy well above chance; the
# checkpoint resumes exactly; predict writes logits in input order at any rank count.
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$top_srcdir/pipelines/quickstart.ini"

# synth: determinism
"$DF" synth mri3d --out "$WORK/d1" --n 64 --seed 3 --shape 16,16,16 >/dev/null &&
sleep 1 &&  # a file that recorded times would now differ
"$DF" synth mri3d --out "$WORK/d2" --n 64 --seed 3 --shape 16,16,16 >/dev/null &&
"$DF" synth mri3d --out "$WORK/d3" --n 64 --seed 4 --shape 16,16,16 >/dev/null
check "synth: same seed, same bytes" cmp -s "$WORK/d1/shard-00000.h5" "$WORK/d2/shard-00000.h5"
check "synth: other seed, other bytes" bash -c "! cmp -s '$WORK/d1/shard-00000.h5' '$WORK/d3/shard-00000.h5'"
check "synth refuses to overwrite" bash -c "! '$DF' synth mri3d --out '$WORK/d1' --n 8 2>/dev/null"
check "info describes the shard" bash -c "'$DF' info '$WORK/d1/shard-00000.h5' | grep -q 'site'"

# training: a few seconds on a small cohort
run="$WORK/run"
small=(--set data.n=384 --set data.shape=16,16,16 --set train.schedule=step --set train.step_size=4)
"$DF" train "$cfg" "${small[@]}" --set train.epochs=8 --set "train.out_dir=$run" >"$WORK/train.log" 2>&1
status=$?
cat "$WORK/train.log"
check "train exits 0" [ "$status" = 0 ]
acc=$(sed -n 's/^final: train accuracy [0-9.]*, validation accuracy \([0-9.]*\).*/\1/p' "$WORK/train.log")
check "validation accuracy well above chance ($acc > 0.8)" awk -v a="${acc:-0}" 'BEGIN { exit !(a > 0.8) }'
first=$(sed -n 's/^epoch 1\/8 done: train loss \([0-9.]*\).*/\1/p' "$WORK/train.log")
last=$(sed -n 's/^epoch 8\/8 done: train loss \([0-9.]*\).*/\1/p' "$WORK/train.log")
check "loss goes down ($first -> $last)" awk -v a="${first:-0}" -v b="${last:-9}" 'BEGIN { exit !(b < 0.7 * a) }'
check "checkpoint written" [ -s "$run/checkpoint.h5" ]
check "metrics.json written" grep -q '"val_acc"' "$run/metrics.json"
check "no temporary files left" bash -c "! ls -a '$run' | grep -q tmp"
check "info describes the checkpoint" bash -c "'$DF' info '$run/checkpoint.h5' | grep -q conv1"

# [train] profile: rank 0's time per layer at the end, a fused BatchNorm-ReLU-MaxPool group
# (nn/fused.h) on one line, every layer's share of the step
"$DF" train "$cfg" "${small[@]}" --set train.epochs=1 --set train.profile=true --set "train.out_dir=$WORK/prof" \
    >"$WORK/prof.log" 2>&1
check "profile: the table after training" grep -q '^time per layer over the [0-9]* training steps' "$WORK/prof.log"
check "profile: fused groups on one line" grep -Eq '^bn1\+relu[0-9]+\+maxpool3d[0-9]+ +fused +[0-9.]+ +[0-9.]+ +[0-9.]+%' "$WORK/prof.log" \
    || cat "$WORK/prof.log"

# resume: 5 epochs, then resume to 8, equals 8 straight (same data order, RNG, optimiser,
# schedule; the step schedule does not depend on the total number of epochs)
"$DF" train "$cfg" "${small[@]}" --set train.epochs=5 --set "train.out_dir=$WORK/r1" >"$WORK/r1.log" 2>&1
"$DF" train "$cfg" "${small[@]}" --set train.epochs=8 --set "train.out_dir=$WORK/r1" \
    --resume "$WORK/r1/checkpoint.h5" >"$WORK/r2.log" 2>&1
grep '^epoch [678]/8 done' "$WORK/train.log" | sed 's/ | [0-9.]* samples\/s.*//' >"$WORK/straight.txt"
grep '^epoch [678]/8 done' "$WORK/r2.log" | sed 's/ | [0-9.]* samples\/s.*//' >"$WORK/resumed.txt"
check "resume equals straight-through" bash -c "[ -s '$WORK/straight.txt' ] && diff '$WORK/straight.txt' '$WORK/resumed.txt'"
# a resumed run must train what the checkpoint trained: a changed global batch, layer, layer
# setting left at its default there, or data is refused naming the key; epochs, lr and
# out_dir may change (docs/config.md)
resume_refused() {  # WHAT EXPECTED-TEXT SETTINGS...
    local what=$1 text=$2; shift 2
    "$DF" train "$cfg" "${small[@]}" --set train.epochs=9 --set "train.out_dir=$WORK/r3" "$@" \
        --resume "$WORK/r1/checkpoint.h5" >"$WORK/r3.log" 2>&1
    local st=$?
    check "resume with $what: exit 2" [ $st = 2 ]
    check "resume with $what: one message naming $text" bash -c "[ \$(grep -c . '$WORK/r3.log') = 1 ] && grep -q -- \"$text\" '$WORK/r3.log'" \
        || cat "$WORK/r3.log"
}
resume_refused "another global batch" "\[train\] batch = 4, but .* was trained with batch = 16" --set train.batch=4
resume_refused "another layer width" "conv2 out = 4" --set conv2.out=4
resume_refused "a default changed" "momentum = 0.5" --set bn1.momentum=0.5
resume_refused "other data" "\[data\] n = 40" --set data.n=40
check "resume refused: no checkpoint written" [ ! -e "$WORK/r3/checkpoint.h5" ]
"$DF" train "$cfg" "${small[@]}" --set train.epochs=10 --set train.lr=0.0005 --set "train.out_dir=$WORK/r4" \
    --resume "$WORK/r1/checkpoint.h5" >"$WORK/r4.log" 2>&1
check "resume with more epochs, another lr and out_dir: runs" grep -q "^epoch 10/10 done" "$WORK/r4.log" || cat "$WORK/r4.log"

# A fresh run into a folder that holds an earlier run: the earlier run's records go first (a
# dcor.csv of a run with a dCor report would otherwise sit beside a run without one, read as
# its by compare and plot); files that are not a run's records stay.
tiny=(--set data.n=32 --set data.shape=8,8,8 --set train.epochs=1)
"$DF" train "$cfg" "${tiny[@]}" --set train.dcor_layer=conv3 --set "train.out_dir=$WORK/again" >/dev/null 2>&1
echo "my notes" >"$WORK/again/notes.txt"
check "again: the first run has a dCor report" [ -s "$WORK/again/dcor.csv" ]
"$DF" train "$cfg" "${tiny[@]}" --set "train.out_dir=$WORK/again" >"$WORK/again.log" 2>&1
check "again: the second run says it removed the earlier run's records" grep -q "held an earlier run: its records were removed" "$WORK/again.log"
check "again: no dcor.csv or dcor.json of the earlier run" eval '[ ! -e "$WORK/again/dcor.csv" ] && [ ! -e "$WORK/again/dcor.json" ]'
check "again: log.txt holds this run alone" eval '[ "$(grep -c "^run directory:" "$WORK/again/log.txt")" = 1 ]'
check "again: other files stay" grep -q "my notes" "$WORK/again/notes.txt"

# predict at 1 and 2 ranks: same logits, in input order
"$DF" predict "$cfg" --set data.shape=16,16,16 --checkpoint "$run/checkpoint.h5" --data "$WORK/d1/shard-00000.h5" \
    --out "$WORK/p1.h5" >/dev/null
mpi 2 "$DF" predict "$cfg" --set data.shape=16,16,16 --checkpoint "$run/checkpoint.h5" --data "$WORK/d1/shard-00000.h5" \
    --out "$WORK/p2.h5" >/dev/null
check "predict writes logits" [ -s "$WORK/p1.h5" ]
# (GEMMs over a different number of samples may round differently: compare to 1e-5)
logits() { h5dump -d logits -w 0 "$1" | sed -n 's/^ *([0-9]*,0): //p' | tr ',' '\n' | tr -d ' ' | grep .; }
logits "$WORK/p1.h5" >"$WORK/l1"; logits "$WORK/p2.h5" >"$WORK/l2"
check "predict: 2 ranks equal 1 rank" bash -c "[ \$(wc -l <'$WORK/l1') = 128 ] && paste '$WORK/l1' '$WORK/l2' | awk '{ d = \$1 - \$2; if (d < 0) d = -d; if (d > 1e-5 * (1 + (\$1 < 0 ? -\$1 : \$1))) bad = 1 } END { exit bad }'"
check "predict: 64 rows of 2 logits" bash -c "h5dump -H -d logits '$WORK/p1.h5' | grep -q '( 64, 2 )'"
# Accuracy split by a bias column, in Biased MNIST's convention (colour k is class k's):
# [train] accuracy_by during training, and eval --accuracy-by, whose figures are checked
# against the logits `predict` writes for the same shard, counted here from the files.
fm=/usr/share/datasets/fashion-mnist
if [ -e "$fm/train-images-idx3-ubyte.gz" ] || [ -e "$fm/train-images-idx3-ubyte" ]; then
    cat >"$WORK/bf.ini" <<INI
[data]
source = synth:biased-fmnist
n = 60
n_test = 40
rho = 0.9
[train]
epochs = 2
batch = 20
accuracy_by = colour
out_dir = $WORK/bfrun
[conv3d]
out = 4
kernel = 1,3,3
pad = 0,1,1
[relu]
[global_avgpool]
[flatten]
[linear]
name = fc
out = 10
INI
    "$DF" train "$WORK/bf.ini" >"$WORK/bf.log" 2>&1
    check "accuracy_by: training exits 0" [ $? = 0 ] || cat "$WORK/bf.log"
    check "accuracy_by: the epoch line splits the validation accuracy" grep -q 'acc [0-9.]* (aligned [0-9.]*, conflicting [0-9.]*)' "$WORK/bf.log"
    check "accuracy_by: metrics.json has both" grep -q '"val_acc_aligned": [0-9.]*, "val_acc_conflicting": [0-9.]*' "$WORK/bfrun/metrics.json"
    "$DF" synth biased-fmnist --n 60 --n-test 40 --rho 0.9 --out "$WORK/bfd" >/dev/null
    shard="$WORK/bfd/shard-00000.h5"
    "$DF" eval "$WORK/bf.ini" --checkpoint "$WORK/bfrun/checkpoint.h5" --data "$shard" --features fc --accuracy-by colour \
        --out "$WORK/bfe.h5" >"$WORK/bfe.log" 2>&1
    check "eval --accuracy-by exits 0" [ $? = 0 ] || cat "$WORK/bfe.log"
    "$DF" predict "$WORK/bf.ini" --checkpoint "$WORK/bfrun/checkpoint.h5" --data "$shard" --out "$WORK/bfp.h5" >/dev/null
    h5col() { h5dump -d "$2" -w 0 -A 0 "$1" | sed -n 's/^ *([0-9]*[,0-9]*): //p' | tr ',' '\n' | tr -d ' ' | grep .; }
    # rows: 10 logits, label, colour -> "accuracy A (N samples); colour = class ... X (n); ... Y (m)"
    expected=$(paste -d' ' <(h5col "$WORK/bfp.h5" logits | paste -d' ' - - - - - - - - - -) <(h5col "$shard" labels) \
                   <(h5col "$shard" meta) | awk '
        { best = 1; for (k = 2; k <= 10; k++) if ($k > $best) best = k; hit = (best - 1 == $11); g = ($12 == $11) ? 1 : 2
          n++; c += hit; gn[g]++; gc[g] += hit }
        END { printf "accuracy %.4f (%d samples); colour = class (bias-aligned) %.4f (%d); colour != class (bias-conflicting) %.4f (%d)\n",
              c / n, n, gc[1] / gn[1], gn[1], gc[2] / gn[2], gn[2] }')
    check "eval --accuracy-by: what predict's logits say ($expected)" grep -qF "$expected" "$WORK/bfe.log" || cat "$WORK/bfe.log"
    "$DF" eval "$WORK/bf.ini" --checkpoint "$WORK/bfrun/checkpoint.h5" --data "$shard" --features fc --accuracy-by hue \
        --out "$WORK/bfx.h5" >"$WORK/bfx.log" 2>&1
    check "eval --accuracy-by an unknown column: status 2, named" bash -c "[ $? = 2 ] && grep -q 'accuracy-by hue' '$WORK/bfx.log'"
else
    skip "accuracy_by (no Fashion-MNIST: install dataset-fashion-mnist)"
fi
finish
