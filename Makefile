# stagehand — see README.md.
#
#   make demo   install what it needs, then PXE-boot a VM through stagehand to "installed"
#   make test   install what it needs, then run every test (unit, interop, end-to-end VMs)

SHELL := /bin/bash
GO    ?= go
BIN   := bin/stagehand

# Debian packages the tests and the demo use: QEMU, firmware and iPXE for
# the VMs, dnsmasq as the "site" DHCP server, ISC dhcrelay (and dnsmasq) as
# the relay of the routed-bench tests, real TFTP/DHCP clients for
# the interop tests (kea-admin brings perfdhcp, the DHCP load client of
# the lease-crash test), what the lab needs to build its kernel+initramfs,
# and systemd-analyze (package systemd) to check examples/stagehand.service.
DEB_PACKAGES := qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static iproute2 cpio kmod \
	dnsmasq-base atftp tftp-hpa curl xz-utils ca-certificates xorriso genisoimage util-linux strace nftables \
	kea-admin systemd python3 ndisc6 isc-dhcp-relay

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps test unit e2e demo vet clean bench fuzz

all: build

build:
	$(GO) build -o $(BIN) ./cmd/stagehand

# deps installs the Debian packages (root, or sudo) and downloads Go modules.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...

# unit: everything that needs no VM (interop tests with real TFTP/DHCP
# clients in network namespaces included; they need root).
unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# e2e: real firmware in QEMU, one test at a time (2 cores, no KVM).
e2e:
	$(GO) test -tags e2e -count=1 -p 1 -timeout 40m -v ./e2e/ ./lab/ 2>&1 | tee /tmp/stagehand-e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|^ +--- |^ +[a-z_]+\.go:[0-9]+: |lab: vm|STANDIN' ; exit $${PIPESTATUS[0]}

# fuzz: every native fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m).
# make test runs a fixed 2000 inputs per target: a time budget can end while
# a worker is inside a slow input, which go test reports as a failure.
# Crashers land in the package's testdata/fuzz and then run as regression
# seeds in every plain go test.
FUZZTIME ?= 60s
FUZZ_TARGETS := dhcp:FuzzClassify tftp:FuzzParseRequest ipxe:FuzzParseQuery userdata:FuzzRender \
	inventory:FuzzParseCSV api:FuzzOperatorJSON iso9660:FuzzOpen
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$$pkg/ || exit 1; \
	done

test: deps vet unit e2e
	$(MAKE) fuzz FUZZTIME=2000x

demo: deps build
	$(SUDO) ./examples/demo.sh

# bench: every bench/*/run.sh (each installs its own peer: dnsmasq,
# tftpd-hpa, nginx, wrk, kea-admin's perfdhcp, tcpdump for bench/boot's
# real-VM boots), then docs/BENCHMARKS.md.
# Not part of make test: figures need a quiet machine, not a CI runner.
bench: deps build
	@for s in bench/*/run.sh; do echo "== $$s"; $(SUDO) bash $$s || exit 1; done
	./bench/assemble.sh > docs/BENCHMARKS.md
	@echo "wrote docs/BENCHMARKS.md"

clean:
	rm -rf bin
