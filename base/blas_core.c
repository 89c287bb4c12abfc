// blas_core.c: choose OpenBLAS's kernels for this CPU (see blas_core.h).
#include "base/blas_core.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

// Set beside OPENBLAS_CORETYPE when the program chose it, so the re-executed process can tell
// its own choice from the user's and name what OpenBLAS had detected.
#define DETECTED_ENV "DECONFOUND_BLAS_DETECTED"

// The kernel family a CPU can run, from its instruction sets. __builtin_cpu_supports also
// checks that the OS saves the AVX/AVX-512 registers (XGETBV), as OpenBLAS's own test does.
typedef enum { TIER_OTHER = 0, TIER_AVX2 = 1, TIER_AVX512 = 2 } Tier;

static Tier cpu_tier(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd"))
        return TIER_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TIER_AVX2;
#endif
    return TIER_OTHER;
}

// The tier of an OpenBLAS core. Zen's kernels are Haswell's; Cooperlake and SapphireRapids
// run SkylakeX's single- and double-precision kernels (plus bfloat16 ones this program does
// not use).
static Tier core_tier(const char *core) {
    static const char *const avx512[] = { "SkylakeX", "Cooperlake", "SapphireRapids", NULL };
    static const char *const avx2[] = { "Haswell", "Zen", NULL };
    for (int i = 0; avx512[i]; i++)
        if (strcasecmp(core, avx512[i]) == 0) return TIER_AVX512;
    for (int i = 0; avx2[i]; i++)
        if (strcasecmp(core, avx2[i]) == 0) return TIER_AVX2;
    return TIER_OTHER;
}

// The core this program asks for on a CPU of that tier. SkylakeX rather than Cooperlake: both
// run the same float kernels, and SkylakeX needs no bfloat16 instructions, so it is right on
// every AVX-512 CPU (Intel and AMD Zen 4/5).
static const char *tier_core(Tier t) { return t == TIER_AVX512 ? "SkylakeX" : "Haswell"; }

const char *blas_core_name(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

void blas_core_select(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return;  // the user's choice, or ours after the re-exec
    Tier cpu = cpu_tier();
    const char *detected = blas_core_name();
    if (cpu == TIER_OTHER || core_tier(detected) >= cpu) return;
    const char *want = tier_core(cpu);
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0 || setenv(DETECTED_ENV, detected, 1) != 0) return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    // Not reached unless the exec failed (no /proc): go on with the detected core, and let
    // blas_core_describe report that OpenBLAS runs something other than what was set.
    unsetenv(DETECTED_ENV);
    unsetenv("OPENBLAS_CORETYPE");
}

void blas_core_describe(char *buf, size_t n) {
    const char *core = blas_core_name(), *set = getenv("OPENBLAS_CORETYPE"), *detected = getenv(DETECTED_ENV);
    char how[160];
    if (set && detected && strcasecmp(set, core) == 0)
        snprintf(how, sizeof how, "chosen by deconfound for this CPU; OpenBLAS detected %s", detected);
    else if (set && strcasecmp(set, core) == 0 && core_tier(core) < cpu_tier())
        // Respected, but said: a module file or a copied job script that sets Haswell halves
        // the speed of an AVX-512 CPU, and nothing else would show it.
        snprintf(how, sizeof how, "OPENBLAS_CORETYPE; slower than this CPU allows, which runs %s",
                 tier_core(cpu_tier()));
    else if (set && strcasecmp(set, core) == 0)
        snprintf(how, sizeof how, "OPENBLAS_CORETYPE");
    else if (set)
        snprintf(how, sizeof how, "OPENBLAS_CORETYPE=%s was not usable on this CPU", set);
    else if (core_tier(core) < cpu_tier())
        snprintf(how, sizeof how, "detected by OpenBLAS; slower than this CPU allows: set OPENBLAS_CORETYPE");
    else
        snprintf(how, sizeof how, "detected by OpenBLAS");
    char version[48] = "?";
    const char *cfg = openblas_get_config();  // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."
    if (!cfg || sscanf(cfg, "OpenBLAS %40s", version) != 1) snprintf(version, sizeof version, "?");
    snprintf(buf, n, "OpenBLAS %s, core %s (%s)", version, core, how);
}

// "AMD EPYC (family 26 model 2)": the name alone does not tell CPU generations apart.
void cpu_model_describe(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512], name[256] = "", family[32] = "?", model[32] = "?";
    while (fgets(line, sizeof line, f) && strcmp(line, "\n") != 0) {  // the first processor
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 1 + (colon[1] == ' ');
        v[strcspn(v, "\n")] = '\0';
        if (strncmp(line, "model name", 10) == 0) snprintf(name, sizeof name, "%s", v);
        else if (strncmp(line, "cpu family", 10) == 0) snprintf(family, sizeof family, "%s", v);
        else if (strncmp(line, "model\t", 6) == 0) snprintf(model, sizeof model, "%s", v);
    }
    fclose(f);
    if (name[0]) snprintf(buf, n, "%s (family %s model %s)", name, family, model);
}

