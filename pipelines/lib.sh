# lib.sh -- what the studies' run.sh scripts share. Each sources it after `set -eu`:
#     here=$(cd "$(dirname "$0")" && pwd); . "$here/../lib.sh"
# A check that fails stops the study with one message and status 2, as bad input does
# everywhere in deconfound.

# study_fail MESSAGE: "run.sh: MESSAGE" on stderr, status 2.
study_fail() { echo "run.sh: $*" >&2; exit 2; }

# study_help FILE: FILE's opening comment block, without the '#'s (its --help).
study_help() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"; }

# study_binary PATH: the deconfound binary must be an executable.
study_binary() { [ -x "$1" ] || study_fail "$1 is not an executable (build the project or set DECONFOUND)"; }

# study_choose WHAT "ALLOWED ..." VALUE...: every VALUE is one of ALLOWED.
study_choose() {
    local what=$1 allowed=$2 v
    shift 2
    for v; do case " $allowed " in *" $v "*) ;; *) study_fail "unknown $what '$v' ($allowed)" ;; esac; done
}

# study_counts OPTIONS VALUE...: every VALUE is a non-negative integer (OPTIONS names the
# options they came from); study_positive: a positive one.
study_counts() {
    local opts=$1 v
    shift
    for v; do case $v in *[!0-9]*|'') study_fail "'$v' is not a non-negative integer ($opts)" ;; esac; done
}
study_positive() {
    local opts=$1 v
    shift
    for v; do case $v in *[!0-9]*|''|0) study_fail "'$v' is not a positive integer ($opts)" ;; esac; done
}

# study_mpirun_flags: Open MPI's options for a study: ranks may outnumber cores, and root may run.
study_mpirun_flags() {
    local f="--oversubscribe -q"
    [ "$(id -u)" = 0 ] && f="$f --allow-run-as-root"
    echo "$f"
}

# study_cpu: the CPU model, printed beside every figure.
study_cpu() { grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'; }

# study_publish FILE: standard input into FILE whole or not at all (a temporary name, then
# a rename), so an interrupted study never leaves a half-written table.
study_publish() { cat >"$1.tmp" && mv "$1.tmp" "$1"; }
