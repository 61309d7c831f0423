# python-systemtap: CPython 2.7, 3.13 and 3.14 with static markers for SystemTap,
# bpftrace, gdb and every other USDT consumer.
#
#   make setup        install the Debian packages every job needs (as root;
#                     scripts/packages) and mount tracefs; demo, check and
#                     bench do it themselves
#   make sources      fetch and check the pristine tarballs (SOURCES=dir)
#   make build        build every Python with the markers: build/bin/python*
#   make build-shared the same, --enable-shared (markers in libpython)
#   make build-variants  Python 3.13 and 3.14 free-threaded and with the
#                     tier-2 (JIT) interpreter: build/bin/python3.1X-ft, -jit
#   make module       usdtmon, the markers from sys.monitoring, built for
#                     3.13, 3.14, 3.14-ft and upstream's 3.15:
#                     build/module/BUILD/usdtmon
#   make trixie       Debian 13 with its own python3.13 in build/trixie, and
#                     usdtmon built there (as root: debootstrap, chroot)
#   make install-module PYTHON=P [DESTDIR=D] [tapsetdir=T] [SITE_WIDE=1]
#                     build usdtmon for the Python P and install it into
#                     its site-packages, with a tapset (SITE_WIDE=1: loaded
#                     by every process of P, unless USDTMON=0)
#   make stock        upstream's 3.15 as released, with usdtmon:
#                     build/bin/python3.15, build/module/python3.15
#   make demo         set up, build, and trace a bundled workload with
#                     bpftrace: its call tree and its hottest functions
#   make check        set up, build everything, and run the test suite
#   make check-quick  the tests that need no build (parsers, scripts' errors,
#                     the spec's consistency, shellcheck): on every edit
#   make rpm          rpmbuild -ba python.spec: build/rpm/RPMS, build/rpm/SRPMS
#   make srpm         rpmbuild -bs python.spec: build/rpm/SRPMS
#   make bench        measure what the markers cost: docs/performance.md
#   make tapset       SystemTap tapsets for the builds: build/tapset*/
#                     (PYTHON=/usr/bin/python3.11: for that Python instead)
#   make install      install the Pythons (altinstall: pythonX.Y only) and the
#                     examples under PREFIX, their tapsets into tapsetdir,
#                     listed in a manifest (DESTDIR, PREFIX, tapsetdir)
#   make uninstall    remove what the manifest lists (DESTDIR, PREFIX)
#   make clean        remove build/

SOURCES ?= $(CURDIR)/sources
BUILD   := $(CURDIR)/build
PYTEST  ?= /usr/bin/python3 -m pytest
# Flags given to every configure; CONFIGURE_FLAGS adds more.
BASE_CONFIGURE_FLAGS := --with-dtrace --without-ensurepip
CONFIGURE_FLAGS ?=

# The table of Pythons (pythons: versions, pinned sha256s, roles, variants),
# as make variables (scripts/pythons.py make): PYTHONS, PATCHED, STOCK,
# ANCHORS and, per NAME, version.NAME, tarball-name.NAME, sha256.NAME ...
$(BUILD)/pythons.mk: pythons scripts/pythons.py
	mkdir -p $(@D)
	scripts/pythons.py make > $@.tmp && mv $@.tmp $@
include $(BUILD)/pythons.mk

# Our series: the Pythons built with patches/SERIES.
SERIES := $(PATCHED)

# The 3.x builds that run no CPython test (the -shared and -jit variants,
# the stock ones) leave out its C modules (_testcapi ...): a fifth of a
# build's compile time.  Those and 2.7's -shared build are also compiled
# -O1 without debug information (FAST_OPT, half the compile time): they
# test what the markers do in libpython, in the tier-2 traces and beside
# upstream's own markers, not the compiled code's speed.  The series' own
# builds and the free-threaded one keep upstream's flags: CPython's tests
# run on them, and make bench builds those (docs/testing.md, "CI and its
# time").
NO_TEST_MODULES := --disable-test-modules
FAST_OPT := OPT="-DNDEBUG -fwrapv -O1 -Wall"

