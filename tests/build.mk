# tests/: shell integration tests (tests/test-*.sh) are found by the
# top-level Makefile; helper programs the tests need are built here.
TEST_HELPERS := $(O)/tests/share-client $(O)/tests/peer-client

$(O)/tests/peer-client: $(O)/tests/peer-client.o $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(O)/tests/share-client: $(O)/tests/share-client.o $(O)/fuse-share/proto.o \
                         $(LIBHANDOFF)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)
EXTRA_CFLAGS_tests_ := -Ifuse-share
