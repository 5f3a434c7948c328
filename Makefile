# DevFs: `make run` serves the default policy's /dev at a folder; `make test` runs every test.
# Both install what they need first (Debian packages, NuGet restore).

SHELL       := /bin/bash
DOTNET      ?= dotnet
CONFIG      ?= Release
ARTIFACTS   := $(CURDIR)/artifacts
DEVFS       := $(ARTIFACTS)/devfs
RUN_DIR     ?= /tmp/devfs-run
# Debian packages: what serving needs (fusermount3, mount.fuse3), and what the tests use besides
# (losetup, setpriv, newuidmap, ip, LXC with busybox, crun, man, python3 for ioctl calls, systemd-analyze).
RUN_PACKAGES  := fuse3
TEST_PACKAGES := $(RUN_PACKAGES) util-linux uidmap iproute2 procps kmod lxc busybox-static crun man-db python3 systemd dpkg-dev
UNIT_TESTS  := tests/DevFs.Fuse.Tests tests/DevFs.Devices.Tests tests/DevFs.Policy.Tests tests/DevFs.View.Tests tests/DevFs.Ownership.Tests
SOURCES     := $(shell find src policies -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.yaml' \) 2>/dev/null) Directory.Build.props Directory.Packages.props

.PHONY: all run-deps test-deps restore build publish run test bench clean install uninstall deb

all: publish

define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

run-deps:
	$(call apt_install,$(RUN_PACKAGES))

test-deps:
	$(call apt_install,$(TEST_PACKAGES))

restore:
	$(DOTNET) restore DevFs.sln

build: restore
	$(DOTNET) build DevFs.sln -c $(CONFIG) --no-restore

$(DEVFS): $(SOURCES)
	$(DOTNET) publish src/DevFs.Cli/DevFs.Cli.csproj -c $(CONFIG) -o $(ARTIFACTS)
	@rm -f $(ARTIFACTS)/*.dbg
	@touch $(DEVFS)

publish: $(DEVFS)

run: run-deps $(DEVFS)
	@mkdir -p $(RUN_DIR)
	@echo "serving the default policy's /dev at $(RUN_DIR) (Ctrl-C unmounts)"
	$(DEVFS) devfs $(RUN_DIR) -f

test: test-deps build $(DEVFS)
	@set -o pipefail; rm -rf TestResults TestResults.log; status=0; \
	for t in $(UNIT_TESTS) tests/DevFs.Integration.Tests; do \
	  $(DOTNET) test $$t -c $(CONFIG) --no-build --logger "console;verbosity=normal" --results-directory TestResults \
	    -- NUnit.DefaultTimeout=120000 2>&1 | tee -a TestResults.log || status=1; \
	done; \
	passed=$$(grep -Eo 'Passed: +[0-9]+' TestResults.log | awk '{s+=$$2} END {print s+0}'); \
	failed=$$(grep -Eo 'Failed: +[0-9]+' TestResults.log | awk '{s+=$$2} END {print s+0}'); \
	rm -f TestResults.log; \
	echo "tests: $$passed passed, $$failed failed"; \
	exit $$status

bench: run-deps $(DEVFS)
	$(DOTNET) run --project tests/DevFs.Bench -c $(CONFIG) -- $(DEVFS)

clean:
	rm -rf $(ARTIFACTS) TestResults
	$(DOTNET) clean DevFs.sln

# ---- system integration (packaging/): make install [PREFIX=/usr/local] [DESTDIR=...], make deb ----
# mount(8) runs helpers without PATH, so mount.fuse3's /bin/sh finds `devfs` only in the shell's default
# PATH (/usr/local/sbin, /usr/sbin, /sbin, ...): keep SBINDIR there for `mount -t fuse.devfs` and fstab.
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
SYSCONFDIR  ?= $(if $(filter /usr /usr/local,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR     ?= $(PREFIX)/lib/systemd/system
LXCHOOKDIR  ?= $(DATADIR)/devfs/lxc
OCIHOOKDIR  ?= $(DATADIR)/devfs/oci
DEB_VERSION ?= 1.0.0
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_ROOT    := $(ARTIFACTS)/deb/root
DEB_FILE    := $(ARTIFACTS)/devfs_$(DEB_VERSION)_$(DEB_ARCH).deb
SUBST        = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@LXCHOOKDIR@|$(LXCHOOKDIR)|g' -e 's|@OCIHOOKDIR@|$(OCIHOOKDIR)|g'

# Installs the binary, policies (never overwriting an edited one), units, hooks and man pages.
install: $(DEVFS)
	install -D -m 0755 $(DEVFS) $(DESTDIR)$(SBINDIR)/devfs
	install -d $(DESTDIR)$(SYSCONFDIR)/devfs/examples
	@for f in default.yaml $$(cd policies && ls examples/*.yaml); do \
	  if [ -e $(DESTDIR)$(SYSCONFDIR)/devfs/$$f ]; then echo "keeping $(DESTDIR)$(SYSCONFDIR)/devfs/$$f"; \
	  else install -m 0644 policies/$$f $(DESTDIR)$(SYSCONFDIR)/devfs/$$f; fi; done
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(LXCHOOKDIR) $(DESTDIR)$(OCIHOOKDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	$(SUBST) packaging/systemd/devfs@.service > $(DESTDIR)$(UNITDIR)/devfs@.service && chmod 0644 $(DESTDIR)$(UNITDIR)/devfs@.service
	$(SUBST) packaging/systemd/devfs.service > $(DESTDIR)$(UNITDIR)/devfs.service && chmod 0644 $(DESTDIR)$(UNITDIR)/devfs.service
	$(SUBST) packaging/lxc/devfs-hook > $(DESTDIR)$(LXCHOOKDIR)/devfs-hook && chmod 0755 $(DESTDIR)$(LXCHOOKDIR)/devfs-hook
	$(SUBST) packaging/lxc/devfs.conf > $(DESTDIR)$(LXCHOOKDIR)/devfs.conf && chmod 0644 $(DESTDIR)$(LXCHOOKDIR)/devfs.conf
	$(SUBST) packaging/oci/devfs-oci-hook > $(DESTDIR)$(OCIHOOKDIR)/devfs-oci-hook && chmod 0755 $(DESTDIR)$(OCIHOOKDIR)/devfs-oci-hook
	gzip -9n < packaging/man/devfs.8 > $(DESTDIR)$(MANDIR)/man8/devfs.8.gz
	gzip -9n < packaging/man/devfs-policy.5 > $(DESTDIR)$(MANDIR)/man5/devfs-policy.5.gz

# Removes what install put there, except policies that were edited since (compared with the shipped copy).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/devfs $(DESTDIR)$(UNITDIR)/devfs@.service $(DESTDIR)$(UNITDIR)/devfs.service
	rm -f $(DESTDIR)$(MANDIR)/man8/devfs.8.gz $(DESTDIR)$(MANDIR)/man5/devfs-policy.5.gz
	rm -rf $(DESTDIR)$(LXCHOOKDIR) $(DESTDIR)$(OCIHOOKDIR)
	-rmdir $(DESTDIR)$(DATADIR)/devfs 2>/dev/null
	@for f in default.yaml $$(cd policies && ls examples/*.yaml); do \
	  if cmp -s policies/$$f $(DESTDIR)$(SYSCONFDIR)/devfs/$$f; then rm -f $(DESTDIR)$(SYSCONFDIR)/devfs/$$f; \
	  elif [ -e $(DESTDIR)$(SYSCONFDIR)/devfs/$$f ]; then echo "keeping edited $(DESTDIR)$(SYSCONFDIR)/devfs/$$f"; fi; done
	-rmdir $(DESTDIR)$(SYSCONFDIR)/devfs/examples $(DESTDIR)$(SYSCONFDIR)/devfs 2>/dev/null

# A Debian package from a staged tree (dpkg-deb only, no debhelper): artifacts/devfs_VERSION_ARCH.deb.
deb: $(DEVFS)
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory -o $(DEVFS) install DESTDIR=$(DEB_ROOT) PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system
	install -d $(DEB_ROOT)/DEBIAN $(DEB_ROOT)/usr/share/doc/devfs
	sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
	    -e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)|" packaging/debian/control > $(DEB_ROOT)/DEBIAN/control
	(cd $(DEB_ROOT) && find etc -type f | sed 's|^|/|' | sort) > $(DEB_ROOT)/DEBIAN/conffiles
	install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm $(DEB_ROOT)/DEBIAN/
	install -m 0644 packaging/debian/copyright $(DEB_ROOT)/usr/share/doc/devfs/copyright
	install -m 0644 README.md docs/policy.md docs/lxc.md docs/oci.md $(DEB_ROOT)/usr/share/doc/devfs/
	(cd $(DEB_ROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum) > $(DEB_ROOT)/DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB_FILE)
	@echo "built $(DEB_FILE)"
