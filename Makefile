# python-systemtap: CPython 2.7 and 3.13 with static markers for SystemTap,
# bpftrace, gdb and every other USDT consumer.
#
#   make sources      fetch and check the pristine tarballs (SOURCES=dir)
#   make build        build both Pythons with the markers: build/bin/python*
#   make build-shared the same, --enable-shared (markers in libpython)
#   make demo         trace a bundled workload with bpftrace: a live call tree
#   make check        run the test suite
#   make clean        remove build/

PY2_VERSION := 2.7.18
PY2_TARBALL := Python-$(PY2_VERSION).tgz
PY2_SHA256  := da3080e3b488f648a3d7a4560ddee895284c3380b11d6de75edb986526b9a814
PY2_URL     := https://www.python.org/ftp/python/$(PY2_VERSION)/$(PY2_TARBALL)

PY3_VERSION := 3.13.15
PY3_TARBALL := Python-$(PY3_VERSION).tar.xz
PY3_SHA256  := 1e66a7945a48390ee4c2a4268a0e4185884059a13c4aab6d148aa208deea4a76
PY3_URL     := https://www.python.org/ftp/python/$(PY3_VERSION)/$(PY3_TARBALL)

SOURCES ?= $(CURDIR)/sources
BUILD   := $(CURDIR)/build
PYTEST  ?= /usr/bin/python3 -m pytest
# Flags given to every configure; CONFIGURE_FLAGS adds more.
BASE_CONFIGURE_FLAGS := --with-dtrace --without-ensurepip
CONFIGURE_FLAGS ?=

SERIES := python2.7 python3.13

.PHONY: all sources build build-shared demo check clean distclean
.DELETE_ON_ERROR:

all: build

# --- sources ---------------------------------------------------------------

tarball.python2.7 := $(SOURCES)/$(PY2_TARBALL)
tarball.python3.13 := $(SOURCES)/$(PY3_TARBALL)
fetch.python2.7 := scripts/fetch-source.sh $(PY2_TARBALL) $(PY2_SHA256) python2.7 $(PY2_URL) $(SOURCES)
fetch.python3.13 := scripts/fetch-source.sh $(PY3_TARBALL) $(PY3_SHA256) python3.13 $(PY3_URL) $(SOURCES)

sources:
	$(fetch.python2.7)
	$(fetch.python3.13)

$(SOURCES)/$(PY2_TARBALL):
	$(fetch.python2.7)

$(SOURCES)/$(PY3_TARBALL):
	$(fetch.python3.13)

# --- build -----------------------------------------------------------------
# build/src/SERIES: the pristine tarball, patched, with probes.d installed.
# build/obj/SERIES[-shared]: the out-of-tree build.
# build/bin/SERIES[-shared]: the contract for tools, the in-tree interpreter.

define series_rules
$(BUILD)/src/$(1)/.prepared: $(tarball.$(1)) $(sort $(wildcard patches/$(1)/*.patch)) probes.d scripts/prepare-source.sh
	$(fetch.$(1))
	scripts/prepare-source.sh $(tarball.$(1)) patches/$(1) probes.d $(BUILD)/src/$(1)
	touch $$@

$(BUILD)/obj/$(1)/.built: $(BUILD)/src/$(1)/.prepared scripts/build-python.sh
	scripts/build-python.sh $(BUILD)/src/$(1) $(BUILD)/obj/$(1) $(BASE_CONFIGURE_FLAGS) $(CONFIGURE_FLAGS)
	touch $$@

$(BUILD)/obj/$(1)-shared/.built: $(BUILD)/src/$(1)/.prepared scripts/build-python.sh
	scripts/build-python.sh $(BUILD)/src/$(1) $(BUILD)/obj/$(1)-shared $(BASE_CONFIGURE_FLAGS) --enable-shared \
		LDFLAGS=-Wl,-rpath,$(BUILD)/obj/$(1)-shared $(CONFIGURE_FLAGS)
	touch $$@

# The link names a path, not contents: it need not follow rebuilds.
$(BUILD)/bin/$(1) $(BUILD)/bin/$(1)-shared: $(BUILD)/bin/%: | $(BUILD)/obj/%/.built
	mkdir -p $$(@D)
	ln -sfn ../obj/$$*/python $$@
endef
$(foreach s,$(SERIES),$(eval $(call series_rules,$(s))))

build: $(SERIES:%=$(BUILD)/bin/%)

build-shared: $(SERIES:%=$(BUILD)/bin/%-shared)

# --- use and test ----------------------------------------------------------

demo: build
	scripts/demo.sh $(BUILD)/bin/python2.7

check: build
	$(PYTEST) -v -rs tests

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(SOURCES)
