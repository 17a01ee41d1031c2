# ctl/: the handoff CLI and handoffd.

HANDOFF_CLI_SRCS := ctl/handoff.c ctl/cli-helper.c ctl/cmd-keygen.c \
                    ctl/cli-daemon.c ctl/cmd-vm.c ctl/cmd-migrate.c \
                    ctl/cmd-scan.c ctl/hostid.c
HANDOFF_CLI_OBJS := $(HANDOFF_CLI_SRCS:%.c=$(O)/%.o)
BINS += $(O)/bin/handoff

$(HANDOFF_CLI_OBJS): $(O)/gen/build-info.h
$(O)/bin/handoff: $(HANDOFF_CLI_OBJS) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)

HANDOFFD_SRCS := ctl/handoffd.c ctl/db.c ctl/qmp.c ctl/proc.c ctl/vm.c \
                 ctl/policy.c ctl/events.c ctl/cli-server.c ctl/peer.c \
                 ctl/migrate.c ctl/source-side.c ctl/incoming.c \
                 ctl/recover.c ctl/volume.c ctl/volume-in.c ctl/volume-ops.c \
                 ctl/hostid.c \
                 ctl/def-check.c ctl/peer-check.c
HANDOFFD_OBJS := $(HANDOFFD_SRCS:%.c=$(O)/%.o)
BINS += $(O)/bin/handoffd

$(HANDOFFD_OBJS): $(O)/gen/build-info.h
$(O)/bin/handoffd: $(HANDOFFD_OBJS) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) $(call pc_libs,sqlite3)

FUZZERS += fuzz-peer
$(O)/fuzz/fuzz-peer: tests/fuzz/fuzz-peer.c ctl/peer-check.c ctl/def-check.c

CTL_TESTS := $(O)/ctl/test-peer-check
UNIT_TESTS += $(CTL_TESTS)
$(O)/ctl/test-peer-check: $(O)/ctl/test-peer-check.o $(O)/ctl/peer-check.o \
                          $(O)/ctl/def-check.o $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) -lcmocka
