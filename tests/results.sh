#!/usr/bin/env bash
# Results a paper can use: the run directory (its name, run.json, config.ini, log.txt, the
# per-epoch tables), the figures in them at 1, 2 and 3 ranks, a resumed run's tables, the
# dCor report of two layers with the partial dCor given the label, `deconfound compare`
# (methods, mean ± sd, the paired test against values worked out by hand, bad input) and
# `deconfound cv` (every fold, the comparison, continuing).
. "${top_srcdir:-.}/tests/lib.sh"
cfg=$(cd "$top_srcdir" && pwd)/pipelines/quickstart.ini
DF=$(cd "$top_builddir" && pwd)/deconfound
tiny=(--set data.n=96 --set data.shape=16,16,16 --set train.epochs=2 --set train.dcor_layer=conv3,fc)
csvcol() {  # csvcol FILE NAME: the column NAME of a CSV file (no quoted fields), one value per row
    awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next } { print $c }' "$1"
}
export -f csvcol

# 1. the run directory: its default name, and what is in it
cd "$WORK"
"$DF" train "$cfg" "${tiny[@]}" --set train.out_dir= >default.log 2>&1
check "train with the default run directory exits 0" [ $? = 0 ]
run=$(ls -d runs/quickstart-2*-* 2>/dev/null | head -1)
check "named runs/<config>-<date>-<time> ($run)" bash -c "[[ '$run' =~ ^runs/quickstart-[0-9]{8}-[0-9]{6}$ ]]"
for f in run.json config.ini log.txt checkpoint.h5 metrics.csv metrics.jsonl metrics.json dcor.csv dcor.json; do
    check "run directory holds $f" [ -s "$run/$f" ]
done
check "run.json: finished, code version, machine, ranks, threads" bash -c "grep -q '\"status\": \"finished\"' $run/run.json &&
    grep -q '\"version\": \"[^\"]' $run/run.json && grep -q '\"cpu\": \".*family' $run/run.json &&
    grep -q '\"ranks\": 1,' $run/run.json && grep -q '\"threads_per_rank\": 1,' $run/run.json"
check "run.json: the command line" grep -qF '"command": "deconfound train '"$cfg"' --set data.n=96' "$run/run.json"
check "config.ini: defaults filled in and marked, the run directory named" bash -c "grep -q '^momentum = 0  ; default' $run/config.ini &&
    grep -q '^out_dir = $run\$' $run/config.ini"
check "log.txt: what was printed, header to final line" bash -c "grep -q '^run directory: $run' $run/log.txt && grep -q '^final:' $run/log.txt &&
    [ \"\$(grep -c 'done: train loss' $run/log.txt)\" = 2 ]"
check "metrics.csv: the columns" bash -c "head -1 $run/metrics.csv | grep -q '^epoch,lr,seconds,samples_per_s,train_loss,train_acc,train_bal_acc,val_loss,val_acc,val_bal_acc,val_auc,val_acc_aligned,val_acc_conflicting,val_worst_group,val_worst_group_acc,val_acc\[sex=0\],val_acc\[sex=1\],val_acc\[site=0\],val_acc\[site=1\],val_acc\[site=2\]\$'"
check "metrics.csv and metrics.jsonl: one row per epoch" bash -c "[ \$(wc -l <$run/metrics.csv) = 3 ] && [ \$(wc -l <$run/metrics.jsonl) = 2 ]"
# The figures agree with each other: worst group = the lowest group accuracy; the CSV's
# val_acc is metrics.json's; the JSON Lines hold the CSV's values.
check "worst group is the lowest group accuracy" awk -F, 'NR > 1 { m = 2; for (i = 16; i <= 20; i++) if ($i < m) m = $i
    if ($15 != m) bad = 1 } END { exit bad }' "$run/metrics.csv"
# The synthetic cohort's classes are balanced and the split stratified: 36 + 36 training
# samples, where balanced accuracy (the mean of the two recalls) equals accuracy.
check "train_bal_acc = train_acc on a class-balanced training split" bash -c "diff <(csvcol $run/metrics.csv train_acc) \
    <(csvcol $run/metrics.csv train_bal_acc) && [ \"\$(csvcol $run/metrics.csv train_acc | head -1)\" != '' ]"
