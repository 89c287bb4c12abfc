# lib.sh -- what the studies' run.sh scripts share. Each sources it after `set -eu`:
#     here=$(cd "$(dirname "$0")" && pwd); . "$here/../lib.sh"
# A check that fails stops the study with one message and status 2, as bad input does
# everywhere in deconfound.

# study_fail MESSAGE: "SCRIPT: MESSAGE" on stderr (the script that runs: run.sh, heldout.sh),
# status 2.
study_fail() { echo "$(basename "$0"): $*" >&2; exit 2; }

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

# study_accuracies RUN_DIR: "val,val_last5,train" in % from a finished run's metrics.json
# (one epoch per line): the last epoch's validation and training accuracy, and validation's
# mean over the last 5 epochs (it swings from epoch to epoch).
study_accuracies() {
    local last val train last5
    last=$(grep '"epoch": ' "$1/metrics.json" | tail -1)
    val=$(echo "$last" | grep -o '"val_acc": [-0-9.e]*' | awk '{ printf "%.2f", 100 * $2 }')
    train=$(echo "$last" | grep -o '"train_acc": [-0-9.e]*' | awk '{ printf "%.2f", 100 * $2 }')
    last5=$(grep -o '"val_acc": [-0-9.e]*' "$1/metrics.json" | tail -5 | awk '{ s += $2 } END { printf "%.2f", 100 * s / NR }')
    echo "$val,$last5,$train"
}

# study_dcor_by_class RUN_DIR HALF: "age0,age1,site0,site1,max" from a run's dcor.json (one
# report per line, columns age and site): the per-class bias-corrected dCor^2 of the last
# report, and the largest of those four over the reports after epoch HALF.
study_dcor_by_class() {
    awk -v half="$2" '{
            e = $0; sub(/.*"epoch": /, "", e); e += 0
            for (c = 0; c < 2; c++) { col = c ? "site" : "age"
                t = $0; sub(".*\"" col "\": {[^}]*\"by_class\": \\[", "", t); sub(/\].*/, "", t)
                split(t, v, ", *"); last[2 * c] = v[1]; last[2 * c + 1] = v[2]
                if (e > half) for (j = 1; j <= 2; j++) if (!seen || v[j] + 0 > max) { max = v[j] + 0; seen = 1 } } }
            END { printf "%.4f,%.4f,%.4f,%.4f,%.4f", last[0], last[1], last[2], last[3], max }' "$1/dcor.json"
}

# study_finished RUN_DIR EPOCHS: the run has its checkpoint and all its epochs (it is not
# trained again; its result line is made again from its files).
study_finished() { [ -s "$1/checkpoint.h5" ] && grep -q "\"epoch\": $2," "$1/metrics.json" 2>/dev/null; }

# study_cat FILE...: the files that exist and are not empty, concatenated (a glob that
# matched nothing stays a literal name, and is skipped).
study_cat() { local f; for f; do if [ -s "$f" ]; then cat "$f"; fi; done; }
