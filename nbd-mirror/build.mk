# nbd-mirror/: the nbdkit filter and the handoff-mirror control tool.

MIRROR_FILTER := $(O)/filters/nbdkit-handoff-mirror-filter.so
# In the order data flows: the filter and the control socket; the
# session; destinations, the copier and the guest pool; what they stand
# on.
MIRROR_SRCS := nbd-mirror/filter.c nbd-mirror/control.c \
               nbd-mirror/control-req.c nbd-mirror/mirror.c \
               nbd-mirror/verify.c nbd-mirror/dest.c nbd-mirror/copier.c \
               nbd-mirror/pool.c nbd-mirror/connect.c nbd-mirror/source.c \
               nbd-mirror/state.c nbd-mirror/chunkmap.c
MIRROR_OBJS := $(MIRROR_SRCS:%.c=$(O)/%.o)
FILTERS += $(MIRROR_FILTER)
EXTRA_CFLAGS_nbd-mirror_ := $(call pc_cflags,nbdkit libnbd) -Inbd-mirror

$(MIRROR_FILTER): $(MIRROR_OBJS) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -o $@ $(MIRROR_OBJS) $(LIBHANDOFF) \
	  $(call pc_libs,libnbd) $(LIB_LIBS)

MIRROR_CLI_OBJS := $(O)/nbd-mirror/handoff-mirror.o
LIBEXEC_BINS += $(O)/libexec/handoff-mirror

$(O)/libexec/handoff-mirror: $(MIRROR_CLI_OBJS) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)

UNIT_TESTS += $(O)/nbd-mirror/test-chunkmap
$(O)/nbd-mirror/test-chunkmap: $(O)/nbd-mirror/test-chunkmap.o \
                               $(O)/nbd-mirror/chunkmap.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcmocka

# The control requests, fuzzed apart from the session they drive.
FUZZERS += fuzz-mirror-control
$(O)/fuzz/fuzz-mirror-control: tests/fuzz/fuzz-mirror-control.c \
                               nbd-mirror/control-req.c

# --version names the source revision.
$(O)/nbd-mirror/handoff-mirror.o $(O)/nbd-mirror/filter.o: $(O)/gen/build-info.h
