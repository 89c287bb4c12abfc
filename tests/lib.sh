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
finish() { echo "$n_pass passed, $n_fail failed"; [ "$n_fail" = 0 ]; exit $?; }
# Training losses of a run, one per line: every epoch's train and val loss from metrics.json
# (9 significant digits).
run_losses() { grep -o '"\(train\|val\)_loss": [-0-9.e]*' "$1/metrics.json" | awk '{print $2}'; }
# losses_match DIR_A DIR_B [COUNT]: two runs' losses agree to 1e-5 relative (and there are
# COUNT of them, when given); prints the ones that differ.
losses_match() {
    paste <(run_losses "$1") <(run_losses "$2") | awk -v want="${3:-0}" '
        { d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1
          if ($2 == "" || d > 1e-5 * a) { print "differs: " $1 " vs " $2; bad = 1 } }
        END { exit bad || NR == 0 || (want > 0 && NR != want) }'
}
