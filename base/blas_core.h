// blas_core.h: makes OpenBLAS run its fastest kernels for this CPU, however the program was
// launched (./deconfound, mpirun, srun, sbatch, a user's own script).
//
// Why: Debian 12's OpenBLAS 0.3.21 picks its kernels from the CPU model when the library
// loads. It does not know recent CPUs: on an Intel Xeon of family 6 model 207 (AVX-512, AMX)
// it falls back to its SSE3 "Prescott" kernels (sgemm 5x slower). (On AMD Zen 5 it detects
// Cooperlake, an AVX-512 set, by itself; the AVX2 "Haswell" runs seen there came from an
// environment that set OPENBLAS_CORETYPE=Haswell, sgemm 1.9x slower.) The only switch is the environment variable OPENBLAS_CORETYPE, read by the library's
// constructor before main() runs -- so the program sets it and executes itself again, once,
// before MPI_Init and before any BLAS call, on every rank.
#ifndef DF_BLAS_CORE_H
#define DF_BLAS_CORE_H
#include <stddef.h>

// Call first thing in main(). If OPENBLAS_CORETYPE is unset and the core OpenBLAS chose is
// slower than what this CPU can run (judged from the CPU's instruction sets, not its model),
// sets OPENBLAS_CORETYPE and re-executes the program with the same arguments. Returns
// (without re-executing) when the user set OPENBLAS_CORETYPE -- an explicit choice always
// wins -- when the chosen core is already the best, or when re-executing fails (the run then
// goes on with the slower kernels and blas_core_describe says so).
void blas_core_select(char **argv);

// "OpenBLAS 0.3.21, core SkylakeX (chosen by deconfound; OpenBLAS detected Haswell)" -- or
// "(OPENBLAS_CORETYPE)" when the user chose it (with what this CPU could run instead, when the
// choice is slower), "(detected by OpenBLAS)" otherwise.
void blas_core_describe(char *buf, size_t n);

// The core name OpenBLAS runs ("SkylakeX", "Haswell", "Prescott", ...).
const char *blas_core_name(void);
// The CPU as /proc/cpuinfo names it, with its family and model ("AMD EPYC (family 26 model
// 2)": the name alone does not tell CPU generations apart), for every printed figure.
void cpu_model_describe(char *buf, size_t n);
#endif
