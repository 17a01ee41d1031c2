# tests/: shell integration tests (tests/test-*.sh) are found by the
# top-level Makefile; helper programs the tests need are built here.
TEST_HELPERS :=
