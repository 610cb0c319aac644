#!/usr/bin/env bash
# bench/boot/run.sh — one real VM from power-on to installed, through
# stagehand and through the dnsmasq + nginx glue (issue 11).
#
# The same VM (SeaBIOS + QEMU's iPXE NIC ROM, virtio-net, 512 MiB, TCG: no
# KVM) boots the lab kernel and the installer stand-in
# (lab/build-artifacts.sh) on a bridge where nothing sends IPv6 router
# advertisements, through each configuration of bench/boot/report.go:
#   full     stagehand full DHCP (as make demo)
#   proxy    stagehand proxyDHCP beside dnsmasq, the site DHCP server
#   glue     dnsmasq full DHCP handing iPXE http://…/boot.ipxe, nginx serving
#            the script, kernel, initrd, user-data and a static callback
#   full-ra  stagehand full DHCP plus a dnsmasq RA sender (router lifetime
#            0, as lab.RunRA): the issue's "extra RA sender"
# Every phase is timed the same way for all of them: tcpdump on the bridge
# (DHCP ACKs, router solicitations and advertisements, the VM's HTTP
# requests, kernel timestamps) against the moment QEMU started, and QEMU's
# exit when the stand-in powers off. Each run is a fresh namespace and a
# fresh server; the configurations are interleaved run by run. The test and
# every server run on CPU 1, QEMU on CPU 0, the whole benchmark under the
# shared bench lock. The harness is bench/boot/boot_test.go (build tag
# bootbench). Writes docs/bench/boot.md.
#
# Knobs (environment): BOOT_RUNS=3 BOOT_CONFIGS=full,proxy,glue,full-ra
# BOOT_OUT=docs/bench/boot.md (with other BOOT_CONFIGS the default is
# standard output only) BOOT_KEEP=1 keeps the work directory (captures,
# serial consoles, the test's log, runs.jsonl). BOOT_STAGEHAND=PATH runs a
# stagehand binary of another build (e.g. main before a change) in place of
# this tree's, named in the fragment by BOOT_LABEL.
#
# The issue's demo ratio alone (stagehand alone / with the RA sender):
#   sudo BOOT_CONFIGS=full,full-ra bash bench/boot/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

RUNS=${BOOT_RUNS:-3}
DEFAULT_CONFIGS=full,proxy,glue,full-ra
CONFIGS=${BOOT_CONFIGS:-$DEFAULT_CONFIGS}
OUT=${BOOT_OUT:-}
[ -z "$OUT" ] && [ "$CONFIGS" = "$DEFAULT_CONFIGS" ] && OUT=docs/bench/boot.md
LOCK=/tmp/stagehand-bench.lock
CACHE=${STAGEHAND_LAB_CACHE:-/var/cache/stagehand-lab}

