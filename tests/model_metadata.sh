#!/usr/bin/env bash
# A model keeps the metadata coding it was trained with. A cohort of NIfTI files is packed
# whole and in parts -- sites 1 and 2 only (which `pack` then numbers 0 and 1), the sites
# renamed 10/11/12, two sets with overlapping sites packed apart -- and a network with an
# [mdn] layer removing age and site is trained on the whole. Then:
#   - eval and predict on the subset give every sample the features (exactly) it gets in
#     the whole set, at 1 and 2 ranks: levels are matched by name, not by number;
#   - shards packed apart and combined give the whole set's features;
#   - a site the model never saw stops with exit 2 and one message naming the column and
#     the level; so does a changed [mdn] design (remove = age only).
. "${top_srcdir:-.}/tests/lib.sh"
DF=$(cd "$top_builddir" && pwd)/deconfound
cd "$WORK"
"$DF" synth mri3d --nifti --n 48 --seed 3 --shape 16,16,16 --out nii >synth.log 2>&1 || { cat synth.log; exit 1; }
csv=nii/subjects.csv
# manifests: the header, then the rows whose site (last column) passes a filter
part() { { grep -v '^#' "$csv" | head -1; grep -v '^#' "$csv" | tail -n +2 | awk -F, "$1"; } >"nii/$2.csv"; }
part '1' all
part '$6 != 0' s12
part '$6 != 2' s01
part '$6 == 2' s2
part '{ $6 = $6 + 10; print }' renum
sed -i 's/ /,/g' nii/renum.csv
for m in all s12 s01 s2 renum; do
    "$DF" pack --manifest "nii/$m.csv" --out "$m" --quiet >"pack-$m.log" 2>&1
    check "pack $m" [ $? = 0 ] || cat "pack-$m.log"
done
check "pack numbers the subset's sites 1, 2 as 0, 1" bash -c "h5dump -a meta/levels s12/shard-00000.h5 | grep -q ',0|1,1|2\"'"

cat >cfg.ini <<'INI'
[data]
source = all
val_fraction = 0.25
[train]
epochs = 2
batch = 8
lr = 0.002
log_every = 100
out_dir = run
[loss]
type = cross_entropy
[conv3d]
name = conv1
out = 4
pad = 1
[mdn]
name = mdn1
remove = age, site
[relu]
[maxpool3d]
kernel = 4
[flatten]
[linear]
name = fc
out = 2
INI
"$DF" train cfg.ini >train.log 2>&1
check "train with [mdn] on the packed cohort" [ $? = 0 ] || cat train.log
check "the checkpoint stores the schema with the site names" \
    bash -c "h5dump -d schema run/checkpoint.h5 | grep -q 'column.*site.*categorical'"

feats() {  # feats NP DATA OUT: eval of mdn1 and fc
    mpi "$1" "$DF" eval cfg.ini --checkpoint run/checkpoint.h5 --data "$2" --features mdn1,fc --out "$3" >"$3.log" 2>&1
}
raw() {  # raw FILE DATASET: the dataset's bytes (float32, little-endian), rows one after another
    h5dump -d "$2" -b LE -o "$1.$(basename "$2").bin" "$1" >/dev/null && cat "$1.$(basename "$2").bin"
}
# pick RAW N FILTER: the rows of RAW (N rows) of the samples whose site passes FILTER, in
# manifest order (sample i of the whole set is subject sub-0000i)
pick() {
    local size=$(stat -c %s "$1") sub
    awk -F, "$3" <(grep -v '^#' "$csv" | tail -n +2) | cut -d, -f3 | while read -r sub; do
        dd if="$1" bs=$((size / $2)) skip=$((10#${sub#sub-})) count=1 status=none
    done
}
# same_bytes A B: the two byte streams are equal and not empty
same_bytes() { cat "$1" >a.bin; cat "$2" >b.bin; [ -s a.bin ] && cmp -s a.bin b.bin; }

feats 1 all/shard-00000.h5 f-all.h5
check "eval the whole set" [ $? = 0 ] || cat f-all.h5.log
for l in mdn1 fc; do raw f-all.h5 features/$l >"all-$l.bin"; done
for np in 1 2; do
    feats $np s12/shard-00000.h5 f-s12-$np.h5
    check "eval sites 1, 2 only ($np rank(s)) exits 0" [ $? = 0 ] || cat f-s12-$np.h5.log
    for l in mdn1 fc; do
        check "sites 1, 2 only ($np rank(s)): $l rows equal the whole set's" \
            same_bytes <(raw f-s12-$np.h5 features/$l) <(pick "all-$l.bin" 48 '$6 != 0')
    done
done
feats 2 s01/shard-00000.h5,s2/shard-00000.h5 f-comb.h5
check "eval of two shards packed apart (sites 0/1 and 2) exits 0" [ $? = 0 ] || cat f-comb.h5.log
check "two shards packed apart: mdn1 rows equal the whole set's" \
    same_bytes <(raw f-comb.h5 features/mdn1) <(cat <(pick all-mdn1.bin 48 '$6 != 2') <(pick all-mdn1.bin 48 '$6 == 2'))

mpi 2 "$DF" predict cfg.ini --checkpoint run/checkpoint.h5 --data s12/shard-00000.h5 --out p.h5 >p.log 2>&1
check "predict on sites 1, 2 only exits 0" [ $? = 0 ] || cat p.log
check "predict's logits equal the whole set's fc rows" same_bytes <(raw p.h5 logits) <(pick all-fc.bin 48 '$6 != 0')
check "predict wrote the labels" bash -c "h5dump -H p.h5 | grep -q 'DATASET \"labels\"'"

bad() {  # bad WHAT EXPECTED-TEXT... -- ARGS: exit 2, one line on stderr, naming each text
    local what=$1; shift; local texts=()
    while [ "$1" != -- ]; do texts+=("$1"); shift; done; shift
    mpi 2 "$DF" "$@" >bad.out 2>bad.err
    local st=$?
    check "$what: exit 2" [ $st = 2 ] || cat bad.err
    check "$what: one message" [ "$(grep -c . bad.err)" = 1 ] || cat bad.err
    for t in "${texts[@]}"; do check "$what: the message names $t" grep -q -- "$t" bad.err; done
}
bad "a site the model never saw" "renum" "'site'" "'10'" -- \
    eval cfg.ini --checkpoint run/checkpoint.h5 --data renum/shard-00000.h5 --features fc --out x.h5
check "nothing written" [ ! -e x.h5 ]
bad "predict, a site the model never saw" "'site'" "'10'" -- \
    predict cfg.ini --checkpoint run/checkpoint.h5 --data renum/shard-00000.h5 --out x.h5
bad "a changed [mdn] design (sex for age: the same shapes)" "mdn1 remove = sex,site, but run/checkpoint.h5 was trained with remove = age, site" -- \
    predict cfg.ini --set mdn1.remove=sex,site --checkpoint run/checkpoint.h5 --data all/shard-00000.h5 --out x.h5
finish
