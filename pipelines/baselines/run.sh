#!/usr/bin/env bash
# run.sh -- the classical baselines beside MDN (issue 15), on the synthetic MRI cohort of
# ../mdn-mri3d.ini taken the way a study takes its scans: NIfTI volumes and a manifest
# (`deconfound synth mri3d --nifti`), packed into a training and a validation shard by a fixed
# split, then
#   baseline   the packed images as they are                          baseline.ini
#   resid      voxel-wise confound regression (`deconfound residualize --remove age,site
#              --keep label`), fitted on the training shard, applied to both      baseline.ini
#   combat     ComBat site harmonisation (`deconfound harmonize --site site --keep
#              label,age,sex`), learned on the training shard, applied to both     baseline.ini
#   combat-resid  both: the ComBat-harmonised shards, then age regressed out of them
#              (`residualize --remove age --keep label`)                 baseline.ini
#   mdn        the MRI showcase's MDN after conv3 and fc1 (remove age, site) on the packed
#              images                                                    mdn.ini
# each trained the same way (the showcase's network and schedule: 20 epochs, global batch 32,
# Adam 1e-3 with a cosine schedule), the dCor report on the fc1 features every 2 epochs.
#
#   pipelines/baselines/run.sh [--quick] [--arms "baseline resid"] [--seeds "1 2"]
#                              [--epochs N] [--cohort N,SIDE] [--set section.key=value ...]
#
# Full protocol (default): seeds 1 2 3 (the training seed: initialisation and batch order; the
# cohort and its split are fixed), 20 epochs (20 minutes on 2 cores). --quick: seed 1, 8 epochs
# (under 5 minutes on 2 cores). --cohort N,SIDE: N subjects of SIDE^3 voxels instead of 768 of 32^3 (the tests
# use a small one). --set passes a setting to every training run.
#
# Environment: DECONFOUND (the binary; default ../../deconfound), OUT_DIR (runs and
# results.csv; default runs/baselines), RANKS (MPI ranks; default: the cores). The cohort
# and the rewritten shards go to OUT_DIR/data/ (made once; delete it to make them again), a
# run to OUT_DIR/<arm>-s<seed>/, not trained again once it has all its epochs.
# results.csv: arm,input,ranks,val_acc,val_acc_last5,train_acc,dcor2_age_class0,
# dcor2_age_class1,dcor2_site_class0,dcor2_site_class1,dcor2_u_max,seeds -- means over the
# seeds: accuracies in % at the last epoch (validation's also over the last 5 epochs);
# per-class bias-corrected dCor^2 of the fc1 features (after the ReLU) with age and with site
# (one-hot) on the validation split at the end, and dcor2_u_max the largest of those four over
# the reports of the second half of training. results_by_seed.csv: every run, with its seed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/baselines}
RANKS=${RANKS:-$(nproc)}
all_arms="baseline resid combat combat-resid mdn"
arms=$all_arms seeds="1 2 3" epochs=20 cohort=768,32 extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) seeds="1" epochs=8 ;;
        --arms) arms=$2; shift ;;
        --seeds) seeds=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --cohort) cohort=$2; shift ;;
        --set) extra+=(--set "$2"); shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_choose arm "$all_arms" $arms
study_counts "--seeds, --epochs" $seeds $epochs
case $cohort in *,*) ;; *) study_fail "--cohort expects N,SIDE (e.g. 768,32), got '$cohort'" ;; esac
n_subjects=${cohort%,*} side=${cohort#*,}
study_positive "--cohort" "$n_subjects" "$side"
mkdir -p "$OUT_DIR"
flags=$(study_mpirun_flags)
data=$OUT_DIR/data

# The cohort as NIfTI, the split (every 4th subject to validation), the two shards, and the
# rewritten copies: data/{raw,resid,combat,combat-resid}/{train,val}.h5 and data/split.csv
# (data/cohort.txt says which cohort). Each step writes into a temporary folder renamed when
# complete, so an interrupted run starts over.
prepare() {
    [ -s "$data/combat-resid/val.h5" ] && [ "$(cat "$data/cohort.txt" 2>/dev/null)" = "$cohort" ] && return 0
    [ -d "$data" ] && [ "$(cat "$data/cohort.txt" 2>/dev/null)" != "$cohort" ] &&
        study_fail "$data holds another cohort than --cohort $cohort: delete it or choose another OUT_DIR"
    local tmp=$data.tmp
    rm -rf "$tmp" && mkdir -p "$tmp/raw" "$tmp/resid" "$tmp/combat" "$tmp/combat-resid"
    echo "$cohort" >"$tmp/cohort.txt"
    "$DF" synth mri3d --nifti --out "$tmp/nii" --n "$n_subjects" --seed 7 --shape "$side" >/dev/null
    awk -F, '/^#/ || $1 == "path" { next } { n++; print $3 > (n % 4 == 0 ? V : T) }' T="$tmp/train.txt" V="$tmp/val.txt" \
        "$tmp/nii/subjects.csv"
    { echo subject,split; sed 's/$/,train/' "$tmp/train.txt"; sed 's/$/,val/' "$tmp/val.txt"; } >"$tmp/split.csv"
    for part in train val; do
        mpirun $flags -np "$RANKS" "$DF" pack --manifest "$tmp/nii/subjects.csv" --subjects "$tmp/$part.txt" \
            --shard-size 100000 --out "$tmp/pack-$part" --quiet
        mv "$tmp/pack-$part/shard-00000.h5" "$tmp/raw/$part.h5"
    done
    mpirun $flags -np "$RANKS" "$DF" residualize --train "$tmp/raw/train.h5" --apply "$tmp/raw/val.h5" \
        --remove age,site --keep label --out "$tmp/resid" >"$tmp/residualize.log"
    mpirun $flags -np "$RANKS" "$DF" harmonize --train "$tmp/raw/train.h5" --apply "$tmp/raw/val.h5" \
        --site site --keep label,age,sex --out "$tmp/combat" --model "$tmp/combat-model.h5" >"$tmp/harmonize.log"
    mpirun $flags -np "$RANKS" "$DF" residualize --train "$tmp/combat/train.h5" --apply "$tmp/combat/val.h5" \
        --remove age --keep label --out "$tmp/combat-resid" >"$tmp/combat-residualize.log"
    rm -rf "$tmp/nii" "$tmp/pack-train" "$tmp/pack-val"
    rm -rf "$data" && mv "$tmp" "$data"
}

input_of() { case $1 in resid|combat|combat-resid) echo "$1" ;; *) echo raw ;; esac; }
config_of() { case $1 in mdn) echo "$here/mdn.ini" ;; *) echo "$here/baseline.ini" ;; esac; }

