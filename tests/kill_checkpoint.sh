#!/usr/bin/env bash
# kill -9 of rank 0 in the middle of writing a checkpoint, at 2 ranks: the job ends (not a
# hang), the checkpoint on disk is still the previous one and loads, and --resume from it
# trains to the end. The network has a 4-million-weight layer, so a checkpoint (weights and
# Adam's two moments, 48 MB, written to a temporary name, fsync'ed, then renamed) takes long
# enough to be caught while its temporary file exists.
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$WORK/big.ini"
cat >"$cfg" <<'EOF'
[data]
source = synth:mri3d
n = 64
shape = 16,16,16
val_fraction = 0.25
[train]
epochs = 8
batch = 16
optimizer = adam
lr = 0.001
checkpoint_every = 1
[loss]
type = cross_entropy
[flatten]
[linear]
name = fc1
out = 1024
[relu]
[linear]
name = fc
out = 2
EOF
out="$WORK/run"
mpi 2 "$DF" train "$cfg" --set "train.out_dir=$out" >"$WORK/run.log" 2>&1 &
job=$!
# the first checkpoint written, then the temporary file of the next: its name ends with the
# writing process's id (rank 0's)
tmp=
for i in $(seq 1 200000); do
    if [ -f "$out/checkpoint.h5" ]; then
        for f in "$out"/.checkpoint.h5.tmp.*; do [ -e "$f" ] && tmp=$f; done
    fi
    [ -n "$tmp" ] && break
    [ $((i % 100)) = 0 ] && { kill -0 $job 2>/dev/null || break; }
done
pid=${tmp##*.}
before=$(date +%s)
if [ -n "$tmp" ]; then kill -KILL "$pid"; fi
check "the write of a checkpoint was caught (temporary file ${tmp##*/})" [ -n "$tmp" ]
timeout 30 tail --pid=$job -f /dev/null
wait $job; status=$?
took=$(( $(date +%s) - before ))
check "the job ends with a failure status ($status) within 15 s ($took s)" bash -c "[ $status != 0 ] && [ $took -le 15 ]"
info=$("$DF" info "$out/checkpoint.h5" 2>&1)
check "the checkpoint on disk is a whole one" bash -c "grep -q 'checkpoint (format version' <<<'$info'"
epoch=$(sed -n 's/.*, epoch \([0-9]*\), step.*/\1/p' <<<"$info")
last=$(sed -n 's/^checkpoint: .*(epoch \([0-9]*\))$/\1/p' "$out/log.txt" | tail -1)
check "it is the last one written whole (epoch $epoch; the log's last: $last; 8 epochs)" \
    bash -c "[ -n '$epoch' ] && [ '$epoch' = '$last' ] && [ '$epoch' -lt 8 ]"
mpi 2 "$DF" train "$cfg" --set "train.out_dir=$out" --resume "$out/checkpoint.h5" >"$WORK/resume.log" 2>&1
check "--resume from it trains to the end" bash -c "[ $? = 0 ] && grep -q '^resumed from' '$WORK/resume.log' && grep -q '^final:' '$WORK/resume.log'"
finish