WORK=$(mktemp -d /tmp/shb-boot.XXXXXX)
log() { echo "boot: $*" >&2; }
cleanup() { [ -n "${BOOT_KEEP:-}" ] && log "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- dependencies, from Debian when missing: the lab (QEMU, the iPXE ROM,
# what build-artifacts.sh needs), the peers and the observer.
missing=
for p in qemu-system-x86 ipxe-qemu busybox-static cpio kmod iproute2 util-linux curl dnsmasq-base nginx tcpdump; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	log "installing$missing"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends $missing >&2
fi

# ---- build (outside the lock)
log "building stagehand, the harness and the lab artifacts ($CACHE)"
if [ -n "${BOOT_STAGEHAND:-}" ]; then
	cp "$BOOT_STAGEHAND" "$WORK/stagehand"
else
	go build -o "$WORK/stagehand" ./cmd/stagehand
fi
go test -c -tags bootbench -o "$WORK/boot.test" ./bench/boot
bash lab/build-artifacts.sh "$CACHE" >&2

# ---- the runs, under the bench lock
exec 9>"$LOCK"
log "waiting for the bench lock"
flock 9
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "runs: $RUNS × $CONFIGS (load average $LOAD_BEFORE)"
set +e
(cd bench/boot && STAGEHAND_LAB_CACHE=$CACHE taskset -c 1 "$WORK/boot.test" -test.run '^TestBootBench$' -test.v -test.count=1 \
	-test.timeout 60m -boot.runs "$RUNS" -boot.configs "$CONFIGS" -boot.stagehand "$WORK/stagehand" -boot.qemu-cpu 0 \
	-boot.out "$WORK/tables.md" -boot.results "$WORK/runs.jsonl" -boot.keep "$WORK/runs") >"$WORK/test.log" 2>&1
rc=$?
set -e
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
flock -u 9
exec 9>&-
grep -E 'run [0-9]+:|^(--- |FAIL|ok|PASS)|^ +--- ' "$WORK/test.log" >&2 || true
if [ "$rc" != 0 ] || [ ! -s "$WORK/tables.md" ]; then
	log "the harness failed (exit $rc); its log:"
	tail -n 60 "$WORK/test.log" >&2
	BOOT_KEEP=1
	exit 1
fi

# ---- the fragment
FRAG=$WORK/boot.md
{
	echo "## boot: one VM from power-on to installed, stagehand against the dnsmasq + nginx glue"
	echo
	echo "Written by \`bench/boot/run.sh\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r), $(go version | cut -d' ' -f3)."
	if [ -n "${BOOT_STAGEHAND:-}" ]; then
		echo "stagehand: ${BOOT_LABEL:-$BOOT_STAGEHAND} (harness $(git rev-parse --short HEAD 2>/dev/null || echo unknown));"
	else
		echo "stagehand $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (working tree with uncommitted changes)');"
	fi
	echo "$(qemu-system-x86_64 --version | head -n 1), ipxe-qemu $(dpkg-query -W -f='${Version}' ipxe-qemu), $(dnsmasq --version | head -n 1 | sed 's/ *Copyright.*//'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(tcpdump --version 2>&1 | head -n 1)."
	echo
	echo "Command: \`sudo bash bench/boot/run.sh\` (runs: $RUNS of each of $CONFIGS; knobs in its header; the demo's ratio alone:"
	echo "\`sudo BOOT_CONFIGS=full,full-ra bash bench/boot/run.sh\`). Harness: \`bench/boot/boot_test.go\` (build tag \`bootbench\`), run as"
	echo
	echo '```'
	echo "taskset -c 1 boot.test -test.run '^TestBootBench\$' -boot.runs $RUNS -boot.configs $CONFIGS -boot.qemu-cpu 0"
	echo '```'
	echo
	echo "The VM: \`qemu-system-x86_64 -machine pc -accel tcg -smp 1 -m 512M -device sga\`, SeaBIOS and QEMU's iPXE ROM on"
	echo "\`virtio-net-pci\` (as \`make demo\`), software emulation: no KVM. It boots the lab kernel and the installer stand-in"
	echo "(\`lab/build-artifacts.sh\`: the stand-in takes a DHCP lease, fetches its user-data, posts the completion callback"
	echo "and powers off). Every run is a fresh network namespace holding one bridge (10.97.0.1/24, the server's address)"
	echo "with nothing on it sending IPv6 router advertisements, a fresh server, and the VM (configurations below)."
	echo
	echo "One observer for all: tcpdump in the namespace (\`tcpdump -i any -n -tt -l -v -A\`: DHCP, ICMPv6 router solicitations"
	echo "and advertisements, the VM's HTTP request segments), kept to the VM's tap, kernel timestamps taken against the"
	echo "moment QEMU was started (\"power-on\"). \"off\" is QEMU's exit as the harness sees it (its clock, not the kernel's"
	echo "packet timestamps: under load it can come up to ~0.1 s before the callback's timestamp). The glue serves the same"
	echo "paths as stagehand (\`/boot.ipxe\`, \`/artifacts/glue/kernel\`, \`/artifacts/glue/initrd\`, \`/userdata/TOKEN\`,"
	echo "\`/callback/TOKEN/done\`), so one table of paths times all of them. Its script is stagehand's stage 2 in one file"
	echo "(stagehand chains stage 1 → stage 2: one more request). Each figure: median (min–max) over the runs; ratios"
	echo "divide medians."
	echo
	echo "Noise: the machine's 2 cores are shared with other work (other VMs): load average $LOAD_BEFORE when the runs"
	echo "began, $LOAD_AFTER when they ended. Emulated CPU time dominates the kernel's boot (initrd → linux-dhcp), so that phase"
	echo "moves with the load by seconds; the network phases (dhcp → script, the transfers) do not."
	echo
	cat "$WORK/tables.md"
	if [ -f "$ROOT/bench/boot/notes.md" ]; then cat "$ROOT/bench/boot/notes.md"; fi
} >"$FRAG"
if [ -n "$OUT" ]; then
	cp "$FRAG" "$OUT"
	log "wrote $OUT"
else
	cat "$FRAG"
fi
