# lib/: shared C, linked statically into every program and the filter.

LIB_SRCS := lib/log.c lib/uri.c lib/frame.c lib/sockets.c lib/psk.c \
            lib/tls.c lib/channel.c lib/jsonutil.c lib/progress.c lib/util.c \
            lib/staged-file.c lib/ctlserver.c lib/names.c lib/beneath.c \
            lib/clock.c lib/errors.c lib/digest.c lib/hostid.c \
            lib/ratelimit.c
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)
LIBHANDOFF := $(O)/lib/libhandoff.a
LIB_PKGS := gnutls jansson
LIB_LIBS := $(call pc_libs,$(LIB_PKGS)) -lpthread

$(LIBHANDOFF): $(LIB_OBJS)
	$(call say,AR,$@)
	$(Q)$(AR) rcs $@ $^

LIB_TESTS := $(O)/lib/test-uri $(O)/lib/test-frame $(O)/lib/test-psk \
             $(O)/lib/test-channel $(O)/lib/test-checked-overflow \
             $(O)/lib/test-progress $(O)/lib/test-names $(O)/lib/test-beneath \
             $(O)/lib/test-ratelimit
UNIT_TESTS += $(LIB_TESTS)

$(LIB_TESTS): $(O)/lib/test-%: $(O)/lib/test-%.o $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS) -lcmocka

FUZZERS += fuzz-frame fuzz-uri fuzz-psk

# libFuzzer targets (clang), each run for FUZZ_TIME seconds on a copy of
# its seed corpus in tests/fuzz/corpus/NAME.
FUZZ_TIME ?= 20
FUZZ_CC := clang
FUZZ_FLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
              -Ilib/include -Wall -Wextra -Werror
FUZZ_BINS = $(FUZZERS:%=$(O)/fuzz/%)

# A target's extra sources are its other prerequisites (see each
# component's build.mk: "$(O)/fuzz/fuzz-NAME: tests/fuzz/fuzz-NAME.c more.c"),
# and FUZZ_LIBS, set for the target, what it links besides.
$(O)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(LIB_SRCS) $(wildcard lib/include/*.h)
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $(patsubst %,-I%,$(sort $(dir $(filter-out tests/% lib/%,$(filter %.c,$^))))) \
	  -o $@ $(filter %.c,$^) $(LIB_LIBS) $(FUZZ_LIBS)

