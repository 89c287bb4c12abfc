#!/usr/bin/env bash
# deconfound saliency end to end on NIfTI files written by others (nibabel's test data: LAS
# and RAS images of 2, 4 and 1 x 3 x 2 mm): packed (reoriented, resampled, cropped), a network
# trained on them, and its saliency maps written back in each source image's own space --
# the same dimensions and affine as the file it came from -- for every method, at 1 and 2
# ranks (the same bytes), for chosen subjects, and bad input refused.
. "${top_srcdir:-.}/tests/lib.sh"
DF=$(cd "$top_builddir" && pwd)/deconfound
export DF
nib=/usr/lib/python3/dist-packages/nibabel/tests/data
[ -f "$nib/anatomical.nii" ] || { echo "SKIP: python3-nibabel's test data not installed"; exit 77; }
cd "$WORK"
mkdir src
cp "$nib/anatomical.nii" src/a.nii
cp "$nib/reoriented_anat_moved.nii" src/b.nii
cp "$nib/standard.nii.gz" src/c.nii.gz
{
    echo "path,label,subject,site:categorical"
    for s in 1 2 3 4; do
        echo "a.nii,$((s % 2)),sub-a$s,0"; echo "b.nii,$(((s + 1) % 2)),sub-b$s,1"; echo "c.nii.gz,$((s % 2)),sub-c$s,2"
    done
} >src/subjects.csv
"$DF" pack --manifest src/subjects.csv --out packed --spacing 4 --shape 10,12,10 --normalize zscore --quiet >pack.log 2>&1
check "pack the nibabel images (reorient, 4 mm, crop)" [ $? = 0 ]
cat >net.ini <<'INI'
[data]
source = packed
val_fraction = 0.25
[train]
epochs = 2
batch = 4
lr = 0.01
[loss]
type = cross_entropy
[conv3d]
out = 4
kernel = 3
pad = 1
[batchnorm3d]
[relu]
[maxpool3d]
kernel = 2
[flatten]
[linear]
name = fc
out = 2
INI
"$DF" train net.ini --set train.out_dir=run --quiet >train.log 2>&1
check "train a small network on them" [ $? = 0 ]

# every method, every sample, back in its source's space
for m in grad gradxinput smoothgrad; do
    "$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --method $m --samples 4 --out "sal-$m" --quiet >"sal-$m.log" 2>&1
    check "saliency --method $m: 12 maps and their mean" bash -c "[ \$(ls sal-$m/*_saliency-$m.nii.gz | wc -l) = 13 ] &&
        [ -f sal-$m/mean_saliency-$m.nii.gz ] && grep -q 'wrote 12 maps' sal-$m.log"
done
geom() { nifti_geom "$1"; }
export -f geom nifti_geom
for s in a b c; do
    check "the map of sub-${s}1 has its source's dimensions and affine ($(geom src/$s.nii*))" \
        bash -c "[ \"\$(geom sal-grad/sub-${s}1_saliency-grad.nii.gz)\" = \"\$(geom src/$s.nii*)\" ]"
done
check "maps are not empty (some saliency inside each image)" bash -c "for f in sal-grad/sub-*; do
    \"$DF\" info \$f --json | grep -q '\"max\": [1-9]\\|\"max\": 0\\.[0-9]*[1-9]' || exit 1; done"

# 2 ranks: the same bytes (eval mode: a sample's map does not depend on its batch or rank)
mpi 2 "$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --method smoothgrad --samples 4 --out sal2 --quiet >sal2.log 2>&1
check "2 ranks write the same maps, byte for byte" bash -c "for f in sal-smoothgrad/*.nii.gz; do
    cmp -s <(gzip -dc \$f) <(gzip -dc sal2/\$(basename \$f)) || exit 1; done"

# chosen subjects only
"$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --subject sub-a2 --subject sub-c3 --out sel --quiet >sel.log 2>&1
check "--subject: only those maps" bash -c "[ \"\$(ls sel | tr '\n' ' ')\" = 'mean_saliency-grad.nii.gz sub-a2_saliency-grad.nii.gz sub-c3_saliency-grad.nii.gz ' ]"

# --region: the mean map's mass inside a mask on another grid (the LAS image itself, placed by
# its affine): a percentage of the saliency, of the volume, and their ratio
"$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --region src/a.nii --out reg --quiet >reg.log 2>&1
check "--region: reports the mass inside the mask" grep -q '^region src/a.nii: [0-9.]* % of the mean saliency in [0-9.]* % of the volume ([0-9.]* times its share)' reg.log
"$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --region nowhere.nii --out bad4 >bad4.log 2>&1
check "--region: an unreadable mask: status 2 before anything is written" bash -c "[ $? = 2 ] && grep -q 'nowhere.nii' bad4.log && [ ! -e bad4 ] &&
    ! ls -d bad4.tmp-* 2>/dev/null"

# bad input: exit 2, one message, nothing written
"$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --subject sub-zz --out bad1 >bad1.log 2>&1
check "an unknown subject: status 2, named, nothing written" bash -c "[ $? = 2 ] && grep -q 'sub-zz' bad1.log && [ ! -e bad1 ] &&
    ! ls -d bad1.tmp-* 2>/dev/null"
"$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --out sel >bad2.log 2>&1
check "an existing --out: status 2" bash -c "[ $? = 2 ] && grep -q 'already exists' bad2.log"
"$DF" saliency net.ini --checkpoint run/checkpoint.h5 --data packed --method occlusion --out bad3 >bad3.log 2>&1
check "an unknown --method: status 2" bash -c "[ $? = 2 ] && grep -q 'occlusion' bad3.log"
finish
