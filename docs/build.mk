# docs/: man pages, written in POD.

MAN_PODS := $(wildcard docs/*.pod)
MANPAGES += $(MAN_PODS:docs/%.pod=$(O)/man/%.1)

$(O)/man/%.1: docs/%.pod
	@mkdir -p $(dir $@)
	$(call say,POD2MAN,$@)
	$(Q)pod2man --section=1 --center="handoff" --release="handoff $(VERSION)" \
	  --name="$(shell echo $* | tr a-z A-Z)" $< > $@
