# fuzz.mk: the libFuzzer targets, built with clang (GNU make; `make fuzz` runs it with the
# variables below filled in by the automake Makefile, docs/reliability.md "Fuzzing").
# Every library source is compiled again with clang, ASan and UBSan and libFuzzer's coverage
# instrumentation into $(OBJDIR); the targets link those objects, so the normal (gcc) build
# is untouched. OpenMP is left out (the readers do not use it; clang's libomp is not needed).
#   SRCDIR     the source tree          FUZZ_CC   clang
#   MPICC      Open MPI's wrapper (OMPI_CC=$(FUZZ_CC) makes it call clang with MPI's flags)
#   LIB_SRCS   the library's .c files (relative to SRCDIR)
#   CPPFLAGS, LIBS   as the normal build computes them (HDF5, NIfTI, OpenBLAS, ScaLAPACK)
FUZZ_TARGETS = nifti manifest ini shard checkpoint bids
OUTDIR = tests/fuzz
OBJDIR = $(OUTDIR)/obj
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -g -O1 -std=c11 $(SAN) -fsanitize=fuzzer-no-link -Wno-unknown-pragmas -Wno-source-uses-openmp
CLANG = OMPI_CC=$(FUZZ_CC) $(MPICC)
LIB_OBJS = $(patsubst %.c,$(OBJDIR)/%.o,$(filter %.c,$(LIB_SRCS)))
BINS = $(patsubst %,$(OUTDIR)/fuzz_%,$(FUZZ_TARGETS))

all: $(BINS)

$(OBJDIR)/%.o: $(SRCDIR)/%.c
	@mkdir -p $(dir $@)
	@echo "  CLANG    $<"
	@$(CLANG) $(FUZZ_CFLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

$(OUTDIR)/libfuzzlib.a: $(LIB_OBJS)
	@rm -f $@
	@echo "  AR       $@"
	@ar rcs $@ $(LIB_OBJS)

$(OUTDIR)/fuzz_%: $(OBJDIR)/tests/fuzz/fuzz_%.o $(OBJDIR)/tests/fuzz/fuzz_util.o $(OUTDIR)/libfuzzlib.a
	@echo "  CLANGLD  $@"
	@$(CLANG) $(SAN) -fsanitize=fuzzer -o $@ $^ $(LIBS)

.PHONY: all
.SECONDARY:
-include $(LIB_OBJS:.o=.d) $(patsubst %,$(OBJDIR)/tests/fuzz/fuzz_%.d,$(FUZZ_TARGETS)) $(OBJDIR)/tests/fuzz/fuzz_util.d
