# lib/: shared C, linked statically into every program and the filter.

LIB_SRCS := lib/log.c lib/uri.c lib/frame.c lib/sockets.c lib/psk.c \
            lib/tls.c lib/channel.c lib/jsonutil.c lib/progress.c lib/util.c
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)
LIBHANDOFF := $(O)/lib/libhandoff.a
LIB_PKGS := gnutls jansson
LIB_LIBS := $(call pc_libs,$(LIB_PKGS)) -lpthread

$(LIBHANDOFF): $(LIB_OBJS)
	$(call say,AR,$@)
	$(Q)$(AR) rcs $@ $^

LIB_TESTS := $(O)/lib/test-uri $(O)/lib/test-frame $(O)/lib/test-psk \
             $(O)/lib/test-channel $(O)/lib/test-checked-overflow \
             $(O)/lib/test-progress
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

$(O)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(LIB_SRCS) $(wildcard lib/include/*.h)
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LIB_SRCS) $(LIB_LIBS)

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZERS); do \
	  name=$${f#fuzz-}; work=$(O)/fuzz/work-$$name; \
	  rm -rf $$work; mkdir -p $$work; cp tests/fuzz/corpus/$$name/* $$work/; \
	  echo "fuzz: $$f for $(FUZZ_TIME)s"; \
	  $(O)/fuzz/$$f -max_total_time=$(FUZZ_TIME) -max_len=65536 \
	    -print_final_stats=1 $$work > $(O)/fuzz/$$f.log 2>&1 || \
	    { tail -40 $(O)/fuzz/$$f.log; echo "fuzz: $$f FAILED"; exit 1; }; \
	  grep -E 'stat::number_of_executed_units' $(O)/fuzz/$$f.log | sed "s/^/  $$f: /"; \
	done; echo "fuzz: all targets ran clean"
