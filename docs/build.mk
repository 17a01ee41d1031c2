# docs/: man pages, written in POD.  handoffd is a system daemon:
# section 8; the rest are commands: section 1.

MAN8_PODS := docs/handoffd.pod
MAN_PODS := $(filter-out $(MAN8_PODS),$(wildcard docs/*.pod))
MANPAGES += $(MAN_PODS:docs/%.pod=$(O)/man/%.1)
MANPAGES8 += $(MAN8_PODS:docs/%.pod=$(O)/man/%.8)

man_cmd = pod2man --section=$(1) --center="handoff" \
  --release="handoff $(VERSION)" --name="$(shell echo $* | tr a-z A-Z)"

$(O)/man/%.1: docs/%.pod
	@mkdir -p $(dir $@)
	$(call say,POD2MAN,$@)
	$(Q)$(call man_cmd,1) $< > $@

$(O)/man/%.8: docs/%.pod
	@mkdir -p $(dir $@)
	$(call say,POD2MAN,$@)
	$(Q)$(call man_cmd,8) $< > $@
