// multiarch.c: the CPU's vector level (see multiarch.h).
#include "base/multiarch.h"

static int isa_cap;

void df_isa_set_max(int isa_max) { isa_cap = isa_max; }

int df_isa_level(void) {
    int isa = 2;
#ifdef DF_MULTIARCH
    isa = __builtin_cpu_supports("x86-64-v4") ? 4 : __builtin_cpu_supports("x86-64-v3") ? 3 : 2;
#endif
    return isa_cap >= 2 && isa_cap < isa ? isa_cap : isa;
}
