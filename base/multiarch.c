// multiarch.c: the CPU's vector level (see multiarch.h).
#include "base/multiarch.h"
#include <stdlib.h>

static int isa_cap;       // df_isa_set_max
static int env_cap = -1;  // DECONFOUND_ISA, read once (-1: not yet)

void df_isa_set_max(int isa_max) { isa_cap = isa_max; }

int df_isa_level(void) {
    int isa = 2;
#ifdef DF_MULTIARCH
    isa = __builtin_cpu_supports("x86-64-v4") ? 4 : __builtin_cpu_supports("x86-64-v3") ? 3 : 2;
#endif
    if (env_cap < 0) {
        const char *e = getenv("DECONFOUND_ISA");
        env_cap = e && (e[0] == '2' || e[0] == '3' || e[0] == '4') && e[1] == '\0' ? e[0] - '0' : 0;
    }
    if (env_cap && env_cap < isa) isa = env_cap;
    return isa_cap >= 2 && isa_cap < isa ? isa_cap : isa;
}
