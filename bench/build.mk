# bench/: helpers the benchmarks run next to handoff (built by 'make bench').

BENCH_BINS := $(O)/bench/plain-passthrough
EXTRA_CFLAGS_bench_ := $(call pc_cflags,fuse3)

$(O)/bench/plain-passthrough: $(O)/bench/plain-passthrough.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pc_libs,fuse3)
