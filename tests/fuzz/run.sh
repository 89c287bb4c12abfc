#!/bin/sh
# tests/fuzz/run.sh [SECONDS]: a bounded libFuzzer run of every fuzz target (docs/reliability.md,
# "Fuzzing"), SECONDS each (default 10; six targets, about a minute). Run from a configured
# build tree; builds the targets with clang first (make fuzz). CI calls it after the tests.
# Where clang or libFuzzer is missing it says so and exits 0 (skipped); a crash exits 1 and
# prints the input that caused it (also kept in tests/fuzz/artifacts/), to be fixed and kept
# under tests/fuzz/regress/<target>/. New inputs the run discovers go to a scratch folder,
# never into the committed corpus. FUZZ_SEED=N fixes libFuzzer's random seed (CI sets 1).
# That does not make two runs alike: the time bound and the targets' temporary paths, which
# libFuzzer's comparison hooks feed back into its mutations, differ from run to run.
set -u
secs=${1:-10}
seed_flag=
[ -n "${FUZZ_SEED:-}" ] && seed_flag="-seed=$FUZZ_SEED"
targets="nifti manifest ini shard checkpoint bids"
[ -f Makefile ] || { echo "fuzz: run me from a configured build tree (the folder with the Makefile)" >&2; exit 2; }
srcdir=$(sed -n 's/^abs_top_srcdir = //p' Makefile)
cc=$(sed -n 's/^FUZZ_CC = //p' Makefile)
[ -n "$cc" ] || cc=clang
scratch=$(mktemp -d "${TMPDIR:-/tmp}/deconfound-fuzzrun.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$scratch/probe.c"
if ! command -v "$cc" >/dev/null 2>&1 ||
   ! "$cc" -fsanitize=fuzzer,address,undefined -o "$scratch/probe" "$scratch/probe.c" >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no clang with libFuzzer ($cc; Debian: apt-get install clang libfuzzer-14-dev)"
    exit 0
fi
echo "fuzz: building the targets with $cc (make fuzz)"
make -s fuzz FUZZ_CC="$cc" >"$scratch/build.log" 2>&1 || { cat "$scratch/build.log"; echo "fuzz: build failed"; exit 1; }
mkdir -p tests/fuzz/artifacts
# Leaks are findings too; allocations past 2 GB are reported (a header claiming a huge volume
# must not make the reader allocate it before its data exist).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$srcdir/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
# What a red run needs in CI's output, whose end is what gets read: each target's outcome, and
# for a failure its error, its innermost frames and the input itself (base64, when small),
# since libFuzzer explores differently on every run, the seed fixed or not (docs/reliability.md).
: >"$scratch/summary"
: >"$scratch/report"
for t in $targets; do
    mkdir -p "$scratch/$t"
    start=$(date +%s)
    # Debian's libhdf5 has no frame pointers: only slow unwinding sees the HDF5 function a
    # leak comes from, which lsan.supp names (the HDF5 readers only; it costs speed).
    case $t in shard|checkpoint) unwind=fast_unwind_on_malloc=0 ;; *) unwind=fast_unwind_on_malloc=1 ;; esac
    if ASAN_OPTIONS="$ASAN_OPTIONS:$unwind" tests/fuzz/fuzz_$t $seed_flag -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="tests/fuzz/artifacts/$t-" "$scratch/$t" "$srcdir/tests/fuzz/corpus/$t" \
         >"$scratch/$t.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
        echo "fuzz: $t: ok, ${runs:-?} inputs in $(( $(date +%s) - start )) s" | tee -a "$scratch/summary"
        continue
    fi
    input=$(sed -n 's/.*Test unit written to //p' "$scratch/$t.log" | tail -n 1)
    # The innermost frame that is neither the sanitizers, libFuzzer nor libc: inside
    # Debian's libhdf5 (1.10.8) it is a fault of the HDF5 library on a damaged file
    # (docs/reliability.md lists those found; tests/fuzz/hdf5-known/ keeps their inputs),
    # which this program cannot fix; reported, and fatal only with FUZZ_STRICT=1.
    frames=$(grep -aE '^ *#[0-9]+ ' "$scratch/$t.log" |
             grep -avE '__sanitizer|__asan|__interceptor|__lsan|__ubsan|fuzzer::|libc\.so|in (malloc|calloc|realloc|free|memcpy|memmove|abort|raise|__pthread_kill_implementation|__libc_start_call_main|__libc_start_main|_start|main) ')
    first=$(printf '%s\n' "$frames" | head -n 1)
    case $first in
    *libhdf5*)
        echo "fuzz: $t: a fault inside the HDF5 library (not this program's code), input $input:$first" | tee -a "$scratch/summary"
        echo "fuzz: $t: add the input to tests/fuzz/hdf5-known/ if new"
        [ "${FUZZ_STRICT:-0}" = 1 ] && status=1 ;;
    *)
        status=1
        tail -n 60 "$scratch/$t.log"
        echo "fuzz: $t: FAILED after $(( $(date +%s) - start )) s; input $input (replay: tests/fuzz/fuzz_$t FILE)" | tee -a "$scratch/summary"
        {
            echo "fuzz: $t: $(grep -a -m1 -E 'ERROR: |fuzz invariant broken|runtime error' "$scratch/$t.log")"
            printf '%s\n' "$frames" | head -n 8
            if [ -n "$input" ] && [ -f "$input" ] && [ "$(wc -c <"$input")" -le 4096 ]; then
                echo "fuzz: $t: the input, base64 (base64 -d >FILE):"
                base64 "$input"
            fi
        } >>"$scratch/report" ;;
    esac
done
echo "fuzz: summary"
cat "$scratch/report" "$scratch/summary"
exit $status
