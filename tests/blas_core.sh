#!/usr/bin/env bash
# The program runs OpenBLAS's fastest kernels for the CPU however it is launched: plain, under
# mpirun, in a training run's header and in bench output. An explicit OPENBLAS_CORETYPE wins.
# tests/fakecore.c, preloaded, plays a CPU that OpenBLAS misdetects (it "detects" Prescott),
# so the re-execution is exercised on every machine; without it, the core OpenBLAS runs here
# must be of the CPU's own tier (AVX-512, AVX2), whoever chose it.
. "${top_srcdir:-.}/tests/lib.sh"
fake=$(cd "$top_builddir" && pwd)/tests/libfakecore.so
DF=$(cd "$top_builddir" && pwd)/deconfound
top_srcdir=$(cd "$top_srcdir" && pwd)
cd "$WORK"
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { for f in "$@"; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }
if has avx512f avx512bw avx512dq avx512vl avx512cd; then tier=avx512; want='SkylakeX|Cooperlake|SapphireRapids'; best=SkylakeX
elif has avx2 fma; then tier=avx2; want='Haswell|Zen|SkylakeX|Cooperlake'; best=Haswell
else tier=other; want='.*'; best=Prescott; fi
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), kernels tier $tier"

env -u OPENBLAS_CORETYPE "$DF" --version >plain.txt 2>&1 && cat plain.txt
check "--version names OpenBLAS and its core" grep -q 'OpenBLAS .*, core ' plain.txt
check "a plain launch runs a core of this CPU's tier ($want)" bash -c "core=\$(sed -n 's/.*core \([A-Za-z0-9]*\).*/\1/p' plain.txt); echo \"\$core\" | grep -qE '^($want)\$'"

OPENBLAS_CORETYPE=Prescott "$DF" --version >user.txt 2>&1
check "an explicit OPENBLAS_CORETYPE wins" grep -q 'core Prescott (OPENBLAS_CORETYPE' user.txt || cat user.txt
if [ $tier = other ]; then
    check "an explicit choice as fast as this CPU allows: said plainly" grep -q 'core Prescott (OPENBLAS_CORETYPE)' user.txt
else
    check "an explicit but slower choice names what this CPU runs ($best)" \
        grep -q "core Prescott (OPENBLAS_CORETYPE; slower than this CPU allows, which runs $best)" user.txt
fi

if [ -f "$fake" ]; then
    # Under ./configure --enable-sanitizers, ASan refuses to start when a preloaded library
    # comes before its runtime; the stand-in defines one OpenBLAS function and no allocator,
    # so that order is harmless here and the check is turned off (nothing else is).
    no_order=ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
    run_fake() { env -u OPENBLAS_CORETYPE LD_PRELOAD="$fake" FAKE_DETECTED=Prescott "$no_order" "$@"; }
    run_fake "$DF" --version >fake.txt 2>&1; cat fake.txt
    if [ $tier = other ]; then
        check "misdetected, but no faster kernels for this CPU: left alone" grep -q 'core Prescott (detected by OpenBLAS)' fake.txt
    else
        check "misdetected: re-executed with $best" grep -q "core $best (chosen by deconfound for this CPU; OpenBLAS detected Prescott)" fake.txt
        run_fake "$DF" bench sgemm --size 256 --threads 1 >bench.txt 2>&1
        check "bench prints the core it ran" grep -q "core $best:" bench.txt || cat bench.txt
        run_fake "$MPIEXEC" $MPI_FLAGS -x LD_PRELOAD -x FAKE_DETECTED -np 2 "$DF" train "$top_srcdir/pipelines/quickstart.ini" \
            --set data.n=16 --set data.shape=8,8,8 --set train.epochs=1 --set "train.out_dir=$WORK/run" >train.txt 2>&1
        check "under mpirun: the run header names the chosen core" grep -q "^blas: OpenBLAS .*core $best (chosen by deconfound" train.txt \
            || cat train.txt
        env OPENBLAS_CORETYPE=Haswell LD_PRELOAD="$fake" "$no_order" "$DF" --version >fake-user.txt 2>&1
        check "misdetected, but an explicit OPENBLAS_CORETYPE still wins" grep -q 'core Haswell (OPENBLAS_CORETYPE' fake-user.txt
    fi
else
    fail "tests/libfakecore.so was not built"
fi
finish
