# rdma-xfer/: librxfer (RDMA, TCP, unix transports) and handoff-xfer.

XFER_LIB_SRCS := rdma-xfer/xfer.c rdma-xfer/transport-sock.c \
                 rdma-xfer/transport-rdma.c rdma-xfer/ring.c \
                 rdma-xfer/probe.c
XFER_LIB_OBJS := $(XFER_LIB_SRCS:%.c=$(O)/%.o)
LIBRXFER := $(O)/rdma-xfer/librxfer.a
XFER_LIBS := $(call pc_libs,librdmacm libibverbs) $(LIB_LIBS)
EXTRA_CFLAGS_rdma-xfer_ := -Irdma-xfer

$(LIBRXFER): $(XFER_LIB_OBJS)
	$(call say,AR,$@)
	$(Q)$(AR) rcs $@ $^

BINS += $(O)/bin/handoff-xfer
$(O)/bin/handoff-xfer: $(O)/rdma-xfer/handoff-xfer.o $(O)/rdma-xfer/relay.o \
                       $(LIBRXFER) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(XFER_LIBS)

# `handoff xfer ...` finds it through libexec too.
LIBEXEC_BINS += $(O)/libexec/handoff-xfer
$(O)/libexec/handoff-xfer: $(O)/bin/handoff-xfer
	@mkdir -p $(dir $@)
	$(Q)ln -sf ../bin/handoff-xfer $@

UNIT_TESTS += $(O)/rdma-xfer/test-ring
$(O)/rdma-xfer/test-ring: $(O)/rdma-xfer/test-ring.o $(O)/rdma-xfer/ring.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcmocka

# --version names the source revision.
$(O)/rdma-xfer/handoff-xfer.o: $(O)/gen/build-info.h
