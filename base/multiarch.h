// multiarch.h: one binary, the CPU's vector width. The build targets x86-64-v2 (SSE4.2) so the
// program runs on any cluster node of the last decade; a hot loop that gains from AVX2 or
// AVX-512 is compiled again for x86-64-v3 and x86-64-v4 with DF_TARGET_V3 / DF_TARGET_V4 and
// chosen at run time with df_isa_level(). The loop body is written once, as a static inline
// function that the three variants call (a function without target attributes inlines into
// one with them).
//
// Results do not depend on the level as long as the loop's arithmetic is the same per
// element: -std=c11 keeps fp-contract off, so a*b+c is never fused into one rounding unless a
// file asks for it (nn/conv3d_direct.c does, for its tiles only). GCC's target_clones with
// "arch=skylake-avx512" is not used: its resolver checks Intel model numbers, so AMD CPUs
// with AVX-512 would never get that clone.
#ifndef DF_MULTIARCH_H
#define DF_MULTIARCH_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define DF_MULTIARCH 1
#define DF_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#define DF_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#else
#define DF_TARGET_V3
#define DF_TARGET_V4
#endif
#define DF_INLINE static inline __attribute__((always_inline))

// The three variants name_v2, name_v3, name_v4 of `static void name(PARAMS)` whose body is
// `DF_INLINE void name_body(PARAMS)`, called with ARGS; DF_PICK(name) is the one for this CPU.
#define DF_MULTIARCH_FN(name, params, args)                    \
    static void name##_v2 params { name##_body args; }         \
    DF_TARGET_V3 static void name##_v3 params { name##_body args; } \
    DF_TARGET_V4 static void name##_v4 params { name##_body args; }
#define DF_PICK(name) (df_isa_level() >= 4 ? name##_v4 : df_isa_level() == 3 ? name##_v3 : name##_v2)

// 8 floats as one value (GCC vector extensions): one AVX2 register, half an AVX-512 one, two
// SSE ones; for loops whose lanes must stay where they are (partial sums). DF_LOAD8 reads 8
// floats at any alignment. (A 16-float vector is not a value GCC 12 keeps in AVX2 registers:
// it went through the stack and integer registers, 2.3x slower than SSE.)
typedef float df_v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float df_v8u __attribute__((vector_size(8 * sizeof(float)), aligned(4), may_alias));
#define DF_LOAD8(p) (*(const df_v8u *)(p))

// 4: AVX-512 (x86-64-v4), 3: AVX2 and FMA (x86-64-v3), 2: the build's baseline; at most the
// environment's DECONFOUND_ISA (2, 3 or 4: run another CPU's code path, e.g. the test suite
// as an AVX2-only CPU runs it) and the cap df_isa_set_max set (tests run every variant on one
// machine; `bench --isa`).
int df_isa_level(void);
// isa_max 2..4 caps df_isa_level; 0 removes the cap.
void df_isa_set_max(int isa_max);
#endif