check "metrics.csv val_acc = metrics.json val_acc" bash -c "diff <(csvcol $run/metrics.csv val_acc) \
    <(grep -o '\"val_acc\": [0-9.e-]*' $run/metrics.json | awk '{print \$2}')"
check "metrics.jsonl val_auc = metrics.csv val_auc" bash -c "diff <(csvcol $run/metrics.csv val_auc) \
    <(grep -o '\"val_auc\": [0-9.e-]*' $run/metrics.jsonl | awk '{print \$2}')"
check "dcor.csv: two layers x 3 columns x (all, 2 classes, given_label)" bash -c "[ \$(grep -c '^2,' $run/dcor.csv) = 24 ] &&
    grep -q '^2,conv3,site,given_label,[-0-9]' $run/dcor.csv && grep -q '^2,fc,age,class=1,' $run/dcor.csv"

# 2. the same figures at 1, 2 and 3 ranks. The accuracies count samples, so they agree
# exactly unless a logit within rounding of the decision boundary flips (1 sample = 1/24 of
# the validation split); AUC orders the samples by score, so it agrees to the same degree.
for np in 1 2 3; do
    mpi $np "$DF" train "$cfg" "${tiny[@]}" --set "train.out_dir=$WORK/np$np" >"$WORK/np$np.log" 2>&1
done
for np in 2 3; do
    check "figures at $np ranks = at 1 rank (within one sample)" bash -c "paste -d, \
        <(cut -d, -f6,7,9-11,15- $WORK/np1/metrics.csv | tail -n +2) <(cut -d, -f6,7,9-11,15- $WORK/np$np/metrics.csv | tail -n +2) |
        awk -F, '{ h = NF / 2; for (i = 1; i <= h; i++) { d = \$i - \$(i + h); if (d < 0) d = -d; if (d > 1 / 24 + 1e-9) bad = 1 } } END { exit bad || NR != 2 }'"
done
check "run.json records 3 ranks" grep -q '"ranks": 3,' "$WORK/np3/run.json"

# 3. resumed: the tables continue (epochs 1-2 kept, 3-4 added), the log says so
cp "$WORK/np1/metrics.csv" before.csv
"$DF" train "$cfg" "${tiny[@]}" --set train.epochs=4 --set "train.out_dir=$WORK/np1" --resume "$WORK/np1/checkpoint.h5" >res.log 2>&1
check "resume: metrics.csv has epochs 1-4, the first two rows as they were" bash -c "[ \"\$(csvcol $WORK/np1/metrics.csv epoch | tr '\n' ' ')\" = '1 2 3 4 ' ] &&
    cmp -s before.csv <(head -3 $WORK/np1/metrics.csv)"
