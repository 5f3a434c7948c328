# DevFs: `make run` serves the default policy's /dev at a folder; `make test` runs every test.
# Both install what they need first (Debian packages, NuGet restore).

SHELL       := /bin/bash
DOTNET      ?= dotnet
CONFIG      ?= Release
ARTIFACTS   := $(CURDIR)/artifacts
DEVFS       := $(ARTIFACTS)/devfs
RUN_DIR     ?= /tmp/devfs-run
DEB_PACKAGES := fuse3 util-linux uidmap iproute2 procps kmod
UNIT_TESTS  := tests/DevFs.Fuse.Tests tests/DevFs.Devices.Tests tests/DevFs.Policy.Tests
SOURCES     := $(shell find src policies -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.yaml' \) 2>/dev/null) Directory.Build.props Directory.Packages.props

.PHONY: all deps restore build publish run test unit-test integration-test bench clean

all: publish

# Debian packages the daemon and the tests use: fusermount3/mount.fuse3, losetup, ip.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

restore:
	$(DOTNET) restore DevFs.sln

build: restore
	$(DOTNET) build DevFs.sln -c $(CONFIG) --no-restore

$(DEVFS): $(SOURCES)
	$(DOTNET) publish src/DevFs.Cli/DevFs.Cli.csproj -c $(CONFIG) -o $(ARTIFACTS)
	@rm -f $(ARTIFACTS)/*.dbg
	@touch $(DEVFS)

publish: $(DEVFS)

run: deps $(DEVFS)
	@mkdir -p $(RUN_DIR)
	@echo "serving the default policy's /dev at $(RUN_DIR) (Ctrl-C unmounts)"
	$(DEVFS) devfs $(RUN_DIR) -f

test: deps build $(DEVFS)
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

bench: deps $(DEVFS)
	$(DOTNET) run --project tests/DevFs.Bench -c $(CONFIG) -- $(DEVFS)

clean:
	rm -rf $(ARTIFACTS) TestResults
	$(DOTNET) clean DevFs.sln
