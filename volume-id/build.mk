# volume-id/: handoff-volid (handoff volume ...).

VOLID_SRCS := volume-id/descriptor.c volume-id/probe.c volume-id/blockdev.c
VOLID_OBJS := $(VOLID_SRCS:%.c=$(O)/%.o)
EXTRA_CFLAGS_volume-id_ := $(call pc_cflags,blkid) -Ivolume-id
VOLID_LIBS := $(call pc_libs,blkid) $(LIB_LIBS)

LIBEXEC_BINS += $(O)/libexec/handoff-volid
$(O)/libexec/handoff-volid: $(O)/volume-id/handoff-volid.o $(VOLID_OBJS) \
                            $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(VOLID_LIBS)

UNIT_TESTS += $(O)/volume-id/test-descriptor
$(O)/volume-id/test-descriptor: $(O)/volume-id/test-descriptor.o \
                                $(O)/volume-id/descriptor.o $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) -lcmocka

FUZZERS += fuzz-descriptor
$(O)/fuzz/fuzz-descriptor: tests/fuzz/fuzz-descriptor.c volume-id/descriptor.c

# --version names the source revision.
$(O)/volume-id/handoff-volid.o: $(O)/gen/build-info.h