check "resume: metrics.jsonl has 4 lines, dcor.csv epochs 2 and 4" bash -c "[ \$(wc -l <$WORK/np1/metrics.jsonl) = 4 ] &&
    [ \"\$(csvcol $WORK/np1/dcor.csv epoch | sort -u | tr '\n' ' ')\" = '2 4 ' ]"
check "resume: log.txt continues" bash -c "grep -q '^---- resumed' $WORK/np1/log.txt && [ \$(grep -c '^final:' $WORK/np1/log.txt) = 2 ]"
check "resume: run.json finished, resumed_from" bash -c "grep -q '\"resumed_from\": \"$WORK/np1/checkpoint.h5\"' $WORK/np1/run.json &&
    grep -q '\"epochs_done\": 4' $WORK/np1/run.json"

# 4. compare: two methods x 3 seeds
for s in 1 2 3; do
    "$DF" train "$cfg" "${tiny[@]}" --set train.seed=$s --set "train.out_dir=$WORK/cmp/a$s" >/dev/null 2>&1
    "$DF" train "$cfg" "${tiny[@]}" --set train.seed=$s --set train.lr=0.0005 --set "train.out_dir=$WORK/cmp/b$s" >/dev/null 2>&1
done
"$DF" compare "$WORK"/cmp/a* "$WORK"/cmp/b* >cmp.txt 2>&1
cat cmp.txt
check "compare: one row per method, 3 runs each, mean ± sd" bash -c "grep -q '^quickstart \[train.lr=0.002\]  *3  .*±' cmp.txt &&
    grep -q '^quickstart \[train.lr=0.0005\]  *3  .*±' cmp.txt"
check "compare: dCor² per confounder" bash -c "head -1 cmp.txt | grep -q 'dCor² age.*dCor² sex.*dCor² site'"
check "compare: paired test over 3 seeds" grep -q 'accuracy %  *[0-3]  ' cmp.txt
"$DF" compare "$WORK/cmp/a1" "$WORK/cmp/b1" >single.txt 2>&1
check "compare: one run per method: rows named by run, no paired test" bash -c "grep -q '^a1  *1 ' single.txt && grep -q '^b1  *1 ' single.txt &&
    grep -q 'No paired test' single.txt && ! grep -q 'signed-rank tests' single.txt"
"$DF" compare "$WORK/cmp" --format markdown >cmp.md
check "compare: markdown table; a folder of runs stands for them" bash -c "grep -q '^| method ' cmp.md && grep -q '^|---|---:' cmp.md &&
    [ \$(grep -c '^| quickstart' cmp.md) -ge 2 ]"
"$DF" compare "$WORK"/cmp/a* --format csv --out cmp.csv
check "compare: csv with mean and sd columns" bash -c "head -1 cmp.csv | grep -q '^method,runs,val_acc_mean,val_acc_sd,val_bal_acc_mean' &&
    [ \$(wc -l <cmp.csv) = 2 ]"

# The paired test against values worked out by hand: five folds, method B better than A by
# 1, 2, 3, 4 and 5 points. All five differences positive and distinct: V = 1+2+3+4+5 = 15,
# and the exact two-sided p = 2 x P(V = 15) = 2 / 2^5 = 0.0625 (R: wilcox.test gives the same).
fake() {  # fake DIR LR FOLD ACC [SEED]
    mkdir -p "$1"
    printf '{\n  "config": "m.ini",\n  "status": "finished"\n}\n' >"$1/run.json"
    printf '[data]\nkfold = 5\nfold = %s\n[train]\nlr = %s\nseed = %s\n' "$3" "$2" "${5:-1}" >"$1/config.ini"
    printf 'epoch,val_acc,val_bal_acc,val_worst_group,val_worst_group_acc,val_auc\n3,%s,%s,site=A,0.5,\n' "$4" "$4" >"$1/metrics.csv"
}
for f in 0 1 2 3 4; do fake "$WORK/hand/a$f" 0.1 $f 0.7$f; fake "$WORK/hand/b$f" 0.2 $f 0.7$((f * 2 + 1)); done
# a: 0.70 .. 0.74, b: 0.71 0.73 0.75 0.77 0.79 -> differences 1..5 points
"$DF" compare "$WORK"/hand/a* "$WORK"/hand/b* >hand.txt 2>&1
cat hand.txt
check "paired test by hand: n 5, median +3.0 points, V 15, p 0.0625" grep -q 'accuracy %  *5  *+3.0  *15  *0.0625' hand.txt
check "paired test pairs by fold" grep -q 'over the folds both ran' hand.txt
# A repeated cross-validation: the five folds again with seed 2, where A scores 10 points
# lower and B is better by 6..10 points. Runs pair by fold and seed: ten differences 1..10
# points, V = 55, p = 2 / 2^10 = 0.00195. (Paired by the fold alone, a seed-2 run of B met
# a seed-1 run of A.)
for f in 0 1 2 3 4; do fake "$WORK/hand/c$f" 0.1 $f 0.6$f 2; fake "$WORK/hand/d$f" 0.2 $f 0.$((66 + f * 2)) 2; done
"$DF" compare "$WORK"/hand/[ac]* "$WORK"/hand/[bd]* >rep.txt 2>&1
cat rep.txt
check "repeated CV: pairs by fold and seed: n 10, median +5.5, V 55, p 0.00195" \
    grep -q 'accuracy %  *10  *+5.5  *55  *0.00195' rep.txt
# The same run twice (named twice, a folder of runs and one of them, or a copy) would count
# twice: refused, nothing written.
"$DF" compare "$WORK/hand/a0" "$WORK/hand/b0" "$WORK/hand/a0" --out twice.md >twice1.log 2>&1
st=$?
check "compare: a run given twice: status 2, named" eval '[ $st = 2 ] && grep -q "hand/a0 is given twice" twice1.log && [ ! -e twice.md ]'
"$DF" compare "$WORK/hand" "$WORK/hand/b3" >twice2.log 2>&1
st=$?
check "compare: a folder of runs and one of them: status 2" eval '[ $st = 2 ] && grep -q "hand/b3 is given twice" twice2.log'
cp -r "$WORK/hand/a2" "$WORK/a2copy"
"$DF" compare "$WORK"/hand/a* "$WORK/a2copy" >twice3.log 2>&1
st=$?
check "compare: a copy of a run: status 2, both named" eval '[ $st = 2 ] && grep -q "hand/a2 and .*a2copy are one method run the same way" twice3.log'
cat twice1.log twice2.log twice3.log

# compare: bad input -- exit 2, the file and problem named, nothing written
"$DF" compare "$WORK/nothing-here" >bad1.log 2>&1
check "compare: a missing directory: status 2, named" bash -c "[ $? = 2 ] && grep -q 'nothing-here' bad1.log"
mkdir -p "$WORK/broken" && cp -r "$WORK/cmp/a1/." "$WORK/broken/" && awk -F, -v OFS=, 'NR == 2 { $9 = "abc" } 1' "$WORK/cmp/a1/metrics.csv" >"$WORK/broken/metrics.csv"
"$DF" compare "$WORK/broken" --out bad.md >bad2.log 2>&1
status=$?
check "compare: a malformed metrics.csv: status 2, file and line named, no output" bash -c "[ $status = 2 ] &&
    grep -q 'broken/metrics.csv:2' bad2.log && [ ! -e bad.md ]"
"$DF" compare "$WORK/cmp/a1" --format xml >bad3.log 2>&1
check "compare: an unknown --format: status 2" bash -c "[ $? = 2 ] && grep -q 'xml' bad3.log"

# 5. cross-validation: every fold, then the comparison; run again, nothing is retrained
mpi 2 "$DF" cv "$cfg" --folds 3 --out "$WORK/cv" "${tiny[@]}" >cv.log 2>&1
check "cv: exits 0" [ $? = 0 ]
check "cv: three folds, each its own validation fold" bash -c "for f in 0 1 2; do grep -q \"\\\"fold\\\": \$f,\" $WORK/cv/fold-\$f/run.json &&
    grep -q '\"kfold\": 3,' $WORK/cv/fold-\$f/run.json || exit 1; done"
check "cv: the folds' validation splits differ" bash -c "! diff -q <(grep -o 'val_loss\": [0-9.]*' $WORK/cv/fold-0/metrics.json) \
    <(grep -o 'val_loss\": [0-9.]*' $WORK/cv/fold-1/metrics.json) >/dev/null"
check "cv: compare.md and compare.csv, one method over 3 folds" bash -c "grep -q '^| quickstart *| 3 ' $WORK/cv/compare.md && [ -s $WORK/cv/compare.csv ]"
mpi 2 "$DF" cv "$cfg" --folds 3 --out "$WORK/cv" "${tiny[@]}" >cv2.log 2>&1
check "cv again: the finished folds are kept" bash -c "[ \$(grep -c 'finished earlier' cv2.log) = 3 ] && ! grep -q 'done: train loss' cv2.log"
# a finished fold stands only for the same training: another fold count or setting is refused
# (status 2, one message naming the fold's folder and the difference), nothing trained or rewritten
cp "$WORK/cv/compare.md" cmp-before.md
mpi 2 "$DF" cv "$cfg" --folds 2 --out "$WORK/cv" "${tiny[@]}" >cv4.log 2>&1
check "cv with another --folds over finished folds: status 2" [ $? = 2 ]
check "cv with another --folds: one message, the fold's folder, kfold = 2 against 3, how to start afresh" bash -c \
    "[ \$(grep -c . cv4.log) = 1 ] && grep -q 'cv: $WORK/cv/fold-0 finished with another configuration .*kfold = 2, but $WORK/cv/fold-0/config.ini was trained with kfold = 3. To start afresh, give another --out' cv4.log" ||
    cat cv4.log
"$DF" cv "$cfg" --folds 3 --out "$WORK/cv" "${tiny[@]}" --set conv3.out=7 --set train.lr=0.5 >cv5.log 2>&1
check "cv with a changed layer and lr over finished folds: status 2, the first difference named" bash -c \
    "[ $? = 2 ] && grep -q 'fold-0 finished with another configuration .*\[train\] lr = 0.5, but .*lr = 0.002' cv5.log" || cat cv5.log
check "cv refused: nothing trained, the folds and compare.md as they were" bash -c \
    "! grep -q 'done: train loss' cv4.log cv5.log && cmp -s cmp-before.md $WORK/cv/compare.md"
"$DF" cv "$cfg" --folds 1 >cv3.log 2>&1
check "cv: --folds 1 is refused (status 2)" bash -c "[ $? = 2 ] && grep -q -- '--folds' cv3.log"
for own in data.kfold=4 data.fold=1 "train.out_dir=$WORK/elsewhere"; do
    "$DF" cv "$cfg" --folds 3 --set "$own" --out "$WORK/cv-own" >cv6.log 2>&1
    check "cv: --set $own (cv sets it for every fold) is refused (status 2), nothing made" \
        bash -c "[ $? = 2 ] && grep -q -- \"--set ${own%%=*}=.*: cv sets ${own%%=*} itself\" cv6.log && [ ! -e '$WORK/cv-own' ]"
done
# more folds than samples: refused before any training, naming kfold and the count (a fold
# would validate on nothing), on every rank alike
mpi 2 "$DF" cv "$cfg" --folds 5 --out "$WORK/cv5" "${tiny[@]}" --set data.n=4 >cv4.log 2>&1
check "cv: 5 folds of 4 samples are refused (status 2, one message)" bash -c "[ $? = 2 ] &&
    [ \$(grep -c 'kfold = 5, but the data hold 4 samples .*a validation fold would be empty' cv4.log) = 1 ] && ! grep -q 'done: train loss' cv4.log" ||
    cat cv4.log

# plots at the end of a run; without gnuplot the run still succeeds and says so once
if command -v gnuplot >/dev/null; then
    check "train draws plot.png (a PNG)" bash -c "[ \"\$(head -c 4 $run/plot.png | od -An -c | tr -d ' ')\" = '211PNG' ] && grep -q '^plot: ' $run/log.txt"
    check "cv draws the folds' curves overlaid" [ -s "$WORK/cv/plot.png" ]
else
    skip "plot.png at the end of a run: gnuplot not installed"
fi
DECONFOUND_GNUPLOT=/nonexistent "$DF" train "$cfg" "${tiny[@]}" --set "train.out_dir=$WORK/nognu" >nognu.log 2>&1
check "no gnuplot: the run succeeds, says once how to get plots, no plot.png" bash -c "[ $? = 0 ] &&
    [ \$(grep -c 'gnuplot-nox' nognu.log) = 1 ] && [ ! -e $WORK/nognu/plot.png ] && grep -q '^final:' nognu.log"

# bad input to train's new keys
"$DF" train "$cfg" "${tiny[@]}" --set train.dcor_layer=fc,nope --set "train.out_dir=$WORK/bad" >bad4.log 2>&1
check "dcor_layer: an unknown layer: status 2, named" bash -c "[ $? = 2 ] && grep -q 'no layer named nope' bad4.log"
finish
