// fuzz_util.h: what the fuzz targets share (docs/reliability.md, "Fuzzing"). Each target is
// tests/fuzz/fuzz_<name>.c with LLVMFuzzerTestOneInput; libFuzzer drives it in the clang
// build (`make fuzz`), and replay.c drives the same function over the committed corpus and
// regression inputs in `make check` (built with the project's compiler, no libFuzzer).
#ifndef DF_FUZZ_UTIL_H
#define DF_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// This process's private folder ($TMPDIR or /tmp, "deconfound-fuzz.XXXXXX"), made on first
// use and removed with everything in it when the process exits normally.
const char *fuzz_dir(void);
// Writes the bytes to fuzz_dir()/name (replacing it) and returns the path (caller frees).
char *fuzz_write(const char *name, const uint8_t *data, size_t size);
// The bytes as a NUL-terminated string (a NUL inside ends it early, as in a file read as
// text). Caller frees.
char *fuzz_text(const uint8_t *data, size_t size);
// Makes fuzz_dir()/rel (and its parents) as a folder, or as an empty file when rel ends in
// a name with a dot; returns 0 or -1.
int fuzz_touch(const char *rel);
// Ends the process (with a message) when cond is false: a broken invariant is a finding.
#define FUZZ_CHECK(cond) fuzz_check((cond), #cond, __FILE__, __LINE__)
void fuzz_check(int ok, const char *what, const char *file, int line);
#endif
