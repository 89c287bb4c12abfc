#!/usr/bin/env bash
# Shards back out as NIfTI in each subject's own image space (deconfound export, and
# residualize/harmonize --nifti): names by subject, the source's dimensions and affine, the
# source's values where packing only reoriented, 1 and 2 ranks alike, bad input refused.
. "${top_srcdir:-.}/tests/lib.sh"
DF=$(cd "$top_builddir" && pwd)/deconfound
export DF
nib=/usr/lib/python3/dist-packages/nibabel/tests/data
[ -f "$nib/anatomical.nii" ] || { echo "SKIP: python3-nibabel's test data not installed"; exit 77; }
cd "$WORK"
geom() { nifti_geom "$1"; }
stats() { "$DF" info "$1" --json | grep -o '"min": [^,]*, "max": [^,]*, "mean": [^,]*'; }
export -f geom stats nifti_geom

# The LAS image packed with reorientation only (RAS+, its own 2 mm grid): going back is a
# permutation, so the exported file holds the source's very values, in its dims and affine.
mkdir src && cp "$nib/anatomical.nii" src/a.nii && cp "$nib/reoriented_anat_moved.nii" src/b.nii
printf 'path,label,subject\na.nii,0,sub-01\na.nii,1,sub-01\nb.nii,1,sub-02\n' >src/m.csv
"$DF" pack --manifest src/m.csv --out packed --shape 41,41,41 --quiet >/dev/null 2>&1 || fail "pack"
"$DF" export packed --out ex >ex.log 2>&1
check "export: one file per sample, named by subject" bash -c "[ \"\$(ls ex | tr '\n' ' ')\" = 'sub-01.nii.gz sub-01_2.nii.gz sub-02.nii.gz ' ] &&
    grep -q 'wrote 3 NIfTI files' ex.log"
check "export: the source's dimensions and affine" bash -c "[ \"\$(geom ex/sub-01.nii.gz)\" = \"\$(geom src/a.nii)\" ] &&
    [ \"\$(geom ex/sub-02.nii.gz)\" = \"\$(geom src/b.nii)\" ]"
check "export: the source's values (packing only reoriented and padded)" bash -c "[ \"\$(stats ex/sub-01.nii.gz)\" = \"\$(stats src/a.nii)\" ]"
mpi 2 "$DF" export packed --out ex2 >/dev/null 2>&1
check "export at 2 ranks: the same bytes" bash -c "for f in ex/*; do cmp -s <(gzip -dc \$f) <(gzip -dc ex2/\$(basename \$f)) || exit 1; done"
"$DF" export packed --out sel --subject sub-02 >/dev/null 2>&1
check "export --subject: that subject's samples only" bash -c "[ \"\$(ls sel)\" = sub-02.nii.gz ]"
"$DF" export packed --out ex >bad1.log 2>&1
check "export: an existing --out: status 2" bash -c "[ $? = 2 ] && grep -q 'already exists' bad1.log"
"$DF" export packed --out bad2 --subject sub-99 >bad2.log 2>&1
check "export: an unknown subject: status 2, nothing written" bash -c "[ $? = 2 ] && grep -q 'sub-99' bad2.log && [ ! -e bad2 ]"

# residualize and harmonize --nifti on a cohort packed from NIfTI (resampled and cropped)
"$DF" synth mri3d --nifti --out nii --n 24 --shape 12,12,12 --seed 2 >/dev/null
"$DF" pack --manifest nii/subjects.csv --out cohort --spacing 2 --shape 8,8,8 --quiet >/dev/null 2>&1 || fail "pack cohort"
mkdir res har
mpi 2 "$DF" residualize --train cohort --remove age --out res --nifti --quiet >res.log 2>&1
check "residualize --nifti: 24 files in res/nifti, in the sources' space" bash -c "[ \$(ls res/nifti | wc -l) = 24 ] &&
    [ \"\$(geom res/nifti/sub-00003.nii.gz)\" = \"\$(geom nii/sub-00003.nii.gz)\" ]"
mpi 2 "$DF" harmonize --train cohort --site site --out har --nifti --quiet >har.log 2>&1
check "harmonize --nifti: 24 files in har/nifti, in the sources' space" bash -c "[ \$(ls har/nifti | wc -l) = 24 ] &&
    [ \"\$(geom har/nifti/sub-00011.nii.gz)\" = \"\$(geom nii/sub-00011.nii.gz)\" ]"
"$DF" residualize --train cohort --remove age --out res --nifti --quiet >bad3.log 2>&1
check "residualize --nifti: an existing nifti folder: status 2 before any work" bash -c "[ $? = 2 ] && grep -q 'res/nifti already exists' bad3.log"
finish
