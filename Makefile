# handoff — top-level, non-recursive Makefile.
#
#   make                  build everything into $(O) (default build/)
#   make check            install missing packages, build, run every test
#   make check SANITIZE=1 the same, built with ASan + UBSan (build/san/)
#   make fuzz             build the libFuzzer targets and run each briefly
#   make demo             install, build and run the main job
#   make install          PREFIX=/usr/local DESTDIR=
#   make clean
#
# Each component adds itself in its own build.mk.

VERSION := 0.1.0
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

O ?= build
SANITIZE ?=
ifeq ($(SANITIZE),1)
O := build/san
SAN_CFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
SAN_LDFLAGS := -fsanitize=address,undefined
endif

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec/handoff
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/handoff
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
NBDKIT_FILTERDIR ?= $(shell pkg-config --variable=filterdir nbdkit 2>/dev/null)
DESTDIR ?=

CC ?= gcc
AR ?= ar
PKG_CONFIG ?= pkg-config

WARN := -Wall -Wextra -Wshadow -Wvla -Wformat=2 -Wmissing-prototypes \
        -Wwrite-strings -Werror
CFLAGS ?= -g -O2
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -fPIC $(WARN) $(CFLAGS) $(SAN_CFLAGS) \
              -Ilib/include -I$(O)/gen \
              -DHANDOFF_VERSION='"$(VERSION)"' \
              -DHANDOFF_LIBEXECDIR='"$(LIBEXECDIR)"' \
              -DHANDOFF_BINDIR='"$(BINDIR)"' \
              -DHANDOFF_FILTERDIR='"$(NBDKIT_FILTERDIR)"' \
              -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SAN_LDFLAGS)

pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pc_libs = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

# Filled by the fragments.
BINS :=
SBINS :=
LIBEXEC_BINS :=
FILTERS :=
UNIT_TESTS :=
FUZZERS :=
MANPAGES :=
MANPAGES8 :=
CLEAN_EXTRA :=

.DELETE_ON_ERROR:

.PHONY: all check check-build fuzz demo install clean deps bench \
        appliance appliance-boot lint

all:

include lib/build.mk
include nbd-mirror/build.mk
include fuse-share/build.mk
include rdma-xfer/build.mk
include volume-id/build.mk
include ctl/build.mk
include tests/build.mk
include docs/build.mk
include appliance/build.mk
include bench/build.mk

all: $(BINS) $(SBINS) $(LIBEXEC_BINS) $(FILTERS) $(MANPAGES) $(MANPAGES8)

# After every fragment has added its fuzzers.
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


# Quiet by default; V=1 shows full commands.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS_$(subst /,_,$(dir $<))) -c $< -o $@

# The build stamp carries the git revision without forcing rebuilds
# of everything when it changes.
$(O)/gen/build-info.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define HANDOFF_GIT_REV "$(GIT_REV)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

deps:
	@scripts/install-deps

check-build: all $(UNIT_TESTS) $(TEST_HELPERS)

check: deps
	@$(MAKE) --no-print-directory check-build
	@O=$(O) SANITIZE=$(SANITIZE) tests/run-tests.sh $(UNIT_TESTS) \
	  $(if $(TESTS),$(TESTS),$(sort $(wildcard tests/test-*.sh)))

demo: deps
	@$(MAKE) --no-print-directory all
	@O=$(O) scripts/demo

lint:
	@O=$(O) scripts/lint

bench: all $(BENCH_BINS)
	@for b in $(if $(BENCH),bench/$(BENCH).sh,bench/*.sh); do \
	  echo "== $$b"; O=$(O) $$b || exit 1; done

# The unit gets the paths of this install (PREFIX may differ from the
# build's).  The configuration example goes to $(SYSCONFDIR) only if
# there is none: an operator's policy is never overwritten.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
	  $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(NBDKIT_FILTERDIR) \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(COMPLETIONDIR) \
	  $(DESTDIR)$(DATADIR)/examples $(DESTDIR)$(SYSCONFDIR)/handoff
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(SBINS) $(DESTDIR)$(SBINDIR)/
	$(if $(LIBEXEC_BINS),install -m 0755 $(LIBEXEC_BINS) $(DESTDIR)$(LIBEXECDIR)/)
	$(if $(FILTERS),install -m 0755 $(FILTERS) $(DESTDIR)$(NBDKIT_FILTERDIR)/)
	$(if $(MANPAGES),install -m 0644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man1/)
	$(if $(MANPAGES8),install -m 0644 $(MANPAGES8) $(DESTDIR)$(MANDIR)/man8/)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  ctl/daemon/handoffd.service.in > $(DESTDIR)$(UNITDIR)/handoffd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/handoffd.service
	install -m 0644 ctl/cli/handoff.bash-completion \
	  $(DESTDIR)$(COMPLETIONDIR)/handoff
	install -m 0644 ctl/daemon/policy.example.json \
	  $(DESTDIR)$(DATADIR)/examples/policy.json
	test -e $(DESTDIR)$(SYSCONFDIR)/handoff/policy.json || \
	  install -m 0644 ctl/daemon/policy.json \
	    $(DESTDIR)$(SYSCONFDIR)/handoff/policy.json

clean:
	rm -rf build $(CLEAN_EXTRA)

-include $(shell find $(O) -name '*.d' 2>/dev/null)
