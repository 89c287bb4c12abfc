#!/usr/bin/env bash
# The folders are layers (docs/architecture.md): base/ -> mpi/ -> nn/ -> data/ -> prep/ -> run/ -> cmd/.
# A file may include only from its own folder and the folders before it, and there is no
# cycle between files. MPI is called only in mpi/; HDF5 and the NIfTI library only in data/
# (and mpi/h5mpi.c, which opens HDF5 files through MPI-IO). Reads the sources, runs nothing.
. "${top_srcdir:-.}/tests/lib.sh"
cd "$top_srcdir" || exit 1
layers=(base mpi nn data prep run cmd)
rank_of() { local i; for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
bad=0
for dir in "${layers[@]}"; do
    mine=$(rank_of "$dir")
    for f in "$dir"/*.[ch]; do
        while IFS= read -r inc; do
            to=${inc%%/*}
            [ "$to" = "$inc" ] && { echo "  $f: #include \"$inc\" names no folder"; bad=1; continue; }
            theirs=$(rank_of "$to")
            if [ "$theirs" -lt 0 ]; then echo "  $f: #include \"$inc\": not a layer"; bad=1
            elif [ "$theirs" -gt "$mine" ]; then echo "  $f ($dir/) includes $inc ($to/ is above it)"; bad=1; fi
        done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f" | grep -v '^config.h$')
    done
done
check "every include names its folder and points at its own layer or one below" [ $bad = 0 ]

# No cycle between files: an include graph of the sources, sorted topologically (tsort
# reports a loop). A .c file stands for its .h (they are one unit).
sources=$(for d in "${layers[@]}"; do ls "$d"/*.[ch]; done)
for f in $sources; do
    unit=${f%.[ch]}
    sed -n 's/^#include "\([^"]*\)\.h".*/\1/p' "$f" | grep -v '^config$' | while read -r to; do
        [ "$to" != "$unit" ] && echo "$unit $to"; done
done >"$WORK/edges"
tsort "$WORK/edges" >/dev/null 2>"$WORK/tsort.err"
check "no cycle between files" bash -c "! grep -q . '$WORK/tsort.err'" || cat "$WORK/tsort.err"

# Calls into libraries, by folder (comments stripped first, so a comment may name them).
code() { sed 's://.*$::' "$@"; }
others() { local d; for d in "${layers[@]}"; do [[ " $* " == *" $d "* ]] || ls "$d"/*.[ch]; done; }
mpi_calls=$(code $(others mpi) | grep -nE '#include <mpi.h>|\bMPI_[A-Za-z]+\(|\bMPI_COMM_WORLD\b' | head -3)
check "MPI only in mpi/" [ -z "$mpi_calls" ] || echo "$mpi_calls"
h5=$(code $(others data mpi) | grep -nE '#include <hdf5.h>|\bH5[A-Z][a-z]*[a-z_]*\(' | head -3)
check "HDF5 only in data/ and mpi/" [ -z "$h5" ] || echo "$h5"
nii=$(code $(others data) | grep -nE '#include <nifti|\bnifti_[a-z_]+\(|\bznz' | head -3)
check "the NIfTI library only in data/" [ -z "$nii" ] || echo "$nii"
finish
