# fuse-share/: handoff-share (mount, serve and their control).

# In the order data flows: the mount's operations, the session that
# mirrors them and copies the rest, its commit; the receiver at the
# other end; the protocol both speak.
SHARE_SRCS := fuse-share/mount.c fuse-share/state.c fuse-share/session.c \
              fuse-share/links.c fuse-share/forward.c \
              fuse-share/tree.c fuse-share/commit.c fuse-share/start-req.c \
              fuse-share/receiver.c fuse-share/proto.c
SHARE_OBJS := $(SHARE_SRCS:%.c=$(O)/%.o)
EXTRA_CFLAGS_fuse-share_ := $(call pc_cflags,fuse3) -Ifuse-share
SHARE_LIBS := $(call pc_libs,fuse3) $(LIB_LIBS)

BINS += $(O)/bin/handoff-share
$(O)/bin/handoff-share: $(O)/fuse-share/handoff-share.o $(SHARE_OBJS) \
                        $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(SHARE_LIBS)

LIBEXEC_BINS += $(O)/libexec/handoff-share
$(O)/libexec/handoff-share: $(O)/bin/handoff-share
	@mkdir -p $(dir $@)
	$(Q)ln -sf ../bin/handoff-share $@

UNIT_TESTS += $(O)/fuse-share/test-share-proto
$(O)/fuse-share/test-share-proto: $(O)/fuse-share/test-share-proto.o \
                                  $(O)/fuse-share/proto.o $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) -lcmocka

FUZZERS += fuzz-share
$(O)/fuzz/fuzz-share: tests/fuzz/fuzz-share.c fuse-share/proto.c

# The receivers of a start request, fuzzed apart from the session.
FUZZERS += fuzz-share-start
$(O)/fuzz/fuzz-share-start: tests/fuzz/fuzz-share-start.c \
                            fuse-share/start-req.c

# --version names the source revision.
$(O)/fuse-share/handoff-share.o: $(O)/gen/build-info.h
