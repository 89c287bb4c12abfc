#!/usr/bin/env bash
# [data] read = mpiio (parallel HDF5's MPI-IO driver, independent reads on the main thread)
# against read = pread: the loader's batches are byte-for-byte the same at 1, 2 and 3 ranks
# (tests/test_loader_mpiio, every rank checking its own shares, some of them empty), and a
# 2-rank training run reading its shards with MPI-IO gives the same losses as with pread.
. "${top_srcdir:-.}/tests/lib.sh"
T="$top_builddir/tests/test_loader_mpiio"

# 1. The loader: same batches, 1, 2 and 3 ranks (the shards are written by rank 0 into a
#    directory every rank sees; MPI-IO opens every shard on every rank).
for np in 1 2 3; do
    mkdir -p "$WORK/s$np"
    timeout 120 "$MPIEXEC" $MPI_FLAGS -np $np "$T" "$WORK/s$np" >"$WORK/loader$np.log" 2>&1
    status=$?
    check "loader: mpiio batches equal pread's at $np rank(s) (status $status)" [ $status = 0 ]
    [ $status = 0 ] || tail -n 30 "$WORK/loader$np.log"
done

# 2. Training from two shards left on disk (cache = disk): same losses with either read path.
"$DF" synth mri3d --out "$WORK/g1" --n 48 --shape 16,16,16 --seed 3 >/dev/null &&
    "$DF" synth mri3d --out "$WORK/g2" --n 40 --shape 16,16,16 --seed 4 >/dev/null
check "synth shards written" [ $? = 0 ]
cat >"$WORK/train.ini" <<INI
[data]
source = $WORK/g1/shard-00000.h5, $WORK/g2/shard-00000.h5
cache = disk
val_fraction = 0.25
flip = w
[train]
epochs = 2
batch = 8
optimizer = adam
lr = 0.002
seed = 1
log_every = 100
[loss]
type = cross_entropy
[conv3d]
name = conv1
out = 4
kernel = 3
pad = 1
[batchnorm3d]
name = bn1
[relu]
[maxpool3d]
kernel = 4
[flatten]
[linear]
name = fc
out = 2
INI
for read in pread mpiio; do
    timeout 120 "$MPIEXEC" $MPI_FLAGS -np 2 "$DF" train "$WORK/train.ini" --set data.read=$read \
        --set "train.out_dir=$WORK/t-$read" >"$WORK/t-$read.log" 2>&1
    status=$?
    check "train: read = $read at 2 ranks exits 0 (status $status)" [ $status = 0 ]
    [ $status = 0 ] || tail -n 20 "$WORK/t-$read.log"
done
check "train: 2 ranks, read = mpiio gives the losses of read = pread" losses_match "$WORK/t-pread" "$WORK/t-mpiio" 4
finish
