# ctl/: the handoff CLI (and, later, handoffd).

HANDOFF_CLI_SRCS := ctl/handoff.c ctl/cli-helper.c ctl/cmd-keygen.c
HANDOFF_CLI_OBJS := $(HANDOFF_CLI_SRCS:%.c=$(O)/%.o)
BINS += $(O)/bin/handoff

$(HANDOFF_CLI_OBJS): $(O)/gen/build-info.h
$(O)/bin/handoff: $(HANDOFF_CLI_OBJS) $(LIBHANDOFF)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)
