// version.c: the code version compiled in (see version.h). The only file that includes the
// generated header, so a new commit recompiles this file alone.
#include "base/version.h"
#include "base/code_version.h"

const char *df_code_version(void) { return DF_CODE_VERSION; }