# make rpm (see "rpm" below); make check depends on the packages if rpmbuild
# is installed.
RPMBUILD ?= rpmbuild
RPMBUILD_PATH := $(shell command -v $(RPMBUILD) 2>/dev/null)
RPM_TOPDIR := $(BUILD)/rpm
RPM_STAMP := $(RPM_TOPDIR)/.built

.PHONY: all setup sources build build-shared build-variants module install-module stock trixie demo check check-quick check-builds check-ready bench-ready clean distclean tapset install install-tapsets uninstall bench rpm srpm
.DELETE_ON_ERROR:

all: build

# The packages of every job (scripts/packages) and tracefs.
setup:
	scripts/setup.sh check

# --- sources ---------------------------------------------------------------

# Every Python of the table: tarball.NAME, the tarball in SOURCES, and
# fetch.NAME, the command that puts it there, checked (scripts/fetch-source.sh).
define source_rules
tarball.$(1) := $(SOURCES)/$(tarball-name.$(1))
fetch.$(1) := scripts/fetch-source.sh $(tarball-name.$(1)) $(sha256.$(1)) $(debian.$(1)) \
	$(url.$(1)) $(SOURCES) $(revision.$(1))
$(SOURCES)/$(tarball-name.$(1)):
	$$(fetch.$(1))
endef
$(foreach p,$(PYTHONS),$(eval $(call source_rules,$(p))))

sources:
	$(foreach s,$(SERIES) $(STOCK),$(fetch.$(s)) &&) true

