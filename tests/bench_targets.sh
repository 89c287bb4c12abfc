#!/usr/bin/env bash
# bench/targets.awk, the summary of issue 18's targets: over the logs of real runs of
# bench/targets.sh it gives the committed summaries, and over copies of one log with one figure
# changed it says which target that figure misses. The logs: Zen 3 (AVX2, OpenBLAS's Zen
# kernels; tests/ref/targets-zen3-log.txt) and Zen 4 playing the Intel Xeon of issue 18 (AVX-512;
# OpenBLAS made to detect Prescott, so every program re-executed itself with SkylakeX, and the
# header's core names both; tests/ref/targets-zen4-skylakex-log.txt).
# Runs no benchmark.
. "${top_srcdir:-.}/tests/lib.sh"
src=$(cd "$top_srcdir" && pwd)
cd "$WORK" || exit 1
log=$src/tests/ref/targets-zen3-log.txt
summary() { awk -f "$src/bench/targets.awk" "$1"; }
# verdict SUMMARY TARGET: the verdict column of the target's line
verdict() { grep "^$2" "$1" | cut -c60-75 | sed 's/ *$//'; }
# altered NAME SED_SCRIPT: the log edited by SED_SCRIPT as NAME.log, and its summary as NAME.txt
altered() { sed "$2" "$log" >"$1.log" && summary "$1.log" >"$1.txt"; }

summary "$log" >all.txt 2>&1
check "the real run's summary, as committed" diff -u "$src/tests/ref/targets-zen3-summary.txt" all.txt
summary "$src/tests/ref/targets-zen4-skylakex-log.txt" >avx512.txt 2>&1
check "an AVX-512 run re-executed with SkylakeX: its summary, as committed" \
    diff -u "$src/tests/ref/targets-zen4-skylakex-summary.txt" avx512.txt

altered conv '/^conv2 .* forward .*%$/s/[0-9]*%$/55%/'
check "a conv phase at 55 %: 11 of 12 phases, and that one named" \
    grep -q "^every conv phase.*met in 11 of 12 *lowest conv2 forward 55%, conv2 forward 55%$" conv.txt

altered torch '0,/^torch brnet3d threads=1 /s|deconfound is [0-9.]*x its samples|deconfound is 2.90x its samples|'
check "only 2.90x PyTorch in one round: 2 of 3" grep -q "^1 thread >= 3x.*met in 2 of 3 *2.90x, 3.34x, 3.28x$" torch.txt

# round 2's 2 ranks at 30 samples/s: 2.10x PyTorch's 14.3 on 2 threads in that round
altered ranks '/^deconfound brnet3d ranks=2 .*samples\/s=45.9 /s/samples\/s=45.9/samples\/s=30.0/'
check "2 ranks at 2.10x PyTorch on 2 threads: 5 of 6" grep -q "^2 cores >= 2.5x.*met in 5 of 6 .* 2.10x (2 ranks)," ranks.txt
# without round 3's PyTorch on 2 threads its 2 ranks have nothing to compare with (not round 2's)
altered round3 '/^torch brnet3d threads=2/{x;s/^/x/;/^xxx$/{x;d};x}'
check "a round without PyTorch on 2 threads: its 2 ranks not judged" \
    grep -q "^2 cores >= 2.5x.*met  .*3.69x (2 threads), 3.21x (2 ranks)$" round3.txt

altered notorch '/^torch brnet3d/d'
check "without PyTorch: its targets not measured" \
    test "$(verdict notorch.txt '1 thread >=')/$(verdict notorch.txt '2 cores')/$(verdict notorch.txt 'peak memory')" = \
    "not measured/not measured/not measured"
check "without PyTorch: the others still judged" test "$(verdict notorch.txt 'the step')" = met

altered mdn 's/^mdn_conv3 \(.*\) [0-9.]*%$/mdn_conv3 \1 10.5%/'
check "MDN at 10.5 % of the step (and fc1's): missed on both layouts" grep -q "^MDN <= 10%.*met in 0 of 2" mdn.txt

altered dcor 's/^\(report rank 1: peak\) [0-9]* MiB/\1 1908 MiB/'
check "a rank's dCor report over 2 GB (1908 MiB): missed there" grep -q "^dCor report.*met in 1 of 2 .*rank 1 1908 MiB" dcor.txt
finish
