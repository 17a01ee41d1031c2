# ctl/: the handoff CLI (ctl/cli/) and handoffd (ctl/daemon/).

HANDOFF_CLI_SRCS := ctl/cli/handoff.c ctl/cli/client.c ctl/cli/helper.c \
                    ctl/cli/cmd-keygen.c ctl/cli/cmd-vm.c \
                    ctl/cli/cmd-migrate.c ctl/cli/cmd-scan.c \
                    ctl/cli/cmd-fleet.c
HANDOFF_CLI_OBJS := $(HANDOFF_CLI_SRCS:%.c=$(O)/%.o)
BINS += $(O)/bin/handoff

$(HANDOFF_CLI_OBJS): $(O)/gen/build-info.h
$(O)/bin/handoff: $(HANDOFF_CLI_OBJS) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)

# In the order data flows: main and its configuration; the CLI socket;
# the migrations this host sends and receives; what they stand on.
HANDOFFD_SRCS := ctl/daemon/handoffd.c ctl/daemon/config.c \
                 ctl/daemon/server.c ctl/daemon/request-check.c \
                 ctl/daemon/migration.c ctl/daemon/record.c \
                 ctl/daemon/source.c ctl/daemon/source-warm.c \
                 ctl/daemon/source-streams.c ctl/daemon/source-dests.c \
                 ctl/daemon/source-each.c ctl/daemon/source-helpers.c \
                 ctl/daemon/source-mirror.c ctl/daemon/proxy-disks.c \
                 ctl/daemon/proxy-share.c ctl/daemon/source-share.c \
                 ctl/daemon/source-proxy.c ctl/daemon/proxy-helper.c \
                 ctl/daemon/source-relay.c \
                 ctl/daemon/transport.c \
                 ctl/daemon/source-end.c \
                 ctl/daemon/destination.c ctl/daemon/proxy.c \
                 ctl/daemon/dest-phases.c \
                 ctl/daemon/dest-recover.c ctl/daemon/receiving.c \
                 ctl/daemon/volume.c ctl/daemon/volume-in.c \
                 ctl/daemon/volume-ops.c ctl/daemon/recover.c \
                 ctl/daemon/peer.c ctl/daemon/peer-check.c \
                 ctl/daemon/def-check.c ctl/daemon/policy.c \
                 ctl/daemon/events.c ctl/daemon/vm.c ctl/daemon/vm-disks.c ctl/daemon/qmp.c \
                 ctl/daemon/nbd-tls.c ctl/daemon/cluster-fence.c \
                 ctl/daemon/cluster.c ctl/daemon/cluster-place.c \
                 ctl/daemon/evacuate.c ctl/daemon/etcd.c \
                 ctl/daemon/metrics.c ctl/daemon/metrics-http.c \
                 ctl/daemon/proc.c ctl/daemon/db.c
HANDOFFD_OBJS := $(HANDOFFD_SRCS:%.c=$(O)/%.o)
SBINS += $(O)/bin/handoffd

$(HANDOFFD_OBJS): $(O)/gen/build-info.h
$(O)/bin/handoffd: $(HANDOFFD_OBJS) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) $(call pc_libs,sqlite3 libsystemd libcurl libmicrohttpd)

FUZZERS += fuzz-peer fuzz-policy fuzz-admin
$(O)/fuzz/fuzz-admin: tests/fuzz/fuzz-admin.c ctl/daemon/request-check.c \
                      ctl/daemon/def-check.c
$(O)/fuzz/fuzz-peer: tests/fuzz/fuzz-peer.c ctl/daemon/peer-check.c \
                     ctl/daemon/def-check.c
$(O)/fuzz/fuzz-policy: FUZZ_LIBS = $(call pc_libs,sqlite3)
$(O)/fuzz/fuzz-policy: tests/fuzz/fuzz-policy.c ctl/daemon/policy.c \
                       ctl/daemon/db.c ctl/daemon/config.c \
                       ctl/daemon/metrics.c

CTL_TESTS := $(O)/ctl/daemon/test-peer-check $(O)/ctl/daemon/test-proc
UNIT_TESTS += $(CTL_TESTS)
$(O)/ctl/daemon/test-proc: $(O)/ctl/daemon/test-proc.o $(O)/ctl/daemon/proc.o \
                           $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) -lcmocka

$(O)/ctl/daemon/test-peer-check: $(O)/ctl/daemon/test-peer-check.o \
                                 $(O)/ctl/daemon/peer-check.o \
                                 $(O)/ctl/daemon/def-check.o $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) -lcmocka

