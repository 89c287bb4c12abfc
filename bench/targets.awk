# targets.awk: issue 18's targets, met or not, from the log of bench/targets.sh (the output of
# bench/brnet3d.sh, the MDN profiles and bench/dcor_report.sh, in that order). Each line gives
# the figures it judged, every round's, so that a noisy minute shows as such: "met" when every
# figure meets the target, "met in k of n" otherwise, "not measured" when the log lacks it.
#   awk -f bench/targets.awk LOG
# The patterns follow the lines cmd/bench.c and cmd/train.c print; tests/bench_targets.sh runs
# this file over the logs of real runs (tests/ref/targets-*-log.txt).

function digits(s) { gsub(/[^0-9.]/, "", s); return s }
function num(s) { return digits(s) + 0 }
# the value of "key=value" in the current line
function field(key,    i) {
    for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) return num(substr($i, length(key) + 2))
    return -1
}
# target t: one more figure v, which meets it when ok
function judge(t, v, ok) { vals[t] = vals[t] (n[t] ? ", " : "") v; n[t]++; if (ok) met[t]++ }

/^machine: / && machine == "" { machine = substr($0, 10); sub(/; [0-9]+ ranks? x [0-9]+ threads?$/, "", machine) }
/^=== / { section = $0 }
# bench conv3d: "conv1 1, 32, 64, 64 -> 16 forward direct-v3 24.68 73.4 95.8 77%"
section ~ /convolutions alone/ && /^conv[0-9]+ / && $NF ~ /%$/ {
    v = num($NF); n["conv"]++
    if (v >= 60) met["conv"]++
    else vals["conv"] = vals["conv"] ", " $1 " " $(NF - 5) " " $NF
    if (lowest == "" || v < low) { low = v; lowest = $1 " " $(NF - 5) " " $NF }
}
# bench brnet3d: "deconfound brnet3d ranks=1 threads=1 ... samples/s=26.1 (... = 70% of sgemm's 87.6) ..."
/^deconfound brnet3d ranks=/ && section ~ /round/ {
    ranks = field("ranks"); threads = field("threads"); sps = field("samples/s")
    match($0, /= [0-9]+% of sgemm/); share = num(substr($0, RSTART, RLENGTH))
    judge("step", ranks "x" threads " " share "%", share >= 50)
    if (ranks == 2) { # against PyTorch on 2 threads in the same round
        if (torch2 > 0) judge("cores", sprintf("%.2fx (2 ranks)", sps / torch2), sps / torch2 >= 2.5)
        torch2 = 0
    }
}
# "torch brnet3d threads=1 batch=16 samples/s=7.3 peak RSS 902 MB: deconfound is 3.57x its
# samples/s at 0.33x its memory"
/^torch brnet3d threads=/ {
    t = field("threads"); match($0, /is [0-9.]+x its samples/); r = digits(substr($0, RSTART, RLENGTH))
    match($0, /at [0-9.]+x its memory/); m = digits(substr($0, RSTART, RLENGTH))
    if (t == 1) judge("torch1", r "x", r + 0 >= 3)
    else { judge("cores", r "x (2 threads)", r + 0 >= 2.5); torch2 = field("samples/s") }
    judge("memory", m "x (" t (t == 1 ? " thread)" : " threads)"), m + 0 <= 0.5)
}
# "deconfound brnet3d 2 threads against 1 in one process, ...: median 1.89x (1.85-1.98x)"
/2 threads against 1 in one process/ && /median/ {
    match($0, /median [0-9.]+x/); v = num(substr($0, RSTART, RLENGTH))
    judge("scale", $NF ~ /\)$/ ? "median " v "x " $NF : "median " v "x", v >= 1.8)
}
# train's profile: "time per layer over ... (1 rank x 1 thread):", then "mdn_conv3 mdn 1.84 1.68 2.1%"
/^time per layer over/ {
    match($0, /\([0-9]+ ranks? x [0-9]+ threads?\)/); layout = substr($0, RSTART + 1, RLENGTH - 2); mdn = 0
}
$2 == "mdn" && $NF ~ /%$/ && layout != "" { mdn += num($NF) }
/^step total/ && layout != "" { judge("mdn", mdn "% (" layout ")", mdn <= 10); layout = "" }
# bench/dcor_report.sh: "report rank 0: peak 1230 MiB, wall 1:20.46"
/^report rank [0-9]+: peak/ { v = num($5); judge("dcor", "rank " num($3) " " v " MiB", v * 1048576 <= 2e9) }

function line(t, what) {
    if (!n[t]) verdict = "not measured"
    else if (met[t] == n[t]) verdict = "met"
    else verdict = sprintf("met in %d of %d", met[t], n[t])
    if (t == "conv" && n[t]) vals[t] = "lowest " lowest vals[t]  # and every phase below 60%
    printf "%-58s %-16s %s\n", what, verdict, vals[t]
}
END {
    print "issue 18's targets on " (machine == "" ? "(machine not in the log)" : machine)
    line("torch1", "1 thread >= 3x PyTorch's samples/s")
    line("cores", "2 cores >= 2.5x PyTorch's on 2 threads")
    line("conv", "every conv phase >= 60% of sgemm (bench conv3d)")
    line("step", "the step >= 50% of sgemm (ranks x threads)")
    line("scale", "2 threads >= 1.8x 1 thread in one process")
    line("memory", "peak memory <= 0.5x PyTorch's")
    line("mdn", "MDN <= 10% of the step (showcase placement)")
    line("dcor", "dCor report, 1000 x 262144 features: <= 2 GB per rank")
}