# --- build -----------------------------------------------------------------
# build/src/SERIES: the pristine tarball, patched, with probes.d installed,
# and the marker C its patches include (marker-c.SERIES, of markers/).
MARKERS_C := $(wildcard markers/*.h)
# build/obj/SERIES[-shared]: the out-of-tree build.
# build/bin/SERIES[-shared]: the contract for tools, the in-tree interpreter.

define series_rules
$(BUILD)/src/$(1)/.prepared: $(tarball.$(1)) $(sort $(wildcard patches/$(1)/*.patch)) probes.d \
		$(marker-c.$(1)) scripts/prepare-source.sh
	$(fetch.$(1))
	scripts/prepare-source.sh $(tarball.$(1)) patches/$(1) probes.d $(BUILD)/src/$(1) \
		$(marker-c.$(1))
	touch $$@

$(BUILD)/obj/$(1)/.built: $(BUILD)/src/$(1)/.prepared scripts/build-python.sh
	scripts/build-python.sh $(BUILD)/src/$(1) $(BUILD)/obj/$(1) $(BASE_CONFIGURE_FLAGS) $(CONFIGURE_FLAGS)
	touch $$@

$(BUILD)/obj/$(1)-shared/.built: $(BUILD)/src/$(1)/.prepared scripts/build-python.sh
	scripts/build-python.sh $(BUILD)/src/$(1) $(BUILD)/obj/$(1)-shared $(BASE_CONFIGURE_FLAGS) --enable-shared \
		$(if $(filter python3.%,$(1)),$(NO_TEST_MODULES)) $(FAST_OPT) \
		LDFLAGS=-Wl,-rpath,$(BUILD)/obj/$(1)-shared $(CONFIGURE_FLAGS)
	touch $$@

# The link names a path, not contents: it need not follow rebuilds.
$(BUILD)/bin/$(1) $(BUILD)/bin/$(1)-shared: $(BUILD)/bin/%: | $(BUILD)/obj/%/.built
	mkdir -p $$(@D)
	ln -sfn ../obj/$$*/python $$@
endef
$(foreach s,$(SERIES),$(eval $(call series_rules,$(s))))

build: $(SERIES:%=$(BUILD)/bin/%)

# The series with a -shared variant (pythons).
SHARED_SERIES = $(foreach s,$(SERIES),$(if $(filter shared,$(variants.$(s))),$(s)))

build-shared: $(SHARED_SERIES:%=$(BUILD)/bin/%-shared)

# The other interpreters of a series (its variants in pythons), whose
# markers the tests hold to the same expectations: free-threaded
# (--disable-gil), and the tier-2 interpreter that runs the optimizer's
# traces (the machine-code JIT needs LLVM 18 or 19, which Debian 12 lacks;
# =interpreter runs the same traces uop by uop).
VARIANTS := ft jit
VARIANT_FLAGS.ft := --disable-gil
VARIANT_FLAGS.jit := --enable-experimental-jit=interpreter $(NO_TEST_MODULES) $(FAST_OPT)

define variant_rules
$(BUILD)/obj/$(1)-$(2)/.built: $(BUILD)/src/$(1)/.prepared scripts/build-python.sh
	scripts/build-python.sh $(BUILD)/src/$(1) $(BUILD)/obj/$(1)-$(2) \
		$(BASE_CONFIGURE_FLAGS) $(VARIANT_FLAGS.$(2)) $(CONFIGURE_FLAGS)
	touch $$@

$(BUILD)/bin/$(1)-$(2): | $(BUILD)/obj/$(1)-$(2)/.built
	mkdir -p $$(@D)
	ln -sfn ../obj/$(1)-$(2)/python $$@
endef
$(foreach s,$(SERIES),$(foreach v,$(filter $(VARIANTS),$(variants.$(s))),$(eval $(call variant_rules,$(s),$(v)))))

build-variants: $(foreach s,$(SERIES),$(foreach v,$(filter $(VARIANTS),$(variants.$(s))),$(BUILD)/bin/$(s)-$(v)))

# The stock Pythons (upstream's 3.15), as released (their own pydtrace.d,
# no patch): the interpreters usdtmon completes (line and cfunction beside
# 3.15's own function markers).
define stock_rules
$(BUILD)/src/$(1)/.prepared: $(tarball.$(1))
	$(fetch.$(1))
	rm -rf $$(@D) && mkdir -p $$(@D)
	tar -xf $(tarball.$(1)) -C $$(@D) --strip-components=1
	touch $$@

$(BUILD)/obj/$(1)/.built: $(BUILD)/src/$(1)/.prepared scripts/build-python.sh
	scripts/build-python.sh $(BUILD)/src/$(1) $(BUILD)/obj/$(1) $(BASE_CONFIGURE_FLAGS) \
		$(NO_TEST_MODULES) $(FAST_OPT) $(CONFIGURE_FLAGS)
	touch $$@

$(BUILD)/bin/$(1): | $(BUILD)/obj/$(1)/.built
	mkdir -p $$(@D)
	ln -sfn ../obj/$(1)/python $$@
endef
$(foreach p,$(STOCK),$(eval $(call stock_rules,$(p))))

# usdtmon (module/usdtmon): the markers from sys.monitoring, for a Python
# that lacks them.  The tests load it into our builds with every family on
# (their own markers then stay untraced), and into upstream's 3.15 as a
# user would (the families it lacks): build/module/BUILD/usdtmon.
MODULE_BUILDS := python3.13 python3.14 python3.14-ft $(STOCK)
MODULE_INPUTS := $(wildcard module/usdtmon/*) probes.d $(MARKERS_C) scripts/build-module.sh

$(BUILD)/module/%/.built: $(BUILD)/obj/%/.built $(MODULE_INPUTS) | $(BUILD)/bin/%
	scripts/build-module.sh $(BUILD)/bin/$* $(BUILD)/module/$*
	touch $@

module: $(MODULE_BUILDS:%=$(BUILD)/module/%/.built)

stock: $(foreach p,$(STOCK),$(BUILD)/bin/$(p) $(BUILD)/module/$(p)/.built)

install-module:
	$(if $(PYTHON),,$(error make install-module needs PYTHON=/path/to/python3.X))
	scripts/install-module.sh $(if $(DESTDIR),--destdir=$(DESTDIR)) \
		$(if $(tapsetdir),--tapsetdir=$(tapsetdir)) $(if $(SITE_WIDE),--site-wide) $(PYTHON)

# The stock interpreter usdtmon serves: Debian 13's own python3.13, in a
# private root (tests/trixie-root.sh: build/trixie), with usdtmon built
# there by its own gcc against its own headers (/opt/usdtmon in the root).
TRIXIE := $(BUILD)/trixie

$(TRIXIE)/.root: tests/trixie-root.sh
	tests/trixie-root.sh $(TRIXIE)
	touch $@

$(TRIXIE)/opt/usdtmon/.built: $(TRIXIE)/.root $(MODULE_INPUTS)
	rm -rf $(TRIXIE)/usr/src/usdtmon
	mkdir -p $(TRIXIE)/usr/src/usdtmon/scripts
	cp -R module markers probes.d $(TRIXIE)/usr/src/usdtmon/
	cp scripts/build-module.sh $(TRIXIE)/usr/src/usdtmon/scripts/
	chroot $(TRIXIE) /usr/src/usdtmon/scripts/build-module.sh /usr/bin/python3.13 /opt/usdtmon
	touch $@

trixie: $(TRIXIE)/opt/usdtmon/.built

# --- use and test ----------------------------------------------------------

# make demo, make check and make bench first make the machine ready
# (scripts/setup.sh: the Debian packages of scripts/packages, tracefs), then
# run the rest in a new make, which sees what setup installed.
demo:
	scripts/setup.sh demo
	$(MAKE) build
	scripts/demo.sh $(SERIES:%=$(BUILD)/bin/%)

check:
	scripts/setup.sh check
	$(MAKE) -j$(BUILD_JOBS) check-builds
	$(MAKE) check-ready

# The tests that need no interpreter build, guest or consumer: on every
# edit, after make setup (tests marked quick; docs/testing.md).
check-quick:
	$(PYTEST) -q -m quick tests

# What make check tests, built BUILD_JOBS at a time (each build-python.sh
# runs make -j itself): one build's single-threaded configure and link
# beside another's compiles.  The RPMs (build/rpm/.built) build while the
# tests run (tests/test_rpm.py).
BUILD_JOBS ?= $(shell nproc)
check-builds: trixie stock build build-shared build-variants module tapset

check-ready: check-builds
	$(if $(RPMBUILD_PATH),,@echo "make check: rpmbuild is not installed, tests/test_rpm.py will skip (apt-get install rpm rpmlint)")
	$(PYTEST) -v -rs --durations=30 tests

# make bench: builds (a) upstream, (b) patched without markers, (c) with
# markers, and the upstream anchors under build/bench/, measures them
# (bench/bench.py) and writes docs/performance.md (bench/report.py).  It
# fails only when something could not be measured.  BENCH_ARGS: e.g.
# --phases text,callgrind (skip builds, wall clock and live probes).
BENCH_ARGS ?=
bench:
	scripts/setup.sh bench
	$(MAKE) bench-ready

bench-ready: $(foreach p,$(SERIES) $(ANCHORS),$(tarball.$(p)))
	rc=0; JOBS=$(or $(JOBS),2) SOURCES=$(SOURCES) BENCH_BUILD=$(BUILD)/bench \
		/usr/bin/python3 bench/bench.py $(BENCH_ARGS) || rc=$$?; \
	/usr/bin/python3 bench/report.py $(BUILD)/bench/results.json docs/performance.md && exit $$rc

# --- tapsets ---------------------------------------------------------------
# scripts/gen-tapset turns tapset/libpython.stp.in into libpythonX.Y-BITS.stp
# for one Python, offering the markers its ELF notes show.
#   make tapset               build/tapset/ for build/bin/python*, and
#                             build/tapset-V/ for the builds of variant V
#                             (shared, ft, jit) that exist:
#                             stap -I build/tapset ... from a checkout
#   make tapset PYTHON=P      build/tapset-extra/ for the Python P
#   make install [DESTDIR=D] [PREFIX=/usr/local] [tapsetdir=T]
#                             scripts/install.sh: each Python of SERIES by
#                             CPython's `make altinstall prefix=PREFIX` (only
#                             versioned names: PREFIX/bin/pythonX.Y, never
#                             python3, pydoc, idle, 2to3; no test suite);
#                             its tapset, probing PREFIX/bin/pythonX.Y, into
#                             DESTDIR/tapsetdir; tapset/python.stp over
#                             SystemTap's own python.stp (see there), which
#                             dpkg-divert keeps aside when installing to a
#                             dpkg system (no DESTDIR); examples/ into
#                             PREFIX/share/python-systemtap/examples; and the
#                             list of every file installed, the manifest
#                             PREFIX/share/python-systemtap/installed-files.
#                             The builds' prefix is /usr/local; another
#                             PREFIX works (the interpreter finds its library
#                             from its own path), but sysconfig and
#                             pkg-config still say /usr/local.
#                             LINKAGE=shared is refused: the -shared builds
#                             find libpython through an rpath into build/
#   make install-tapsets      the tapsets and python.stp alone, in the
#                             manifest too (LINKAGE=shared: those of the
#                             series with a -shared build, probing
#                             PREFIX/lib/libpython*)
#   make install PYTHON=P     P's tapset and python.stp alone, no manifest
#   make uninstall [DESTDIR=D] [PREFIX=/usr/local]
#                             remove every file the manifest lists, and the
#                             directories the installs created, if empty,
#                             under PREFIX/lib/pythonX.Y, include/pythonX.Y
#                             and share/python-systemtap; on the real system
#                             undo the dpkg-divert of SystemTap's python.stp

GEN_TAPSET := scripts/gen-tapset tapset/libpython.stp.in
PREFIX ?= /usr/local
LINKAGE ?= static
# SystemTap's own tapset directory (PKGDATADIR/tapset of the stap in PATH).
STAP := $(shell command -v stap 2>/dev/null)
tapsetdir ?= $(if $(STAP),$(abspath $(dir $(STAP))../share/systemtap/tapset),/usr/share/systemtap/tapset)
INSTALL_SH = scripts/install.sh --destdir='$(DESTDIR)' --prefix='$(PREFIX)' --tapsetdir='$(tapsetdir)' --build='$(BUILD)'

ifdef PYTHON
tapset:
	$(GEN_TAPSET) $(PYTHON) $(BUILD)/tapset-extra

install:
	$(GEN_TAPSET) $(PYTHON) $(DESTDIR)$(tapsetdir)
	$(INSTALL_SH) python-stp
else
tapset: build
	$(foreach s,$(SERIES),$(GEN_TAPSET) $(BUILD)/bin/$(s) $(BUILD)/tapset &&) true
	$(foreach s,$(SERIES),$(foreach v,shared $(VARIANTS),$(if $(wildcard $(BUILD)/bin/$(s)-$(v)),$(GEN_TAPSET) $(BUILD)/bin/$(s)-$(v) $(BUILD)/tapset-$(v) &&))) true

# Order-only: the builds are made if missing or out of date (as make build
# would), never for being newer than their link; CPython's altinstall then
# installs them as built (its dependency on `all` finds nothing to do).
ifeq ($(LINKAGE),shared)
install:
	@echo "make install LINKAGE=shared: the -shared builds find libpython through an rpath into $(BUILD)/obj," \
		"so their interpreters cannot be installed; make install installs the static builds," \
		"make install-tapsets LINKAGE=shared only the -shared builds' tapsets" >&2; exit 1
else
install: | $(SERIES:%=$(BUILD)/bin/%)
	$(INSTALL_SH) install $(SERIES)
endif

TAPSET_SERIES = $(if $(filter shared,$(LINKAGE)),$(SHARED_SERIES),$(SERIES))
install-tapsets: | $(TAPSET_SERIES:%=$(BUILD)/bin/%$(if $(filter shared,$(LINKAGE)),-shared))
	$(INSTALL_SH) --linkage='$(LINKAGE)' install-tapsets $(TAPSET_SERIES)
endif

uninstall:
	$(INSTALL_SH) uninstall

# --- rpm -------------------------------------------------------------------
# python.spec builds every Python from the tarballs of `make sources`, with
# our patches, probes.d, tapsets and examples.  rpmbuild's tree is
# build/rpm (_topdir); scripts/rpm-sources.sh stages every Source and Patch
# of the spec into build/rpm/SOURCES (_sourcedir).
#   make rpm [RPM_DEFINES="--define 'pst_prefix /usr'"]
#                             rpmbuild -ba: build/rpm/RPMS/*/*.rpm and the
#                             source package in build/rpm/SRPMS
#   make srpm                 rpmbuild -bs: build/rpm/SRPMS only
# make check builds the packages when python.spec or anything it packages
# changed (build/rpm/.built), then tests/test_rpm.py checks them.
# rpm installed by dpkg (Debian) keeps an empty package database, so no
# BuildRequires could be met: rpmbuild then runs with --nodeps, and the
# Debian packages of scripts/packages stand in for the BuildRequires.

RPM_DEFINES ?=
RPM_FROM_DPKG := $(shell dpkg-query -W -f='$${Status}' rpm 2>/dev/null | grep -q ' installed' && echo yes)
RPMBUILD_FLAGS = --define '_topdir $(RPM_TOPDIR)' --define '_sourcedir $(RPM_TOPDIR)/SOURCES' \
	$(if $(RPM_FROM_DPKG),--nodeps) $(RPM_DEFINES)
# What the packages are built from.  README is packaged too, as the examples'
# documentation, but an edit to it alone does not rebuild them for make check
# (make rpm always rebuilds).
RPM_INPUTS := python.spec python.rpmlintrc probes.d $(MARKERS_C) LICENSE tapset/libpython.stp.in scripts/gen-tapset \
	scripts/usdt.py scripts/rpm-sources.sh $(wildcard patches/*/*.patch patches/*/markers) \
	$(wildcard examples/*.stp examples/bpftrace/*.bt) examples/workload.py

define rpm_sources
	@test -n "$(RPMBUILD_PATH)" || { echo "$(RPMBUILD) is not installed (apt-get install rpm, or dnf install rpm-build)" >&2; exit 1; }
	scripts/rpm-sources.sh python.spec $(SOURCES) $(RPM_TOPDIR)/SOURCES
	$(if $(RPM_FROM_DPKG),@echo "rpmbuild --nodeps: this rpm was installed by dpkg and its package database is empty;" \
		"the BuildRequires are not checked (their Debian equivalents: scripts/packages)")
endef

define rpm_build
	$(rpm_sources)
	rm -rf $(RPM_TOPDIR)/RPMS $(RPM_TOPDIR)/SRPMS $(RPM_STAMP)
	@echo "rpmbuild -ba python.spec: a few minutes (log: $(RPM_TOPDIR)/rpmbuild.log)"
	$(RPMBUILD) -ba $(RPMBUILD_FLAGS) python.spec > $(RPM_TOPDIR)/rpmbuild.log 2>&1 || \
		{ tail -n 40 $(RPM_TOPDIR)/rpmbuild.log >&2; echo "rpmbuild failed; full log in $(RPM_TOPDIR)/rpmbuild.log" >&2; exit 1; }
	@grep -E '^Wrote: ' $(RPM_TOPDIR)/rpmbuild.log
	touch $(RPM_STAMP)
endef

rpm: $(foreach s,$(SERIES),$(tarball.$(s)))
	$(rpm_build)

$(RPM_STAMP): $(RPM_INPUTS) $(foreach s,$(SERIES),$(tarball.$(s)))
	$(rpm_build)

srpm: $(foreach s,$(SERIES),$(tarball.$(s)))
	$(rpm_sources)
	$(RPMBUILD) -bs $(RPMBUILD_FLAGS) python.spec

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(SOURCES)