run_one() {
    local a=$1 s=$2 dir=$3 in
    in=$data/$(input_of "$a")
    mkdir -p "$dir"
    if ! mpirun $flags -np "$RANKS" "$DF" train "$(config_of "$a")" --set "data.source=$in/train.h5, $in/val.h5" \
         --set "data.split_file=$data/split.csv" --set train.seed="$s" --set train.epochs="$epochs" \
         --set train.dcor_every=2 --set train.dcor_columns=age,site "${extra[@]}" --set train.out_dir="$dir" \
         >"$dir/train.log" 2>&1; then
        echo "run.sh: $a seed $s failed; the end of $dir/train.log:" >&2
        tail -5 "$dir/train.log" >&2
        exit 1
    fi
}

# A finished run's result.csv line from its metrics.json and dcor.json.
summarise() {
    local a=$1 s=$2 dir=$3
    printf '%s,%s,%s,%s,%s,%s\n' "$a" "$(input_of "$a")" "$RANKS" "$s" "$(study_accuracies "$dir")" \
        "$(study_dcor_by_class "$dir" "$((epochs / 2))")" | study_publish "$dir/result.csv"
}

cpu=$(study_cpu)
echo "baselines: arms $arms; seeds $seeds; $epochs epochs; cohort $n_subjects x $side^3; $RANKS ranks; $cpu"
start=$(date +%s)
prepare
echo "data: $data ($(( $(date +%s) - start )) s); $(grep -h 'done in' "$data/residualize.log" "$data/harmonize.log" | cut -c1-60 | tr '\n' ' ')"
for s in $seeds; do
    for a in $arms; do
        dir="$OUT_DIR/$a-s$s"
        if study_finished "$dir" "$epochs"; then
            summarise "$a" "$s" "$dir"
            echo "$a seed $s: done before ($dir)"
            continue
        fi
        start=$(date +%s)
        run_one "$a" "$s" "$dir"
        summarise "$a" "$s" "$dir"
        echo "$a seed $s: $(cut -d, -f5- "$dir/result.csv") ($(( $(date +%s) - start )) s; $(grep -m1 '^blas:' "$dir/train.log"))"
    done
done

# Every finished run (this invocation's and earlier ones'), then the means over seeds.
cols="val_acc,val_acc_last5,train_acc,dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1,dcor2_u_max"
{
    echo "arm,input,ranks,seed,$cols"
    for a in $all_arms; do
        study_cat "$OUT_DIR/$a"-s[0-9]*/result.csv
    done
} | study_publish "$OUT_DIR/results_by_seed.csv"
awk -F, -v cols="$cols" 'NR == 1 { print "arm,input,ranks," cols ",seeds"; next }
         { k = $1 "," $2 "," $3; if (!(k in n)) order[++K] = k; n[k]++; for (c = 5; c <= 12; c++) sum[k, c] += $c }
         END { for (i = 1; i <= K; i++) { k = order[i]; printf "%s", k
                   for (c = 5; c <= 12; c++) printf (c <= 7 ? ",%.2f" : ",%.4f"), sum[k, c] / n[k]; print "," n[k] } }' \
    "$OUT_DIR/results_by_seed.csv" | study_publish "$OUT_DIR/results.csv"
echo
echo "$OUT_DIR/results.csv ($cpu; means over the seeds run):"
column -t -s, "$OUT_DIR/results.csv"
