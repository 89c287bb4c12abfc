// version.h: which code this program is, for the records a run leaves behind.
#ifndef DF_VERSION_H
#define DF_VERSION_H
// `git describe --always --dirty --tags` of the source tree at build time ("45cbd8b-dirty"),
// or the release's version in a tarball build.
const char *df_code_version(void);
#endif
