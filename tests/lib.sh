# lib.sh: sourced by the script tests. Finds the program and builds the MPI launch line.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
DF="$top_builddir/deconfound"
MPIEXEC=${MPIEXEC:-mpirun}
# Open MPI refuses to run as root without these; --oversubscribe lets 3 ranks share 2 cores.
MPI_FLAGS="--oversubscribe -q"  # -q: no mpirun banner over our one-line error
[ "$(id -u)" = 0 ] && MPI_FLAGS="$MPI_FLAGS --allow-run-as-root"
export OPENBLAS_NUM_THREADS=1
mpi() { local np=$1; shift; "$MPIEXEC" $MPI_FLAGS -np "$np" "$@"; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deconfound-test.XXXXXX")
# KEEP_WORK=1 keeps the files for a look after a failure.
cleanup_work() { [ "${KEEP_WORK:-0}" = 1 ] && echo "files kept in $WORK" || rm -rf "$WORK"; }
trap cleanup_work EXIT
n_pass=0; n_fail=0
pass() { n_pass=$((n_pass + 1)); echo "PASS: $*"; }
fail() { n_fail=$((n_fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
n_skip=0
# skip WHY: part of a script cannot run here (a tool or data package is absent). A script
# with something skipped and nothing failed exits 77, automake's "skipped", not a pass.
skip() { n_skip=$((n_skip + 1)); echo "SKIP: $*"; }
finish() {
    echo "$n_pass passed, $n_fail failed$([ "$n_skip" = 0 ] || echo ", $n_skip skipped")"
    [ "$n_fail" = 0 ] || exit 1
    [ "$n_skip" = 0 ] || exit 77
    exit 0
}
# Training losses of a run, one per line: every epoch's train and val loss from metrics.json
# (9 significant digits), as "train VALUE" / "val VALUE".
run_losses() { grep -o '"\(train\|val\)_loss": [-0-9.e]*' "$1/metrics.json" | sed 's/_loss"*:/ /; s/"//g'; }
# losses_match DIR_A DIR_B [COUNT]: two runs of the same training at different rank counts
# agree "to rounding" (and there are COUNT losses, when given); prints the ones that differ.
# Rank counts sum the gradients in different orders, so results can only agree to rounding:
# - train losses to 1e-5 relative. Measured between 1, 2 and 3 ranks on OpenBLAS's
#   Prescott, Haswell and SkylakeX kernels: at most 1.4e-7 after 4 epochs. A real fault --
#   BatchNorm statistics of one rank's share instead of the global batch -- moves them by
#   1.2e-3 or more (measured by breaking it).
# - validation losses to 1e-3 relative. Evaluation normalises with BatchNorm's running
#   statistics, which carry the run's history; and Adam turns the rounding noise of a
#   gradient that is zero in exact arithmetic -- the bias of a convolution that feeds
#   BatchNorm -- into steps of full size, which the running means follow. Measured: up to
#   2.9e-5 after 4 epochs (SkylakeX kernels); docs/distributed.md has the details.
losses_match() {
    paste <(run_losses "$1") <(run_losses "$2") | awk -v want="${3:-0}" '
        { tol = $1 == "train" ? 1e-5 : 1e-3; d = $2 - $4; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2
          if ($4 == "" || $1 != $3 || d > tol * a) { print "differs: " $1 " " $2 " vs " $4; bad = 1 } }
        END { exit bad || NR == 0 || (want > 0 && NR != want) }'
}
# expect_rewrite_error NAME WANT NP COMMAND ARGS...: `deconfound COMMAND --out $WORK/NAME ARGS`
# (a command that rewrites shards into a folder: residualize, harmonize) on NP ranks exits
# with status 2, one message naming WANT, and nothing in the folder.
expect_rewrite_error() {
    local name=$1 want=$2 np=$3 cmd=$4; shift 4
    mkdir -p "$WORK/$name"
    timeout 120 "$MPIEXEC" $MPI_FLAGS -np "$np" "$DF" "$cmd" --out "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1
    local status=$?
    check "$name: exit status 2 (got $status)" [ $status = 2 ]
    check "$name: the message names $want" grep -qF -- "$want" "$WORK/$name.log" || cat "$WORK/$name.log"
    check "$name: nothing written" [ -z "$(ls -A "$WORK/$name")" ]
}

# The program's temporary names: .NAME.tmp.PID (files and pack's folder), OUT.tmp-PID
# (export's and saliency's folders), .NAME.TAG.tmp (residualize's and harmonize's shards).
tmp_names='\.tmp([.-]|$)'
# expect_fail NAME PATTERN OUTDIR CMD...: exit status 2, one stderr line matching PATTERN,
# OUTDIR absent afterwards and no temporary file or folder beside it.
expect_fail() {
    local name=$1 pattern=$2 out=$3; shift 3
    local err="$WORK/err.txt" status
    "$@" >"$WORK/out.txt" 2>"$err"; status=$?
    if [ "$status" != 2 ]; then fail "$name: exit status $status, expected 2"; cat "$err"; return; fi
    if ! grep -Eq -- "$pattern" "$err"; then fail "$name: message does not match /$pattern/:"; cat "$err"; return; fi
    if [ "$(grep -c . "$err")" != 1 ]; then fail "$name: expected exactly one message line"; cat "$err"; return; fi
    if [ -e "$out" ] || ls -a "$(dirname "$out")" | grep -Eq "$tmp_names"; then fail "$name: left output behind"; return; fi
    pass "$name"
}

# nifti_geom FILE: a NIfTI file's dimensions and affine, as `deconfound info --json` gives them
# (two files in the same space print the same line).
nifti_geom() { "$DF" info "$1" --json | grep -o '"dims": \[[^]]*\]\|"affine": \[\[[^]]*\], \[[^]]*\], \[[^]]*\]\]' | tr '\n' ' '; }

# own_folder_refused CMD ARGS...: residualize or harmonize of copies of $WORK's train1.h5,
# train2.h5 and apply.h5 at 2 ranks, with --out the copies' own folder spelt "." from inside
# it: refused with one message, the shards as they were, nothing else left there
# (prep/outputs.c).
own_folder_refused() {
    local cmd=$1 df_abs status
    shift
    rm -rf "$WORK/own" && mkdir -p "$WORK/own" && cp "$WORK/train1.h5" "$WORK/train2.h5" "$WORK/apply.h5" "$WORK/own/"
    df_abs=$(readlink -f "$DF")
    (cd "$WORK/own" && timeout 120 "$MPIEXEC" $MPI_FLAGS -np 2 "$df_abs" "$cmd" --train train1.h5,train2.h5 --apply apply.h5 \
        "$@" --out . >"$WORK/own.log" 2>&1)
    status=$?
    check "$cmd --out the inputs' folder: exit status 2 (got $status)" [ $status = 2 ]
    check "$cmd --out the inputs' folder: one message, the output would overwrite an input, train1.h5" \
        [ "$(grep -c "the output would overwrite an input, train1.h5" "$WORK/own.log")" = 1 ] || cat "$WORK/own.log"
    check "$cmd --out the inputs' folder: the inputs untouched, nothing else there" bash -c \
        "cd '$WORK' && cmp -s train1.h5 own/train1.h5 && cmp -s apply.h5 own/apply.h5 && [ \$(ls -A own | wc -l) = 3 ]"
}
