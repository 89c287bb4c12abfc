// fakecore.c: a stand-in for OpenBLAS's openblas_get_corename, preloaded (LD_PRELOAD) by
// tests/blas_core.sh to play a CPU that OpenBLAS does not recognise: it reports the core
// FAKE_DETECTED (say "Prescott") as OpenBLAS's own pick, and the core OPENBLAS_CORETYPE names
// once that is set -- as OpenBLAS does -- so the program's re-execution can be tested on any
// machine. Everything else (the kernels themselves) is the real OpenBLAS.
#include <stdlib.h>

const char *openblas_get_corename(void);
const char *openblas_get_corename(void) {
    const char *set = getenv("OPENBLAS_CORETYPE"), *fake = getenv("FAKE_DETECTED");
    return set ? set : fake ? fake : "Prescott";
}
